package wizard

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/ui"
)

// toInstall walks to the Install step with a production certificate.
func toInstall(t *testing.T, deps Deps) *driver {
	t.Helper()
	deps.Issuer = issuerFunc(func(ctx context.Context, req acmeflow.Request, opts acmeflow.IssueOptions) (*acmeflow.Issued, error) {
		return fakeIssued("81.2.69.160", string(opts.Renewal.CA), req.Identifiers...), nil
	})
	cfg := testConfig(false)
	cfg.Answers = Answers{CA: cachoice.Production, AgreeTOS: true, Challenge: ChallengeHTTP}
	d := toAddress(t, deps, cfg)
	d.key("enter")
	d.until("the checks", func() bool { return d.m.pre.report != nil })
	d.send(d.m.goTo(StepIssue)())
	d.until("the issued screen", func() bool { return d.m.issue.phase == phaseIssued })
	d.key("enter")
	d.until("the install step", func() bool { return d.m.Step() == StepInstall && d.m.install.prepared })
	return d
}

// TestAfterStepsWithoutDepsNameCommands: with nothing wired, each screen
// says which command does the job, and offers no action that pretends.
func TestAfterStepsWithoutDepsNameCommands(t *testing.T) {
	deps := fakeDeps(nil)
	deps.Servers, deps.Install, deps.Timer, deps.DryRenew, deps.Verify = nil, nil, nil, nil, nil
	d := toInstall(t, deps)
	for _, c := range []struct {
		step Step
		want []string
	}{
		// The commands work as printed: they name the wizard's state
		// directory, which sudo would not find by itself.
		{StepInstall, []string{"sudo ipcert snippet nginx 81.2.69.160 --state-dir /var/lib/ipcert --write"}},
		{StepRenewal, []string{"sudo ipcert timer install --state-dir /var/lib/ipcert", "sudo ipcert renew --dry-run --state-dir /var/lib/ipcert"}},
		{StepVerify, []string{"ipcert verify 81.2.69.160"}},
	} {
		d.until(c.step.String(), func() bool { return d.m.Step() == c.step && d.m.afterStep(c.step).prepared })
		v := strings.Join(strings.Fields(d.view()), " ")
		for _, w := range c.want {
			if !strings.Contains(v, w) {
				t.Errorf("%s lacks %q:\n%s", c.step, w, v)
			}
		}
		if acts := d.m.afterStep(c.step).actions; len(acts) != 1 || !acts[0].next {
			t.Errorf("%s offers actions with nothing wired: %+v", c.step, acts)
		}
		d.key("enter")
	}
	if d.m.Step() != StepSummary {
		t.Fatalf("step %v, want Summary", d.m.Step())
	}
	if v := strings.Join(strings.Fields(d.view()), " "); !strings.Contains(v, "sudo ipcert snippet nginx 81.2.69.160 --state-dir /var/lib/ipcert --write") || !strings.Contains(v, "sudo ipcert timer install --state-dir /var/lib/ipcert") {
		t.Errorf("the summary should name the commands not run:\n%s", v)
	}
}

// TestAfterStepFailure: a failed action shows its fix, the cursor stays on
// it for a retry, and esc goes back a step (not back to the issuance).
func TestAfterStepFailure(t *testing.T) {
	var mu sync.Mutex
	calls := 0
	deps := fakeDeps(nil)
	deps.Timer = func(ctx context.Context, iss *acmeflow.Issued) Report {
		mu.Lock()
		defer mu.Unlock()
		calls++
		return Report{Status: ui.Fail, Summary: "renewal job not installed: permission denied", Fix: "sudo ipcert timer install"}
	}
	d := toInstall(t, deps)
	d.key("down")
	d.key("down")
	d.key("down")
	d.key("down")
	d.key("enter") // continue without installing
	d.until("renewal", func() bool { return d.m.Step() == StepRenewal })
	d.key("enter")
	d.until("the failure", func() bool { return len(d.m.renewal.results) == 1 })
	v := d.view()
	if !strings.Contains(v, "permission denied") || !strings.Contains(v, "fix: sudo ipcert timer install") {
		t.Errorf("failure and fix not shown:\n%s", v)
	}
	if d.m.renewal.cursor != 0 {
		t.Errorf("cursor %d after a failure, want 0 (retry)", d.m.renewal.cursor)
	}
	d.key("enter")
	d.until("the retry", func() bool { return len(d.m.renewal.results) == 2 })
	d.key("esc")
	if d.m.Step() != StepInstall {
		t.Errorf("esc on Renewal: %v, want Install", d.m.Step())
	}
	d.key("esc")
	if d.m.Step() != StepInstall {
		t.Errorf("esc on Install must not go back to the issuance: %v", d.m.Step())
	}
}

