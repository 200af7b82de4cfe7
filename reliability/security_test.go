package reliability

import (
	"bufio"
	"fmt"
	"io"
	"net"
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
			figure(t, "attack-symlinked-"+strings.TrimPrefix(which, "."), "%s -> a root-only directory: exit %d, \"%s is a symbolic link (to ...); ipcert does not follow links inside the web root\", nothing created or removed there", which, r.code, filepath.Join("WEBROOT", strings.TrimPrefix(link, www+"/")))
		})
	}
}

func unsafePointer(b *byte) unsafe.Pointer { return unsafe.Pointer(b) }

// TestAttackSquattedStateDir: another account creates the state directory
// first (mode 0700, its own), plants a renewal.json whose deploy hook root
// would run, and a .lock link to a root-only file root would truncate.
// Before the fix renew used it without a word: the hook ran as root.
func TestAttackSquattedStateDir(t *testing.T) {
	needRootCI(t)
	base := sharedDir(t)
	squat := filepath.Join(base, "ipcert-squat")
	secret := secretFile(t)
	marker := filepath.Join(t.TempDir(), "pwned")
	renewal := fmt.Sprintf(`{"schema":1,"name":"x","identifiers":["127.0.0.1"],"ca":"local","directory":"local","profile":"shortlived",
"challenge":"http-01","http_listen":"127.0.0.1:%d","key_type":"ec256","deploy_hooks":["id -u > %s"]}`, closedPort(t), marker)
	for _, d := range []string{squat, filepath.Join(squat, "certs"), filepath.Join(squat, "certs", "x"), filepath.Join(squat, "accounts")} {
		mkdirOwned(t, d, nobodyUID, nobodyGID, 0o700)
	}
	rj := filepath.Join(squat, "certs", "x", "renewal.json")
	if err := os.WriteFile(rj, []byte(renewal), 0o600); err != nil {
		t.Fatal(err)
	}
	os.Chown(rj, nobodyUID, nobodyGID)
	lock := filepath.Join(squat, ".lock")
	if err := os.Symlink(secret, lock); err != nil {
		t.Fatal(err)
	}
	os.Lchown(lock, nobodyUID, nobodyGID)

	runs := [][]string{
		{"renew", "--state-dir", squat},
		{"renew", "--force", "x", "--state-dir", squat},
		{"issue", "--ip", "127.0.0.1", "--ca", "local", "--agree-tos", "--quiet", "--state-dir", squat},
		{"status", "--state-dir", squat},
		{"doctor", "x", "--state-dir", squat},
	}
	for _, args := range runs {
		r := ipcert(t, nil, args...)
		if r.code == 0 || r.code == 10 {
			t.Errorf("%v: exit %d: the squatted state directory was used\n%s%s", args, r.code, r.stdout, r.stderr)
		}
		out := r.stdout + r.stderr
		for _, want := range []string{squat, "chown -R root: " + squat, "chmod 700"} {
			if !strings.Contains(out, want) {
				t.Errorf("%v: the message does not say %q:\n%s", args, want, out)
			}
		}
		if _, err := os.Stat(marker); err == nil {
			data, _ := os.ReadFile(marker)
			t.Fatalf("%v: root ran the planted deploy hook (it wrote uid %q)", args, strings.TrimSpace(string(data)))
		}
		checkSecret(t, secret, fmt.Sprint(args))
	}
	st, _ := os.Stat(squat)
	if sys := st.Sys().(*syscall.Stat_t); sys.Uid != nobodyUID || st.Mode().Perm() != 0o700 {
		t.Errorf("root changed the squatted directory: uid %d mode %04o", sys.Uid, st.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(squat, "certs", "x", "current")); err == nil {
		t.Error("root issued a certificate into the squatted directory")
	}
	if t.Failed() {
		return
	}
	figure(t, "attack-squatted-state", "%d commands (renew, renew --force, issue, status, doctor) on a state directory owned by nobody with a planted deploy hook and a .lock link: all refused naming chown -R root:, hook never ran, lock target untouched", len(runs))
}

// attackerHome is a directory like /home/attacker: outside /tmp, which
// ipcert already refuses as the place of a temporary build.
func attackerHome(t *testing.T) string {
	t.Helper()
	d, err := os.MkdirTemp("/var/tmp", "ipcert-sec-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(d) })
	os.Chmod(d, 0o755)
	home := filepath.Join(d, "attacker")
	mkdirOwned(t, home, nobodyUID, nobodyGID, 0o755)
	return home
}

func copyFile(t *testing.T, from, to string, uid, gid int) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(to, uid, gid)
}

// TestAttackUserOwnedTimerBinary: "timer install --binary
// /home/attacker/ipcert" (or running install from a user's build folder)
// wrote a root job that runs a file the user can replace.
func TestAttackUserOwnedTimerBinary(t *testing.T) {
	needRootCI(t)
	home := attackerHome(t)
	theirs := filepath.Join(home, "ipcert")
	copyFile(t, bin, theirs, nobodyUID, nobodyGID)
	// A root-owned file in the user's folder: they can still rename
	// another file over it.
	subdir := filepath.Join(home, "bin")
	mkdirOwned(t, subdir, nobodyUID, nobodyGID, 0o755)
	rootsInTheirs := filepath.Join(subdir, "ipcert")
	copyFile(t, bin, rootsInTheirs, 0, 0)

	cases := []struct {
		name string
		exe  string
		args []string
		want string
	}{
		{"--binary owned by the user", bin, []string{"--binary", theirs}, "belongs to user nobody"},
		{"root's file in the user's folder", bin, []string{"--binary", rootsInTheirs}, "a parent of " + rootsInTheirs},
		{"default: install run from the user's copy", theirs, nil, "belongs to user nobody"},
	}
	for _, c := range cases {
		units := filepath.Join(t.TempDir(), "units")
		state := filepath.Join(t.TempDir(), "state")
		cmd := exec.Command(c.exe, append([]string{"timer", "install", "--unit-dir", units, "--state-dir", state}, c.args...)...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=/root"}
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		if code != 2 {
			t.Errorf("%s: exit %d, want 2\n%s", c.name, code, out)
		}
		for _, want := range []string{c.want, "install -o root -g root -m 0755"} {
			if !strings.Contains(string(out), want) {
				t.Errorf("%s: the message does not say %q:\n%s", c.name, want, out)
			}
		}
		if _, err := os.Stat(units); err == nil {
			t.Errorf("%s: units were written", c.name)
		}
		if _, err := os.Stat(state); err == nil {
			t.Errorf("%s: the state directory was created", c.name)
		}
	}
	// The same for a deploy hook's program: renew runs it as root.
	script := filepath.Join(home, "deploy.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nid -u\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(script, nobodyUID, nobodyGID)
	hookState := filepath.Join(t.TempDir(), "state")
	if r := ipcert(t, nil, "issue", "--ip", "127.0.0.1", "--ca", "local", "--agree-tos", "--state-dir", hookState, "--deploy-hook", script+" --reload"); r.code != 2 || !strings.Contains(r.stderr, "--deploy-hook") || !strings.Contains(r.stderr, "belongs to user nobody") {
		t.Errorf("a deploy hook owned by another user: exit %d\n%s", r.code, r.stderr)
	}
	if _, err := os.Stat(hookState); err == nil {
		t.Error("the refused deploy hook left a state directory")
	}
	// Root's own binary in root's directories is fine.
	units := filepath.Join(t.TempDir(), "units")
	if r := ipcert(t, nil, "timer", "install", "--unit-dir", units, "--state-dir", filepath.Join(t.TempDir(), "state"), "--binary", "/usr/bin/true"); r.code != 0 {
		t.Errorf("a root-owned binary was refused: exit %d\n%s", r.code, r.stderr)
	}
	if t.Failed() {
		return
	}
	figure(t, "attack-user-binary", "%d timer installs with a binary another user can replace: all exit 2 naming the owner and the install command, no unit written; a deploy hook owned by nobody: exit 2; a root-owned binary installs", len(cases))
}

// TestBadFlagsLeaveNothing: every bad flag is refused with exit 2 before
// anything is written (no state directory, no debug log) and before any
// request leaves (the proxy every request would go through counts them).
// Before the fix some of these created the state directory first, some
// were refused only after talking to the CA, and some were taken.
func TestBadFlagsLeaveNothing(t *testing.T) {
	proxy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer proxy.Close()
	var hits atomic.Int64
	go func() {
		for {
			c, err := proxy.Accept()
			if err != nil {
				return
			}
			hits.Add(1)
			c.Close()
		}
	}()
	env := []string{"HTTPS_PROXY=http://" + proxy.Addr().String(), "HTTP_PROXY=http://" + proxy.Addr().String(), "NO_PROXY="}
	issue := func(extra ...string) []string {
		return append([]string{"issue", "--ip", "8.8.8.8", "--ca", "staging", "--agree-tos"}, extra...)
	}
	local := func(extra ...string) []string {
		return append([]string{"issue", "--ip", "127.0.0.1", "--ca", "local", "--agree-tos"}, extra...)
	}
	cases := []struct {
		name string
		args []string
	}{
		{"--challenge foo", issue("--challenge", "foo")},
		{"--challenge dns-01", issue("--challenge", "dns-01")},
		{"--http-listen nonsense", local("--http-listen", "nonsense")},
		{"--http-listen :99999", issue("--http-listen", ":99999")},
		{"--tls-listen host name", issue("--challenge", "tls-alpn-01", "--tls-listen", "example.com:443")},
		{"--ca ftp://", []string{"issue", "--ip", "8.8.8.8", "--ca", "ftp://acme.example/dir", "--agree-tos"}},
		{"--ca http:// (not loopback)", []string{"issue", "--ip", "8.8.8.8", "--ca", "http://acme.example/dir", "--agree-tos"}},
		{"--ca-root missing", []string{"issue", "--ip", "8.8.8.8", "--ca", "https://acme.example/dir", "--ca-root", "/nonexistent/root.pem", "--agree-tos"}},
		{"--ip twice", issue("--ip", "8.8.8.8")},
		{"--ip private for Let's Encrypt", []string{"issue", "--ip", "192.168.1.1", "--ca", "production", "--agree-tos"}},
		{"--email with a space", issue("--email", "a b@c")},
		{"--email with a newline", issue("--email", "a@example.com\nBcc: x@example.com")},
		{"--email 100 KB", issue("--email", strings.Repeat("a", 100<<10)+"@example.com")},
		{"--email without @", issue("--email", "admin")},
		{"--webroot missing", issue("--webroot", "/nonexistent/www")},
		{"--webroot a file", issue("--webroot", "/etc/hostname")},
		{"--timeout -5s", issue("--timeout", "-5s")},
		{"--webroot-port -1", local("--webroot", "/", "--webroot-port", "-1")},
		{"--webroot-port 70000", local("--webroot", "/", "--webroot-port", "70000")},
		{"--key-type ed25519", issue("--key-type", "ed25519")},
		{"--name a/b", issue("--name", "a/b")},
		{"--reload iis", issue("--reload", "iis")},
		{"--verify a name", issue("--verify", "example.com:443")},
		{"--deploy-hook empty", issue("--deploy-hook", " ")},
		{"renew nosuchcert", []string{"renew", "nosuchcert"}},
		{"renew --wait -1s", []string{"renew", "--wait", "-1s"}},
		{"renew a/b", []string{"renew", "a/b"}},
	}
	for _, c := range cases {
		parent := t.TempDir()
		args := append(append([]string{}, c.args...), "--state-dir", filepath.Join(parent, "state"), "--debug", filepath.Join(parent, "debug.log"))
		before := hits.Load()
		r := ipcert(t, env, args...)
		if r.code != 2 || hasPanic(r.stderr) || strings.TrimSpace(r.stderr) == "" {
			t.Errorf("%s: exit %d, want 2 with a message\n%s", c.name, r.code, r.stderr)
		}
		if entries, _ := os.ReadDir(parent); len(entries) != 0 {
			var names []string
			for _, e := range entries {
				names = append(names, e.Name())
			}
			t.Errorf("%s: refused, but created %v", c.name, names)
		}
		if n := hits.Load() - before; n != 0 {
			t.Errorf("%s: refused only after %d connection(s) towards the CA", c.name, n)
		}
		if strings.Count(r.stderr, "\n") > 3 {
			t.Errorf("%s: a long message for a bad flag:\n%s", c.name, r.stderr)
		}
	}
	if t.Failed() {
		return
	}
	figure(t, "bad-flags-nothing-written", "%d bad flag sets (issue and renew): all exit 2 with a one-line reason; 0 files or directories created, 0 connections towards a CA", len(cases))
}

// TestAttackEscapesFromTheNetwork: a "validator" (anyone who can reach the
// responder) asks for /%1b]0;owned%07%1b[2J. Before the fix the path went
// raw into the issue log, into renewal.json, and doctor replayed it: the
// terminal's title changed and the screen was cleared.
func TestAttackEscapesFromTheNetwork(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	if r := ipcert(t, nil, "issue", "--ip", "127.0.0.1", "--ca", "local", "--agree-tos", "--quiet", "--state-dir", state, "--name", "esc"); r.code != 0 {
		t.Fatalf("first issuance: %s", r.stderr)
	}
	// The second issuance answers on 127.0.0.2 while the CA validates
	// 127.0.0.1, where the test listens: when the CA's validator connects
	// there, the responder is up, and the crafted request goes to it; then
	// the validator's connection is closed, the validation fails, and what
	// our responder saw is kept in renewal.json.
	port := closedPort(t)
	const evil = "/%1b]0;owned%07%1b[2J"
	req := "GET " + evil + " HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
	validator, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer validator.Close()
	answered := make(chan string, 1)
	go func() {
		for {
			c, err := validator.Accept()
			if err != nil {
				return
			}
			select {
			case answered <- "":
				r, err := net.DialTimeout("tcp", net.JoinHostPort("127.0.0.2", strconv.Itoa(port)), 5*time.Second)
				if err == nil {
					r.SetDeadline(time.Now().Add(5 * time.Second))
					io.WriteString(r, req)
					b, _ := io.ReadAll(r)
					r.Close()
					<-answered
					answered <- string(b)
				}
			default:
			}
			c.Close()
		}
	}()
	debug := filepath.Join(t.TempDir(), "debug.log")
	r := ipcert(t, nil, "issue", "--ip", "127.0.0.1", "--ca", "local", "--agree-tos", "--state-dir", state, "--name", "esc",
		"--http-listen", "127.0.0.2:"+strconv.Itoa(port), "--debug", debug)
	logOut := r.stderr
	if r.code != 1 {
		t.Fatalf("the issuance on the wrong address: exit %d\n%s", r.code, r.stderr)
	}
	if resp := <-answered; !strings.HasPrefix(resp, "HTTP/1.1 404") {
		t.Fatalf("the crafted request got %q from the responder: the test proves nothing", resp)
	}
	rj, _ := os.ReadFile(filepath.Join(state, "certs", "esc", "renewal.json"))
	dbg, _ := os.ReadFile(debug)
	doc := ipcert(t, nil, "doctor", "esc", "--offline", "--state-dir", state)
	docJSON := ipcert(t, nil, "doctor", "esc", "--offline", "--json", "--state-dir", state)
	for _, o := range []struct{ what, text string }{
		{"the issue log (stderr)", logOut},
		{"the debug log", string(dbg)},
		{"renewal.json", string(rj)},
		{"doctor's output", doc.stdout + doc.stderr},
		{"doctor --json", docJSON.stdout},
	} {
		if strings.ContainsAny(o.text, "\x1b\x07\u009b") {
			i := strings.IndexAny(o.text, "\x1b\x07")
			t.Errorf("%s holds a raw control character: %q", o.what, o.text[max(0, i-60):min(len(o.text), i+40)])
		}
		// Escaped in JSON still decodes to the raw character on replay.
		if strings.Contains(o.text, `\u001b`) || strings.Contains(o.text, `\u0007`) {
			t.Errorf("%s keeps the escape as a JSON \\u001b, which decodes back to a raw ESC", o.what)
		}
		if !strings.Contains(o.text, "owned") && o.what != "doctor --json" {
			t.Errorf("%s does not show the request at all (it should show it, escaped)", o.what)
		}
	}
	// A renewal.json written before the fix keeps the raw escape (as JSON
	// \u001b): doctor must still not replay it.
	old := strings.NewReplacer(`\\x1b`, `\u001b`, `\\x07`, `\u0007`).Replace(string(rj))
	if old == string(rj) {
		t.Fatalf("renewal.json does not hold the escaped request:\n%s", rj)
	}
	if err := os.WriteFile(filepath.Join(state, "certs", "esc", "renewal.json"), []byte(old), 0o600); err != nil {
		t.Fatal(err)
	}
	doc = ipcert(t, nil, "doctor", "esc", "--offline", "--state-dir", state)
	if out := doc.stdout + doc.stderr; strings.ContainsAny(out, "\x1b\x07") || !strings.Contains(out, "owned") {
		t.Errorf("doctor replays an old renewal.json's escapes raw:\n%q", out)
	}
	if t.Failed() {
		return
	}
	figure(t, "attack-terminal-escapes", "a validator request for %s: shown escaped as \\x1b...\\x07 in the issue log, the debug log, renewal.json and doctor (text and --json); 0 raw control characters", evil)
}

// TestLeftoversOfKilledRunsCleaned: the temporary files a SIGKILLed run
// leaves (planted here with the names and modes the real writers use, an
// hour old) are removed by the next run that takes the lock; a fresh one,
// which a live run could own, is kept.
func TestLeftoversOfKilledRunsCleaned(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	args := []string{"issue", "--ip", "127.0.0.1", "--ca", "local", "--agree-tos", "--quiet", "--state-dir", state, "--name", "l"}
	if r := ipcert(t, nil, args...); r.code != 0 {
		t.Fatalf("first issuance: %s", r.stderr)
	}
	acct, _ := filepath.Glob(filepath.Join(state, "accounts", "*", "*"))
	if len(acct) != 1 {
		t.Fatalf("accounts: %v", acct)
	}
	cert := filepath.Join(state, "certs", "l")
	old := time.Now().Add(-time.Hour)
	stale := []string{
		filepath.Join(acct[0], ".key.pem.123456.tmp"),
		filepath.Join(cert, ".renewal.json.654321.tmp"),
		filepath.Join(cert, ".current.tmp-4242"),
		filepath.Join(state, ".renew-last-99"),
		filepath.Join(cert, "versions", ".tmp-777"),
	}
	for _, p := range stale {
		if strings.Contains(p, ".tmp-777") {
			os.MkdirAll(filepath.Join(p, "x"), 0o700)
		} else if err := os.WriteFile(p, []byte("half"), 0o600); err != nil {
			t.Fatal(err)
		}
		os.Chtimes(p, old, old)
	}
	fresh := filepath.Join(cert, ".renewal.json.111.tmp")
	os.WriteFile(fresh, []byte("a live run's"), 0o600)
	dry, err := os.MkdirTemp("", "ipcert-dry-run-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dry)
	os.WriteFile(filepath.Join(dry, "k"), []byte("x"), 0o600)
	older := time.Now().Add(-7 * time.Hour)
	os.Chtimes(dry, older, older)
	// The walk runs at most hourly (store/cleanup.go): as if the last one
	// was two hours ago.
	os.Chtimes(filepath.Join(state, ".cleaned"), older, older)

	if r := ipcert(t, nil, args...); r.code != 0 {
		t.Fatalf("second issuance: %s", r.stderr)
	}
	for _, p := range append(stale, dry) {
		if _, err := os.Lstat(p); err == nil {
			t.Errorf("the stale %s was not removed", p)
		}
	}
	if _, err := os.Stat(fresh); err != nil {
		t.Errorf("a fresh temporary file (a live run's) was removed: %v", err)
	}
	if t.Failed() {
		return
	}
	figure(t, "leftovers", "%d leftovers of a killed run (temp key, renewal.json, current link, renew report, half version, 7 h old dry-run store) removed by the next issue; a fresh temp file kept", len(stale)+1)
}
