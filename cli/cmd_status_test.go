package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipcert/ipcert/deploy"
)

func TestStatusCommand(t *testing.T) {
	dir := t.TempDir()
	units, crons := t.TempDir(), t.TempDir()
	code, out, _ := verifyRun(t, "status", "--state-dir", dir, "--unit-dir", units, "--cron-dir", crons)
	if code != exitOK || !strings.Contains(out, "No certificates") || !strings.Contains(out, "NOT installed") {
		t.Errorf("empty: %d\n%s", code, out)
	}
	verifyIssue(t, dir, "127.0.0.1")
	code, out, errs := verifyRun(t, "status", "--state-dir", dir, "--unit-dir", units, "--cron-dir", crons)
	for _, want := range []string{"127.0.0.1\n", "addresses     127.0.0.1", "local test CA", "valid until", "left)", "next renewal", "half-life", "last result   ok", "NOT installed"} {
		if !strings.Contains(out, want) {
			t.Errorf("missing %q in:\n%s", want, out)
		}
	}
	if code != exitOK {
		t.Errorf("exit %d: %s", code, errs)
	}
	os.WriteFile(filepath.Join(crons, deploy.TimerCronName), []byte("17 */12 * * * root /usr/local/bin/ipcert renew\n"), 0o644)
	code, out, _ = verifyRun(t, "status", "--json", "--state-dir", dir, "--unit-dir", units, "--cron-dir", crons)
	var rep deploy.StatusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if code != exitOK || !rep.TimerInstalled || rep.Timer.Mode != deploy.TimerCron || len(rep.Certificates) != 1 || rep.Certificates[0].Version != 1 || rep.Certificates[0].NextRenewal.IsZero() {
		t.Errorf("json: %d %+v", code, rep)
	}
	// A broken renewal.json makes status say so and exit 1.
	os.MkdirAll(filepath.Join(dir, "certs", "broken"), 0o700)
	os.WriteFile(filepath.Join(dir, "certs", "broken", "renewal.json"), []byte("{"), 0o600)
	code, out, _ = verifyRun(t, "status", "--state-dir", dir, "--unit-dir", units, "--cron-dir", crons)
	if code != exitFailure || !strings.Contains(out, "PROBLEM") || !strings.Contains(out, "installed (cron") {
		t.Errorf("broken: %d\n%s", code, out)
	}
	if code, _, _ := verifyRun(t, "status", "extra", "--state-dir", dir); code != exitUsage {
		t.Errorf("extra argument: %d", code)
	}
}

// TestStatusShowsVerifyAddress: the address renewals verify is part of
// what status shows (text and JSON), and status NAME|ADDR shows the one
// certificate the shared lookup picks.
func TestStatusShowsVerifyAddress(t *testing.T) {
	dir := t.TempDir()
	units, crons := t.TempDir(), t.TempDir()
	for _, args := range [][]string{
		{"--ip", "127.0.0.1", "--name", "web", "--verify", "127.0.0.1:8443"},
		{"--ip", "::1", "--name", "other"},
	} {
		if code, _, errs := verifyRun(t, append([]string{"issue", "--ca", "local", "--state-dir", dir, "--agree-tos", "--quiet"}, args...)...); code != exitOK {
			t.Fatalf("issue: %d %s", code, errs)
		}
	}
	code, out, errs := verifyRun(t, "status", "--state-dir", dir, "--unit-dir", units, "--cron-dir", crons)
	if code != exitOK || !strings.Contains(out, "verify at     127.0.0.1:8443") || !strings.Contains(out, "sudo ipcert timer install --state-dir "+dir) {
		t.Errorf("text: %d %s\n%s", code, errs, out)
	}
	code, out, _ = verifyRun(t, "status", "127.0.0.1", "--json", "--state-dir", dir, "--unit-dir", units, "--cron-dir", crons)
	var rep deploy.StatusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if code != exitOK || len(rep.Certificates) != 1 || rep.Certificates[0].Name != "web" || rep.Certificates[0].VerifyAddr != "127.0.0.1:8443" {
		t.Errorf("json for 127.0.0.1: %d %+v", code, rep.Certificates)
	}
	if code, _, errs := verifyRun(t, "status", "192.0.2.1", "--state-dir", dir); code != exitUsage || !strings.Contains(errs, "no stored certificate covers 192.0.2.1") {
		t.Errorf("unknown address: %d %s", code, errs)
	}
}
