package wizard

import (
	"bytes"
	"context"
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/preflight"
)

// streamScenario is a way into the accessible wizard and the answers that
// reach a certificate, one per question.
type streamScenario struct {
	name  string
	deps  func() Deps
	cfg   Config
	valid []string
}

func okIssuer() Issuer {
	return issuerFunc(func(ctx context.Context, req acmeflow.Request, opts acmeflow.IssueOptions) (*acmeflow.Issued, error) {
		ca := cachoice.Local
		if req.Directory != "" && !strings.Contains(req.Directory, "local") {
			ca = cachoice.Production
		}
		return fakeIssued(acmeflow.AddrStrings(req.Identifiers)[0], ca, req.Identifiers...), nil
	})
}

func offlineDeps() Deps {
	d := fakeDeps(okIssuer())
	d.DetectPublic = func(context.Context) preflight.PublicAddrs {
		return preflight.PublicAddrs{V4: preflight.FamilyResult{Asked: 3}, V6: preflight.FamilyResult{Asked: 3}}
	}
	return d
}

func streamScenarios() []streamScenario {
	demo := func() Deps { d := demoFakeDeps(); return d }
	return []streamScenario{
		// address, preflight, CA, challenge, key, e-mail, terms, install,
		// renewal, verify
		{"demo", demo, testConfig(true), []string{"1", "1", "1", "1", "", "", "y", "1", "1", "1"}},
		// address (pub4), preflight: go, CA: rehearse, challenge: http-01,
		// key, e-mail, terms, production: yes, install: continue (5),
		// renewal: continue (3), verify: continue (2)
		{"real", func() Deps { return fakeDeps(okIssuer()) }, testConfig(false), []string{"1", "1", "1", "1", "", "", "y", "y", "5", "3", "2"}},
		// offline: the only choice is to type the address
		{"offline", offlineDeps, testConfig(false), []string{"1", "81.2.69.160", "1", "2", "1", "", "", "y", "5", "3", "2"}},
	}
}

// runStream runs the accessible wizard on in and fails on a panic, a hang
// or an ending other than the three the command maps to exit 0, 1 and 130.
func runStream(t *testing.T, sc streamScenario, in string) (Outcome, string, error) {
	t.Helper()
	var out bytes.Buffer
	type res struct {
		o   Outcome
		err error
		p   any
	}
	done := make(chan res, 1)
	go func() {
		var r res
		defer func() {
			r.p = recover()
			done <- r
		}()
		r.o, r.err = RunAccessible(context.Background(), sc.deps(), sc.cfg, strings.NewReader(in), &out)
	}()
	select {
	case r := <-done:
		if r.p != nil {
			t.Fatalf("%s: input %q: panic: %v\n%s", sc.name, in, r.p, out.String())
		}
		if r.err != nil && !errors.Is(r.err, ErrInputClosed) && !errors.Is(r.err, ErrAborted) {
			t.Fatalf("%s: input %q: error %v (exit code neither 0, 1 nor 130)\n%s", sc.name, in, r.err, out.String())
		}
		return r.o, out.String(), r.err
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: input %q: RunAccessible still runs after 20 s\n%s", sc.name, in, out.String())
	}
	return Outcome{}, "", nil
}

func joinLines(a []string) string {
	if len(a) == 0 {
		return ""
	}
	return strings.Join(a, "\n") + "\n"
}

// TestAccessibleAnswerStreams drives the accessible wizard with generated
// answer streams: at every question an out-of-range number, zero, a
// negative, a non-number, then the input ending there; the good answers
// with one bad answer inserted (asked again, then a certificate); and
// random streams. Never a panic, never a hang, always one of the endings
// the command maps to exit 0, 1 or 130.
func TestAccessibleAnswerStreams(t *testing.T) {
	bad := []string{"0", "99", "-1", "abc", "1x", "", "  ", "y", "n", "2001:db8::7"}
	for _, sc := range streamScenarios() {
		t.Run(sc.name, func(t *testing.T) {
			o, text, err := runStream(t, sc, joinLines(sc.valid))
			if err != nil || o.Issued == nil {
				t.Fatalf("the good answers do not reach a certificate: %v\n%s", err, text)
			}
			for i := 0; i <= len(sc.valid); i++ {
				// The input ends after i answers.
				if _, text, err := runStream(t, sc, joinLines(sc.valid[:i])); i < len(sc.valid) && !errors.Is(err, ErrInputClosed) {
					t.Errorf("input ending after %d answers: %v, want ErrInputClosed\n%s", i, err, text)
				}
				for _, b := range bad {
					// A bad answer, then the end of the input.
					runStream(t, sc, joinLines(append(append([]string{}, sc.valid[:i]...), b)))
				}
				if i == len(sc.valid) {
					continue
				}
				// An answer no question accepts is asked again.
				for _, b := range []string{"0", "99", "-1", "abc"} {
					ans := append(append(append([]string{}, sc.valid[:i]...), b), sc.valid[i:]...)
					o, text, err := runStream(t, sc, joinLines(ans))
					if err != nil || o.Issued == nil {
						t.Errorf("bad answer %q at question %d was not asked again: %v\n%s", b, i+1, err, text)
						continue
					}
					if !strings.Contains(text, "between 1 and") && !strings.Contains(text, "Invalid") && !strings.Contains(text, "refused") && !strings.Contains(text, "not an e-mail") && !strings.Contains(text, "Answer y") {
						t.Errorf("bad answer %q at question %d: no word about what is valid\n%s", b, i+1, text)
					}
				}
			}
			rng := rand.New(rand.NewPCG(1, uint64(len(sc.name))))
			tokens := append(append([]string{}, bad...), "1", "2", "3", "4", "5", "y", "yes", "127.0.0.1", "81.2.69.160")
			for n := 0; n < 150; n++ {
				var ans []string
				for k := rng.IntN(16); k > 0; k-- {
					ans = append(ans, tokens[rng.IntN(len(tokens))])
				}
				runStream(t, sc, joinLines(ans)+[]string{"", "1", "y"}[rng.IntN(3)])
			}
		})
	}
}

// TestAccessibleOfflineEndOfInput is the crash from the report: no public
// address found and no input at all.
func TestAccessibleOfflineEndOfInput(t *testing.T) {
	for _, in := range []string{"", "1\n", "1\n10.0.0.1\n", "2\n"} {
		_, text, err := runStream(t, streamScenario{name: "offline", deps: offlineDeps, cfg: testConfig(false)}, in)
		if !errors.Is(err, ErrInputClosed) {
			t.Errorf("input %q: %v, want ErrInputClosed\n%s", in, err, text)
		}
		if in == "" && !strings.Contains(text, "No public address found") {
			t.Errorf("no word about the missing address:\n%s", text)
		}
	}
}
