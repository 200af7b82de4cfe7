package renew

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
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
	r2 := &store.Renewal{Issuance: spec.Issuance{Identifiers: []string{"192.0.2.8"}, CA: "production", Challenge: "http-01"}, Name: "m", Directory: "https://acme.test/dir"}
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

// TestOmitNotDue: with OmitNotDue, certificates the index says are not
// due are counted, not listed (renew --quiet at 10,000 certificates built
// 2 MB of results nobody printed), while one read from its renewal.json
// and one that is due are listed as before, and the index still lists
// every certificate after the run folded the change in.
func TestOmitNotDue(t *testing.T) {
	st, ca, clock, _ := runnerFixture(t, t0, func(r *store.Renewal) { r.CertID = "" })
	for i, ip := range []string{"192.0.2.8", "192.0.2.9"} {
		r := &store.Renewal{Issuance: spec.Issuance{Identifiers: []string{ip}, CA: "production", Challenge: "http-01"}, Name: "m" + string(rune('0'+i)), Directory: "https://acme.test/dir"}
		if _, err := ca.store(r, []netip.Addr{netip.MustParseAddr(ip)}, t0); err != nil {
			t.Fatal(err)
		}
	}
	rn := &Runner{Store: st, Issuer: ca, Now: clock.Now, Rand: testRand()}
	clock.Set(t0.Add(time.Hour))
	if _, err := rn.Run(context.Background(), Options{}); err != nil {
		t.Fatal(err)
	}
	res, err := rn.Run(context.Background(), Options{OmitNotDue: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Certs) != 0 || res.NotDueOmitted != 3 {
		t.Fatalf("nothing due: %d listed, %d omitted; want 0 and 3", len(res.Certs), res.NotDueOmitted)
	}
	SaveLastRun(st, LastRun{Result: res})
	if lr, err := LoadLastRun(st); err != nil || lr.Checked != 3 || lr.NotDue != 3 {
		t.Fatalf("renew-last.json: %+v %v", lr, err)
	}
	// m0 changed behind the index (read again, listed), n due now.
	r, _ := st.LoadRenewal("m0")
	r.Reload = "nginx"
	if err := st.SaveRenewal(r); err != nil {
		t.Fatal(err)
	}
	n, _ := st.LoadRenewal("n")
	n.Failures, n.NextAttempt = 1, clock.Now().Add(-time.Minute)
	if err := st.SaveRenewal(n); err != nil {
		t.Fatal(err)
	}
	res, err = rn.Run(context.Background(), Options{OmitNotDue: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Certs) != 2 || res.Certs[0].Name != "m0" || res.Certs[0].Outcome != NotDue || res.Certs[1].Name != "n" || res.Certs[1].Outcome != Renewed || res.NotDueOmitted != 1 {
		t.Fatalf("one changed, one due: %+v, %d omitted", res.Certs, res.NotDueOmitted)
	}
	idx, ok := readIndex(st)
	if !ok || len(idx.names) != 3 {
		t.Fatalf("index after the run: %v %+v", ok, idx)
	}
}
