package reliability

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestRenewTimeoutBoundsRun: a CA that accepts connections and never
// answers (or asks to wait an hour) must not hold `renew` and its lock:
// --timeout ends the run with exit 1 (the unit shows failed), current
// untouched, and the message names --timeout.
func TestRenewTimeoutBoundsRun(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if r := ipcert(t, nil, issueArgs(dir)...); r.code != 0 {
		t.Fatalf("issue: %s", r.stderr)
	}
	stall := stallingListener(t)
	// Point the certificate at the stalling CA, as if its CA hung.
	path := filepath.Join(dir, "certs", "f", "renewal.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(data, &m); err != nil {
		t.Fatal(err)
	}
	url := "https://" + stall.Addr().String() + "/dir"
	m["ca"], m["directory"] = url, url
	data, _ = json.Marshal(m)
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
	before := currentSerial(t, dir)
	r := ipcert(t, nil, "renew", "--force", "--state-dir", dir, "--timeout", "2s")
	if r.code != 1 || !strings.Contains(r.stderr, "--timeout") || hasPanic(r.stderr) {
		t.Fatalf("renew against a stalling CA with --timeout 2s: exit %d after %s\n%s", r.code, r.duration, r.stderr)
	}
	if r.duration > 15*time.Second {
		t.Errorf("--timeout 2s took %s", r.duration)
	}
	if currentSerial(t, dir) != before {
		t.Error("current changed")
	}
	figure(t, "renew-timeout", "exit %d after %v with --timeout 2s, current untouched", r.code, r.duration.Round(time.Millisecond))
}
