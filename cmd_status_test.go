package main

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
