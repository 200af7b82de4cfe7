package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/deploy"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/renew"
)

func TestTimerInstallStatusRemove(t *testing.T) {
	state := t.TempDir()
	units := t.TempDir()
	st, err := store.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	webroot := t.TempDir()
	if err := st.SaveRenewal(&store.Renewal{Issuance: spec.Issuance{Identifiers: []string{"192.0.2.5"}, CA: "staging", Challenge: "http-01", WebRoot: webroot}, Name: "w", Directory: "https://x/dir"}); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := issueRun(t, nil, "timer", "status", "--unit-dir", units, "--state-dir", state); code != exitTimerNotInstalled {
		t.Fatalf("status before install: exit %d", code)
	}
	code, out, errs := issueRun(t, nil, "timer", "install", "--unit-dir", units, "--state-dir", state, "--binary", "/bin/true")
	if code != exitOK {
		t.Fatalf("install: exit %d: %s", code, errs)
	}
	if !strings.Contains(out, "Units written only") {
		t.Errorf("install output: %s", out)
	}
	svc, err := os.ReadFile(filepath.Join(units, deploy.TimerServiceName))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(svc), "ReadWritePaths="+state+" "+webroot+"\n") || !strings.Contains(string(svc), "renew --quiet --state-dir "+state) {
		t.Errorf("service does not make the state dir and the web root writable:\n%s", svc)
	}
	if _, err := os.Stat(filepath.Join(units, deploy.TimerTimerName)); err != nil {
		t.Fatal(err)
	}
	if code, out, _ := issueRun(t, nil, "timer", "install", "--unit-dir", units, "--state-dir", state, "--binary", "/bin/true"); code != exitOK || !strings.Contains(out, "unchanged") {
		t.Errorf("second install: %d %s", code, out)
	}

	// The last renew run is reported by status.
	renew.SaveLastRun(st, renew.LastRun{Started: time.Now().Add(-time.Minute), Duration: 3 * time.Millisecond, ExitCode: exitRenewNothing,
		Result: &renew.Result{Certs: []renew.CertResult{{Name: "w", Outcome: renew.NotDue}}}})
	code, out, _ = issueRun(t, nil, "timer", "status", "--unit-dir", units, "--state-dir", state, "--json")
	if code != exitOK {
		t.Fatalf("status: exit %d", code)
	}
	var got timerStatusOut
	if err := json.Unmarshal([]byte(out), &got); err != nil || got.Mode != deploy.TimerSystemd || got.LastRun == nil {
		t.Fatalf("status JSON: %v\n%s", err, out)
	}
	code, out, _ = issueRun(t, nil, "timer", "status", "--unit-dir", units, "--state-dir", state)
	if code != exitOK || !strings.Contains(out, "systemd timer") || !strings.Contains(out, "Last renew run:") || !strings.Contains(out, "nothing was due") {
		t.Errorf("status text: %s", out)
	}

	if code, out, _ := issueRun(t, nil, "timer", "remove", "--unit-dir", units, "--state-dir", state); code != exitOK || !strings.Contains(out, "Removed") {
		t.Fatalf("remove: %d %s", code, out)
	}
	if _, err := os.Stat(filepath.Join(units, deploy.TimerServiceName)); !os.IsNotExist(err) {
		t.Errorf("service still there: %v", err)
	}
	if code, _, _ := issueRun(t, nil, "timer", "status", "--unit-dir", units, "--state-dir", state); code != exitTimerNotInstalled {
		t.Errorf("status after remove: exit %d", code)
	}
}

func TestTimerCronDir(t *testing.T) {
	state, cron := t.TempDir(), t.TempDir()
	code, _, errs := issueRun(t, nil, "timer", "install", "--cron-dir", cron, "--state-dir", state, "--binary", "/bin/true")
	if code != exitOK {
		t.Fatalf("install: %d %s", code, errs)
	}
	data, err := os.ReadFile(filepath.Join(cron, deploy.TimerCronName))
	if err != nil || !strings.Contains(string(data), " * * * * root /usr/bin/true renew --quiet --state-dir "+state) && !strings.Contains(string(data), " * * * * root /bin/true renew --quiet --state-dir "+state) {
		t.Fatalf("cron entry: %v\n%s", err, data)
	}
	code, out, _ := issueRun(t, nil, "timer", "status", "--cron-dir", cron, "--state-dir", state)
	if code != exitOK || !strings.Contains(out, "cron, every hour at minute") {
		t.Errorf("status: %d %s", code, out)
	}
}

func TestTimerUsage(t *testing.T) {
	state := t.TempDir()
	for _, args := range [][]string{
		{"timer"},
		{"timer", "frobnicate", "--state-dir", state},
		{"timer", "install", "--mode", "launchd", "--state-dir", state},
		{"timer", "status", "extra", "--state-dir", state},
	} {
		if code, _, _ := issueRun(t, nil, args...); code != exitUsage {
			t.Errorf("%v: exit %d, want %d", args, code, exitUsage)
		}
	}
	// The test binary lives in a temporary directory: not something a
	// timer should run.
	code, _, errs := issueRun(t, nil, "timer", "install", "--unit-dir", t.TempDir(), "--state-dir", state)
	if code != exitUsage || !strings.Contains(errs, "--binary") {
		t.Errorf("temporary binary: exit %d: %s", code, errs)
	}
}
