package renew

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
)

type recDeployer struct {
	mu    sync.Mutex
	calls []string
	err   error
}

func (d *recDeployer) Deploy(_ context.Context, r *store.Renewal, dir string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.calls = append(d.calls, r.Name+" "+dir+" "+strings.Join(r.Identifiers, ","))
	return d.err
}

type recEvents struct {
	mu  sync.Mutex
	evs []Event
}

func (e *recEvents) add(ev Event) { e.mu.Lock(); e.evs = append(e.evs, ev); e.mu.Unlock() }
func (e *recEvents) text() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var b strings.Builder
	for _, ev := range e.evs {
		b.WriteString(string(ev.Level) + " " + ev.Name + ": " + ev.Message + "\n")
	}
	return b.String()
}

// runnerFixture is one managed certificate issued at nb by a simCA.
func runnerFixture(t *testing.T, nb time.Time, mutate func(*store.Renewal)) (*store.Store, *simCA, *simClock, *store.Renewal) {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	clock := &simClock{now: nb}
	ca := newSimCA(t, st, clock)
	r := &store.Renewal{Issuance: spec.Issuance{Identifiers: []string{"192.0.2.7"}, CA: "production", Challenge: "http-01"}, Name: "n", Directory: acmeflow.LEProduction}
	if mutate != nil {
		mutate(r)
	}
	nr, err := ca.store(r, []netip.Addr{netip.MustParseAddr(r.Identifiers[0])}, nb)
	if err != nil {
		t.Fatal(err)
	}
	return st, ca, clock, nr
}

