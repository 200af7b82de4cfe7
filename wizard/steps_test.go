package wizard

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/diagnosis"
	"github.com/ipcert/ipcert/preflight"
	"github.com/ipcert/ipcert/ui"
)

// toAddress starts a wizard with fakes and walks to the address screen.
func toAddress(t *testing.T, deps Deps, cfg Config) *driver {
	t.Helper()
	d := newDriver(t, deps, cfg, 80, 24)
	d.until("the machine facts", func() bool { return d.m.welcome.machine != nil })
	d.key("enter")
	d.until("the addresses", func() bool { return d.m.address.detected })
	return d
}

func TestStepString(t *testing.T) {
	for s, want := range map[Step]string{StepWelcome: "Welcome", StepAddress: "Address", StepPreflight: "Preflight", StepPlan: "Plan", StepIssue: "Issue", StepSummary: "Summary", Step(42): "Step(42)"} {
		if s.String() != want {
			t.Errorf("Step(%d).String() = %q, want %q", int(s), s.String(), want)
		}
	}
}

func TestWelcomeShowsMachineAndStarts(t *testing.T) {
	// The look at the machine waits for the test: the screen before the
	// facts arrive is a state the test holds, not a moment it races.
	deps := fakeDeps(nil)
	asked, answer := make(chan struct{}), make(chan struct{})
	deps.Machine = func(ctx context.Context) Machine {
		close(asked)
		select {
		case <-answer:
		case <-ctx.Done():
		}
		return fakeMachine(ctx)
	}
	d := newDriver(t, deps, testConfig(false), 80, 24)
	d.waitFor("the look at the machine", asked)
	if v := d.view(); !strings.Contains(v, "looking at users") {
		t.Errorf("welcome before the machine facts arrive should say it is looking:\n%s", v)
	}
	close(answer)
	d.until("the machine facts", func() bool { return d.m.welcome.machine != nil })
	v := d.view()
	for _, want := range []string{"step 1 of 9", "next: Address", "root", "systemd timer", "nginx running, web root /var/www/html", "enter start"} {
		if !strings.Contains(v, want) {
			t.Errorf("welcome lacks %q:\n%s", want, v)
		}
	}
	if d.m.ans.WebRoot != "/var/www/html" {
		t.Errorf("the running nginx's web root was not taken as the default: %q", d.m.ans.WebRoot)
	}
	d.key("enter")
	if d.m.Step() != StepAddress {
		t.Fatalf("enter on welcome: step %v, want Address", d.m.Step())
	}
}

func TestAddressShowsSourcesAndInterfaces(t *testing.T) {
	d := toAddress(t, fakeDeps(nil), testConfig(false))
	v := d.view()
	for _, want := range []string{"81.2.69.160", "4 sources agreed, of 6 sources asked: api.ipify.org", "disagreeing: ifconfig.me: 81.2.69.161", "on no local interface", "2a02:898:0:20::7", "on interface eth0"} {
		if !strings.Contains(v, want) {
			t.Errorf("address screen lacks %q:\n%s", want, v)
		}
	}
	// Both are picked by default; space on the first unpicks it.
	d.key("space")
	d.key("enter")
	if d.m.Step() != StepPreflight || !slices.Equal(d.m.ans.Addrs, []netip.Addr{pub6}) {
		t.Fatalf("after unpicking the IPv4: step %v, addrs %v; want Preflight with only %v", d.m.Step(), d.m.ans.Addrs, pub6)
	}
}

func TestAddressNeedsOne(t *testing.T) {
	d := toAddress(t, fakeDeps(nil), testConfig(false))
	d.key("space")
	d.key("down")
	d.key("space")
	d.key("enter")
	if d.m.Step() != StepAddress {
		t.Fatalf("enter with nothing picked moved to %v", d.m.Step())
	}
	if v := d.view(); !strings.Contains(v, "Pick at least one address") {
		t.Errorf("no hint when nothing is picked:\n%s", v)
	}
}

func TestAddressTypedValidatesAsTyped(t *testing.T) {
	d := toAddress(t, fakeDeps(nil), testConfig(false))
	d.key("t")
	if !d.m.textFocused() {
		t.Fatal("t did not focus the address field")
	}
	steps := []struct{ typed, want string }{
		{"1.2.3", "is not an IP address"},
		{".4", "1.2.3.4 is a public IPv4 address"},
	}
	for _, s := range steps {
		d.typeText(s.typed)
		if v := d.view(); !strings.Contains(v, s.want) {
			t.Errorf("after typing %q the screen lacks %q:\n%s", s.typed, s.want, v)
		}
	}
	// q is a letter here, not quit.
	d.key("q")
	if d.m.done || d.m.address.input.Value() != "1.2.3.4q" {
		t.Fatalf("q in the text field: done=%v value=%q", d.m.done, d.m.address.input.Value())
	}
	d.key("backspace")
	d.key("enter")
	if d.m.address.typing || !slices.ContainsFunc(d.m.address.cands, func(c candidate) bool { return c.Addr.String() == "1.2.3.4" && c.Checked }) {
		t.Fatalf("enter did not add 1.2.3.4 as a picked address: %+v", d.m.address.cands)
	}
	// A private address is one Let's Encrypt refuses, with the reason,
	// but an own ACME CA may certify it: it can be picked, with the note.
	d.key("t")
	d.typeText("192.168.1.10")
	if v := oneLine(d.view()); !strings.Contains(v, "! 192.168.1.10 is a private IPv4 address, not for Let's Encrypt: it is in private network") || strings.Contains(v, "✓ 192.168.1.10") {
		t.Errorf("private address without Let's Encrypt's refusal, or marked both ✓ and ! (issue 24 item 11):\n%s", v)
	}
	if w := d.m.address.inputWarn; !strings.Contains(w, "rejectedIdentifier") || !strings.Contains(w, `Only your own ACME CA can certify it (the Plan's "My own ACME CA")`) {
		t.Errorf("the note on a private address: %q, want Let's Encrypt's refusal and the own-CA way out", w)
	}
	if w := d.m.address.inputWarn; strings.Contains(w, "ipcert issue --ca URL") {
		t.Errorf("the wizard's note names issue's flags, not its own Plan choice: %q", w)
	}
	d.key("enter")
	if d.m.address.typing || !slices.ContainsFunc(d.m.address.cands, func(c candidate) bool { return c.Addr.String() == "192.168.1.10" && c.Checked && c.LENote != "" }) {
		t.Fatalf("enter did not add 192.168.1.10 with its Let's Encrypt note: %+v", d.m.address.cands)
	}
	// What no CA can validate is refused, and enter does nothing.
	d.key("t")
	d.typeText("0.0.0.0")
	if e := d.m.address.inputErr; !strings.Contains(e, "nothing can connect to") {
		t.Errorf("the unspecified address refused with %q, want the reason", e)
	}
	d.key("enter")
	if !d.m.address.typing {
		t.Error("enter accepted a refused address")
	}
	d.key("esc")
	if d.m.address.typing || d.m.Step() != StepAddress {
		t.Errorf("esc in the field should leave the field only: typing=%v step=%v", d.m.address.typing, d.m.Step())
	}
}

