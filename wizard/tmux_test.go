package wizard

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/testkit"
)

// buildBinary builds ipcert into a temporary folder.
func buildBinary(t *testing.T) string {
	t.Helper()
	return testkit.Binary(t)
}

// TestTmuxDemo runs the built binary's `ipcert demo` in a real terminal
// (tmux), answers with keystrokes and ends with a certificate on disk.
func TestTmuxDemo(t *testing.T) {
	// stdout (the result) goes to a file; the UI is on stderr, the pane.
	s, state, outFile := startDemo(t, buildBinary(t), 100, 30)

	s.WaitFor("step 1 of 9", "enter start")
	s.Keys("Enter")
	s.WaitFor("step 2 of 9", "127.0.0.1")
	s.Keys("Enter")
	s.WaitFor("step 3 of 9", "› ", "enter go on") // the checks have finished (the verdict may be below the fold: this machine's interfaces)
	// A smaller terminal mid-way: the screen is laid out again, header and
	// keys still in view.
	s.Resize(60, 20)
	s.WaitFor("step 3 of 9", "enter go on")
	s.Resize(100, 30)
	s.WaitFor("step 3 of 9", "next: Plan")
	s.Keys("Enter")
	s.WaitFor("step 4 of 9", "Local test CA")
	s.Keys("Enter")
	s.WaitFor("dns-01 is impossible")
	s.Keys("Enter")
	s.WaitFor("key type")
	s.Keys("Enter")
	s.WaitFor("for the CA's account only")
	s.Keys("Enter")
	s.WaitFor("y agrees, n declines")
	s.Keys("y")
	// After the issuance: the demo shows the nginx snippet (and installs
	// nothing), rehearses a renewal against a fresh test CA, and serves
	// the certificate on loopback to check it like a browser.
	// The Issue screen stays, with what the validator asked, until enter.
	s.WaitFor("step 5 of 9", "validator 127.0.0.1", "Certificate issued for 127.0.0.1", "enter continue to Install")
	s.Keys("Enter")
	s.WaitFor("step 6 of 9", "Show the nginx snippet")
	s.Keys("Down")
	s.WaitFor("› Continue without installing")
	s.Keys("Enter")
	s.WaitFor("step 7 of 9", "› Dry renewal")
	s.Keys("Enter")
	s.WaitFor("dry renewal worked")
	s.Keys("Enter")
	s.WaitFor("step 8 of 9", "› Serve it on 127.0.0.1")
	s.Keys("Enter")
	s.WaitFor("serves the stored current certificate", "a browser trusting the CA accepts it")
	s.Keys("Enter")
	s.WaitFor("step 9 of 9", "openssl verify -CAfile root.pem")
	s.Keys("Enter")
	deadline := time.Now().Add(20 * time.Second)
	var out []byte
	for time.Now().Before(deadline) {
		out, _ = os.ReadFile(outFile)
		if strings.Contains(string(out), "EXIT=") {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	if !strings.Contains(string(out), "EXIT=0") {
		t.Fatalf("ipcert demo did not exit 0; stdout:\n%s\npane:\n%s", out, s.Pane())
	}
	for _, want := range []string{"Issued a certificate for 127.0.0.1", "openssl verify", "Demo state: " + state} {
		if !strings.Contains(string(out), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	for _, f := range []string{"cert.pem", "chain.pem", "fullchain.pem", "privkey.pem", "root.pem"} {
		if _, err := os.Stat(filepath.Join(state, "certs", "127.0.0.1", "current", f)); err != nil {
			t.Error(err)
		}
	}
}

// startDemo starts the built binary's `ipcert demo` in a private tmux
// server at w x h; stdout goes to the returned file.
func startDemo(t *testing.T, bin string, w, h int, env ...string) (*testkit.Tmux, string, string) {
	t.Helper()
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	outFile := filepath.Join(dir, "stdout")
	script := bin + " demo --state-dir " + state + " >" + outFile + "; echo EXIT=$? >>" + outFile + "; sleep 600"
	argv := append(append(append([]string{"env"}, testkit.TermEnv...), env...), "sh", "-c", script)
	return testkit.StartTmux(t, dir, w, h, argv...), state, outFile
}

// TestTmuxConsentBurst: six Enters in one write on the Plan screen (a
// paste, or type-ahead over a slow SSH link) take the defaults of the
// other questions but never agree to the terms of service: the wizard
// stays on the question, says the early keys were ignored, and goes on
// to the CA only after a deliberate y.
func TestTmuxConsentBurst(t *testing.T) {
	bin := buildBinary(t)
	for _, burst := range []string{"\r\r\r\r\r\r", "\r\r\r\r", "\r\r\r\r\r\r\r\r\r\r"} {
		s, state, _ := startDemo(t, bin, 80, 24)
		s.WaitFor("step 1 of 9", "enter start")
		s.Keys("Enter")
		s.WaitFor("step 2 of 9", "127.0.0.1")
		s.Keys("Enter")
		s.WaitFor("step 3 of 9", "› ", "enter go on") // the checks have finished (the verdict may be below the fold: this machine's interfaces)
		s.Keys("Enter")
		s.WaitFor("step 4 of 9", "Local test CA")
		// One write: tmux hands the literal string to the terminal at once.
		s.Keys("-l", burst)
		p := s.WaitForNot("step 5 of 9", "Agree to the test CA's terms", "y agree")
		// Four Enters take the CA, challenge, key and e-mail questions
		// to the terms. The burst has been read when the question shows
		// what it did with the rest: ignored, or refused as no answer.
		deadline := time.Now().Add(20 * time.Second)
		for len(burst) > 4 && !strings.Contains(p, "ignored") && !strings.Contains(p, "Enter does not answer") {
			if time.Now().After(deadline) {
				t.Fatalf("burst %q: no word about the early keys:\n%s", burst, p)
			}
			time.Sleep(50 * time.Millisecond) // polling, bounded by the deadline
			p = s.WaitForNot("step 5 of 9", "Agree to the test CA's terms")
		}
		if !strings.Contains(p, "[ ] I agree (y)") {
			t.Fatalf("burst %q: the terms show as answered:\n%s", burst, p)
		}
		if acc, _ := filepath.Glob(filepath.Join(state, "accounts", "*", "*")); len(acc) > 0 {
			t.Fatalf("burst %q: an account was registered without agreement", burst)
		}
		// A deliberate y, once the question is ready, goes on.
		s.WaitFor("y agrees, n declines")
		s.Keys("y")
		s.WaitFor("step 5 of 9", "validator 127.0.0.1", "Certificate issued for 127.0.0.1")
		s.Keys("Enter")
		s.WaitFor("step 6 of 9")
		if _, err := os.Stat(filepath.Join(state, "certs", "127.0.0.1", "current", "cert.pem")); err != nil {
			t.Fatal(err)
		}
		s.Kill()
	}
}

// TestTmuxEmailBurst: "enter y" in one write after the e-mail (typed
// ahead over ssh) neither puts the y into the e-mail nor agrees to the
// terms: the terms question is current and says it ignored the key
// (issue 24 item 3).
func TestTmuxEmailBurst(t *testing.T) {
	s, state, _ := startDemo(t, buildBinary(t), 80, 24)
	s.WaitFor("step 1 of 9", "enter start")
	s.Keys("Enter")
	s.WaitFor("step 2 of 9", "127.0.0.1")
	s.Keys("Enter")
	s.WaitFor("step 3 of 9", "› ", "enter go on") // the checks have finished (the verdict may be below the fold: this machine's interfaces)
	s.Keys("Enter")
	s.WaitFor("step 4 of 9", "Local test CA")
	s.Keys("Enter")
	s.WaitFor("dns-01 is impossible")
	s.Keys("Enter")
	s.WaitFor("Key type")
	s.Keys("Enter")
	s.WaitFor("for the CA's account only")
	s.Keys("-l", "admin@example.org")
	s.WaitFor("admin@example.org")
	s.Keys("-l", "\ry")
	p := s.WaitFor("Agree to the test CA's terms", "1 key typed before this question was shown ignored")
	if strings.Contains(p, "admin@example.orgy") || !strings.Contains(p, "[ ] I agree (y)") {
		t.Fatalf("the burst went into the e-mail or agreed:\n%s", p)
	}
	if acc, _ := filepath.Glob(filepath.Join(state, "accounts", "*", "*")); len(acc) > 0 {
		t.Fatal("an account was registered without agreement")
	}
	s.WaitFor("y agrees, n declines")
	s.Keys("y")
	s.WaitFor("step 5 of 9", "Certificate issued for 127.0.0.1")
	s.Kill()
}

// toBottom pages down until the screen has nothing more below, and
// returns it.
func toBottom(t *testing.T, s *testkit.Tmux) string {
	t.Helper()
	p := s.Pane()
	for i := 0; strings.Contains(p, "more below (pgdn)"); i++ {
		if i == 40 {
			t.Fatalf("still more below after 40 pages:\n%s", p)
		}
		if !strings.Contains(p, "pgup/pgdn scroll") && !strings.Contains(p, "pgup/pgdn") {
			t.Errorf("a screen that scrolls does not name the keys:\n%s", p)
		}
		s.Keys("NPage")
		deadline := time.Now().Add(10 * time.Second)
		for q := s.Pane(); q == p; q = s.Pane() {
			if time.Now().After(deadline) {
				t.Fatalf("pgdn changed nothing:\n%s", p)
			}
			time.Sleep(20 * time.Millisecond) // polling, bounded by the deadline
		}
		p = s.Pane()
	}
	return p
}

// TestTmuxScrollReachesBottom walks the demo at 60x20 and 80x24 and, on
// every screen, pages down to its last line: nothing is clipped out of
// reach, no line is wider than the terminal, the keys stay in view.
func TestTmuxScrollReachesBottom(t *testing.T) {
	bin := buildBinary(t)
	for _, size := range [][2]int{{60, 20}, {80, 24}} {
		s, _, outFile := startDemo(t, bin, size[0], size[1])
		bottom := func(step string, want ...string) string {
			t.Helper()
			s.WaitFor(step)
			p := toBottom(t, s)
			for _, w := range want {
				if !strings.Contains(p, w) {
					t.Errorf("%dx%d %s: the bottom lacks %q:\n%s", size[0], size[1], step, w, p)
				}
			}
			lines := strings.Split(strings.TrimRight(p, "\n"), "\n")
			if len(lines) > size[1] {
				t.Errorf("%dx%d %s: %d lines", size[0], size[1], step, len(lines))
			}
			if last := lines[len(lines)-1]; !strings.Contains(last, "quit") && !strings.Contains(last, "enter") && !strings.Contains(last, "y ") {
				t.Errorf("%dx%d %s: no keys on the last line %q", size[0], size[1], step, last)
			}
			return p
		}
		s.WaitFor("step 1 of 9", "enter start")
		bottom("step 1 of 9", "Nothing is sent to a CA before the Issue step.")
		s.Keys("Enter")
		s.WaitFor("step 2 of 9", "[x] 127.0.0.1")
		bottom("step 2 of 9", "type another address (t)")
		s.Keys("Enter")
		s.WaitFor("step 3 of 9", "› ") // the cursor shows when the checks are done
		bottom("step 3 of 9", "Everything checked looks right.")
		s.Keys("Enter")
		s.WaitFor("step 4 of 9", "Local test CA")
		s.Keys("Enter")
		s.WaitFor("dns-01 is impossible")
		s.Keys("Enter")
		s.WaitFor("Key type")
		s.Keys("Enter")
		s.WaitFor("for the CA's account only")
		s.Keys("Enter")
		s.WaitFor("y agrees, n declines")
		s.Keys("y")
		s.WaitFor("step 5 of 9", "Certificate issued for 127.0.0.1")
		bottom("step 5 of 9", "is current")
		s.Keys("Enter")
		s.WaitFor("step 6 of 9", "Show the nginx snippet")
		s.Keys("Enter") // show the snippet
		s.WaitFor("The file as it would be installed")
		// The snippet is shown verbatim: its long lines are cut at the
		// edge with a marker, never wrapped (issue 24 item 1), and scroll
		// sideways; the keys that leave stay in the help line (item 6).
		p := toBottom(t, s)
		if !strings.Contains(p, "→") || !strings.Contains(p, "sideways") || !strings.Contains(p, "q quit") {
			t.Errorf("%dx%d: the snippet's long lines are not cut with a marker, or the keys are missing:\n%s", size[0], size[1], p)
		}
		for _, l := range strings.Split(p, "\n") {
			if strings.HasPrefix(l, "  ") && strings.Contains(l, "ssl_certificate") && !strings.Contains(l, "/current/fullchain.pem;") && !strings.HasSuffix(strings.TrimRight(l, " "), "→") {
				t.Errorf("%dx%d: a path is broken: %q", size[0], size[1], l)
			}
		}
		s.Keys("Right")
		s.WaitFor("\n  ←")
		s.Keys("Left")
		for deadline := time.Now().Add(10 * time.Second); strings.Contains(s.Pane(), "\n  ←"); {
			if time.Now().After(deadline) {
				t.Fatalf("%dx%d: left does not scroll back:\n%s", size[0], size[1], s.Pane())
			}
			time.Sleep(20 * time.Millisecond) // polling, bounded by the deadline
		}
		bottom("step 6 of 9", "  }")
		// The viewport follows the cursor back up to the choices.
		s.Keys("Down")
		s.WaitFor("› Continue without installing")
		s.Keys("Enter")
		s.WaitFor("step 7 of 9", "› Dry renewal")
		s.Keys("Enter")
		s.WaitFor("dry renewal worked")
		bottom("step 7 of 9", "Continue")
		s.Keys("Enter")
		s.WaitFor("step 8 of 9", "› Serve it on 127.0.0.1")
		s.Keys("Enter")
		s.WaitFor("a browser trusting the CA accepts it")
		bottom("step 8 of 9", "Continue")
		s.Keys("Enter")
		s.WaitFor("step 9 of 9")
		bottom("step 9 of 9", "The files stay.")
		s.Keys("Enter")
		deadline := time.Now().Add(20 * time.Second)
		for {
			out, _ := os.ReadFile(outFile)
			if strings.Contains(string(out), "EXIT=0") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%dx%d: no exit 0:\n%s\n%s", size[0], size[1], out, s.Pane())
			}
			time.Sleep(50 * time.Millisecond) // polling, bounded by the deadline
		}
		s.Kill()
	}
}
