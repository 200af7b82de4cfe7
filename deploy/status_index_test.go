package deploy

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/internal/testkit"
)

// TestStatusIndexJSONIsMarshalIndent: an index entry's JSON, spliced
// around the fields that depend on the time, is byte for byte what
// json.MarshalIndent writes for the CertStatus, for every field set
// (a field added to CertStatus and not to statusHead/statusTail fails
// here) and with the optional ones left out.
func TestStatusIndexJSONIsMarshalIndent(t *testing.T) {
	now := time.Date(2026, 3, 1, 12, 0, 0, 123, time.UTC)
	full := CertStatus{Name: "a", Identifiers: []string{"192.0.2.1", "2001:db8::1"}, CA: "https://ca.test/<dir>&", Directory: "https://ca.test/dir",
		Challenge: "http-01", Version: 3, Serial: "ab01", NotBefore: now.Add(-time.Hour), NotAfter: now.Add(159*time.Hour + 7),
		NextRenewal: now.Add(79 * time.Hour), NextRenewalWhy: "inside the CA's ARI window \"x\" <y> & é", SPKIPin: "pin+/=", PinSince: now.Add(-3 * time.Hour), ReuseKey: true, ARINextCheck: now.Add(6 * time.Hour),
		LastResult: "failed", LastSuccess: now.Add(-2 * time.Hour), LastAttempt: now.Add(-time.Minute), Failures: 2,
		LastError: &store.Failure{Time: now.Add(-time.Minute), Step: "challenge", Detail: "Timeout\nduring connect"},
		Reload:    "nginx", DeployHooks: []string{"systemctl reload x", "echo '<done>'"}, VerifyAddr: "192.0.2.1:443",
		ValidFor: 159*time.Hour + 7 - 123, Expired: true, Problem: "p"}
	v := reflect.ValueOf(full)
	for i := range v.NumField() {
		if v.Field(i).IsZero() {
			t.Fatalf("field %s is not set in the test", v.Type().Field(i).Name)
		}
	}
	full.Expired, full.Problem = false, "" // Problem entries are never cached; Expired follows NotAfter
	bare := CertStatus{Name: "b", CA: "production", NotAfter: now.Add(-time.Second), NextRenewal: now, LastResult: "never"}
	for _, c := range []CertStatus{full, bare} {
		for _, at := range []time.Time{now, now.Add(200 * time.Hour)} {
			e, ok := newStatusEntry(c, folderStamp{}, now, now.Add(time.Hour))
			if !ok {
				t.Fatalf("%s: not cached", c.Name)
			}
			c.ValidFor = c.NotAfter.Sub(at)
			c.Expired = c.ValidFor <= 0
			want, _ := json.MarshalIndent(c, StatusJSONPrefix, "  ")
			if got := e.appendJSON(nil, at); !bytes.Equal(got, want) {
				t.Fatalf("%s at %s:\n got %s\nwant %s", c.Name, at, got, want)
			}
			back, err := e.status(at)
			if err != nil {
				t.Fatal(err)
			}
			if b, _ := json.MarshalIndent(back, StatusJSONPrefix, "  "); !bytes.Equal(b, want) {
				t.Fatalf("%s decoded: %s", c.Name, b)
			}
		}
	}
	if _, ok := newStatusEntry(CertStatus{Name: "c", Problem: "broken"}, folderStamp{}, now, now.Add(time.Hour)); ok {
		t.Fatal("a certificate with a problem was cached")
	}
}

// cachedEntries is the status index's cached certificates by name.
func cachedEntries(st *store.Store) map[string]*statusEntry {
	out := map[string]*statusEntry{}
	if x := readStatusIndex(st); x != nil {
		for i := range x.entries {
			if x.entries[i].cached {
				out[x.entries[i].name] = &x.entries[i]
			}
		}
	}
	return out
}

