package renew

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow/store"
)

// TestIndexFollowsEveryWrite: a renewal.json written by anyone through the
// store (issue, snippet, a failure record) is planned from the file on the
// next run, never from the index entry it had: an earlier next attempt
// written behind the index is found.
func TestIndexFollowsEveryWrite(t *testing.T) {
	st, ca, clock, _ := runnerFixture(t, t0, func(r *store.Renewal) { r.CertID = "" })
	rn := &Runner{Store: st, Issuer: ca, Now: clock.Now, Rand: testRand()}
	clock.Set(t0.Add(time.Hour))
	if _, err := rn.Run(context.Background(), Options{}); err != nil {
		t.Fatal(err)
	}
	idx, ok := readIndex(st)
	if e, _ := idx.get("n"); !ok || !e.skip(clock.Now()) {
		t.Fatalf("index after the first run: %v %+v", ok, idx)
	}
	if names, _ := st.Changed(); len(names) != 0 {
		t.Fatalf("change notes left after the fold: %v", names)
	}
	// Another command (no lock held by this runner) moves the renewal
	// moment to now.
	r, err := st.LoadRenewal("n")
	if err != nil {
		t.Fatal(err)
	}
	r.Failures, r.NextAttempt = 1, clock.Now().Add(-time.Minute)
	if err := st.SaveRenewal(r); err != nil {
		t.Fatal(err)
	}
	if names, _ := st.Changed(); len(names) != 1 || names[0] != "n" {
		t.Fatalf("the store did not note the write: %v", names)
	}
	res, err := rn.Run(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if c := res.Certs[0]; c.Outcome != Renewed {
		t.Fatalf("a change written behind the index was missed: %+v", c)
	}
	if idx, ok := readIndex(st); !ok || !mustGet(idx, "n").skip(clock.Now()) {
		t.Fatalf("index after the renewal: %v %+v", ok, idx)
	}
}

func mustGet(x *index, name string) indexEntry {
	e, _ := x.get(name)
	return e
}

// TestIndexOnlyFromFullRuns: a run for some names only must not write an
// index that lists only those (the next full run then missed the others:
// TestLoad200 caught it).
func TestIndexOnlyFromFullRuns(t *testing.T) {
	st, ca, clock, _ := runnerFixture(t, t0, func(r *store.Renewal) { r.CertID = "" })
	r2 := &store.Renewal{Name: "m", Identifiers: []string{"192.0.2.8"}, CA: "production", Directory: "https://acme.test/dir", Challenge: "http-01"}
	if _, err := ca.store(r2, []netip.Addr{netip.MustParseAddr("192.0.2.8")}, t0); err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(st.Root(), indexFile))
	rn := &Runner{Store: st, Issuer: ca, Now: clock.Now, Rand: testRand()}
	clock.Set(t0.Add(time.Hour))
	if _, err := rn.Run(context.Background(), Options{Names: []string{"n"}}); err != nil {
		t.Fatal(err)
	}
	res, err := rn.Run(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Certs) != 2 {
		t.Fatalf("a full run after a run for one name sees %d certificates: %+v", len(res.Certs), res.Certs)
	}
}
