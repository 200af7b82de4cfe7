package reliability

import (
	"bufio"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
	"unsafe"

	"github.com/ipcert/ipcert/acmeflow"
	"golang.org/x/sys/unix"
)

// The attacks of issue 12, each tried against the built binary as an
// unprivileged user would: the result is the README's security table.

// The test binary doubles as the attacker's helper programs, run as
// another user: IPCERT_TEST_ROLE picks which.
func init() {
	switch os.Getenv("IPCERT_TEST_ROLE") {
	case "swap-watcher":
		os.Exit(swapWatcher(os.Getenv("IPCERT_TEST_DIR"), os.Getenv("IPCERT_TEST_TARGET")))
	}
}

// swapWatcher watches dir with inotify and renames a symbolic link to
// target over every file created there, as fast as it can: the attack on
// a chmod (or chown, or write) by path after the file was created. It
// prints "ready" once watching, then one line per swap.
func swapWatcher(dir, target string) int {
	fd, err := unix.InotifyInit1(unix.IN_CLOEXEC)
	if err != nil {
		fmt.Println("inotify:", err)
		return 1
	}
	if _, err := unix.InotifyAddWatch(fd, dir, unix.IN_CREATE); err != nil {
		fmt.Println("watch:", err)
		return 1
	}
	link := filepath.Join(dir, ".swap")
	os.Remove(link)
	if err := os.Symlink(target, link); err != nil {
		fmt.Println("symlink:", err)
		return 1
	}
	fmt.Println("ready")
	buf := make([]byte, 64<<10)
	for {
		n, err := unix.Read(fd, buf)
		if err != nil {
			if err == unix.EINTR {
				continue
			}
			return 0
		}
		for off := 0; off+unix.SizeofInotifyEvent <= n; {
			ev := (*unix.InotifyEvent)(unsafePointer(&buf[off]))
			nameBytes := buf[off+unix.SizeofInotifyEvent : off+unix.SizeofInotifyEvent+int(ev.Len)]
			off += unix.SizeofInotifyEvent + int(ev.Len)
			name := strings.TrimRight(string(nameBytes), "\x00")
			if name == "" || strings.HasPrefix(name, ".") {
				continue
			}
			// One system call between the event and the swap: the link
			// is made in advance.
			if os.Rename(link, filepath.Join(dir, name)) == nil {
				_ = os.Symlink(target, link)
				fmt.Println("swap", name)
			}
		}
	}
}

// needRootCI: these attacks need root (the victim) and another account
// (the attacker).
func needRootCI(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		requireCI(t, "the attacks need root as the victim and another account (nobody) as the attacker")
	}
}

const nobodyUID, nobodyGID = 65534, 65534

// sharedDir is a directory other users can reach (t.TempDir() is 0700).
func sharedDir(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("", "ipcert-sec-")
	if err != nil {
		t.Fatal(err)
	}
	os.Chmod(d, 0o755)
	t.Cleanup(func() { os.RemoveAll(d) })
	return d
}

