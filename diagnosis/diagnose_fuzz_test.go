package diagnosis

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/acme"
	"github.com/ipcert/ipcert/acmeflow"
)

// FuzzDiagnose feeds arbitrary ACME problem documents, as a CA or anything
// pretending to be one could send them, through the diagnosis at every
// step: it never panics and always says something a person can act on.
func FuzzDiagnose(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("..", "testdata", "problems", "*.json"))
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(data, uint8(0))
		}
	}
	f.Add([]byte(`{"type":"urn:ietf:params:acme:error:rateLimited","detail":"too many certificates (5) already issued for this exact set of identifiers in the last 168h0m0s, retry after 2026-01-01 00:00:00 UTC","status":429}`), uint8(3))
	f.Add([]byte(`{"type":"urn:ietf:params:acme:error:connection","detail":"During secondary validation: 1.2.3.4: Fetching http://1.2.3.4/.well-known/acme-challenge/x: Timeout during connect (likely firewall problem)","subproblems":[{"type":"x","identifier":{"type":"ip","value":"1.2.3.4"}}]}`), uint8(5))
	steps := []acmeflow.Step{acmeflow.StepAddress, acmeflow.StepDirectory, acmeflow.StepAccount, acmeflow.StepOrder, acmeflow.StepResponder, acmeflow.StepChallenge, acmeflow.StepFinalize, acmeflow.StepDownload, acmeflow.StepStore}
	f.Fuzz(func(t *testing.T, doc []byte, step uint8) {
		var pd acme.ProblemDetails
		if err := json.Unmarshal(doc, &pd); err != nil {
			return
		}
		err := stepErr(steps[int(step)%len(steps)], "203.0.113.7", &pd)
		d := Diagnose(err, Evidence{Challenge: acmeflow.ChallengeHTTP01, HTTPPort: 80, TLSPort: 443, SeenKnown: step%2 == 0, Now: time.Unix(1800000000, 0)})
		if d.Title == "" || d.Fix == "" {
			t.Fatalf("diagnosis without title or fix for %s: %+v", doc, d)
		}
		_ = d.Failure(time.Unix(1800000000, 0))
	})
}