// statusLines is StatusEachJSON's output, one string a certificate, and
// the certificates that make status fail.
func statusLines(t *testing.T, st *store.Store, now time.Time, opts StatusOptions) (lines []string, bad []string) {
	t.Helper()
	err := StatusEachJSON(st, now, opts, func(l StatusLine) {
		lines = append(lines, string(l.JSON))
		if l.Bad {
			bad = append(bad, l.Name)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return lines, bad
}

// TestStatusFromIndex: status of certificates that did not change comes
// from the status index without reading their files, with the same output
// as from the files at any later moment; a certificate whose folder
// changed (renewal.json saved, current removed, a folder added or
// removed) is read again.
func TestStatusFromIndex(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	nb := now.Add(-10 * time.Hour)
	storeCert(t, st, &store.Renewal{Issuance: spec.Issuance{Identifiers: []string{"192.0.2.1"}, CA: "production"}, Name: "a", LastSuccess: nb}, nb, 1)
	storeCert(t, st, &store.Renewal{Issuance: spec.Issuance{Identifiers: []string{"192.0.2.2"}, CA: "staging"}, Name: "b", LastSuccess: nb, RenewAt: nb.Add(79 * time.Hour), CertID: "x.y", ARI: &store.ARIState{WindowStart: nb.Add(78 * time.Hour), WindowEnd: nb.Add(81 * time.Hour), NextCheck: now.Add(6 * time.Hour)}}, nb, 2)
	fail := &store.Failure{Time: now.Add(-time.Minute), Step: "challenge", Detail: "Timeout during connect"}
	storeCert(t, st, &store.Renewal{Issuance: spec.Issuance{Identifiers: []string{"192.0.2.3"}, CA: "production"}, Name: "c", LastSuccess: nb, Failures: 2, NextAttempt: now.Add(9 * time.Minute), LastError: fail, LastAttempt: fail.Time}, nb, 3)
	storeCert(t, st, &store.Renewal{Issuance: spec.Issuance{Identifiers: []string{"192.0.2.4"}, CA: "production"}, Name: "d"}, now.Add(-200*time.Hour), 4)
	os.MkdirAll(st.CertDir("f"), 0o700)
	os.WriteFile(filepath.Join(st.CertDir("f"), "renewal.json"), []byte("{"), 0o600)

	// The folders were written just now: seen from a clock an hour later
	// they are old enough to be cached (the racy rule).
	later := func() time.Time { return time.Now().Add(time.Hour) }
	idx := StatusOptions{clock: later}
	files := StatusOptions{VerifyKeys: true} // reads every file
	want, wantBad := statusLines(t, st, now, files)
	got, gotBad := statusLines(t, st, now, idx)
	if strings.Join(got, "\n") != strings.Join(want, "\n") || strings.Join(gotBad, ",") != strings.Join(wantBad, ",") {
		t.Fatalf("first run:\n%s\nwant\n%s", got, want)
	}
	cached := cachedEntries(st)
	if len(cached) != 3 || cached["a"] == nil || cached["b"] == nil || cached["c"] == nil {
		t.Fatalf("index after the first run: %v (want a, b, c: d is due now, f is broken)", cached)
	}

	// Unchanged certificates are not read: the current version's
	// certificate garbled in place (versions are never written again) is
	// still shown as it was.
	aCert := filepath.Join(st.CurrentDir("a"), store.CertFile)
	orig, err := os.ReadFile(aCert)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(aCert, []byte("garbled"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, gotBad = statusLines(t, st, now, idx)
	if strings.Join(got, "\n") != strings.Join(want, "\n") || strings.Join(gotBad, ",") != strings.Join(wantBad, ",") {
		t.Fatalf("from the index:\n%s\nwant\n%s", got, want)
	}
	if err := os.WriteFile(aCert, orig, 0o600); err != nil {
		t.Fatal(err)
	}
	// renewal.json rewritten in place by an editor (same file, the folder
	// unchanged): its own stamp changed, so it is read again. Before, the
	// index went on showing the old settings.
	aJSON := filepath.Join(st.CertDir("a"), "renewal.json")
	ra, err := st.LoadRenewal("a")
	if err != nil {
		t.Fatal(err)
	}
	ra.DeployHooks = []string{"systemctl reload edited-by-hand"}
	edited, _ := json.MarshalIndent(ra, "", "  ")
	f, err := os.OpenFile(aJSON, os.O_WRONLY|os.O_TRUNC, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Write(edited); err != nil {
		t.Fatal(err)
	}
	f.Close()
	want, wantBad = statusLines(t, st, now, files)
	got, gotBad = statusLines(t, st, now, idx)
	if !strings.Contains(strings.Join(want, "\n"), "edited-by-hand") {
		t.Fatalf("the files do not show the edit:\n%s", want)
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") || strings.Join(gotBad, ",") != strings.Join(wantBad, ",") {
		t.Fatalf("renewal.json edited in place, from the index:\n%s\nwant\n%s", got, want)
	}
	r, _ := st.LoadRenewal("b")

	// Every later moment: the same as from the files (time left, expiry,
	// due now once the plan's answer changed).
	for _, at := range []time.Time{now.Add(time.Minute), now.Add(10 * time.Minute), now.Add(70 * time.Hour), now.Add(200 * time.Hour)} {
		want, wantBad := statusLines(t, st, at, files)
		got, gotBad := statusLines(t, st, at, idx)
		if strings.Join(got, "\n") != strings.Join(want, "\n") || strings.Join(gotBad, ",") != strings.Join(wantBad, ",") {
			t.Fatalf("at %s:\n%s\nwant\n%s", at, got, want)
		}
	}

	// Changes through the store and by hand are picked up.
	r.Reload = "nginx"
	if err := st.SaveRenewal(r); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(st.CurrentDir("c")); err != nil {
		t.Fatal(err)
	}
	storeCert(t, st, &store.Renewal{Issuance: spec.Issuance{Identifiers: []string{"192.0.2.5"}, CA: "production"}, Name: "e", LastSuccess: nb}, nb, 5)
	if err := os.RemoveAll(st.CertDir("d")); err != nil {
		t.Fatal(err)
	}
	for range 2 { // read again, then from the index
		want, wantBad = statusLines(t, st, now, files)
		got, gotBad = statusLines(t, st, now, idx)
		if strings.Join(got, "\n") != strings.Join(want, "\n") || strings.Join(gotBad, ",") != strings.Join(wantBad, ",") {
			t.Fatalf("after the changes:\n%s\nwant\n%s", got, want)
		}
	}
	if all := strings.Join(got, "\n"); !strings.Contains(all, `"reload": "nginx"`) || !strings.Contains(all, "no certificate yet") || strings.Contains(all, `"name": "d"`) || !strings.Contains(all, `"name": "e"`) {
		t.Fatalf("changes not shown:\n%s", all)
	}
	if cached := cachedEntries(st); len(cached) != 3 || cached["b"] == nil || cached["e"] == nil || cached["a"] == nil {
		t.Fatalf("index after the changes: %v (want a, b, e)", cached)
	}

	// A folder that is not a certificate yet, listed in the index, is
	// looked at again: its renewal.json, written later, is found with the
	// certs folder unchanged.
	if err := os.Mkdir(st.CertDir("g"), 0o700); err != nil {
		t.Fatal(err)
	}
	statusLines(t, st, now, idx)
	if x := readStatusIndex(st); x == nil || x.certsMtime == 0 || !slices.Contains(x.names(), "g") {
		t.Fatalf("index without g or the certs folder's time: %+v", x)
	}
	storeCert(t, st, &store.Renewal{Issuance: spec.Issuance{Identifiers: []string{"192.0.2.7"}, CA: "production"}, Name: "g", LastSuccess: nb}, nb, 7)
	want, wantBad = statusLines(t, st, now, files)
	got, gotBad = statusLines(t, st, now, idx)
	if strings.Join(got, "\n") != strings.Join(want, "\n") || strings.Join(gotBad, ",") != strings.Join(wantBad, ",") || !strings.Contains(strings.Join(got, "\n"), `"name": "g"`) {
		t.Fatalf("after g became a certificate:\n%s\nwant\n%s", got, want)
	}

	// StatusEach (the text form, --check) decodes the same certificates.
	var each []string
	if err := StatusEach(st, now, idx, func(c CertStatus) {
		b, _ := json.MarshalIndent(c, StatusJSONPrefix, "  ")
		each = append(each, string(b))
	}); err != nil {
		t.Fatal(err)
	}
	if strings.Join(each, "\n") != strings.Join(want, "\n") {
		t.Fatalf("StatusEach:\n%s\nwant\n%s", each, want)
	}

	// A folder changed just now is read, not cached (the racy rule).
	if err := st.SaveRenewal(r); err != nil {
		t.Fatal(err)
	}
	statusLines(t, st, now, StatusOptions{})
	if cached := cachedEntries(st); cached["b"] != nil {
		t.Fatal("a folder changed within the racy window was cached")
	}
}

// TestStatusIndexTrustedOnlyAsRoot: run as root, a status-index that is
// a link, or that another user owns, is not read: status comes from the
// files.
func TestStatusIndexTrustedOnlyAsRoot(t *testing.T) {
	testkit.NeedRoot(t, "the ownership checks apply to root only")
	st, err := store.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	nb := now.Add(-10 * time.Hour)
	storeCert(t, st, &store.Renewal{Issuance: spec.Issuance{Identifiers: []string{"192.0.2.1"}, CA: "production"}, Name: "a", LastSuccess: nb}, nb, 1)
	idx := StatusOptions{clock: func() time.Time { return time.Now().Add(time.Hour) }}
	want, _ := statusLines(t, st, now, idx)
	// A forged index: serial ff instead of 1, with a valid CRC.
	x := readStatusIndex(st)
	e := cachedEntries(st)["a"]
	if e == nil {
		t.Fatal("not cached")
	}
	e.head = bytes.Replace(e.head, []byte(`"serial": "1"`), []byte(`"serial": "ff"`), 1)
	writeStatusIndex(st, x.certsMtime, []*statusEntry{e})
	if got, _ := statusLines(t, st, now, idx); !strings.Contains(got[0], `"serial": "ff"`) {
		t.Fatalf("the forged index is not what the test thinks: %s", got)
	}
	path := filepath.Join(st.Root(), statusIndexFile)
	forged := filepath.Join(t.TempDir(), "forged")
	if err := os.Rename(path, forged); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(forged, path); err != nil {
		t.Fatal(err)
	}
	if got, _ := statusLines(t, st, now, StatusOptions{}); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("read through a link:\n%s", got)
	}
	os.Remove(path)
	data, _ := os.ReadFile(forged)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if got, _ := statusLines(t, st, now, StatusOptions{}); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Fatalf("read another user's index:\n%s", got)
	}
}
