package renew

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
)

// slowIssuer holds each issuance for a while and records how many ran at
// once, per responder lane and in all.
type slowIssuer struct {
	inner    Issuer
	mu       sync.Mutex
	inFlight map[string]int
	all, max int
	laneMax  map[string]int
}

func (s *slowIssuer) Issue(ctx context.Context, r *store.Renewal, idents []netip.Addr, replaces string) (*store.Renewal, error) {
	key := responderKey(r)
	s.mu.Lock()
	s.inFlight[key]++
	s.all++
	s.max = max(s.max, s.all)
	s.laneMax[key] = max(s.laneMax[key], s.inFlight[key])
	s.mu.Unlock()
	time.Sleep(30 * time.Millisecond)
	s.mu.Lock()
	s.inFlight[key]--
	s.all--
	s.mu.Unlock()
	return s.inner.Issue(ctx, r, idents, replaces)
}

// TestRunnerRenewsDueInParallel: many due certificates are renewed a few
// at a time, never two at once on the same standalone responder address.
func TestRunnerRenewsDueInParallel(t *testing.T) {
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clock := &simClock{now: t0}
	ca := newSimCA(t, st, clock)
	for i := range 24 {
		r := &store.Renewal{Issuance: spec.Issuance{Identifiers: []string{fmt.Sprintf("192.0.2.%d", i+1)}, CA: "production", Challenge: "http-01"}, Name: fmt.Sprintf("c%d", i), Directory: acmeflow.LEProduction}
		switch i % 3 {
		case 0:
			r.WebRoot = "/var/www/html" // its own lane
		case 1:
			r.CA = "local" // its own lane (a fresh port)
		}
		if _, err := ca.store(r, []netip.Addr{netip.MustParseAddr(r.Identifiers[0])}, t0); err != nil {
			t.Fatal(err)
		}
	}
	slow := &slowIssuer{inner: ca, inFlight: map[string]int{}, laneMax: map[string]int{}}
	rn := &Runner{Store: st, Issuer: slow, Now: clock.Now, Rand: testRand(), Parallel: 4}
	clock.Set(t0.Add(100 * time.Hour)) // past half-life: all due
	res, err := rn.Run(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if renewed, failed := res.Counts(); renewed != 24 || failed != 0 {
		t.Fatalf("renewed %d, failed %d: %+v", renewed, failed, res.Certs)
	}
	if slow.max < 2 || slow.max > 4 {
		t.Errorf("%d renewals at once, want 2..4 (Parallel 4)", slow.max)
	}
	if m := slow.laneMax["http::80"]; m != 1 {
		t.Errorf("%d renewals at once on the standalone responder :80, want 1", m)
	}
	for i, c := range res.Certs {
		if c.Name == "" || c.Outcome != Renewed {
			t.Fatalf("result %d: %+v", i, c)
		}
	}
}
