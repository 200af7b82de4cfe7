package reliability

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/store"
)

// cloneCert copies certs/<src> to certs/<dst> (versions, current link and
// renewal.json renamed): a fast way to fill a state directory with many
// real, matching certificate and key pairs.
func cloneCert(t *testing.T, dir, src, dst string, edit func(*store.Renewal)) {
	t.Helper()
	from := filepath.Join(dir, "certs", src)
	to := filepath.Join(dir, "certs", dst)
	if out, err := exec.Command("cp", "-a", from, to).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	path := filepath.Join(to, "renewal.json")
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var r store.Renewal
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	r.Name = dst
	if edit != nil {
		edit(&r)
	}
	data, _ = json.MarshalIndent(&r, "", "  ")
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func median(ds []time.Duration) time.Duration {
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[len(s)/2]
}

// TestLoad200: 200 certificates in one state directory. status and a
// no-op renew must work on all of them without touching the network
// (reported times are figures, not assertions), and one renew run must
// renew the 20 that are due against the local CA.
func TestLoad200(t *testing.T) {
	const total, due = 200, 20
	dir := filepath.Join(t.TempDir(), "state")
	if r := ipcert(t, nil, "issue", "--ip", "127.0.0.1", "--ca", "local", "--state-dir", dir, "--agree-tos", "--quiet", "--name", "c000"); r.code != 0 {
		t.Fatalf("issue: %s", r.stderr)
	}
	now := time.Now().UTC()
	for i := 1; i < total; i++ {
		cloneCert(t, dir, "c000", fmt.Sprintf("c%03d", i), func(r *store.Renewal) {
			if i <= due {
				// Past half of its life: due at half-life (the local CA has
				// no ARI).
				r.NotBefore, r.NotAfter = now.Add(-100*time.Hour), now.Add(60*time.Hour)
			}
		})
	}

	var statusTimes, noopTimes []time.Duration
	for i := 0; i < 7; i++ {
		r := ipcert(t, nil, "status", "--state-dir", dir, "--json")
		if r.code != 0 || hasPanic(r.stderr) {
			t.Fatalf("status: exit %d %s", r.code, r.stderr)
		}
		if n := strings.Count(r.stdout, `"name"`); n < total {
			t.Fatalf("status listed %d of %d certificates", n, total)
		}
		statusTimes = append(statusTimes, r.duration)
	}
	// A no-op renew on the 180 that are not due: no local CA is started
	// (it would log to --debug), nothing changes.
	debug := filepath.Join(t.TempDir(), "debug.log")
	var notDue []string
	for i := due + 1; i < total; i++ {
		notDue = append(notDue, fmt.Sprintf("c%03d", i))
	}
	for i := 0; i < 7; i++ {
		r := ipcert(t, nil, append([]string{"renew", "--state-dir", dir, "--debug", debug}, notDue...)...)
		if r.code != 0 {
			t.Fatalf("no-op renew: exit %d %s", r.code, r.stderr)
		}
		noopTimes = append(noopTimes, r.duration)
	}
	if data, _ := os.ReadFile(debug); strings.Contains(string(data), "pebble") || strings.Contains(string(data), "event ") {
		t.Errorf("a no-op renew did ACME work:\n%s", data)
	}

	start := time.Now()
	r := ipcert(t, nil, "renew", "--state-dir", dir)
	renewAll := time.Since(start)
	if r.code != 10 {
		t.Fatalf("renew of %d due certificates: exit %d\n%s\n%s", due, r.code, r.stdout, r.stderr)
	}
	st, _ := store.Open(dir)
	renewed := 0
	for i := 0; i < total; i++ {
		name := fmt.Sprintf("c%03d", i)
		v, err := st.CurrentVersion(name)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if v.N > 1 {
			renewed++
		}
	}
	if renewed != due {
		t.Errorf("%d certificates have a new version, want %d", renewed, due)
	}
	// Now nothing is due: a plain renew over all 200 is a no-op.
	var allTimes []time.Duration
	for i := 0; i < 7; i++ {
		r := ipcert(t, nil, "renew", "--state-dir", dir)
		if r.code != 0 {
			t.Fatalf("renew with nothing due: exit %d %s", r.code, r.stderr)
		}
		allTimes = append(allTimes, r.duration)
	}
	figure(t, "load-200", "status --json over %d certificates: median %v; renew with nothing due over %d: median %v (over %d named: %v; no ACME traffic); renew of %d due ones in one run: %v, all renewed",
		total, median(statusTimes).Round(time.Millisecond), total, median(allTimes).Round(time.Millisecond), total-due-1, median(noopTimes).Round(time.Millisecond), due, renewAll.Round(time.Millisecond))
}