func TestAddressDemoAcceptsLoopback(t *testing.T) {
	d := toAddress(t, demoFakeDeps(), testConfig(true))
	if len(d.m.address.cands) != 1 || d.m.address.cands[0].Addr != lo4 || !d.m.address.cands[0].Checked {
		t.Fatalf("the demo should offer 127.0.0.1 picked: %+v", d.m.address.cands)
	}
	// Outside the demo the same address is refused, with the way out.
	d2 := toAddress(t, fakeDeps(nil), testConfig(false))
	d2.key("t")
	d2.typeText("127.0.0.1")
	if v := oneLine(d2.view()); !strings.Contains(v, "ipcert demo") {
		t.Errorf("loopback outside the demo should point at the demo:\n%s", v)
	}
}

// recordingPreflight counts runs and keeps their requests.
type recordingPreflight struct {
	mu   sync.Mutex
	reqs []PreflightRequest
}

func (r *recordingPreflight) run(ctx context.Context, req PreflightRequest, progress func(preflight.Event)) preflight.Report {
	r.mu.Lock()
	r.reqs = append(r.reqs, req)
	r.mu.Unlock()
	return fakePreflight(ctx, req, progress)
}

func (r *recordingPreflight) requests() []PreflightRequest {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.reqs)
}

func TestPreflightRerunAndMapPortsAsksFirst(t *testing.T) {
	rec := &recordingPreflight{}
	deps := fakeDeps(nil)
	deps.Preflight = rec.run
	d := toAddress(t, deps, testConfig(false))
	d.key("enter")
	d.until("the first run", func() bool { return d.m.pre.report != nil })
	if v := d.view(); !strings.Contains(v, "Validation will probably fail") || !strings.Contains(v, "fix: use the web root") {
		t.Errorf("the failure and its fix should show:\n%s", v)
	}
	if d.m.pre.items[d.m.pre.cursor].ID != preflight.IDPorts {
		t.Errorf("the cursor should start on the failure, is on %s", d.m.pre.items[d.m.pre.cursor].ID)
	}
	d.key("r")
	d.until("the second run", func() bool { return len(rec.requests()) == 2 && d.m.pre.report != nil })
	d.key("m")
	if !d.m.pre.askMap || len(rec.requests()) != 2 {
		t.Fatal("m must ask before mapping ports, not run")
	}
	d.key("n")
	if d.m.pre.askMap || len(rec.requests()) != 2 {
		t.Fatal("n must not map ports")
	}
	d.key("m")
	d.key("y")
	d.until("the mapping run", func() bool { return len(rec.requests()) == 3 && d.m.pre.report != nil })
	reqs := rec.requests()
	if reqs[0].MapPorts || reqs[1].MapPorts || !reqs[2].MapPorts {
		t.Errorf("MapPorts per run = %v %v %v, want false false true", reqs[0].MapPorts, reqs[1].MapPorts, reqs[2].MapPorts)
	}
	// Consent is for one run only.
	d.key("r")
	d.until("the run after mapping", func() bool { return len(rec.requests()) == 4 && d.m.pre.report != nil })
	if rec.requests()[3].MapPorts {
		t.Error("a re-run after mapping mapped the ports again without asking")
	}
	d.key("enter")
	if d.m.Step() != StepPlan {
		t.Errorf("enter after the checks: step %v, want Plan", d.m.Step())
	}
}

func TestPlanQuestions(t *testing.T) {
	d := toAddress(t, fakeDeps(nil), testConfig(false))
	d.key("enter")
	d.until("the checks", func() bool { return d.m.pre.report != nil })
	d.key("enter")
	d.until("the plan", func() bool { return d.focused() == "ca" })
	v := d.view()
	for _, want := range []string{"Rehearse on staging, then production", "Staging only", "Production directly", "My own ACME CA (directory URL)"} {
		if !strings.Contains(v, want) {
			t.Errorf("plan lacks %q:\n%s", want, v)
		}
	}
	if d.m.plan.a.Challenge != ChallengeWebroot {
		t.Errorf("with nginx on port 80 the default challenge should be its web root, is %q", d.m.plan.a.Challenge)
	}
	// The terms must be accepted: "n" keeps the form open.
	d.key("down")
	d.key("down")
	if v := d.view(); !strings.Contains(v, "Warning: without a rehearsal") {
		t.Errorf("production without a rehearsal should warn:\n%s", v)
	}
	d.key("enter")
	d.until("the challenge question", func() bool { return d.focused() == "challenge" })
	v = d.view()
	if !strings.Contains(v, "dns-01 is impossible for IP addresses") {
		t.Errorf("the challenge question should say why dns-01 is missing:\n%s", v)
	}
	for _, want := range []string{"http-01 into the web root /var/www/html (nginx)", "tls-alpn-01"} {
		if !strings.Contains(v, want) {
			t.Errorf("the challenge question lacks %q:\n%s", want, v)
		}
	}
	d.key("down")
	d.key("enter")
	d.until("the key question", func() bool { return d.focused() == "key" })
	d.key("down")
	d.key("enter")
	d.until("the e-mail", func() bool { return d.focused() == "email" })
	d.typeText("not an address")
	d.key("enter")
	if d.focused() != "email" {
		t.Fatal("an invalid e-mail was accepted")
	}
	for range len("not an address") {
		d.key("backspace")
	}
	d.key("enter")
	d.until("the terms", func() bool { return d.m.plan.consentReady() })
	d.key("n")
	if d.m.Step() != StepPlan {
		t.Fatalf("refusing the terms left the plan: %v", d.m.Step())
	}
	d.key("y")
	d.until("the issue step", func() bool { return d.m.Step() == StepIssue })
	a := d.m.ans
	if a.CA != cachoice.Production || a.Challenge != ChallengeTLSALPN || a.KeyType != "ec384" || a.Email != "" || !a.AgreeTOS {
		t.Errorf("answers = %+v", a)
	}
}

