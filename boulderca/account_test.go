package boulderca

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestBoulderAccount: ipcert account shows the stored account as Boulder
// knows it, changes its contact, and deactivates it (its files kept aside);
// the next issuance registers a new account.
func TestBoulderAccount(t *testing.T) {
	s := boulderStack(t)
	state := t.TempDir()
	ip, _ := fresh(t, s)
	mustIssue(t, s, state, "--ip", ip.String())
	ca := []string{"--ca", s.Directory, "--ca-root", s.TLSRoot, "--state-dir", state}
	out, errs, code := ipcert(t, s, append([]string{"account", "show"}, ca...)...)
	if code != 0 || !strings.Contains(out, "status  valid") || !strings.Contains(out, "contact none") {
		t.Fatalf("account show: exit %d\n%s%s", code, errs, out)
	}
	out, errs, code = ipcert(t, s, append([]string{"account", "update", "--email", "ops@ipcert-test.net"}, ca...)...)
	// Boulder accepts the new contact and, as Let's Encrypt does now,
	// keeps none: ipcert says what the CA returned.
	if code != 0 || !strings.Contains(out, "contact mailto:ops@ipcert-test.net") && !strings.Contains(out, "none kept by the CA") {
		t.Errorf("account update: exit %d\n%s%s", code, errs, out)
	}
	if _, errs, code := ipcert(t, s, append([]string{"account", "update", "--email", "not an address"}, ca...)...); code != 2 {
		t.Errorf("account update with a bad e-mail: exit %d\n%s", code, errs)
	}
	keyFiles, _ := filepath.Glob(filepath.Join(state, "accounts", "*", "default", "key.pem"))
	if len(keyFiles) != 1 {
		t.Fatalf("account key files: %v", keyFiles)
	}
	before, _ := os.ReadFile(keyFiles[0])
	out, errs, code = ipcert(t, s, append([]string{"account", "rollover"}, ca...)...)
	if code != 0 || !strings.Contains(out, "The account has a new key") {
		t.Fatalf("account rollover: exit %d\n%s%s", code, errs, out)
	}
	if after, _ := os.ReadFile(keyFiles[0]); string(after) == string(before) {
		t.Error("rollover kept the old key file")
	}
	// The new key signs for the same account: show and a renewal work.
	if out, errs, code := ipcert(t, s, append([]string{"account", "show"}, ca...)...); code != 0 || !strings.Contains(out, "status  valid") {
		t.Fatalf("account show after rollover: exit %d\n%s%s", code, errs, out)
	}
	if out, errs, code := ipcert(t, s, "renew", "--force", "--state-dir", state); code != 10 || strings.Contains(errs, "Registering a new ACME account") {
		t.Errorf("renew with the rolled-over key: exit %d\n%s%s", code, errs, out)
	}
	out, errs, code = ipcert(t, s, append([]string{"account", "deactivate"}, ca...)...)
	if code != 0 || !strings.Contains(out, "status  deactivated") || !strings.Contains(out, "the next issuance registers a new account") {
		t.Fatalf("account deactivate: exit %d\n%s%s", code, errs, out)
	}
	if _, errs, code := ipcert(t, s, append([]string{"account", "show"}, ca...)...); code != 2 || !strings.Contains(errs, "no account with this CA") {
		t.Errorf("account show after deactivation: exit %d\n%s", code, errs)
	}
	out = mustIssue(t, s, state, "--ip", ip.String())
	if !strings.Contains(out, "Registering a new ACME account") {
		t.Errorf("the issuance after deactivation did not register a new account:\n%s", out)
	}
}
