package renew

import (
	"errors"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
)

var t0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func testRand() *rand.Rand { return rand.New(rand.NewPCG(1, 2)) }

func rec(nb time.Time) *store.Renewal {
	return &store.Renewal{Issuance: spec.Issuance{Identifiers: []string{"192.0.2.1"}, CA: "production", Challenge: "http-01"}, Schema: 1, Name: "c", Directory: acmeflow.LEProduction, Current: 1, CertID: "aaa.bbb", NotBefore: nb, NotAfter: nb.Add(160 * time.Hour)}
}

func TestBackoff(t *testing.T) {
	want := map[int]time.Duration{0: 0, 1: time.Minute, 2: 10 * time.Minute, 3: 100 * time.Minute, 4: 24 * time.Hour, 9: 24 * time.Hour}
	for n, d := range want {
		if got := Backoff(n); got != d {
			t.Errorf("Backoff(%d) = %s, want %s", n, got, d)
		}
	}
}

func TestPlanForceAndMissing(t *testing.T) {
	r := rec(t0)
	if d := Plan(r, t0.Add(time.Hour), testRand(), true); d.Action != Renew {
		t.Fatalf("forced: %v", d)
	}
	r.Current = 0
	if d := Plan(r, t0.Add(time.Hour), testRand(), false); d.Action != Renew {
		t.Fatalf("no current version: %v", d)
	}
}

func TestPlanHalfLifeWithoutARI(t *testing.T) {
	r := rec(t0)
	r.CertID = "" // no ARI identifier
	d := Plan(r, t0.Add(79*time.Hour), testRand(), false)
	if d.Action != Wait || !d.At.Equal(t0.Add(80*time.Hour)) || !d.Picked {
		t.Fatalf("before half-life: %+v", d)
	}
	r.RenewAt = d.RenewAt
	d = Plan(r, t0.Add(80*time.Hour), testRand(), false)
	if d.Action != Renew || d.Picked {
		t.Fatalf("at half-life: %+v", d)
	}
	// The local CA of an earlier run cannot be asked: half-life too.
	r = rec(t0)
	r.CA = "local"
	if d := Plan(r, t0.Add(time.Hour), testRand(), false); d.Action != Wait || !d.RenewAt.Equal(t0.Add(80*time.Hour)) {
		t.Fatalf("local CA: %+v", d)
	}
}

func TestPlanARI(t *testing.T) {
	r := rec(t0)
	now := t0.Add(time.Hour)
	if d := Plan(r, now, testRand(), false); d.Action != CheckARI {
		t.Fatalf("no ARI state yet: %+v", d)
	}
	start, end := t0.Add(78*time.Hour+24*time.Minute), t0.Add(81*time.Hour+36*time.Minute)
	ApplyARI(r, &acmeflow.RenewalInfo{WindowStart: start, WindowEnd: end, RetryAfter: 6 * time.Hour}, nil, now)
	if !r.ARI.NextCheck.Equal(now.Add(6 * time.Hour)) {
		t.Fatalf("NextCheck %s", r.ARI.NextCheck)
	}
	d := Plan(r, now, testRand(), false)
	if d.Action != Wait || !d.Picked || d.RenewAt.Before(start) || !d.RenewAt.Before(end) {
		t.Fatalf("after ARI: %+v", d)
	}
	if !d.At.Equal(r.ARI.NextCheck) {
		t.Fatalf("the next action is the ARI re-check at %s, got %s", r.ARI.NextCheck, d.At)
	}
	r.RenewAt = d.RenewAt
	// Remembered: the same moment, not picked again, whatever the rand.
	d2 := Plan(r, now.Add(time.Minute), rand.New(rand.NewPCG(9, 9)), false)
	if d2.Picked || !d2.RenewAt.Equal(r.RenewAt) {
		t.Fatalf("moment not remembered: %+v", d2)
	}
	// ARI is asked again only after Retry-After.
	if d := Plan(r, now.Add(6*time.Hour-time.Second), testRand(), false); d.Action != Wait {
		t.Fatalf("before Retry-After: %+v", d)
	}
	if d := Plan(r, now.Add(6*time.Hour), testRand(), false); d.Action != CheckARI {
		t.Fatalf("after Retry-After: %+v", d)
	}
	// The window moved earlier (an incident): the stored moment is outside,
	// so a new one is picked inside the new window, which is in the past:
	// renew now (RFC 9773 section 4.2).
	later := now.Add(7 * time.Hour)
	ApplyARI(r, &acmeflow.RenewalInfo{WindowStart: t0.Add(2 * time.Hour), WindowEnd: t0.Add(3 * time.Hour)}, nil, later)
	d = Plan(r, later, testRand(), false)
	if d.Action != Renew || !d.Picked || d.RenewAt.After(t0.Add(3*time.Hour)) {
		t.Fatalf("moved window: %+v", d)
	}
	if !r.ARI.NextCheck.Equal(later.Add(ARIDefaultInterval)) {
		t.Fatalf("no Retry-After: NextCheck %s", r.ARI.NextCheck)
	}
}