func TestEscBackKeepsAnswers(t *testing.T) {
	d := toAddress(t, fakeDeps(nil), testConfig(false))
	d.key("space") // drop the IPv4
	d.key("enter")
	d.until("the checks", func() bool { return d.m.pre.report != nil })
	d.key("enter")
	d.until("the plan", func() bool { return d.focused() == "ca" })
	d.key("down")
	d.key("esc")
	if d.m.Step() != StepPreflight {
		t.Fatalf("esc on plan: %v", d.m.Step())
	}
	d.key("esc")
	if d.m.Step() != StepAddress {
		t.Fatalf("esc on preflight: %v", d.m.Step())
	}
	if !slices.Equal(d.m.ans.Addrs, []netip.Addr{pub6}) || d.m.ans.CA != cachoice.Staging {
		t.Fatalf("answers lost going back: %+v", d.m.ans)
	}
	if v := d.view(); !strings.Contains(v, "[ ] 81.2.69.160") || !strings.Contains(v, "[x] 2a02:898:0:20::7") {
		t.Errorf("the address screen forgot the picks:\n%s", v)
	}
	d.key("esc")
	if d.m.Step() != StepWelcome {
		t.Fatalf("esc on address: %v", d.m.Step())
	}
}

func TestIssueFailureChoices(t *testing.T) {
	fail := &acmeflow.Error{Step: acmeflow.StepChallenge, Identifier: "81.2.69.160", Problem: &acmeflow.Problem{Type: acmeflow.ProblemUnauthorized, Detail: "Invalid response from http://81.2.69.160/.well-known/acme-challenge/x: 404"}}
	var calls sync.Map
	n := 0
	var mu sync.Mutex
	iss := issuerFunc(func(ctx context.Context, req acmeflow.Request, opts acmeflow.IssueOptions) (*acmeflow.Issued, error) {
		mu.Lock()
		n++
		calls.Store(n, req)
		mu.Unlock()
		return nil, fail
	})
	rec := &recordingPreflight{}
	deps := fakeDeps(iss)
	deps.Preflight = rec.run
	cfg := testConfig(false)
	cfg.Answers = Answers{CA: cachoice.Staging, AgreeTOS: true, KeyType: "ec256", Challenge: ChallengeHTTP}
	d := toAddress(t, deps, cfg)
	d.key("enter")
	d.until("the checks", func() bool { return d.m.pre.report != nil })
	d.key("enter")
	d.m.plan.a = d.m.ans
	d.send(d.m.goTo(StepIssue)()) // skip the form: the answers are preset
	d.until("the failure", func() bool { return d.m.issue.phase == phaseFailed })
	// The choices come first; the CA's words may be a page below (the
	// fix's command is whole, and long).
	v := d.view()
	d.key("pgdown")
	v += d.view()
	d.key("pgup")
	for _, want := range []string{"Retry", "Change the challenge", "Back to preflight", "unauthorized", "404"} {
		if !strings.Contains(v, want) {
			t.Errorf("failure screen lacks %q:\n%s", want, v)
		}
	}
	d.key("r")
	d.until("the retry's failure", func() bool { mu.Lock(); defer mu.Unlock(); return n == 2 && d.m.issue.phase == phaseFailed })
	d.key("p")
	if d.m.Step() != StepPreflight {
		t.Fatalf("p: step %v", d.m.Step())
	}
	d.until("the checks again", func() bool { return len(rec.requests()) == 2 && d.m.pre.report != nil })
	d.key("enter")
	d.until("the plan", func() bool { return d.focused() == "ca" })
	d.send(d.m.goTo(StepIssue)())
	d.until("the third failure", func() bool { mu.Lock(); defer mu.Unlock(); return n == 3 && d.m.issue.phase == phaseFailed })
	d.key("down")
	d.key("enter")
	if d.m.Step() != StepPlan {
		t.Fatalf("change challenge: step %v", d.m.Step())
	}
	if d.m.Outcome().Err == nil || !errors.Is(d.m.Outcome().Err, fail) {
		t.Errorf("outcome error = %v", d.m.Outcome().Err)
	}
}

func TestQuitKeys(t *testing.T) {
	for _, k := range []string{"q", "ctrl+c"} {
		d := newDriver(t, fakeDeps(nil), testConfig(false), 80, 24)
		_, cmd := d.m.Update(keyMsg(k))
		if cmd == nil {
			t.Fatalf("%s returned no command", k)
		}
		if _, ok := cmd().(tea.QuitMsg); !ok {
			t.Errorf("%s did not quit", k)
		}
		if !d.m.Outcome().Aborted || d.m.View() != "" {
			t.Errorf("%s: outcome %+v, view %q", k, d.m.Outcome(), d.m.View())
		}
	}
}