func mkdirOwned(t *testing.T, path string, uid, gid int, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(path, mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(path, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(path, mode); err != nil {
		t.Fatal(err)
	}
}

// secretFile is a root-only 0600 file in a root-only directory: it stands
// for /etc/shadow.
func secretFile(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "shadow")
	if err := os.WriteFile(p, []byte("root:secret:20000::::::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func checkSecret(t *testing.T, p, when string) bool {
	t.Helper()
	st, err := os.Stat(p)
	if err != nil {
		t.Errorf("%s: %v", when, err)
		return false
	}
	data, _ := os.ReadFile(p)
	ok := true
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s: the root-only file became mode %04o", when, st.Mode().Perm())
		ok = false
	}
	if string(data) != "root:secret:20000::::::\n" {
		t.Errorf("%s: the root-only file changed: %q", when, data)
		ok = false
	}
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != 0 {
		t.Errorf("%s: the root-only file now belongs to uid %d", when, sys.Uid)
		ok = false
	}
	return ok
}

// copyBinary puts a copy of the running test binary where nobody can run it.
func copyBinary(t *testing.T, dir string) string {
	t.Helper()
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	in, err := os.Open(self)
	if err != nil {
		t.Fatal(err)
	}
	defer in.Close()
	p := filepath.Join(dir, "attacker-helper")
	out, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o755)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.Copy(out, in); err != nil {
		t.Fatal(err)
	}
	out.Close()
	return p
}

func closedPort(t *testing.T) int {
	t.Helper()
	p, err := acmeflow.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestAttackWebrootChmodRace: the owner of the web root watches the
// challenge folder with inotify and renames a link to a root-only file
// over each challenge file root creates. Before the fix root then ran
// chmod 0644 on the path, i.e. on the link's target (seen within 3-19
// runs with one address). Each run here has 20 addresses, so 20 chances.
func TestAttackWebrootChmodRace(t *testing.T) {
	needRootCI(t)
	base := sharedDir(t)
	www := filepath.Join(base, "www")
	mkdirOwned(t, www, nobodyUID, nobodyGID, 0o755)
	chal := filepath.Join(www, ".well-known", "acme-challenge")
	mkdirOwned(t, filepath.Join(www, ".well-known"), nobodyUID, nobodyGID, 0o755)
	mkdirOwned(t, chal, nobodyUID, nobodyGID, 0o755)
	secret := secretFile(t)
	helper := copyBinary(t, base)

	w := exec.Command(helper)
	w.Env = []string{"IPCERT_TEST_ROLE=swap-watcher", "IPCERT_TEST_DIR=" + chal, "IPCERT_TEST_TARGET=" + secret}
	w.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: nobodyUID, Gid: nobodyGID}}
	stdout, err := w.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Process.Kill(); w.Wait() })
	sc := bufio.NewScanner(stdout)
	if !sc.Scan() || sc.Text() != "ready" {
		t.Fatalf("the watcher did not start: %q", sc.Text())
	}
	var swaps atomic.Int64
	go func() {
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "swap ") {
				swaps.Add(1)
			}
		}
	}()

	state := filepath.Join(t.TempDir(), "state")
	args := []string{"issue", "--ca", "local", "--webroot", www, "--webroot-port", strconv.Itoa(closedPort(t)),
		"--agree-tos", "--quiet", "--state-dir", state, "--name", "race"}
	for i := 1; i <= 20; i++ {
		args = append(args, "--ip", "127.0.0."+strconv.Itoa(i))
	}
	const runs = 10
	done := 0
	for run := 1; run <= runs; run++ {
		before := swaps.Load()
		r := ipcert(t, nil, args...)
		done = run
		if hasPanic(r.stderr) {
			t.Fatalf("run %d panicked:\n%s", run, r.stderr)
		}
		// Let the watcher's last swaps of this run land before looking.
		deadline := time.Now().Add(2 * time.Second)
		for swaps.Load() == before && time.Now().Before(deadline) {
			time.Sleep(time.Millisecond)
		}
		if !checkSecret(t, secret, fmt.Sprintf("after issue run %d", run)) {
			break
		}
	}
	if swaps.Load() == 0 {
		t.Fatal("the watcher swapped nothing: the attack never ran, so this test proves nothing")
	}
	if t.Failed() {
		return
	}
	figure(t, "attack-webroot-chmod-race", "%d issue runs x 20 challenge files, %d files swapped for a link to a 0600 root file by an inotify watcher running as nobody: the file stayed 0600, unchanged", done, swaps.Load())
}

// TestAttackSymlinkedChallengeFolder: the owner of the web root makes
// .well-known/acme-challenge (or .well-known) a link to a root-only
// directory. Before the fix root created and removed the token file there.
func TestAttackSymlinkedChallengeFolder(t *testing.T) {
	for _, which := range []string{"acme-challenge", ".well-known"} {
		t.Run(which, func(t *testing.T) {
			base := t.TempDir()
			victim := filepath.Join(base, "root-only")
			if err := os.Mkdir(victim, 0o700); err != nil {
				t.Fatal(err)
			}
			if which == ".well-known" {
				os.Mkdir(filepath.Join(victim, "acme-challenge"), 0o700)
			}
			www := filepath.Join(base, "www")
			os.MkdirAll(filepath.Join(www, ".well-known"), 0o755)
			link := filepath.Join(www, ".well-known", "acme-challenge")
			if which == ".well-known" {
				os.Remove(filepath.Join(www, ".well-known"))
				link = filepath.Join(www, ".well-known")
			}
			if err := os.Symlink(victim, link); err != nil {
				t.Fatal(err)
			}
			watched := victim
			if which == ".well-known" {
				watched = filepath.Join(victim, "acme-challenge")
			}
			before, _ := os.Stat(watched)
			state := filepath.Join(t.TempDir(), "state")
			r := ipcert(t, nil, "issue", "--ip", "127.0.0.1", "--ca", "local", "--webroot", www, "--webroot-port", strconv.Itoa(closedPort(t)),
				"--agree-tos", "--quiet", "--state-dir", state)
			if r.code != 1 {
				t.Errorf("exit %d, want 1\n%s", r.code, r.stderr)
			}
			for _, want := range []string{link, "symbolic link", victim} {
				if !strings.Contains(r.stderr, want) {
					t.Errorf("the message does not say %q:\n%s", want, r.stderr)
				}
			}
			after, _ := os.Stat(watched)
			if !after.ModTime().Equal(before.ModTime()) {
				t.Errorf("root wrote into %s through the link (its mtime changed)", watched)
			}
			if entries, _ := os.ReadDir(watched); len(entries) != 0 {
				t.Errorf("root left files in %s: %v", watched, entries)
			}
			if t.Failed() {
				return
			}
			figure(t, "attack-symlinked-"+strings.TrimPrefix(which, "."), "refused with exit %d before writing: %s", r.code, firstLine(r.stderr))
		})
	}
}

func unsafePointer(b *byte) unsafe.Pointer { return unsafe.Pointer(b) }
