// Package testkit is what the tests of several packages share: the one
// rule for tests that need a real program, root or a system
// (skip with a message locally, fail when CI=true, since .ci/run installs
// everything), and the ipcert binary built once for all of them.
package testkit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/ipcert/ipcert/internal/ports"
)

// Need skips t with why when ok is false, or fails it under CI=true: CI
// must run every test.
func Need(t testing.TB, ok bool, why string) {
	t.Helper()
	if ok {
		return
	}
	if os.Getenv("CI") == "true" {
		t.Fatalf("CI must run this test, but %s", why)
	}
	t.Skip("skipped: " + why)
}

// NeedRoot is Need for root.
func NeedRoot(t testing.TB, what string) {
	t.Helper()
	Need(t, os.Geteuid() == 0, what+" needs root")
}

// NeedProgram finds a real program (also in /usr/sbin and /sbin), or
// skips / fails as Need does, naming the Debian package to install.
func NeedProgram(t testing.TB, name, pkg string) string {
	t.Helper()
	for _, p := range []string{name, "/usr/sbin/" + name, "/sbin/" + name} {
		if path, err := exec.LookPath(p); err == nil {
			return path
		}
	}
	Need(t, false, fmt.Sprintf("%s is not installed (apt-get install -y %s)", name, pkg))
	return ""
}

// NeedIPv6Loopback is Need for ::1: a machine or container with IPv6
// turned off skips (fails under CI=true, whose runner has it).
func NeedIPv6Loopback(t testing.TB) {
	t.Helper()
	ln, err := net.Listen("tcp6", "[::1]:0")
	if err == nil {
		ln.Close()
	}
	Need(t, err == nil, fmt.Sprintf("this machine has no IPv6 loopback (%v)", err))
}

// RepoRoot is the checkout's top folder.
func RepoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(filepath.Dir(file)))
}

// Run runs cmd with its output captured and returns its stdout, stderr
// and exit code (the built binary, run directly, in a namespace or through
// env); a command that could not be started at all fails the test.
func Run(t testing.TB, cmd *exec.Cmd) (stdout, stderr string, code int) {
	t.Helper()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("run %s: %v", strings.Join(cmd.Args, " "), err)
	}
	return out.String(), errb.String(), code
}

// Binary is the static ipcert binary of this checkout, built once for
// every test package of a run (and kept between runs while the sources
// are the same): keyed by a hash of the sources, under a lock.
func Binary(t testing.TB) string {
	t.Helper()
	bin, err := BinaryPath()
	if err != nil {
		t.Fatal(err)
	}
	return bin
}

// BinaryPath is Binary for TestMain.
func BinaryPath() (string, error) {
	root := RepoRoot()
	key, err := sourceHash(root)
	if err != nil {
		return "", err
	}
	dir := filepath.Join(os.TempDir(), "ipcert-testbin")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", err
	}
	// Reachable for other users: tests run it as nobody too.
	_ = os.Chmod(dir, 0o755)
	bin := filepath.Join(dir, "ipcert-"+key)
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return "", err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return "", err
	}
	defer syscall.Flock(int(lock.Fd()), syscall.LOCK_UN)
	if fi, err := os.Stat(bin); err == nil && fi.Mode().IsRegular() {
		return bin, nil
	}
	tmp := bin + ".tmp"
	cmd := exec.Command("go", "build", "-o", tmp, ".")
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("build ipcert: %v\n%s", err, out)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return "", err
	}
	return bin, os.Rename(tmp, bin)
}

// sourceHash hashes every non-test Go file and go.mod/go.sum of root.
func sourceHash(root string) (string, error) {
	h := sha256.New()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		name := d.Name()
		if d.IsDir() {
			if p != root && (strings.HasPrefix(name, ".") || name == "testdata" || name == "bin") {
				return filepath.SkipDir
			}
			return nil
		}
		if !(strings.HasSuffix(name, ".go") && !strings.HasSuffix(name, "_test.go")) && name != "go.mod" && name != "go.sum" {
			return nil
		}
		f, err := os.Open(p)
		if err != nil {
			return err
		}
		defer f.Close()
		rel, _ := filepath.Rel(root, p)
		io.WriteString(h, rel+"\x00")
		_, err = io.Copy(h, f)
		return err
	})
	if err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil))[:16], nil
}

// Buffer is a bytes.Buffer safe for concurrent writers and readers: the
// output of a program a test runs in the background.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// FreePort is a TCP port free on 127.0.0.1 (and ::1), drawn from outside
// the kernel's ephemeral range (internal/ports), for a test server or a
// responder.
func FreePort(t testing.TB) int {
	t.Helper()
	p, err := ports.Free("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	return p
}
