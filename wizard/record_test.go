package wizard

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/diagnosis"
)

// TestRehearsalFailureRecorded: a failed staging rehearsal is recorded
// (doctor explains the failure the user just saw), with the evidence the
// screen showed (its CA, its state directory), and a record that could
// not be written reaches the outcome, so the last words say so instead
// of sending the user to doctor.
func TestRehearsalFailureRecorded(t *testing.T) {
	dnsErr := &acmeflow.Error{Step: acmeflow.StepDirectory, Err: &net.DNSError{Err: "no such host", Name: "acme-staging-v02.api.letsencrypt.org", IsNotFound: true}}
	deps := fakeDeps(issuerFunc(func(ctx context.Context, req acmeflow.Request, opts acmeflow.IssueOptions) (*acmeflow.Issued, error) {
		return nil, dnsErr
	}))
	var names []string
	var recorded error
	full := errors.New("write /var/lib/ipcert/failures/81.2.69.160.json: no space left on device")
	deps.RecordFailure = func(name string, err error) error {
		names, recorded = append(names, name), err
		return full
	}
	m := New(context.Background(), deps, testConfig(false))
	m.ans.Addrs, m.ans.Challenge = []netip.Addr{pub4}, ChallengeHTTP
	run := m.issue.begin(m, true, cachoice.Staging)
	msg := run(context.Background(), func(acmeflow.Event) {})
	if len(names) != 1 || names[0] != "81.2.69.160" {
		t.Fatalf("recorded %q, want the rehearsal's failure under 81.2.69.160", names)
	}
	if !errors.Is(recorded, dnsErr) {
		t.Errorf("recorded %v, want the run's error", recorded)
	}
	ev := diagnosis.EvidenceOf(recorded, diagnosis.Evidence{})
	if ev.CA != cachoice.Staging || ev.StateDir != "/var/lib/ipcert" || len(ev.Identifiers) != 1 {
		t.Errorf("recorded evidence: CA %q, state %q, addresses %q", ev.CA, ev.StateDir, ev.Identifiers)
	}
	if d := diagnosis.Diagnose(recorded, ev); d.Code != diagnosis.DiagCADNS {
		t.Errorf("recorded diagnosis %q, want %q", d.Code, diagnosis.DiagCADNS)
	}
	m.issue.finish(m, msg)
	if m.outcome.Err == nil || !errors.Is(m.outcome.RecordErr, full) {
		t.Errorf("outcome: err %v, record error %v", m.outcome.Err, m.outcome.RecordErr)
	}
}
