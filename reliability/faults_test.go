package reliability

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/ipcert/ipcert/internal/store"
)

func needRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		requireCI(t, "it needs root (tmpfs mounts, running as another user)")
	}
}

// mountTmpfs mounts a small tmpfs at a new directory and unmounts it when
// the test ends.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size="+size+",mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		requireCI(t, "cannot mount a tmpfs here: "+strings.TrimSpace(string(out)))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	return dir
}

func issueArgs(dir string) []string {
	return []string{"issue", "--ip", "127.0.0.1", "--ca", "local", "--state-dir", dir, "--agree-tos", "--quiet", "--name", "f"}
}

// currentSerial reads the serial of current, failing the test if current
// is not a matching certificate and key.
func currentSerial(t *testing.T, dir string) string {
	t.Helper()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	v, err := st.CurrentVersion("f")
	if err != nil {
		t.Fatalf("current broken: %v", err)
	}
	return v.Leaf.SerialNumber.String()
}

// checkFault runs issue under a fault and checks the contract: a clear
// error naming the cause and the fix, exit 1, bounded time, current
// untouched.
func checkFault(t *testing.T, name, dir string, env []string, wantSubs ...string) {
	t.Helper()
	before := currentSerial(t, dir)
	r := ipcert(t, env, issueArgs(dir)...)
	if r.code != 1 {
		t.Errorf("%s: exit %d, want 1\n%s", name, r.code, r.stderr)
	}
	for _, w := range wantSubs {
		if !strings.Contains(r.stderr, w) {
			t.Errorf("%s: stderr lacks %q:\n%s", name, w, r.stderr)
		}
	}
	if hasPanic(r.stderr) {
		t.Errorf("%s: panicked", name)
	}
	if after := currentSerial(t, dir); after != before {
		t.Errorf("%s: current changed", name)
	}
	figure(t, "fault-"+name, "exit %d after %v; message: %s", r.code, r.duration.Round(1e6), firstLine(r.stderr))
}

func firstLine(s string) string {
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, "ipcert") {
			return strings.TrimSpace(l)
		}
	}
	return strings.TrimSpace(s)
}

func TestFaultFullDisk(t *testing.T) {
	needRoot(t)
	dir := mountTmpfs(t, "256k")
	if r := ipcert(t, nil, issueArgs(dir)...); r.code != 0 {
		t.Fatalf("first issuance: %s", r.stderr)
	}
	// Fill the file system to the last block.
	filler := filepath.Join(dir, "filler")
	f, err := os.Create(filler)
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	checkFault(t, "full-disk", dir, nil, "no space left", "df -h")
	os.Remove(filler)
	if r := ipcert(t, nil, issueArgs(dir)...); r.code != 0 {
		t.Fatalf("after freeing space: %s", r.stderr)
	}
}

func TestFaultReadOnly(t *testing.T) {
	needRoot(t)
	dir := mountTmpfs(t, "1m")
	if r := ipcert(t, nil, issueArgs(dir)...); r.code != 0 {
		t.Fatalf("first issuance: %s", r.stderr)
	}
	if out, err := exec.Command("mount", "-o", "remount,ro", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount ro: %v %s", err, out)
	}
	checkFault(t, "read-only", dir, nil, "read-only file system", "--state-dir")
	if out, err := exec.Command("mount", "-o", "remount,rw", dir).CombinedOutput(); err != nil {
		t.Fatalf("remount rw: %v %s", err, out)
	}
	if r := ipcert(t, nil, issueArgs(dir)...); r.code != 0 {
		t.Fatalf("after remounting read-write: %s", r.stderr)
	}
}

// TestFaultOtherOwner runs ipcert as nobody against root's state.
func TestFaultOtherOwner(t *testing.T) {
	needRoot(t)
	dir := filepath.Join(t.TempDir(), "state")
	if r := ipcert(t, nil, issueArgs(dir)...); r.code != 0 {
		t.Fatalf("first issuance: %s", r.stderr)
	}
	// The parent must be reachable for nobody; the state itself stays 0700.
	os.Chmod(filepath.Dir(dir), 0o755)
	os.Chmod(filepath.Dir(filepath.Dir(dir)), 0o755)
	before := currentSerial(t, dir)
	cmd := exec.Command(bin, issueArgs(dir)...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/nonexistent"}
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("as nobody: %v\n%s", err, out)
	}
	for _, w := range []string{"not writable by this user", "sudo"} {
		if !strings.Contains(string(out), w) {
			t.Errorf("message lacks %q:\n%s", w, out)
		}
	}
	if currentSerial(t, dir) != before {
		t.Error("current changed")
	}
	figure(t, "fault-other-owner", "exit 1; message: %s", firstLine(string(out)))
	if r := ipcert(t, nil, issueArgs(dir)...); r.code != 0 {
		t.Fatalf("as the owner again: %s", r.stderr)
	}
}
