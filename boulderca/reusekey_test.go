package boulderca

import (
	"regexp"
	"strings"
	"testing"
)

// TestBoulderReuseKey: with --reuse-key a renewal certifies the same key
// (the pin-sha256 that DNS-over-TLS clients pin stays, and status prints
// it); without it the key and the pin change and the renewal says so; a
// key revoked as compromised is not certified again, --reuse-key or not.
func TestBoulderReuseKey(t *testing.T) {
	s := boulderStack(t)
	state := t.TempDir()
	a, _ := fresh(t, s)
	b, _ := fresh(t, s)
	out := mustIssue(t, s, state, "--ip", a.String(), "--name", "pinned", "--reuse-key")
	if !strings.Contains(out, "--reuse-key: every renewal certifies this same key") {
		t.Errorf("issue --reuse-key does not say what it trades:\n%s", out)
	}
	mustIssue(t, s, state, "--ip", b.String(), "--name", "fresh")
	pinRe := regexp.MustCompile(`pin-sha256 ([A-Za-z0-9+/=]{44})`)
	pin := func(name string) string {
		t.Helper()
		out, _, _ := ipcert(t, s, "status", name, "--state-dir", state)
		m := pinRe.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("status %s prints no pin:\n%s", name, out)
		}
		return m[1]
	}
	p1, f1 := pin("pinned"), pin("fresh")
	out, errs, code := ipcert(t, s, "renew", "--force", "--state-dir", state)
	if code != 10 {
		t.Fatalf("renew --force: exit %d\n%s%s", code, errs, out)
	}
	if p2 := pin("pinned"); p2 != p1 {
		t.Errorf("--reuse-key: the pin changed at the renewal (%s -> %s)", p1, p2)
	}
	f2 := pin("fresh")
	if f2 == f1 {
		t.Errorf("without --reuse-key the key was certified again")
	}
	if st, _, _ := ipcert(t, s, "status", "fresh", "--state-dir", state); !strings.Contains(st, "a new key at every renewal: the pin changes") {
		t.Errorf("status does not say that the pin changes at every renewal:\n%s", st)
	}
	// A compromised key is never certified again.
	if _, errs, code := ipcert(t, s, "revoke", "pinned", "--reason", "keyCompromise", "--state-dir", state); code != 0 {
		t.Fatalf("revoke keyCompromise: exit %d\n%s", code, errs)
	}
	if out, errs, code := ipcert(t, s, "renew", "--state-dir", state, "pinned"); code != 10 {
		t.Fatalf("renew after keyCompromise: exit %d\n%s%s", code, errs, out)
	}
	if p3 := pin("pinned"); p3 == p1 {
		t.Errorf("the key revoked as compromised was certified again")
	}
}