func TestRehearsalThenProductionStores(t *testing.T) {
	var mu sync.Mutex
	var used []string
	mk := func(label string) Issuer {
		return issuerFunc(func(ctx context.Context, req acmeflow.Request, opts acmeflow.IssueOptions) (*acmeflow.Issued, error) {
			mu.Lock()
			used = append(used, label+":"+string(opts.Renewal.CA))
			mu.Unlock()
			return fakeIssued("81.2.69.160", string(opts.Renewal.CA), req.Identifiers...), nil
		})
	}
	deps := fakeDeps(mk("main"))
	deps.Rehearsal = mk("rehearsal")
	cfg := testConfig(false)
	cfg.Answers = Answers{AgreeTOS: true, Challenge: ChallengeHTTP}
	d := toAddress(t, deps, cfg)
	d.key("enter")
	d.until("the checks", func() bool { return d.m.pre.report != nil })
	d.send(d.m.goTo(StepIssue)())
	d.until("the question", func() bool { return d.m.issue.phase == phaseAskProduction })
	if d.m.Outcome().Issued != nil || d.m.Outcome().Rehearsal == nil {
		t.Fatalf("after the rehearsal: %+v", d.m.Outcome())
	}
	d.key("y")
	d.until("the issued screen", func() bool { return d.m.issue.phase == phaseIssued })
	d.key("enter")
	d.until("the install step", func() bool { return d.m.Step() == StepInstall })
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(used, []string{"rehearsal:staging", "main:production"}) {
		t.Errorf("issuers used: %v; the rehearsal must go to the rehearsal store, production to the main one", used)
	}
}

// TestResultsReachTheirStep: a command's result is kept by the step that
// started it even when the user has moved on or gone back meanwhile.
func TestResultsReachTheirStep(t *testing.T) {
	releaseMachine, releaseAddr := make(chan struct{}), make(chan struct{})
	deps := fakeDeps(nil)
	deps.Machine = func(ctx context.Context) Machine { <-releaseMachine; return fakeMachine(ctx) }
	deps.DetectPublic = func(ctx context.Context) preflight.PublicAddrs { <-releaseAddr; return fakePublic(ctx) }
	d := newDriver(t, deps, testConfig(false), 80, 24)
	d.key("enter") // on to Address before the machine facts arrived
	if d.m.Step() != StepAddress {
		t.Fatalf("step %v", d.m.Step())
	}
	close(releaseMachine)
	d.until("the machine facts, on the address screen", func() bool { return d.m.welcome.machine != nil })
	if d.m.ans.WebRoot != "/var/www/html" {
		t.Errorf("late machine facts not used: web root %q", d.m.ans.WebRoot)
	}
	d.key("esc") // back to Welcome while the addresses are being found
	close(releaseAddr)
	d.until("the addresses, on the welcome screen", func() bool { return d.m.address.detected })
	d.key("enter")
	if v := d.view(); !strings.Contains(v, "81.2.69.160") || strings.Contains(v, "asking echo") {
		t.Errorf("the address screen should show the late result:\n%s", v)
	}
}

// TestPreflightCancelledByEscRunsAgain: leaving a running preflight
// cancels it, and coming back runs it again instead of showing the
// cancelled run's partial report.
func TestPreflightCancelledByEscRunsAgain(t *testing.T) {
	gate := make(chan struct{})
	started := make(chan struct{}, 2)
	var mu sync.Mutex
	runs := 0
	deps := fakeDeps(nil)
	deps.Preflight = func(ctx context.Context, req PreflightRequest, progress func(preflight.Event)) preflight.Report {
		mu.Lock()
		runs++
		mu.Unlock()
		started <- struct{}{}
		select {
		case <-ctx.Done():
			// A cancelled run returns what it has: nothing failed yet.
			return preflight.Report{Verdict: preflight.StatusOK}
		case <-gate:
		}
		return fakePreflight(ctx, req, progress)
	}
	d := toAddress(t, deps, testConfig(false))
	d.key("enter")
	if !d.m.pre.running {
		t.Fatal("preflight did not start")
	}
	// The run is a command the driver executes as its messages are pumped:
	// make sure it is under way before leaving, or there is no first run
	// to count.
	d.waitFor("the first run to start", started)
	d.key("esc")
	d.key("enter")
	close(gate)
	d.until("the second run's report", func() bool { return d.m.pre.report != nil })
	mu.Lock()
	defer mu.Unlock()
	if runs != 2 || d.m.pre.report.Verdict != preflight.StatusFail {
		t.Errorf("runs %d, verdict %s: want a second, complete run", runs, d.m.pre.report.Verdict)
	}
}

// TestEscDuringIssuanceCancelsToPlan: esc while the order runs cancels it
// and, once the engine has returned, shows the plan again.
func TestEscDuringIssuanceCancelsToPlan(t *testing.T) {
	started := make(chan struct{})
	var once sync.Once
	iss := issuerFunc(func(ctx context.Context, req acmeflow.Request, opts acmeflow.IssueOptions) (*acmeflow.Issued, error) {
		once.Do(func() { close(started) })
		<-ctx.Done()
		return nil, &acmeflow.Error{Step: acmeflow.StepChallenge, Err: ctx.Err()}
	})
	cfg := testConfig(false)
	cfg.Answers = Answers{CA: cachoice.Staging, AgreeTOS: true, Challenge: ChallengeHTTP}
	d := toAddress(t, fakeDeps(iss), cfg)
	d.key("enter")
	d.until("the checks", func() bool { return d.m.pre.report != nil })
	d.send(d.m.goTo(StepIssue)())
	<-started
	d.key("esc")
	d.until("the plan after the cancelled run", func() bool { return d.m.Step() == StepPlan })
	if d.m.issue.phase != phaseIdle || d.m.Outcome().Err != nil {
		t.Errorf("a cancelled run is not a failure: phase %v, err %v", d.m.issue.phase, d.m.Outcome().Err)
	}
	if v := strings.Join(strings.Fields(d.view()), " "); !strings.Contains(v, "The issuance was cancelled (esc)") {
		t.Errorf("the plan does not say the run was cancelled:\n%s", d.view())
	}
}

