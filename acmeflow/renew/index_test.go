package renew

import (
	"context"
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