func TestApplyARIErrorsAndClamps(t *testing.T) {
	r := rec(t0)
	w := &acmeflow.RenewalInfo{WindowStart: t0.Add(78 * time.Hour), WindowEnd: t0.Add(82 * time.Hour), RetryAfter: time.Second}
	ApplyARI(r, w, nil, t0)
	if !r.ARI.NextCheck.Equal(t0.Add(ARIMinInterval)) {
		t.Fatalf("tiny Retry-After not clamped: %s", r.ARI.NextCheck)
	}
	w.RetryAfter = 30 * 24 * time.Hour
	ApplyARI(r, w, nil, t0)
	if !r.ARI.NextCheck.Equal(t0.Add(ARIMaxInterval)) {
		t.Fatalf("huge Retry-After not clamped: %s", r.ARI.NextCheck)
	}
	ApplyARI(r, nil, errors.New("connection refused"), t0.Add(time.Hour))
	if r.ARI.Error == "" || !r.ARI.WindowStart.Equal(w.WindowStart) || !r.ARI.NextCheck.Equal(t0.Add(time.Hour+ARIErrorInterval)) {
		t.Fatalf("error: %+v", r.ARI)
	}
	ApplyARI(r, nil, &acmeflow.Error{Step: acmeflow.StepRenewalInfo, Err: acmeflow.ErrNoARI}, t0)
	if !r.ARI.NextCheck.Equal(t0.Add(ARIAbsentInterval)) {
		t.Fatalf("no ARI at the CA: %+v", r.ARI)
	}
	// A window that starts after expiry is ignored: half-life.
	r = rec(t0)
	ApplyARI(r, &acmeflow.RenewalInfo{WindowStart: t0.Add(200 * time.Hour), WindowEnd: t0.Add(201 * time.Hour)}, nil, t0)
	if d := Plan(r, t0, testRand(), false); !d.RenewAt.Equal(HalfLife(r)) {
		t.Fatalf("window after expiry used: %+v", d)
	}
}

func TestPlanBackoff(t *testing.T) {
	r := rec(t0)
	r.Failures = 2
	r.NextAttempt = t0.Add(90 * time.Hour)
	d := Plan(r, t0.Add(89*time.Hour), testRand(), false)
	if d.Action != Wait || !d.At.Equal(r.NextAttempt) || !strings.Contains(d.Reason, "backing off") {
		t.Fatalf("in backoff: %+v", d)
	}
	if d := Plan(r, t0.Add(90*time.Hour), testRand(), false); d.Action != Renew {
		t.Fatalf("backoff over: %+v", d)
	}
	if d := Plan(r, t0.Add(89*time.Hour), testRand(), true); d.Action != Renew {
		t.Fatalf("--force ignores backoff: %+v", d)
	}
}