// TestAddressOfflineWayForward: with no source answering, the Address
// screen says how to go on (type it, ask again, ipcert preflight, ipcert
// demo), r asks again, and what the wizard refuses it explains with what
// the wizard offers.
func TestAddressOfflineWayForward(t *testing.T) {
	var asked atomic.Int32
	deps := offlineDeps()
	offline := deps.DetectPublic
	deps.DetectPublic = func(ctx context.Context) preflight.PublicAddrs { asked.Add(1); return offline(ctx) }
	d := toAddress(t, deps, testConfig(false))
	d.until("the detection", func() bool { return d.m.address.detected })
	v := strings.Join(strings.Fields(d.view()), " ")
	for _, want := range []string{"No public address found", "ask again (r)", "ipcert preflight", "ipcert demo", "t type the address", "r ask again"} {
		if !strings.Contains(v, want) {
			t.Errorf("offline Address screen lacks %q:\n%s", want, d.view())
		}
	}
	if d.m.address.typing {
		t.Error("offline, the screen starts in the text field, where r and q are letters")
	}
	d.key("r")
	d.until("a second detection", func() bool { return asked.Load() == 2 && d.m.address.detected })
	d.key("t")
	d.typeText("127.0.0.1")
	if v := strings.Join(strings.Fields(d.view()), " "); !strings.Contains(v, "ipcert demo") || strings.Contains(v, "--ca local") {
		t.Errorf("the refusal of a loopback address should point to ipcert demo, not a flag the wizard refuses:\n%s", d.view())
	}
}

// TestDemoRefusesOtherAddresses: the demo's test CA would connect to any
// address typed (8.8.8.8 is someone else's machine), and its responder
// answers on 127.0.0.1 only: other addresses are refused with the reason.
func TestDemoRefusesOtherAddresses(t *testing.T) {
	d := toAddress(t, demoFakeDeps(), testConfig(true))
	d.until("the detection", func() bool { return d.m.address.detected })
	for _, c := range []struct{ addr, want string }{
		{"8.8.8.8", "would connect to 8.8.8.8"},
		{"127.0.0.2", "answers only on 127.0.0.1"},
		{"::1", "answers only on 127.0.0.1"},
	} {
		d.key("t")
		d.typeText(c.addr)
		if v := strings.Join(strings.Fields(d.view()), " "); !strings.Contains(v, c.want) {
			t.Errorf("%s in the demo: lacks %q:\n%s", c.addr, c.want, d.view())
		}
		d.key("enter")
		if !d.m.address.typing {
			t.Errorf("%s was accepted in the demo", c.addr)
		}
		d.key("esc")
	}
}

// TestWizardCommandWorksAsPrinted: the diagnosis catalogue's commands are
// written for ipcert issue in general ("--ca staging --ip ADDR"); on the
// failure screen they become this run's command: its addresses, CA (the
// demo's local one), challenge, web root and state directory.
func TestWizardCommandWorksAsPrinted(t *testing.T) {
	m := New(context.Background(), fakeDeps(nil), Config{Demo: true, StateDir: "/tmp/ipcert-demo-1"})
	m.ans.Addrs, m.ans.Challenge = []netip.Addr{lo4}, ChallengeHTTP
	for in, want := range map[string]string{
		"ipcert issue --ca staging --ip ADDR --agree-tos":             "ipcert issue --ip 127.0.0.1 --ca local --challenge http-01 --agree-tos --state-dir /tmp/ipcert-demo-1",
		"ipcert issue --ca staging --ip ADDR --challenge tls-alpn-01": "ipcert issue --ip 127.0.0.1 --ca local --challenge tls-alpn-01 --agree-tos --state-dir /tmp/ipcert-demo-1",
		"ipcert doctor --probe":                                       "ipcert doctor --probe --state-dir /tmp/ipcert-demo-1",
		"ipcert doctor 127.0.0.1 --state-dir /tmp/ipcert-demo-1":      "ipcert doctor 127.0.0.1 --state-dir /tmp/ipcert-demo-1",
		"ipcert preflight":                                            "ipcert preflight --ip 127.0.0.1",
		"sudo ufw allow 80/tcp":                                       "sudo ufw allow 80/tcp",
	} {
		if got := m.wizardCommand(diagnosis.Cmd(strings.Fields(in))); got != want {
			t.Errorf("wizardCommand(%q) = %q, want %q", in, got, want)
		}
	}
	m = New(context.Background(), fakeDeps(nil), Config{StateDir: "/etc/ipcert"})
	m.ans.Addrs, m.ans.Challenge, m.ans.WebRoot, m.ans.CA = []netip.Addr{pub4}, ChallengeWebroot, "/var/www/html", PlanRehearse
	if got, want := m.wizardCommand(diagnosis.Cmd{"ipcert", "issue", "--ca", "staging", "--ip", "ADDR", "--agree-tos"}), "sudo ipcert issue --ip 81.2.69.160 --ca staging --webroot /var/www/html --challenge http-01 --agree-tos"; got != want {
		t.Errorf("web root run: %q, want %q", got, want)
	}
}

