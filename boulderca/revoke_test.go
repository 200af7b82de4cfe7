package boulderca

import (
	"strings"
	"testing"
)

// TestBoulderRevoke: ipcert revoke asks Boulder to revoke the current
// certificate, with the account (superseded) and with the certificate's
// own key (keyCompromise); Boulder's certificateStatus says revoked with
// that reason; status names it and the next renew replaces it at once.
// A reason Boulder does not know is refused before anything is sent.
func TestBoulderRevoke(t *testing.T) {
	s := boulderStack(t)
	state := t.TempDir()
	ip, _ := fresh(t, s)
	mustIssue(t, s, state, "--ip", ip.String(), "--name", "byebye")
	first := checkShape(t, s, state, "byebye", nil2(ip))

	if _, errs, code := ipcert(t, s, "revoke", "byebye", "--reason", "stolen", "--state-dir", state); code != 2 || !strings.Contains(errs, "is not one of") {
		t.Errorf("an unknown reason: exit %d\n%s", code, errs)
	}
	out, errs, code := ipcert(t, s, "revoke", "byebye", "--reason", "superseded", "--state-dir", state)
	t.Logf("revoke: exit %d\n%s%s", code, errs, out)
	if code != 0 || !strings.Contains(out, "Revoked byebye version 1") {
		t.Fatalf("revoke: exit %d", code)
	}
	status := func(serial string) string {
		t.Helper()
		rows, err := s.SQL("SELECT status, revokedReason FROM certificateStatus WHERE serial = '" + serial + "'")
		if err != nil {
			t.Fatal(err)
		}
		return strings.Join(strings.Fields(rows), " ")
	}
	// RFC 5280 reason codes: superseded 4, keyCompromise 1.
	if got := status(serialHex(first)); got != "revoked 4" {
		t.Errorf("Boulder's status of the first certificate: %q, want revoked 4", got)
	}
	out, _, _ = ipcert(t, s, "status", "byebye", "--state-dir", state)
	if !strings.Contains(out, "was revoked (superseded)") {
		t.Errorf("status does not say the certificate was revoked:\n%s", out)
	}
	if out, _, code := ipcert(t, s, "doctor", "byebye", "--offline", "--state-dir", state); code != 1 || !strings.Contains(out, "REVOKED") || !strings.Contains(out, "ipcert renew byebye --state-dir "+state) {
		t.Errorf("doctor does not show the revoked certificate with the command to replace it: exit %d\n%s", code, out)
	}
	out, errs, code = ipcert(t, s, "renew", "--state-dir", state)
	t.Logf("renew: exit %d\n%s%s", code, errs, out)
	if code != 10 || !strings.Contains(out, "byebye: renewed") {
		t.Fatalf("renew after the revocation: exit %d, want 10 (replaced at once)", code)
	}
	second := checkShape(t, s, state, "byebye", nil2(ip))

	out, errs, code = ipcert(t, s, "revoke", ip.String(), "--reason", "keyCompromise", "--state-dir", state)
	t.Logf("revoke keyCompromise: exit %d\n%s%s", code, errs, out)
	if code != 0 {
		t.Fatalf("revoke --reason keyCompromise: exit %d", code)
	}
	if got := status(serialHex(second)); got != "revoked 1" {
		t.Errorf("Boulder's status of the second certificate: %q, want revoked 1", got)
	}
}

// TestBoulderRemoveRevoke: ipcert remove --revoke (an address given back)
// revokes with cessationOfOperation at Boulder and stops the renewals.
func TestBoulderRemoveRevoke(t *testing.T) {
	s := boulderStack(t)
	state := t.TempDir()
	ip, _ := fresh(t, s)
	mustIssue(t, s, state, "--ip", ip.String(), "--name", "given-back")
	leaf := checkShape(t, s, state, "given-back", nil2(ip))
	out, errs, code := ipcert(t, s, "remove", ip.String(), "--revoke", "--state-dir", state)
	t.Logf("remove --revoke: exit %d\n%s%s", code, errs, out)
	if code != 0 || !strings.Contains(out, "Revoked given-back") || !strings.Contains(out, "renewals stop") {
		t.Fatalf("remove --revoke: exit %d", code)
	}
	rows, err := s.SQL("SELECT status, revokedReason FROM certificateStatus WHERE serial = '" + serialHex(leaf) + "'")
	if err != nil {
		t.Fatal(err)
	}
	// RFC 5280: cessationOfOperation is 5.
	if got := strings.Join(strings.Fields(rows), " "); got != "revoked 5" {
		t.Errorf("Boulder's status: %q, want revoked 5", got)
	}
	if out, _, _ := ipcert(t, s, "status", "--state-dir", state); strings.Contains(out, "given-back") {
		t.Errorf("status still lists the removed certificate:\n%s", out)
	}
}
