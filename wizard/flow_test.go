package wizard

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/charmbracelet/x/exp/teatest"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/internal/localca"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
)

// localDeps are the demo's dependencies with the real engine against the
// local test CA (Pebble in-process on loopback). opts tune the CA.
func localDeps(t *testing.T, opts cachoice.Options) (Deps, *store.Store, func() *cachoice.CA) {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	var opened *cachoice.CA
	deps := demoFakeDeps()
	deps.Now = time.Now
	deps.Issuer = &acmeflow.Engine{Store: st, UserAgent: "ipcert-test"}
	deps.Store = st
	deps.OpenCA = func(choice, rootFile string) (*cachoice.CA, error) {
		o := opts
		o.RootFile = rootFile
		ca, err := cachoice.Open(spec.CAChoice(choice), o)
		opened = ca
		return ca, err
	}
	return deps, st, func() *cachoice.CA { return opened }
}

// screen waits until the (ANSI-stripped) output contains every want.
func screen(t *testing.T, tm *teatest.TestModel, want ...string) {
	t.Helper()
	teatest.WaitFor(t, tm.Output(), func(b []byte) bool {
		s := ansi.Strip(string(b))
		for _, w := range want {
			if !strings.Contains(s, w) {
				return false
			}
		}
		return true
	}, teatest.WithDuration(15*time.Second), teatest.WithCheckInterval(10*time.Millisecond))
}

func press(tm *teatest.TestModel, keys ...string) {
	for _, k := range keys {
		tm.Send(keyMsg(k))
	}
}

// startFlow runs the wizard in the driver's program (the one harness),
// let go: a flow drives it with keys and waits on its output (screen),
// as a user at a terminal would.
func startFlow(t *testing.T, deps Deps, cfg Config) (*teatest.TestModel, *Model) {
	t.Helper()
	d := newDriver(t, deps, cfg, 80, 24)
	d.release()
	return d.tm, d.m
}

// planThrough answers the plan from the CA question to the terms.
func planThrough(t *testing.T, tm *teatest.TestModel, challengeDown int) {
	t.Helper()
	screen(t, tm, "step 4 of 9")
	press(tm, "enter")
	planFromChallenge(t, tm, challengeDown)
}

// planFromChallenge answers the plan from the challenge question on.
func planFromChallenge(t *testing.T, tm *teatest.TestModel, challengeDown int) {
	t.Helper()
	screen(t, tm, "dns-01 is impossible")
	for range challengeDown {
		press(tm, "down")
	}
	press(tm, "enter")
	screen(t, tm, "key type")
	press(tm, "enter")
	screen(t, tm, "for the CA's account only")
	press(tm, "enter")
	// y answers only once the question has been on screen a moment
	// (consentField): the hint shows when it does.
	screen(t, tm, "y agrees, n declines")
	press(tm, "y")
}

// throughAfter passes the Install, Renewal and Verify screens (nothing
// wired in these tests: each only names its command and continues).
func throughAfter(t *testing.T, tm *teatest.TestModel) {
	t.Helper()
	// The Issue screen stays after the success until enter.
	screen(t, tm, "step 5 of 9", "Certificate issued", "enter continue to Install")
	press(tm, "enter")
	for _, st := range []string{"step 6 of 9", "step 7 of 9", "step 8 of 9"} {
		screen(t, tm, st)
		press(tm, "enter")
	}
}

func finalModel(t *testing.T, tm *teatest.TestModel) *Model {
	t.Helper()
	// The driver waits for the program's end too (sync.Once in teatest):
	// FinalModel then returns when it has ended, so the timeout is here.
	done := make(chan tea.Model, 1)
	go func() { done <- tm.FinalModel(t) }()
	select {
	case fm := <-done:
		return fm.(*probed).m
	case <-time.After(15 * time.Second):
		t.Fatal("the wizard did not end within 15s")
	}
	return nil
}

