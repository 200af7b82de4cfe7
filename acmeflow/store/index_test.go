package store

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"
	"time"
)

func indexRenewal(name string, renewAt time.Time) *Renewal {
	nb := time.Date(2026, 3, 1, 0, 0, 0, 0, time.UTC)
	return &Renewal{Name: name, Identifiers: []string{"192.0.2.1"}, CA: "production", Directory: "https://acme.test/dir",
		Challenge: "http-01", Current: 1, NotBefore: nb, NotAfter: nb.Add(160 * time.Hour), RenewAt: renewAt, CertID: "a.b",
		Failures: 2, NextAttempt: nb.Add(time.Hour), ARI: &ARIState{WindowStart: nb.Add(78 * time.Hour), WindowEnd: nb.Add(81 * time.Hour), NextCheck: nb.Add(6 * time.Hour)}}
}

// TestIndexInStepWithRenewal: every renewal.json write, inside the lock
// or not, leaves the index holding the same plan fields; a write that
// died half-way (the stale flag left) makes the index untrusted until the
// next lock holder rebuilds it.
func TestIndexInStepWithRenewal(t *testing.T) {
	st, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	at := time.Date(2026, 3, 4, 8, 0, 0, 0, time.UTC)
	if err := st.SaveRenewal(indexRenewal("a", at)); err != nil {
		t.Fatal(err)
	}
	idx, ok := st.ReadIndex()
	if !ok || idx["a"] != EntryOf(indexRenewal("a", at)) {
		t.Fatalf("after an unlocked save: ok=%v %+v", ok, idx)
	}
	unlock, err := st.Lock(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"b", "c"} {
		if err := st.SaveRenewal(indexRenewal(n, at)); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := st.ReadIndex(); ok {
		t.Fatal("inside the lock after a write the index must be flagged stale")
	}
	unlock()
	idx, ok = st.ReadIndex()
	if !ok || len(idx) != 3 || idx["c"].RenewAt != at {
		t.Fatalf("after the lock: ok=%v %+v", ok, idx)
	}
	// A run that died after writing renewal.json: flag left, file changed.
	os.WriteFile(filepath.Join(st.root, indexStale), nil, 0o600)
	later := at.Add(-time.Hour)
	data, _ := os.ReadFile(filepath.Join(st.CertDir("b"), "renewal.json"))
	r, _ := ParseRenewal(data)
	r.RenewAt = later
	if err := writeFile(filepath.Join(st.CertDir("b"), "renewal.json"), mustJSON(t, r), fileMode); err != nil {
		t.Fatal(err)
	}
	if _, ok := st.ReadIndex(); ok {
		t.Fatal("the stale flag must make the index untrusted")
	}
	unlock, err = st.Lock(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	unlock()
	idx, ok = st.ReadIndex()
	if !ok || idx["b"].RenewAt != later {
		t.Fatalf("the next lock holder must rebuild from renewal.json: ok=%v %+v", ok, idx["b"])
	}
	// Round trip of every field.
	e := EntryOf(indexRenewal("x", at))
	back, err := parseIndexLine(e.line())
	if err != nil || back != e {
		t.Fatalf("round trip: %v\n%+v\n%+v", err, e, back)
	}
}

func mustJSON(t *testing.T, r *Renewal) []byte {
	t.Helper()
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	return data
}
