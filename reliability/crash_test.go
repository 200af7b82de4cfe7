package reliability

import (
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow/store"
)

// TestCrashIssue kills `ipcert issue` with SIGKILL at random moments and
// checks after every kill that current is still a certificate with the key
// that matches it and renewal.json is whole, then that the next run works.
func TestCrashIssue(t *testing.T) {
	kills := 120
	if testing.Short() {
		kills = 20
	}
	dir := t.TempDir()
	args := []string{"issue", "--ip", "127.0.0.1", "--ca", "local", "--state-dir", dir, "--agree-tos", "--quiet", "--name", "crash"}
	first := ipcert(t, nil, args...)
	if first.code != 0 {
		t.Fatalf("first issuance: %d %s", first.code, first.stderr)
	}
	// Spread the kills over a whole run, store writes at the end included.
	span := first.duration
	if second := ipcert(t, nil, args...); second.code == 0 && second.duration > span {
		span = second.duration
	}
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	killed, finished := 0, 0
	for i := 0; i < kills; i++ {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rand.Int64N(int64(span))))
		_ = cmd.Process.Signal(syscall.SIGKILL)
		err := cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			killed++
		} else if err == nil {
			finished++
		} else {
			t.Fatalf("run %d ended by itself with %v", i, err)
		}
		v, err := st.CurrentVersion("crash")
		if err != nil {
			t.Fatalf("after kill %d: current is broken: %v", i, err)
		}
		if _, err := os.Stat(filepath.Join(v.Dir, store.FullChainFile)); err != nil {
			t.Fatalf("after kill %d: %v", i, err)
		}
		if _, err := st.LoadRenewal("crash"); err != nil {
			t.Fatalf("after kill %d: renewal.json: %v", i, err)
		}
	}
	r := ipcert(t, nil, args...)
	if r.code != 0 {
		t.Fatalf("run after the kills: %d %s", r.code, r.stderr)
	}
	ns, _ := st.Versions("crash")
	if len(ns) > 5 {
		t.Errorf("%d versions kept, want at most 5", len(ns))
	}
	entries, _ := os.ReadDir(filepath.Join(dir, "certs", "crash", "versions"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temporary version left after a clean run: %s", e.Name())
		}
	}
	figure(t, "crash-issue", "%d SIGKILLs at random moments of `ipcert issue` (a run takes ~%v; %d landed mid-run, %d after it ended): current intact after every one, next run ok", kills, span.Round(time.Millisecond), killed, finished)
	if killed < kills/2 {
		t.Errorf("only %d of %d kills hit a running process; the timing spread is wrong", killed, kills)
	}
}