// checkIssued checks the files of an issued certificate: the chain
// verifies to the test CA's root and names addr.
func checkIssued(t *testing.T, o Outcome, addr string) {
	t.Helper()
	if o.Issued == nil {
		t.Fatalf("no certificate issued: %+v", o)
	}
	read := func(p string) []byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatalf("certificate file: %v", err)
		}
		return b
	}
	certPEM, chainPEM, rootPEM := read(o.Files.Cert), read(o.Files.Chain), read(o.Files.Root)
	if _, err := os.Stat(o.Files.Key); err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(certPEM)
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	roots, inter := x509.NewCertPool(), x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	inter.AppendCertsFromPEM(chainPEM)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter}); err != nil {
		t.Errorf("the issued certificate does not verify against the test root: %v", err)
	}
	if len(leaf.IPAddresses) != 1 || leaf.IPAddresses[0].String() != addr {
		t.Errorf("certificate names %v, want %s", leaf.IPAddresses, addr)
	}
}

// TestFlowHappyPath walks the demo with the real engine and the local CA
// to a certificate on disk.
func TestFlowHappyPath(t *testing.T) {
	deps, _, _ := localDeps(t, cachoice.Options{})
	tm, _ := startFlow(t, deps, testConfig(true))
	screen(t, tm, "step 1 of 9", "enter start")
	press(tm, "enter")
	screen(t, tm, "step 2 of 9", "127.0.0.1")
	press(tm, "enter")
	screen(t, tm, "step 3 of 9", "Everything checked looks right")
	press(tm, "enter")
	planThrough(t, tm, 0)
	throughAfter(t, tm)
	screen(t, tm, "step 9 of 9", "openssl verify")
	press(tm, "enter")
	m := finalModel(t, tm)
	checkIssued(t, m.Outcome(), "127.0.0.1")
	if m.Outcome().Issued.Renewal.Challenge != acmeflow.ChallengeHTTP01 {
		t.Errorf("challenge = %q", m.Outcome().Issued.Renewal.Challenge)
	}
}

// TestFlowFailureThenChangeChallenge: http-01 fails (another web server
// answers the validator with 404), the failure screen explains, the user
// changes to tls-alpn-01 and gets the certificate.
func TestFlowFailureThenChangeChallenge(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.NotFoundHandler(), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
	deps, _, _ := localDeps(t, cachoice.Options{WebServerPort: l.Addr().(*net.TCPAddr).Port})
	tm, _ := startFlow(t, deps, testConfig(true))
	screen(t, tm, "step 1 of 9")
	press(tm, "enter")
	screen(t, tm, "step 2 of 9")
	press(tm, "enter")
	screen(t, tm, "step 3 of 9")
	press(tm, "enter")
	planThrough(t, tm, 0)
	screen(t, tm, "Change the challenge", "The CA said", "404")
	press(tm, "c")
	// "Change the challenge" lands on the challenge question (the CA
	// question's note would show first otherwise).
	planFromChallenge(t, tm, 1)
	throughAfter(t, tm)
	screen(t, tm, "step 9 of 9")
	press(tm, "enter")
	m := finalModel(t, tm)
	checkIssued(t, m.Outcome(), "127.0.0.1")
	if c := m.Outcome().Issued.Renewal.Challenge; c != acmeflow.ChallengeTLSALPN01 {
		t.Errorf("challenge = %q, want tls-alpn-01", c)
	}
}