// TestRetryShowsANewAttempt: after r on the failure screen the screen
// says that attempt 2 runs and how attempt 1 ended; when it fails too, the
// failure names its attempt and what the validator did.
func TestRetryShowsANewAttempt(t *testing.T) {
	release := make(chan struct{}, 4)
	iss := issuerFunc(func(ctx context.Context, req acmeflow.Request, opts acmeflow.IssueOptions) (*acmeflow.Issued, error) {
		req.Events(validatorEvent("66.133.109.36:41234"))
		select {
		case <-release:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		return nil, &acmeflow.Error{Step: acmeflow.StepChallenge, Identifier: "81.2.69.160", Problem: &acmeflow.Problem{
			Type: acmeflow.ProblemConnection, Status: 400, Detail: "81.2.69.160: Timeout during connect (likely firewall problem)"}}
	})
	cfg := testConfig(false)
	cfg.Answers = Answers{CA: cachoice.Staging, AgreeTOS: true, Challenge: ChallengeHTTP}
	d := toAddress(t, fakeDeps(iss), cfg)
	d.key("enter")
	d.until("the checks", func() bool { return d.m.pre.report != nil })
	d.send(d.m.goTo(StepIssue)())
	release <- struct{}{}
	d.until("the failure", func() bool { return d.m.issue.phase == phaseFailed })
	if v := d.view(); strings.Contains(v, "Attempt") || !strings.Contains(v, "1 validator request reached") {
		t.Errorf("first failure:\n%s", v)
	}
	d.key("r")
	d.until("the retry's validator line", func() bool { return d.m.issue.running() && len(d.m.issue.lines) > 0 })
	v := strings.Join(strings.Fields(d.view()), " ")
	for _, want := range []string{"Attempt 2.", "attempt 1 failed at", "validator 66.133.109.36"} {
		if !strings.Contains(v, want) {
			t.Errorf("the retry shows no %q:\n%s", want, d.view())
		}
	}
	release <- struct{}{}
	d.until("the second failure", func() bool { return d.m.issue.phase == phaseFailed })
	if v := strings.Join(strings.Fields(d.view()), " "); !strings.Contains(v, "attempt 2, at the challenge step") {
		t.Errorf("the second failure does not say which attempt:\n%s", d.view())
	}
}

// TestSmallThings: esc in the e-mail field leaves the field, as in the
// address field; a pasted URL is read as its address; counts are worded
// for one source.
func TestSmallThings(t *testing.T) {
	d := toAddress(t, fakeDeps(nil), testConfig(false))
	d.key("t")
	d.typeText("http://81.2.69.162/")
	if v := strings.Join(strings.Fields(d.view()), " "); !strings.Contains(v, "81.2.69.162 is a public IPv4 address (read from the URL http://81.2.69.162/)") {
		t.Errorf("a pasted URL is not read:\n%s", d.view())
	}
	d.key("enter")
	if d.m.address.typing || !slices.ContainsFunc(d.m.address.cands, func(c candidate) bool { return c.Addr.String() == "81.2.69.162" && c.Checked }) {
		t.Fatalf("the URL's address was not added: %+v", d.m.address.cands)
	}
	d.key("enter")
	d.until("the checks", func() bool { return d.m.pre.report != nil })
	d.key("enter")
	d.until("the plan", func() bool { return d.focused() == "ca" })
	d.key("enter")
	d.until("the challenge", func() bool { return d.focused() == "challenge" })
	d.key("enter")
	d.until("the key", func() bool { return d.focused() == "key" })
	d.key("enter")
	d.until("the e-mail", func() bool { return d.focused() == "email" })
	d.typeText("me@example.org")
	d.key("esc")
	d.until("the key again", func() bool { return d.focused() == "key" })
	if d.m.Step() != StepPlan {
		t.Fatalf("esc in the e-mail field left the step: %v", d.m.Step())
	}
	d.key("enter")
	d.until("the e-mail again", func() bool { return d.focused() == "email" })
	if v := d.view(); !strings.Contains(v, "me@example.org") {
		t.Errorf("the typed e-mail is gone:\n%s", v)
	}

	one := New(context.Background(), fakeDeps(nil), testConfig(false))
	f := strings.Join(one.address.facts(one, candidate{Addr: pub4, Sources: []string{"demo"}, Votes: 1, Answered: 1, Asked: 1}), "; ")
	if !strings.Contains(f, "1 source agreed, of 1 source asked") {
		t.Errorf("one source: %q", f)
	}
}

// TestPreflightRowsStayInPlace: checks finish in any order; the rows keep
// the order they appeared in, through the end of the run and a re-run.
func TestPreflightRowsStayInPlace(t *testing.T) {
	deps := fakeDeps(nil)
	var runs atomic.Int32
	gate := make(chan struct{})
	deps.Preflight = func(ctx context.Context, req PreflightRequest, progress func(preflight.Event)) preflight.Report {
		rep := fakeReport(req.Addrs)
		order := []int{3, 0, 5, 1, 4, 2}
		if runs.Add(1) == 2 {
			order = []int{5, 4, 3, 2, 1, 0}
			for _, i := range order {
				r := rep.Results[i]
				progress(preflight.Event{Kind: preflight.EventStart, ID: r.ID, Title: r.Title})
			}
			<-gate
		}
		for _, i := range order {
			r := rep.Results[i]
			progress(preflight.Event{Kind: preflight.EventStart, ID: r.ID, Title: r.Title})
			progress(preflight.Event{Kind: preflight.EventFinish, ID: r.ID, Title: r.Title, Result: &r})
		}
		return rep
	}
	d := toAddress(t, deps, testConfig(false))
	d.key("enter")
	d.until("the checks", func() bool { return d.m.pre.report != nil })
	ids := func() []string {
		var out []string
		for _, it := range d.m.pre.items {
			out = append(out, it.ID)
		}
		return out
	}
	first := ids()
	// The checks' own order, whichever started first: the same in every
	// run (issue 24 item 12).
	want := []string{preflight.IDPublic4, preflight.IDNAT, preflight.IDPorts, preflight.IDPrivilege, preflight.IDFirewall, preflight.IDAddress}
	if !slices.Equal(first, want) {
		t.Errorf("rows %v, want the checks' order %v", first, want)
	}
	d.key("r")
	d.until("the re-run's events", func() bool { return d.m.pre.running && len(d.m.pre.items) == 6 })
	if got := ids(); !slices.Equal(got, first) {
		t.Errorf("rows reordered during the re-run: %v, were %v", got, first)
	}
	close(gate)
	d.until("the re-run", func() bool { return d.m.pre.report != nil })
	if got := ids(); !slices.Equal(got, first) {
		t.Errorf("rows reordered after the re-run: %v, were %v", got, first)
	}
}

// TestStepTable: every step has its row in the router's table, and a step
// without one is reported as a bug, not drawn as an empty screen.
func TestStepTable(t *testing.T) {
	m := New(context.Background(), Deps{}, Config{})
	defer m.Shutdown()
	for s := StepWelcome; s < numSteps; s++ {
		if m.handler(s) == nil {
			t.Errorf("step %v has no handler", s)
		}
	}
	for _, s := range []Step{numSteps, -1} {
		func() {
			defer func() {
				r := recover()
				if r == nil || !strings.Contains(fmt.Sprint(r), "this is a bug") {
					t.Errorf("handler(%v): recovered %v, want a panic saying this is a bug", s, r)
				}
			}()
			m.handler(s)
		}()
	}
	for _, st := range []Step{StepInstall, StepRenewal, StepVerify} {
		if a := m.afterStep(st); a == nil || a.step != st {
			t.Errorf("afterStep(%v) = %+v", st, a)
		}
	}
	if m.afterStep(StepPlan) != nil {
		t.Error("afterStep(Plan) is an action step")
	}
}

// oneLine is a screen without styling, its lines joined by single spaces:
// what it says, wherever it wrapped.
func oneLine(v string) string {
	return strings.Join(strings.Fields(ui.Plain(v)), " ")
}

// TestTypeAheadAfterEmail: "enter y" typed in one burst in the e-mail
// field (over ssh, a paste) must not put the y into the e-mail or leave no
// field focused (issue 24 item 3): the y typed while the question changes
// goes to the terms question, which drops and counts it (it came before
// the question was on screen), and the terms question is current.
func TestTypeAheadAfterEmail(t *testing.T) {
	for _, burst := range [][]string{{"enter", "y"}, {"enter", "y", "y", "enter"}, {"tab", "y"}} {
		cfg := testConfig(false)
		cfg.ConsentDelay = time.Hour // the terms question never arms in the test: only the burst counts
		d := toAddress(t, fakeDeps(nil), cfg)
		d.key("enter")
		d.until("the checks", func() bool { return d.m.pre.report != nil })
		d.key("enter")
		d.until("the plan", func() bool { return d.focused() == "ca" })
		for _, k := range []string{"challenge", "key"} {
			d.key("enter")
			d.until(k, func() bool { return d.focused() == k })
		}
		// A letter typed with the enter that leaves the key question goes
		// to the e-mail, the question it was typed for.
		d.send(burstMsg{keyMsg("enter"), keyMsg("x")})
		d.until("the e-mail", func() bool { return d.focused() == "email" && d.m.plan.moving == nil })
		if d.m.plan.a.Email != "x" || d.m.plan.a.KeyType != "ec256" {
			t.Errorf("the key typed ahead did not go to the e-mail: e-mail %q, key type %q", d.m.plan.a.Email, d.m.plan.a.KeyType)
		}
		d.key("backspace")
		d.typeText("admin@example.org")
		var msgs burstMsg
		for _, k := range burst {
			msgs = append(msgs, keyMsg(k))
		}
		d.send(msgs)
		d.until("the terms question", func() bool { return d.focused() == "tos" && d.m.plan.moving == nil })
		if got := d.m.plan.a.Email; got != "admin@example.org" {
			t.Errorf("%v: the e-mail became %q", burst, got)
		}
		if d.m.plan.a.AgreeTOS {
			t.Errorf("%v: typed-ahead keys agreed to the terms", burst)
		}
		n := len(burst) - 1
		want := fmt.Sprintf("%d key typed before this question was shown ignored", n)
		if n > 1 {
			want = fmt.Sprintf("%d keys typed before this question was shown ignored", n)
		}
		if v := d.view(); !strings.Contains(v, want) {
			t.Errorf("%v: the screen does not count the dropped keys (%q):\n%s", burst, want, v)
		}
	}
}

// TestConsentBelongsToOneCA: agreeing to one CA's terms does not agree to
// another's (issue 24 item 4): agreed to the own CA's terms, the plan
// switched to Let's Encrypt asks for the Subscriber Agreement afresh; a
// switch between Let's Encrypt's staging and production keeps it (one
// agreement for both).
func TestConsentBelongsToOneCA(t *testing.T) {
	cfg := testConfig(false)
	cfg.ConsentDelay = -1
	url := "https://ca.internal:9000/acme/acme/directory"
	cfg.Answers = Answers{CA: PlanOwnCA, CAURL: url, AgreeTOS: true, Challenge: ChallengeHTTP}
	d := toAddress(t, fakeDeps(nil), cfg)
	d.key("enter")
	d.until("the checks", func() bool { return d.m.pre.report != nil })
	d.key("enter")
	d.until("the plan", func() bool { return d.focused() == "ca" })
	if a := d.m.plan.a; !a.AgreeTOS || a.AgreedFor != "own "+url {
		t.Fatalf("the given agreement is not the own CA's: %+v", a)
	}
	for range 3 {
		d.key("up")
	}
	if d.m.plan.a.CA != PlanRehearse || d.m.plan.a.AgreeTOS {
		t.Fatalf("switched to %q, the own CA's agreement still counts: %+v", d.m.plan.a.CA, d.m.plan.a)
	}
	d.key("down") // staging: Let's Encrypt's terms too
	for _, k := range []string{"challenge", "key", "email", "tos"} {
		d.key("enter")
		d.until(k, func() bool { return d.focused() == k })
	}
	v := d.view()
	if !strings.Contains(v, "Subscriber Agreement") || !strings.Contains(v, "[ ] I agree (y)") || strings.Contains(v, "agreed already") {
		t.Fatalf("Let's Encrypt's terms show as agreed:\n%s", v)
	}
	d.key("y")
	if a := d.m.plan.a; !a.AgreeTOS || a.AgreedFor != "letsencrypt" {
		t.Fatalf("y did not agree to Let's Encrypt's terms: %+v", a)
	}
	// Staging to production: the same Subscriber Agreement.
	a := d.m.ans
	a.CA = cachoice.Production
	a.keepConsent(true)
	if !a.AgreeTOS {
		t.Error("Let's Encrypt's agreement was dropped between staging and production")
	}
	a.CA, a.CAURL = PlanOwnCA, url
	if a.keepConsent(true); a.AgreeTOS {
		t.Error("Let's Encrypt's agreement counts for the own CA")
	}
}

// TestMapPortsQuestionInViewAndAnswered: "m map ports" asks in view, at
// the top, even at 60x20 with the checklist longer than the screen, and
// after y the screen says what the router did (issue 24 item 8); r says
// that it ran again.
func TestMapPortsQuestionInViewAndAnswered(t *testing.T) {
	deps := fakeDeps(nil)
	deps.Preflight = func(ctx context.Context, req PreflightRequest, progress func(preflight.Event)) preflight.Report {
		rep := fakePreflight(ctx, req, progress)
		rep.Started = fixedNow
		if req.MapPorts {
			rep.NAT.Mappings = []preflight.Mapping{
				{Proto: "upnp", Internal: 80, Requested: 80, Granted: 80, Removed: true},
				{Proto: "upnp", Internal: 443, Requested: 443, Error: "ConflictInMappingEntry"},
			}
		}
		return rep
	}
	d := newDriver(t, deps, testConfig(false), 60, 20)
	d.until("the machine facts", func() bool { return d.m.welcome.machine != nil })
	d.key("enter")
	d.until("the addresses", func() bool { return d.m.address.detected })
	d.key("enter")
	d.until("the checks", func() bool { return d.m.pre.report != nil })
	d.key("m")
	v := d.view()
	if !strings.Contains(oneLine(v), "forward ports 80 and 443 to this machine for this check?") || !strings.Contains(v, "y map the ports") {
		t.Fatalf("the question is not in view:\n%s", v)
	}
	d.key("y")
	d.until("the run with the mappings", func() bool { return d.m.pre.report != nil && !d.m.pre.running })
	v = oneLine(d.view())
	for _, want := range []string{"Run 2, with the router asked to map the ports (started 12:00:00)", "port 80 mapped by upnp (external 80), removed again", "port 443 refused (ConflictInMappingEntry) by upnp"} {
		if !strings.Contains(v, want) {
			t.Errorf("after y the screen lacks %q:\n%s", want, d.view())
		}
	}
	d.key("r")
	d.until("the re-run", func() bool { return d.m.pre.report != nil && !d.m.pre.running })
	if v := oneLine(d.view()); !strings.Contains(v, "Run 3 (started 12:00:00)") || strings.Contains(v, "mapped by") {
		t.Errorf("r shows no sign it ran, or keeps the mapping of the run before:\n%s", d.view())
	}
}

// TestPlanSmallThings (issue 24 item 12): an e-mail without a dot in its
// domain is refused, the refusal shows once, and after "n" the terms
// question does not say that nothing is chosen.
func TestPlanSmallThings(t *testing.T) {
	for _, v := range []string{"a@b", "a@b.", "a@.b"} {
		if validEmail(v) == nil {
			t.Errorf("%q accepted as an e-mail address", v)
		}
	}
	if err := validEmail("admin@example.org"); err != nil {
		t.Error(err)
	}
	cfg := testConfig(false)
	cfg.ConsentDelay = -1
	d := toAddress(t, fakeDeps(nil), cfg)
	d.key("enter")
	d.until("the checks", func() bool { return d.m.pre.report != nil })
	d.key("enter")
	d.until("the plan", func() bool { return d.focused() == "ca" })
	for _, k := range []string{"challenge", "key", "email"} {
		d.key("enter")
		d.until(k, func() bool { return d.focused() == k })
	}
	d.typeText("a@b")
	d.key("enter")
	if v := d.view(); strings.Count(v, `"a@b" is not an e-mail address`) != 1 {
		t.Errorf("the refusal does not show exactly once:\n%s", v)
	}
	for range 3 {
		d.key("backspace")
	}
	d.key("enter")
	d.until("the terms", func() bool { return d.focused() == "tos" })
	d.key("n")
	if v := d.view(); !strings.Contains(v, "[x] No (n)") || strings.Contains(v, "nothing is chosen yet") {
		t.Errorf("after n:\n%s", v)
	}
	// At 60 columns the refusal wraps inside the field, with its indent.
	d.send(tea.WindowSizeMsg{Width: 60, Height: 20})
	v := d.view()
	for _, l := range strings.Split(v, "\n") {
		if strings.HasPrefix(l, "┃ ") && !strings.HasPrefix(l, "┃   ") && !strings.HasPrefix(l, "┃ Agree") && !strings.HasPrefix(l, "┃ (letsencrypt") {
			t.Errorf("a line of the terms question lost its indent: %q\n%s", l, v)
		}
	}
}

// TestAddressOffersRemoveForAGoneAddress: a certificate the state renews
// for an address this machine no longer has (neither found nor on an
// interface) is named on the Address screen with the remove command; one
// for an address it still has, or of a family no source answered for, is
// not.
func TestAddressOffersRemoveForAGoneAddress(t *testing.T) {
	deps := fakeDeps(nil)
	deps.Machine = func(ctx context.Context) Machine {
		mc := fakeMachine(ctx)
		mc.Managed = []ManagedCert{
			{Name: "old-vm", Addrs: []netip.Addr{netip.MustParseAddr("81.2.69.99")}},
			{Name: "this-one", Addrs: []netip.Addr{pub4}},
			{Name: "on-eth0", Addrs: []netip.Addr{pub6}},
		}
		return mc
	}
	cfg := testConfig(false)
	cfg.StateDir = "/srv/ipcert state"
	d := toAddress(t, deps, cfg)
	v := oneLine(d.view())
	if !strings.Contains(v, "ipcert renews old-vm for 81.2.69.99, which this machine no longer has") ||
		!strings.Contains(v, "sudo ipcert remove old-vm --revoke --state-dir '/srv/ipcert state'") {
		t.Errorf("the gone address is not offered to ipcert remove:\n%s", d.view())
	}
	for _, name := range []string{"this-one", "on-eth0"} {
		if strings.Contains(v, "renews "+name) {
			t.Errorf("%s is offered to remove although this machine has its address", name)
		}
	}
}
