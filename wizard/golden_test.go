package wizard

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/x/ansi"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/preflight"
	"github.com/ipcert/ipcert/ui"
)

// scriptedIssuer plays one behaviour per call: the golden walk's staging
// run fails, the retry passes, production passes.
type scriptedIssuer struct {
	calls   atomic.Int32
	release chan struct{} // the first run waits for it (a run in progress)
}

func validatorEvent(remote string) acmeflow.Event {
	return acmeflow.Event{Time: fixedNow, Kind: acmeflow.EventValidator, Step: acmeflow.StepChallenge, Validator: &acmeflow.ValidatorRequest{
		Time: fixedNow, Challenge: acmeflow.ChallengeHTTP01, Remote: remote, Local: "81.2.69.160:80", Host: "81.2.69.160",
		Path: "/.well-known/acme-challenge/xMq3zTn0Yb", Status: 200, Answered: true,
	}}
}

func (s *scriptedIssuer) Issue(ctx context.Context, req acmeflow.Request, opts acmeflow.IssueOptions) (*acmeflow.Issued, error) {
	n := s.calls.Add(1)
	ev := func(kind acmeflow.EventKind, step acmeflow.Step, msg string) {
		req.Events(acmeflow.Event{Time: fixedNow, Kind: kind, Step: step, Message: msg})
	}
	ev(acmeflow.EventStep, acmeflow.StepDirectory, "Fetching the directory "+req.Directory)
	ev(acmeflow.EventStep, acmeflow.StepAccount, "Registering an account")
	ev(acmeflow.EventStep, acmeflow.StepOrder, "Ordering a shortlived certificate for 81.2.69.160")
	ev(acmeflow.EventStep, acmeflow.StepResponder, "Serving /.well-known/acme-challenge/ from /var/www/html")
	ev(acmeflow.EventStep, acmeflow.StepChallenge, "Asking the CA to validate 81.2.69.160 (http-01)")
	if n == 1 {
		select {
		case <-s.release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return nil, &acmeflow.Error{Step: acmeflow.StepChallenge, Identifier: "81.2.69.160", Problem: &acmeflow.Problem{
			Type: acmeflow.ProblemConnection, Status: 400,
			Detail: "81.2.69.160: Fetching http://81.2.69.160/.well-known/acme-challenge/xMq3zTn0Yb: Timeout during connect (likely firewall problem)",
		}}
	}
	req.Events(validatorEvent("66.133.109.36:41234"))
	req.Events(validatorEvent("3.67.12.4:50122"))
	ev(acmeflow.EventStep, acmeflow.StepFinalize, "Sending the certificate request")
	ev(acmeflow.EventDone, acmeflow.StepStore, "Certificate 81.2.69.160 version 1 is current")
	ca := cachoice.Staging
	if n >= 3 {
		ca = cachoice.Production
	}
	iss := fakeIssued("81.2.69.160", ca, req.Identifiers...)
	iss.Renewal.Challenge, iss.Renewal.WebRoot = req.Challenge, req.WebRoot
	return iss, nil
}

// walk drives the wizard through every screen with fakes and returns the
// screens by name.
func walk(t *testing.T, w, h int) (names []string, screens map[string]string) {
	t.Helper()
	return walkCaps(t, w, h, testConfig(false).Caps)
}

// walkCaps is walk on a terminal with caps c.
func walkCaps(t *testing.T, w, h int, c ui.Caps) (names []string, screens map[string]string) {
	t.Helper()
	cfgReal, cfgDemo := testConfig(false), testConfig(true)
	cfgReal.Caps, cfgDemo.Caps = c, c
	screens = map[string]string{}
	iss := &scriptedIssuer{release: make(chan struct{})}
	d := newDriver(t, fakeDeps(iss), cfgReal, w, h)
	m := d.m
	shot := func(name string) {
		names = append(names, name)
		screens[name] = d.view()
	}
	d.until("the machine facts", func() bool { return m.welcome.machine != nil })
	shot("welcome")
	d.key("enter")
	d.until("the addresses", func() bool { return m.address.detected })
	shot("address")
	d.key("t")
	d.typeText("10.0.0.5")
	shot("address-private")
	d.key("esc")
	d.key("enter")
	d.until("the preflight report", func() bool { return m.pre.report != nil })
	shot("preflight")
	d.key("m")
	shot("preflight-map-ports")
	d.key("n")
	d.key("enter")
	d.until("the plan", func() bool { return d.focused() == "ca" })
	shot("plan")
	// "My own ACME CA" asks for its URL and root file, then back to the
	// rehearsal (the URL and root questions hide again).
	for range 3 {
		d.key("down")
	}
	d.key("enter")
	d.until("the own CA's URL question", func() bool { return d.focused() == "ca-url" })
	shot("plan-own-ca")
	d.send(tea.KeyMsg{Type: tea.KeyShiftTab})
	d.until("the CA question again", func() bool { return d.focused() == "ca" })
	for range 3 {
		d.key("up")
	}
	d.key("enter")
	d.until("the challenge question", func() bool { return d.focused() == "challenge" })
	d.key("enter")
	d.until("the key question", func() bool { return d.focused() == "key" })
	d.key("enter")
	d.until("the e-mail question", func() bool { return d.focused() == "email" })
	d.typeText("admin@example.org")
	shot("plan-email")
	d.key("enter")
	d.until("the terms question", func() bool { return m.plan.consentReady() })
	shot("plan-account")
	d.key("y")
	d.until("the issue step", func() bool { return m.step == StepIssue && len(m.issue.lines) == 5 })
	shot("issue-running")
	close(iss.release)
	d.until("the failure screen", func() bool { return m.issue.phase == phaseFailed })
	shot("issue-failed")
	d.key("r")
	d.until("the production question", func() bool { return m.issue.phase == phaseAskProduction })
	shot("issue-ask-production")
	d.key("y")
	d.until("the issued screen", func() bool { return m.issue.phase == phaseIssued })
	shot("issue-done")
	d.key("enter")
	d.until("the install step", func() bool { return m.step == StepInstall && m.install.prepared })
	shot("install")
	d.key("enter")
	d.until("the install", func() bool { return len(m.install.results) == 1 })
	d.key("up")
	d.key("up")
	d.key("up")
	d.key("enter") // show the nginx snippet
	shot("install-done")
	d.key("down")
	d.key("down")
	d.key("down")
	d.key("enter")
	d.until("the renewal step", func() bool { return m.step == StepRenewal })
	shot("renewal")
	d.key("enter")
	d.until("the timer", func() bool { return len(m.renewal.results) == 1 })
	d.key("enter")
	d.until("the dry renewal", func() bool { return len(m.renewal.results) == 2 })
	shot("renewal-done")
	d.key("enter")
	d.until("the verify step", func() bool { return m.step == StepVerify })
	d.key("enter")
	d.until("the check", func() bool { return len(m.verify.results) == 1 })
	shot("verify-done")
	d.key("enter")
	d.until("the summary", func() bool { return m.step == StepSummary })
	m.outcome.Files = store.PathsIn("/var/lib/ipcert/certs/81.2.69.160/current", false)
	shot("summary")

	// The demo's own screens.
	dd := newDriver(t, demoFakeDeps(), cfgDemo, w, h)
	dm := dd.m
	dd.until("the machine facts", func() bool { return dm.welcome.machine != nil })
	names = append(names, "demo-welcome")
	screens["demo-welcome"] = dd.view()
	dd.key("enter")
	dd.until("the addresses", func() bool { return dm.address.detected })
	names = append(names, "demo-address")
	screens["demo-address"] = dd.view()
	dd.key("enter")
	dd.until("the preflight report", func() bool { return dm.pre.report != nil })
	dd.key("enter")
	dd.until("the plan", func() bool { return dd.focused() == "ca" })
	names = append(names, "demo-plan")
	screens["demo-plan"] = dd.view()
	dd.key("enter")
	dd.until("the challenge question", func() bool { return dd.focused() == "challenge" })
	dd.key("enter")
	dd.until("the key question", func() bool { return dd.focused() == "key" })
	dd.key("enter")
	dd.until("the e-mail question", func() bool { return dd.focused() == "email" })
	dd.key("enter")
	dd.until("the terms question", func() bool { return dm.plan.consentReady() })
	dd.key("y")
	dd.until("the issued screen", func() bool { return dm.issue.phase == phaseIssued })
	dd.key("enter")
	for _, st := range []Step{StepInstall, StepRenewal, StepVerify} {
		dd.until(st.String(), func() bool { return dm.step == st && dm.afterStep(st).prepared })
		if st == StepInstall {
			names = append(names, "demo-install")
			screens["demo-install"] = dd.view()
		}
		dd.key("enter")
	}
	dd.until("the summary", func() bool { return dm.step == StepSummary })
	dm.outcome.Files = store.PathsIn("/tmp/ipcert-demo-123/certs/127.0.0.1/current", true)
	names = append(names, "demo-summary")
	screens["demo-summary"] = dd.view()
	return names, screens
}

func demoFakeDeps() Deps {
	deps := fakeDeps(issuerFunc(func(ctx context.Context, req acmeflow.Request, opts acmeflow.IssueOptions) (*acmeflow.Issued, error) {
		return fakeIssued("127.0.0.1", cachoice.Local, req.Identifiers...), nil
	}))
	deps.Machine = func(context.Context) Machine { return Machine{UID: 1000, Systemd: true} }
	deps.Servers, deps.Install, deps.Timer, deps.DryRenew, deps.Verify = nil, nil, nil, nil, nil
	deps.DetectPublic = func(context.Context) preflight.PublicAddrs {
		return preflight.PublicAddrs{V4: preflight.FamilyResult{Addr: lo4, Votes: 1, Answered: 1, Asked: 1,
			Sources: []preflight.SourceAnswer{{Kind: "demo", Source: "the demo's test CA", Addr: lo4}}}}
	}
	deps.Preflight = func(ctx context.Context, req PreflightRequest, progress func(preflight.Event)) preflight.Report {
		return preflight.Report{Verdict: preflight.StatusOK, Addrs: req.Addrs, Results: []preflight.Result{
			{ID: preflight.IDPorts, Title: "Ports 80 and 443", Status: preflight.StatusOK, Summary: "ports 40293 and 33735 are free"},
			{ID: preflight.IDAddress, Title: "The address Let's Encrypt will validate", Status: preflight.StatusOK, Summary: "127.0.0.1: an address the local test CA accepts"},
		}}
	}
	return deps
}

// TestGoldenScreens compares every screen at 60x20, 80x24 and 120x40
// with its golden file (go test ./wizard -run TestGoldenScreens -update
// rewrites them), and checks that each fills the terminal exactly.
func TestGoldenScreens(t *testing.T) {
	for _, size := range [][2]int{{60, 20}, {80, 24}, {120, 40}} {
		t.Run(fmt.Sprintf("%dx%d", size[0], size[1]), func(t *testing.T) {
			names, screens := walk(t, size[0], size[1])
			for _, n := range names {
				checkFits(t, n, screens[n], size[0], size[1])
				golden(t, fmt.Sprintf("%s-%dx%d", n, size[0], size[1]), screens[n])
				// The key that leaves is always named (issue 24 item 6).
				lines := strings.Split(screens[n], "\n")
				if last := lines[len(lines)-1]; !strings.Contains(last, "quit") {
					t.Errorf("%s at %dx%d: the help line lacks the way out: %q", n, size[0], size[1], last)
				}
			}
		})
	}
}

// TestSmallTerminal walks the screens at 60x20: nothing spills over, the
// header and the key help stay visible.
func TestSmallTerminal(t *testing.T) {
	names, screens := walk(t, 60, 20)
	for _, n := range names {
		s := screens[n]
		checkFits(t, n, s, 60, 20)
		lines := strings.Split(s, "\n")
		if !strings.Contains(lines[0], "step") {
			t.Errorf("%s at 60x20: header missing: %q", n, lines[0])
		}
		if !strings.Contains(lines[len(lines)-1], "quit") && !strings.Contains(lines[len(lines)-1], "enter") && !strings.Contains(lines[len(lines)-1], "y ") {
			t.Errorf("%s at 60x20: key help missing: %q", n, lines[len(lines)-1])
		}
	}
}

func checkFits(t *testing.T, name, s string, w, h int) {
	t.Helper()
	lines := strings.Split(s, "\n")
	if len(lines) != h {
		t.Errorf("%s: %d lines, want exactly %d", name, len(lines), h)
	}
	for i, l := range lines {
		if n := ansi.StringWidth(l); n > w {
			t.Errorf("%s: line %d is %d cells wide (> %d): %q", name, i+1, n, w, l)
		}
	}
}

// TestIssueLogKeepsTail: a long log shows its newest lines, counted after
// wrapping, and says how many earlier ones are hidden.
func TestIssueLogKeepsTail(t *testing.T) {
	for _, size := range [][2]int{{80, 24}, {60, 20}, {120, 40}} {
		d := newDriver(t, fakeDeps(nil), testConfig(false), size[0], size[1])
		d.m.step = StepIssue
		d.m.issue.phase = phaseRunning
		for i := 0; i < 40; i++ {
			d.m.issue.addEvent(d.m.theme, validatorEvent(fmt.Sprintf("66.133.109.%d:41234", i)))
		}
		d.m.issue.addEvent(d.m.theme, acmeflow.Event{Kind: acmeflow.EventStep, Step: acmeflow.StepFinalize, Message: "Sending the certificate request"})
		v := d.view()
		checkFits(t, fmt.Sprint(size), v, size[0], size[1])
		if !strings.Contains(v, "Sending the certificate request") || !strings.Contains(v, "66.133.109.39") || !strings.Contains(v, "more above (pgup)") {
			t.Errorf("%v: the newest lines are not in view:\n%s", size, v)
		}
		// pgup scrolls back to the first line of the log.
		for range 40 {
			d.send(tea.KeyMsg{Type: tea.KeyPgUp})
		}
		if v := d.view(); !strings.Contains(v, "66.133.109.0:") {
			t.Errorf("%v: pgup does not reach the start of the log:\n%s", size, v)
		}
	}
}

// TestASCIIScreens: with TERM=dumb or a non-UTF-8 locale (Caps.ASCII)
// every screen is plain ASCII: no arrows, ellipses, bars or spinners.
func TestASCIIScreens(t *testing.T) {
	for _, size := range [][2]int{{60, 20}, {80, 24}} {
		names, screens := walkCaps(t, size[0], size[1], ui.Caps{NoColor: true, ASCII: true})
		for _, n := range names {
			for i, r := range screens[n] {
				if r > 0x7e || (r < 0x20 && r != '\n') {
					t.Errorf("%dx%d %s: non-ASCII %q at %d:\n%s", size[0], size[1], n, r, i, screens[n])
					break
				}
			}
		}
	}
}

// TestNoColorSelectionMarks: without colour, the choice under the cursor
// and the choices made are marked with characters, and no placeholder
// looks like a typed value.
func TestNoColorSelectionMarks(t *testing.T) {
	_, screens := walk(t, 80, 24)
	for name, want := range map[string][]string{
		"address":      {"› [x] 81.2.69.160", "[x] 2a02:898:0:20::7"},
		"plan":         {"> Rehearse on staging"},
		"plan-account": {"[ ] I agree (y)", "[ ] No (n)"},
		"issue-failed": {"› Retry"},
		"install":      {"› Install for nginx"},
		"preflight":    {"› ✗ Ports 80 and 443"},
	} {
		for _, w := range want {
			if !strings.Contains(screens[name], w) {
				t.Errorf("%s without colour lacks the mark %q:\n%s", name, w, screens[name])
			}
		}
	}
	agreed := false
	m := New(context.Background(), fakeDeps(nil), testConfig(false))
	c := newConsentField("tos", "Agree?", &agreed, m.theme, -1)
	c.WithWidth(60)
	c.Focus()
	c.Update(keyMsg("y"))
	if v := plainView(c.View()); !agreed || !strings.Contains(v, "[x] I agree (y)") || !strings.Contains(v, "[ ] No (n)") {
		t.Errorf("the agreement is not marked:\n%s", v)
	}
	if strings.Contains(screens["plan-email"], "you@example.org") || strings.Contains(screens["address-private"], "203.0.113.7") {
		t.Errorf("a placeholder looks like input:\n%s\n%s", screens["plan-email"], screens["address-private"])
	}
}

// TestTinyTerminal: below 60x20 every screen still fits exactly, and the
// small-terminal notice fits too (wrapped, not cut).
func TestTinyTerminal(t *testing.T) {
	names, screens := walk(t, 40, 12)
	for _, n := range names {
		checkFits(t, n, screens[n], 40, 12)
		if j := strings.Join(strings.Fields(screens[n]), " "); !strings.Contains(j, "(terminal 40x12 is small: 60x20 or more reads best)") {
			t.Errorf("%s at 40x12: the notice is cut:\n%s", n, screens[n])
		}
	}
}

// TestGoldenAccessible compares accessible mode's whole output, for a run
// with the fakes from the address to the summary, with its golden file.
func TestGoldenAccessible(t *testing.T) {
	iss := &scriptedIssuer{release: make(chan struct{})}
	close(iss.release)
	answers := strings.Join([]string{
		"1",                 // both detected addresses
		"1",                 // preflight: go on
		"1",                 // CA: rehearse on staging
		"1",                 // challenge: the default
		"",                  // key type: the default
		"admin@example.org", // e-mail
		"y",                 // terms
		"1",                 // the rehearsal failed: retry
		"y",                 // production
		"2",                 // install: show the nginx snippet
		"1",                 // install for nginx
		"",                  // continue (the default after an install)
		"", "", "",          // renewal: the job, the dry renewal, continue (each the default)
		"", "", // verify: the check, then continue
	}, "\n") + "\n"
	var out strings.Builder
	o, err := RunAccessible(context.Background(), fakeDeps(iss), testConfig(false), strings.NewReader(answers), &out)
	if err != nil || o.Issued == nil {
		t.Fatalf("RunAccessible: %v %+v\n%s", err, o, out.String())
	}
	golden(t, "accessible", out.String())
}
