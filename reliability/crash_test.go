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

	"github.com/ipcert/ipcert/internal/store"
)

// The crash tests: a run of the built binary killed with SIGKILL at random
// moments, then what it leaves checked. Every kill test lives here.

// killAtRandom starts bin with args kills times, each killed with SIGKILL
// at a random moment within span, and calls after(i) when it has ended. A
// run that ends by itself must exit with done (0 for issue, 10 for a
// renewal). It returns how many kills landed mid-run and how many runs had already
// finished.
func killAtRandom(t *testing.T, kills int, span time.Duration, home string, args []string, done int, after func(i int)) (killed, finished int) {
	t.Helper()
	rnd := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 1))
	for i := 0; i < kills; i++ {
		cmd := exec.Command(bin, args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + home}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(time.Duration(rnd.Int64N(int64(span) + 1)))
		_ = cmd.Process.Signal(syscall.SIGKILL)
		_ = cmd.Wait()
		if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			killed++
		} else if code := cmd.ProcessState.ExitCode(); code == done {
			// The run was quicker than span (a quieter machine than when
			// span was measured): later kills come sooner, so that they
			// land inside runs whatever the machine's load.
			finished++
			span = span * 9 / 10
		} else {
			t.Fatalf("run %d ended by itself with exit %d", i+1, code)
		}
		after(i + 1)
	}
	return killed, finished
}

// checkWhole fails t unless name's current is a certificate with its key
// and renewal.json parses and names no version after current.
func checkWhole(t *testing.T, st *store.Store, name string, kill int) {
	t.Helper()
	v, err := st.CurrentVersion(name)
	if err != nil {
		t.Fatalf("after kill %d: current is broken: %v", kill, err)
	}
	for _, f := range []string{store.FullChainFile, store.KeyFile} {
		if _, err := os.Stat(filepath.Join(v.Dir, f)); err != nil {
			t.Fatalf("after kill %d: %v", kill, err)
		}
	}
	r, err := st.LoadRenewal(name)
	if err != nil {
		t.Fatalf("after kill %d: renewal.json: %v", kill, err)
	}
	// renewal.json is written after the switch of current: it may
	// describe the version before, never a later one.
	if r.Current > v.N {
		t.Fatalf("after kill %d: renewal.json names version %d, current is %d", kill, r.Current, v.N)
	}
}

// checkTidy fails t when a clean run left more than five versions or a
// temporary version directory.
func checkTidy(t *testing.T, st *store.Store, name string) {
	t.Helper()
	ns, _ := st.Versions(name)
	if len(ns) > 5 {
		t.Errorf("%d versions kept, want at most 5: %v", len(ns), ns)
	}
	entries, _ := os.ReadDir(filepath.Join(st.CertDir(name), "versions"))
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			t.Errorf("temporary version left after a clean run: %s", e.Name())
		}
	}
}

// TestCrashIssue kills `ipcert issue` at random moments: after every kill
// current is still a certificate with the key that matches it and
// renewal.json is whole; then the next run works.
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
	killed, finished := killAtRandom(t, kills, span, dir, args, 0, func(i int) { checkWhole(t, st, "crash", i) })
	if r := ipcert(t, nil, args...); r.code != 0 {
		t.Fatalf("run after the kills: %d %s", r.code, r.stderr)
	}
	checkTidy(t, st, "crash")
	figure(t, "crash-issue", "%d SIGKILLs at random moments of `ipcert issue` (a run takes ~%v; %d landed mid-run, %d after it ended): current intact after every one, next run ok", kills, span.Round(time.Millisecond), killed, finished)
	if killed == 0 {
		t.Errorf("none of %d kills hit a running process", kills)
	}
}

// TestCrashRenew kills `ipcert renew --force` at random moments: after
// each kill current holds a certificate and its key, renewal.json parses,
// and the next (unforced) run works on what the kill left: the lock is
// free and the state readable.
func TestCrashRenew(t *testing.T) {
	kills := 100
	if testing.Short() {
		kills = 15
	}
	dir := t.TempDir()
	if r := ipcert(t, nil, "issue", "--ip", "127.0.0.1", "--ca", "local", "--state-dir", dir, "--agree-tos", "--quiet"); r.code != 0 {
		t.Fatalf("issue: %d %s", r.code, r.stderr)
	}
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	// Kill within the time a whole run takes here, so that most kills land
	// inside one (start-up, ACME, writing the version, the switch of
	// current, renewal.json) rather than after it.
	unkilled := ipcert(t, nil, "renew", "--force", "--quiet", "--state-dir", dir)
	if unkilled.code != 10 {
		t.Fatalf("an unkilled run: exit %d\n%s", unkilled.code, unkilled.stderr)
	}
	span := max(unkilled.duration, 20*time.Millisecond)
	start := time.Now()
	killed, finished := killAtRandom(t, kills, span, dir, []string{"renew", "--force", "--quiet", "--wait", "10s", "--state-dir", dir}, 10, func(i int) {
		checkWhole(t, st, "127.0.0.1", i)
		if r := ipcert(t, nil, "renew", "--wait", "0s", "--state-dir", dir); r.code != 0 {
			t.Fatalf("kill %d: the next run: exit %d\n%s%s", i, r.code, r.stdout, r.stderr)
		}
	})
	if r := ipcert(t, nil, "renew", "--force", "--state-dir", dir); r.code != 10 {
		t.Fatalf("the run after %d kills: exit %d\n%s", kills, r.code, r.stderr)
	}
	checkTidy(t, st, "127.0.0.1")
	v, _ := st.CurrentVersion("127.0.0.1")
	figure(t, "crash-renew", "%d runs of renew --force killed at random moments within %s (%d mid-run, %d had completed first) in %s; final version %d", kills, span.Round(time.Millisecond), killed, finished, time.Since(start).Round(time.Millisecond), v.N)
}
