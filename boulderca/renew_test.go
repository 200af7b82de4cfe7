package boulderca

import (
	"crypto/x509"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestBoulderRenew: a renewal asks Boulder's ARI for the window, orders
// with "replaces" naming the certificate it renews (Boulder records the
// replacement), and the new version is current in the same shape.
func TestBoulderRenew(t *testing.T) {
	s := boulderStack(t)
	state := t.TempDir()
	ip, _ := fresh(t, s)
	mustIssue(t, s, state, "--ip", ip.String(), "--name", "renewed")
	first := checkShape(t, s, state, "renewed", nil2(ip))

	// Nothing is due: Boulder's ARI window for a fresh 160-hour
	// certificate is days away.
	out, errs, code := ipcert(t, s, "renew", "--state-dir", state)
	t.Logf("renew: exit %d\n%s%s", code, errs, out)
	if code != 0 {
		t.Fatalf("renew with nothing due: exit %d, want 0", code)
	}
	b, err := os.ReadFile(filepath.Join(state, "certs", "renewed", "renewal.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r struct {
		ARI *struct {
			Start time.Time `json:"window_start"`
			End   time.Time `json:"window_end"`
			Error string    `json:"error"`
		} `json:"ari"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		t.Fatal(err)
	}
	// Boulder's window for a 160-hour certificate lies inside its life
	// (about two thirds in); ipcert kept Boulder's answer.
	if a := r.ARI; a == nil || a.Error != "" || !a.Start.After(first.NotBefore) || !a.End.Before(first.NotAfter) || !a.Start.Before(a.End) {
		t.Errorf("renewal.json keeps no ARI window from Boulder inside the certificate's life (%s .. %s):\n%s", first.NotBefore, first.NotAfter, b)
	}

	out, errs, code = ipcert(t, s, "renew", "--force", "--state-dir", state)
	t.Logf("renew --force: exit %d\n%s%s", code, errs, out)
	if code != 10 || !strings.Contains(out, "renewed, version 2") {
		t.Fatalf("renew --force: exit %d, want 10 and version 2", code)
	}
	second := checkShape(t, s, state, "renewed", nil2(ip))
	if second.SerialNumber.Cmp(first.SerialNumber) == 0 {
		t.Fatal("renew --force kept the same certificate")
	}
	// Boulder keeps the order that replaced a certificate by the old
	// certificate's serial: ipcert's order named it.
	rows, err := s.SQL("SELECT COUNT(*) FROM replacementOrders WHERE serial = '" + serialHex(first) + "'")
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(rows) != "1" {
		t.Errorf("Boulder recorded %q replacement orders for the first certificate's serial %s, want 1 (the renewal's order carried no replaces)", rows, serialHex(first))
	}
}

// serialHex is a serial as Boulder stores it (core.SerialToString).
func serialHex(c *x509.Certificate) string { return fmt.Sprintf("%036x", c.SerialNumber) }