// TestFlowEscKeepsAnswers goes back from Plan to Address and forward
// again: the typed address, the challenge and the key type survive.
func TestFlowEscKeepsAnswers(t *testing.T) {
	// Not the demo: it certifies 127.0.0.1 only, so nothing to type there.
	tm, _ := startFlow(t, fakeDeps(nil), testConfig(false))
	typed := netip.MustParseAddr("81.2.69.162")
	screen(t, tm, "step 1 of 9")
	press(tm, "enter")
	screen(t, tm, "step 2 of 9", "81.2.69.160")
	press(tm, "t")
	tm.Type(typed.String())
	screen(t, tm, "81.2.69.162 is a public IPv4 address")
	press(tm, "enter", "enter")
	// enter goes on once the checks have run (while they run it is
	// ignored): wait for the verdict, as a person reads it.
	screen(t, tm, "step 3 of 9", "Validation will probably fail")
	press(tm, "enter")
	screen(t, tm, "step 4 of 9")
	press(tm, "enter")
	screen(t, tm, "dns-01 is impossible")
	press(tm, "down", "enter")
	screen(t, tm, "key type")
	press(tm, "down")
	screen(t, tm, "> ec384")
	press(tm, "esc")
	screen(t, tm, "step 3 of 9")
	press(tm, "esc")
	screen(t, tm, "step 2 of 9", "[x] 81.2.69.162")
	press(tm, "enter")
	screen(t, tm, "step 3 of 9")
	press(tm, "enter")
	screen(t, tm, "step 4 of 9")
	press(tm, "enter")
	screen(t, tm, "> tls-alpn-01")
	press(tm, "ctrl+c")
	m := finalModel(t, tm)
	a := m.Answers()
	if !slices.Equal(a.Addrs, []netip.Addr{pub4, pub6, typed}) || a.KeyType != "ec384" || a.Challenge != ChallengeTLSALPN {
		t.Errorf("answers after going back and forth: %+v", a)
	}
	if !m.Outcome().Aborted {
		t.Error("ctrl+c before issuance should be an abort")
	}
}

// TestFlowCtrlCDuringIssuance quits while the engine waits for the CA:
// the run is cancelled, the challenge responder's port is free again and
// no certificate file was written.
func TestFlowCtrlCDuringIssuance(t *testing.T) {
	// Pebble asks for a minute between authorization polls: the engine is
	// then mid-order, its responder listening, when ctrl+c comes.
	deps, st, opened := localDeps(t, cachoice.Options{Local: localcaSlow()})
	// The engine's progress waits, from the validator's first request on,
	// until the run is cancelled: the run is mid-order, its responder
	// listening, when ctrl+c comes, however fast the CA is (the test does
	// not race the issuance).
	engine := deps.Issuer
	deps.Issuer = issuerFunc(func(ctx context.Context, req acmeflow.Request, opts acmeflow.IssueOptions) (*acmeflow.Issued, error) {
		events := req.Events
		req.Events = func(ev acmeflow.Event) {
			events(ev)
			if ev.Kind == acmeflow.EventValidator {
				<-ctx.Done()
			}
		}
		return engine.Issue(ctx, req, opts)
	})
	tm, _ := startFlow(t, deps, testConfig(true))
	screen(t, tm, "step 1 of 9")
	press(tm, "enter")
	screen(t, tm, "step 2 of 9")
	press(tm, "enter")
	screen(t, tm, "step 3 of 9")
	press(tm, "enter")
	planThrough(t, tm, 0)
	screen(t, tm, "validator 127.0.0.1")
	start := time.Now()
	press(tm, "ctrl+c")
	m := finalModel(t, tm)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("quitting took %v: the cancelled run did not stop promptly", d)
	}
	if m.Outcome().Issued != nil || !m.Outcome().Aborted {
		t.Fatalf("outcome after ctrl+c: %+v", m.Outcome())
	}
	ca := opened()
	if ca == nil {
		t.Fatal("the CA was never opened")
	}
	l, err := net.Listen("tcp", ca.HTTPListen)
	if err != nil {
		t.Errorf("the challenge responder still holds %s after ctrl+c: %v", ca.HTTPListen, err)
	} else {
		l.Close()
	}
	var files []string
	filepath.Walk(filepath.Join(st.Root(), "certs"), func(p string, info os.FileInfo, err error) error {
		if err == nil && !info.IsDir() {
			files = append(files, p)
		}
		return nil
	})
	if len(files) > 0 {
		t.Errorf("files written under certs/ by a cancelled run: %v", files)
	}
}

func localcaSlow() localca.Options { return localca.Options{RetryAfterAuthz: 60} }
