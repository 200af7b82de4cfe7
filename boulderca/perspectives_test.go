package boulderca

import (
	"strings"
	"testing"
)

// TestBoulderPerspectives: Let's Encrypt validates from the primary VA and
// remote perspectives and needs all but one of them. One perspective cut
// off the address (a partial firewall, geo-blocking): the quorum still
// passes. Two cut off: the order fails "During secondary validation", and
// ipcert says that part of the internet cannot reach the address.
func TestBoulderPerspectives(t *testing.T) {
	s := boulderStack(t)
	state := t.TempDir()
	one, _ := fresh(t, s)
	two, _ := fresh(t, s)

	undo, err := s.BlockPerspectives(1)
	if err != nil {
		t.Fatal(err)
	}
	out := mustIssue(t, s, state, "--ip", one.String(), "--name", "one-blocked")
	checkShape(t, s, state, "one-blocked", nil2(one))
	if n := validators(out, one); n != 3 {
		t.Errorf("one perspective blocked: %d validator requests reached the responder, want 3:\n%s", n, out)
	}
	if err := undo(); err != nil {
		t.Fatal(err)
	}

	undo, err = s.BlockPerspectives(2)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = undo() }()
	out, errs, code := ipcert(t, s, append([]string{"issue", "--ip", two.String(), "--name", "two-blocked"}, caArgs(s, state)...)...)
	said := strings.Join(strings.Fields(errs+out), " ")
	t.Logf("two perspectives blocked: exit %d\n%s", code, errs+out)
	if code != 1 {
		t.Fatalf("two perspectives blocked: exit %d, want 1", code)
	}
	if !strings.Contains(said, "During secondary validation") {
		t.Errorf("the CA's detail (During secondary validation) is not shown")
	}
	if !strings.Contains(said, "[secondary-validation]") || !strings.Contains(said, "Part of the internet or network cannot reach the address") {
		t.Errorf("the diagnosis does not say that part of the internet cannot reach the address")
	}
}
