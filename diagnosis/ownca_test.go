package diagnosis

import (
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/spec"
)

// TestOwnCAAdvice: for an own ACME CA the diagnoses give that CA's
// causes and commands, never Let's Encrypt's (privateca's TestStepCADoctor
// does the same with a real step-ca and the built binary).
func TestOwnCAAdvice(t *testing.T) {
	const ca = "https://ca.internal:9000/acme/acme/directory"
	att := Attempt{Issuance: spec.Issuance{Challenge: acmeflow.ChallengeHTTP01, CA: spec.CAChoice(ca), CARoot: "/etc/step-ca/root.pem", HTTPListen: "127.0.0.1:5003"}}
	// smallstep step-ca acme/challenge.go's words for a failed dial.
	refused := &acmeflow.Error{Step: acmeflow.StepChallenge, Identifier: "10.0.0.7", Problem: &acmeflow.Problem{Type: acmeflow.ProblemNS + "connection", Detail: "The server could not connect to validation target"}}
	rateLimited := &acmeflow.Error{Step: acmeflow.StepOrder, Problem: &acmeflow.Problem{Type: acmeflow.ProblemNS + "rateLimited", Detail: "too many orders"}}
	rejected := &acmeflow.Error{Step: acmeflow.StepOrder, Identifier: "10.0.0.7", Problem: &acmeflow.Problem{Type: acmeflow.ProblemNS + "rejectedIdentifier", Detail: "not allowed by policy"}}
	for _, c := range []struct {
		name, code, want string
		err              error
	}{
		{"responder elsewhere", DiagConnectRefused, "ipcert's responder listened on 127.0.0.1:5003", refused},
		{"rate limited", DiagRateLimited, "Your CA refused the request because of one of its own limits", rateLimited},
		{"rejected", DiagRejectedIdentifier, "Your CA's policy does not allow this address", rejected},
	} {
		ev := att.Evidence(time.Now())
		ev.SeenKnown = true
		d := Diagnose(c.err, ev)
		all := d.Title + " " + d.Cause + " " + d.Fix + " " + d.Command + " " + strings.Join(d.Evidence, " ")
		if d.Code != c.code || !strings.Contains(all, c.want) {
			t.Errorf("%s: %s %q, want %s with %q", c.name, d.Code, all, c.code, c.want)
		}
		for _, bad := range []string{"Let's Encrypt refuses", "letsencrypt.org", "--ca staging", "rehearse on staging", "5 certificates", "failed validations per"} {
			if strings.Contains(all, bad) {
				t.Errorf("%s: Let's Encrypt advice %q for an own CA: %s", c.name, bad, all)
			}
		}
	}
	// The rehearsal command of a fix is an order from the same CA, with
	// its root.
	g := &diag{d: &Diagnosis{Identifier: "10.0.0.7"}, ev: att.Evidence(time.Now())}
	if got, want := g.stagingCmd().String(), "ipcert issue --ca "+ca+" --ca-root /etc/step-ca/root.pem --ip 10.0.0.7 --agree-tos"; got != want {
		t.Errorf("rehearsal command %q, want %q", got, want)
	}
}