// TestInstallWarnsOfPort80: a certificate renewed by ipcert's own
// responder on port 80 would fail its renewal once a web server holds the
// port (issue 24 item 2): the Install screen says so before the user
// chooses, with the one-line command that switches renewal to the web
// root the snippet serves, and the install's report keeps that as its fix.
func TestInstallWarnsOfPort80(t *testing.T) {
	d := toInstall(t, fakeDeps(nil))
	want := "sudo ipcert issue --ip 81.2.69.160 --ip 2a02:898:0:20::7 --webroot /var/www/html --ca production --name 81.2.69.160 --state-dir /var/lib/ipcert"
	v := d.view()
	if !strings.Contains(v, "\n  sudo ipcert issue --ip 81.2.69.160 --ip 2a02:898:0:20::7 --webroot /var/www/h→\n") {
		t.Errorf("at 80 columns the command is not cut with a marker:\n%s", v)
	}
	d.send(tea.WindowSizeMsg{Width: 160, Height: 40})
	v = d.view()
	if !strings.Contains(strings.Join(strings.Fields(v), " "), "renews with ipcert's own responder on port 80, which the web server will hold") {
		t.Errorf("the Install screen does not warn before the install:\n%s", v)
	}
	if !strings.Contains(v, "\n  "+want+"\n") {
		t.Errorf("the switch command is not on one line, whole:\n%s", v)
	}
	if !strings.Contains(v, "› Install for nginx") {
		t.Fatalf("the cursor is not on the install:\n%s", v)
	}
	d.key("enter")
	d.until("the install", func() bool { return len(d.m.install.results) == 1 })
	r := d.m.install.results[0].r
	if r.Status != ui.Warn || !strings.Contains(r.Fix, want) {
		t.Errorf("the install's report does not keep the switch: %+v", r)
	}
	// Through the web root, nothing to warn about.
	deps := fakeDeps(nil)
	d2 := toInstall(t, deps)
	d2.m.outcome.Issued.Renewal.WebRoot = "/var/www/html"
	d2.m.install = actionStep{step: StepInstall, running: -1}
	d2.send(d2.m.goTo(StepInstall)())
	d2.until("the install step", func() bool { return d2.m.install.prepared })
	if v := d2.view(); strings.Contains(v, "port 80") {
		t.Errorf("a web-root renewal is warned about:\n%s", v)
	}
}

// TestRenewalSaysWhatWouldNotRun: on a machine without systemd and without
// a cron daemon, with ipcert run from /tmp, the Renewal screen says so
// before the user installs the job (issue 24 item 9); a dry renewal alone
// does not count as the renewal job, and the job installed drops its
// command from the summary's "Next".
func TestRenewalSaysWhatWouldNotRun(t *testing.T) {
	deps := fakeDeps(nil)
	deps.Machine = func(ctx context.Context) Machine {
		mc := fakeMachine(ctx)
		mc.Systemd, mc.Cron, mc.Binary = false, false, "/tmp/ipcert-build/ipcert"
		return mc
	}
	d := toInstall(t, deps)
	d.send(tea.WindowSizeMsg{Width: 200, Height: 60})
	d.key("down")
	d.key("down")
	d.key("down")
	d.key("down")
	d.key("enter") // continue without installing
	d.until("the renewal step", func() bool { return d.m.Step() == StepRenewal && d.m.renewal.prepared })
	v := d.view()
	for _, want := range []string{"cron job; but NO cron daemon runs here", "No cron daemon runs on this machine", "sudo apt install cron",
		"sudo install -m 0755 /tmp/ipcert-build/ipcert /usr/local/bin/ipcert && sudo /usr/local/bin/ipcert timer install --state-dir /var/lib/ipcert"} {
		if !strings.Contains(oneLine(v), want) {
			t.Errorf("the Renewal screen lacks %q:\n%s", want, v)
		}
	}
	// The dry renewal first: not the renewal job.
	d.key("down")
	d.key("enter")
	d.until("the dry renewal", func() bool { return len(d.m.renewal.results) == 1 })
	if d.m.outcome.Done["renewal"] {
		t.Error("a dry renewal counted as the renewal job")
	}
	d.key("up")
	d.key("enter")
	d.until("the job", func() bool { return len(d.m.renewal.results) == 2 })
	if !d.m.outcome.Done["renewal"] {
		t.Error("the installed job does not count")
	}
	d.m.show(StepSummary)
	if v := oneLine(d.view()); strings.Contains(v, "renewal sudo ipcert timer install") || !strings.Contains(v, "install sudo ipcert snippet nginx") {
		t.Errorf("the summary's Next is wrong:\n%s", d.view())
	}
}

// TestRunningActionShowsElapsed: a check that takes a while says for how
// long it has run (issue 24 item 10).
func TestRunningActionShowsElapsed(t *testing.T) {
	deps := fakeDeps(nil)
	var now atomic.Int64
	now.Store(fixedNow.UnixNano())
	deps.Now = func() time.Time { return time.Unix(0, now.Load()).UTC() }
	started, release := make(chan struct{}), make(chan struct{})
	deps.Verify = func(ctx context.Context, iss *acmeflow.Issued) Report {
		close(started)
		<-release
		return Report{Status: ui.OK, Summary: "serves it"}
	}
	d := toInstall(t, deps)
	d.m.goTo(StepVerify) // held: the program waits; the step builds at once
	d.until("the verify step", func() bool { return d.m.verify.prepared })
	d.key("enter")
	d.waitFor("the check", started)
	now.Add(int64(7 * time.Second))
	if v := d.view(); !strings.Contains(v, "(7 s)") {
		t.Errorf("the running check does not say how long it runs:\n%s", v)
	}
	close(release)
	d.until("the result", func() bool { return len(d.m.verify.results) == 1 })
}
