package deploy

import (
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/renew"
)

// TestStatusAgreesWithRenew: status's next renewal is renew's decision. It
// once said "in 80 hours (half-life)" for a certificate whose backoff had
// ended, which the next renew retried at once.
func TestStatusAgreesWithRenew(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	nb := now.Add(-10 * time.Hour)
	cases := map[string]*store.Renewal{
		"backoff-over": {Failures: 1, NextAttempt: now.Add(-time.Minute), LastAttempt: now.Add(-2 * time.Minute)},
		"in-backoff":   {Failures: 2, NextAttempt: now.Add(9 * time.Minute)},
		"fresh":        {},
		// Retry-After of a year stored by an older ipcert: past the last
		// safe moment, so the deadline wins.
		"retry-after-year": {Failures: 1, NextAttempt: now.Add(365 * 24 * time.Hour)},
	}
	for name, r := range cases {
		t.Run(name, func(t *testing.T) {
			st, err := store.Open(filepath.Join(t.TempDir(), "state"))
			if err != nil {
				t.Fatal(err)
			}
			r.Name, r.Identifiers, r.CA = "x", []string{"192.0.2.9"}, "production"
			storeCert(t, st, r, nb, 9)
			rep, err := statusReport(st, now, nil)
			if err != nil {
				t.Fatal(err)
			}
			cs := rep.Certificates[0]
			saved, err := st.LoadRenewal("x")
			if err != nil {
				t.Fatal(err)
			}
			saved.Current, saved.NotBefore, saved.NotAfter = cs.Version, cs.NotBefore, cs.NotAfter
			d := renew.Plan(saved, now, rand.New(rand.NewPCG(1, 1)), false)
			due := strings.HasPrefix(cs.NextRenewalWhy, "due now")
			if due != (d.Action == renew.Renew) {
				t.Fatalf("status says %s (%q), renew decides %s (%q)", cs.NextRenewal, cs.NextRenewalWhy, d.Action, d.Reason)
			}
			if d.Action == renew.Wait && !cs.NextRenewal.Equal(d.At) && !cs.NextRenewal.Equal(d.RenewAt) {
				t.Fatalf("status says %s, renew waits until %s", cs.NextRenewal, d.At)
			}
			if dl := renew.Deadline(saved); cs.NextRenewal.After(dl) {
				t.Fatalf("next renewal %s is after the last safe moment %s", cs.NextRenewal, dl)
			}
		})
	}
}
