package wizard

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/ui"
)

// toInstall walks to the Install step with a production certificate.
func toInstall(t *testing.T, deps Deps) *driver {
	t.Helper()
	deps.Issuer = issuerFunc(func(ctx context.Context, req acmeflow.Request, opts acmeflow.IssueOptions) (*acmeflow.Issued, error) {
		return fakeIssued("81.2.69.160", opts.Renewal.CA, req.Identifiers...), nil
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