func TestRunnerAutoIPFollowsAddress(t *testing.T) {
	st, ca, clock, first := runnerFixture(t, t0, func(r *store.Renewal) { r.AutoIP, r.Reload = true, "nginx" })
	ev := &recEvents{}
	dep := &recDeployer{}
	asked := 0
	rn := &Runner{Store: st, Issuer: ca, Deploy: dep, Now: clock.Now, Rand: testRand(), Events: ev.add,
		PublicAddrs: func(context.Context) ([]netip.Addr, error) {
			asked++
			return []netip.Addr{netip.MustParseAddr("198.51.100.9")}, nil
		}}
	// Not due: the address is not even looked up (no network).
	clock.Set(t0.Add(time.Hour))
	res, err := rn.Run(context.Background(), Options{})
	if err != nil || asked != 0 || res.Network {
		t.Fatalf("not due: asked=%d network=%v err=%v", asked, res.Network, err)
	}
	clock.Set(t0.Add(81 * time.Hour))
	res, err = rn.Run(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	c := res.Certs[0]
	if c.Outcome != Renewed || strings.Join(c.Addresses, ",") != "198.51.100.9" || strings.Join(c.AddressChanged, ",") != "192.0.2.7" {
		t.Fatalf("result: %+v", c)
	}
	if !strings.Contains(ev.text(), "THE PUBLIC ADDRESS CHANGED") {
		t.Errorf("no loud warning:\n%s", ev.text())
	}
	// No identifier in common: `replaces` would be refused (RFC 9773 section 5).
	if got := ca.replaces["n"]; len(got) != 1 || got[0] != "" {
		t.Errorf("replaces = %q, want empty for a new address", got)
	}
	v, err := st.CurrentVersion("n")
	if err != nil || v.Leaf.IPAddresses[0].String() != "198.51.100.9" || v.N != first.Current+1 {
		t.Fatalf("current: %+v %v", v, err)
	}
	if len(dep.calls) != 1 || dep.calls[0] != "n "+st.CurrentDir("n")+" 198.51.100.9" {
		t.Errorf("deploy calls: %q", dep.calls)
	}
}

func TestRunnerSameAddressSendsReplaces(t *testing.T) {
	st, ca, clock, first := runnerFixture(t, t0, nil)
	rn := &Runner{Store: st, Issuer: ca, Now: clock.Now, Rand: testRand()}
	clock.Set(t0.Add(time.Hour))
	if _, err := rn.Run(context.Background(), Options{Force: true}); err != nil {
		t.Fatal(err)
	}
	if got := ca.replaces["n"]; len(got) != 1 || got[0] != first.CertID {
		t.Fatalf("replaces = %q, want %q", got, first.CertID)
	}
}

func TestRunnerFailureBackoffAndDeployError(t *testing.T) {
	st, ca, clock, _ := runnerFixture(t, t0, func(r *store.Renewal) { r.DeployHooks = []string{"false"} })
	ev := &recEvents{}
	dep := &recDeployer{err: errors.New(`"false": exit status 1`)}
	rn := &Runner{Store: st, Issuer: ca, Deploy: dep, Now: clock.Now, Rand: testRand(), Events: ev.add}
	ca.down = func(time.Time) bool { return true }
	// 60 h before expiry: outside the last-day margin, so the backoff holds.
	now := t0.Add(100 * time.Hour)
	clock.Set(now)
	res, err := rn.Run(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if res.Certs[0].Outcome != Failed {
		t.Fatalf("%+v", res.Certs[0])
	}
	r, _ := st.LoadRenewal("n")
	if r.Failures != 1 || !r.NextAttempt.Equal(now.Add(time.Minute)) || r.LastError == nil || r.LastError.Step != "order" || !strings.Contains(r.LastError.Detail, "simulated CA is down") {
		t.Fatalf("failure not recorded: %+v %+v", r, r.LastError)
	}
	if !strings.Contains(r.NextAttemptReason, "backing off 1m0s") {
		t.Errorf("renewal.json does not say why the next attempt is then: %q", r.NextAttemptReason)
	}
	// Within the backoff: nothing, offline.
	clock.Set(now.Add(30 * time.Second))
	if res, _ := rn.Run(context.Background(), Options{}); res.Network || res.Certs[0].Outcome != NotDue {
		t.Fatalf("inside the backoff: %+v", res)
	}
	// The CA is back; the hook fails: renewed, but reported.
	ca.down = func(time.Time) bool { return false }
	clock.Set(now.Add(2 * time.Minute))
	res, _ = rn.Run(context.Background(), Options{})
	if c := res.Certs[0]; c.Outcome != Renewed || c.DeployError == "" {
		t.Fatalf("%+v", c)
	}
	if _, failed := res.Counts(); failed != 1 {
		t.Errorf("a failed hook must count as a failure")
	}
	r, _ = st.LoadRenewal("n")
	if r.Failures != 0 || r.LastError == nil || r.LastError.Step != "deploy" {
		t.Fatalf("after renewal with failed hook: %+v", r)
	}
}

func TestRunnerLockedAndDryRun(t *testing.T) {
	st, ca, clock, first := runnerFixture(t, t0, nil)
	rn := &Runner{Store: st, Issuer: ca, Rehearsal: ca, Now: clock.Now, Rand: testRand(), LockWait: 100 * time.Millisecond}
	clock.Set(t0.Add(time.Hour))
	// The first run remembers the renewal moment (under the lock).
	if _, err := rn.Run(context.Background(), Options{}); err != nil {
		t.Fatal(err)
	}
	unlock, err := st.Lock(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	// Nothing due: no lock needed, so another run's lock does not matter.
	if _, err := rn.Run(context.Background(), Options{}); err != nil {
		t.Fatalf("not due under a held lock: %v", err)
	}
	if _, err := rn.Run(context.Background(), Options{Force: true}); !errors.Is(err, store.ErrLocked) {
		t.Fatalf("forced under a held lock: %v", err)
	}
	unlock()

	// A rehearsal through an issuer that does not store leaves the store alone.
	before, _ := os.ReadFile(filepath.Join(st.CertDir("n"), "renewal.json"))
	rn.Rehearsal = rehearsalFunc(func(r *store.Renewal) (*store.Renewal, error) { c := *r; c.Serial = "dry"; return &c, nil })
	res, err := rn.Run(context.Background(), Options{DryRun: true})
	if err != nil || res.Certs[0].Outcome != Rehearsed {
		t.Fatalf("dry run: %+v %v", res, err)
	}
	after, _ := os.ReadFile(filepath.Join(st.CertDir("n"), "renewal.json"))
	if string(before) != string(after) {
		t.Fatal("dry run changed renewal.json")
	}
	if v, _ := st.CurrentVersion("n"); v.N != first.Current {
		t.Fatal("dry run changed current")
	}
}

type rehearsalFunc func(*store.Renewal) (*store.Renewal, error)

func (f rehearsalFunc) Issue(_ context.Context, r *store.Renewal, _ []netip.Addr, _ string) (*store.Renewal, error) {
	return f(r)
}

// TestRunnerRepairsBrokenCurrent: current pointing at a missing version
// (status said PROBLEM while renew said "not due") makes the certificate
// due now; the renewal makes a new current.
func TestRunnerRepairsBrokenCurrent(t *testing.T) {
	for _, breakIt := range []struct {
		name string
		do   func(t *testing.T, st *store.Store)
	}{
		{"dangling", func(t *testing.T, st *store.Store) {
			cur := st.CurrentDir("n")
			if err := os.Remove(cur); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink("versions/99", cur); err != nil {
				t.Fatal(err)
			}
		}},
		{"missing", func(t *testing.T, st *store.Store) {
			if err := os.Remove(st.CurrentDir("n")); err != nil {
				t.Fatal(err)
			}
		}},
		{"no-key", func(t *testing.T, st *store.Store) {
			if err := os.Remove(filepath.Join(st.CurrentDir("n"), store.KeyFile)); err != nil {
				t.Fatal(err)
			}
		}},
	} {
		t.Run(breakIt.name, func(t *testing.T) {
			st, ca, clock, _ := runnerFixture(t, t0, nil)
			rn := &Runner{Store: st, Issuer: ca, Now: clock.Now, Rand: testRand()}
			clock.Set(t0.Add(time.Hour))
			breakIt.do(t, st)
			res, err := rn.Run(context.Background(), Options{})
			if err != nil {
				t.Fatal(err)
			}
			if c := res.Certs[0]; c.Outcome != Renewed || !strings.Contains(c.Reason, "broken") {
				t.Fatalf("a broken current must be renewed at once: %+v", c)
			}
			if _, err := st.CurrentVersion("n"); err != nil {
				t.Fatalf("current not repaired: %v", err)
			}
			// A repair that fails is a failure every run until it works,
			// not "not due" during the backoff.
			breakIt.do(t, st)
			ca.down = func(time.Time) bool { return true }
			clock.Set(t0.Add(2 * time.Hour))
			res, _ = rn.Run(context.Background(), Options{})
			if _, failed := res.Counts(); failed != 1 {
				t.Fatalf("failed repair: %+v", res.Certs)
			}
			clock.Set(t0.Add(2*time.Hour + 30*time.Second))
			res, _ = rn.Run(context.Background(), Options{})
			if _, failed := res.Counts(); failed != 1 || res.Network {
				t.Fatalf("inside the backoff, a broken current must still count as failed, offline: %+v", res)
			}
		})
	}
}

// TestRunnerNothingDueReadsIndexOnly: with the renewal index in step, a
// run with nothing due parses no renewal.json (at thousands of
// certificates that parse was most of the run); a certificate the store
// noted as changed is read again.
func TestRunnerNothingDueReadsIndexOnly(t *testing.T) {
	st, ca, clock, _ := runnerFixture(t, t0, nil)
	rn := &Runner{Store: st, Issuer: ca, Now: clock.Now, Rand: testRand()}
	clock.Set(t0.Add(time.Hour))
	if _, err := rn.Run(context.Background(), Options{}); err != nil {
		t.Fatal(err)
	}
	if idx, ok := readIndex(st); !ok || !mustGet(idx, "n").skip(clock.Now()) {
		t.Fatalf("no usable index after a run: %v %+v", ok, idx)
	}
	path := filepath.Join(st.CertDir("n"), "renewal.json")
	good, _ := os.ReadFile(path)
	// Damage renewal.json behind the store's back: a run that parsed it
	// would report it unusable.
	if err := os.WriteFile(path, []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, err := rn.Run(context.Background(), Options{})
	if err != nil || res.Certs[0].Outcome != NotDue {
		t.Fatalf("nothing due: %+v %v", res, err)
	}
	if err := os.WriteFile(filepath.Join(st.Root(), ".renew-changed"), []byte("n\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	res, _ = rn.Run(context.Background(), Options{})
	if c := res.Certs[0]; c.Outcome != Failed || !strings.Contains(c.Reason, "renewal.json") {
		t.Fatalf("with the change noted renew must read renewal.json: %+v", c)
	}
	os.WriteFile(path, good, 0o600)
}
