package realsys

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/testkit"
)

// require skips (locally) or fails (CI=true) when the test cannot run.
func require(t *testing.T, ok bool, why string) {
	t.Helper()
	testkit.Need(t, ok, why)
}

func repoRoot() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Dir(filepath.Dir(file))
}

// buildIpcert builds the static binary into dir.
func buildIpcert(t *testing.T, _ string) string {
	t.Helper()
	return testkit.Binary(t)
}

// container is a Debian system booted with systemd-nspawn --boot
// --private-network: its own PID 1, its own loopback (80/443 are its
// own), nothing it sends leaves it.
type container struct {
	t      *testing.T
	root   string
	nspawn *exec.Cmd
	pid1   int // the container's systemd, seen from the host
	log    *bytes.Buffer
}

// bootContainer copies the cached pristine rootfs, puts the ipcert binary
// in /usr/local/bin (unless bin is empty) and boots it.
func bootContainer(t *testing.T, bin string) *container {
	t.Helper()
	require(t, os.Geteuid() == 0, "it needs root (systemd-nspawn)")
	_, err := exec.LookPath("systemd-nspawn")
	require(t, err == nil, "systemd-nspawn is not installed (apt-get install -y systemd-container debootstrap)")
	out, err := exec.Command("bash", filepath.Join(repoRoot(), "scripts", "rootfs")).Output()
	if err != nil {
		msg := err.Error()
		if ee, ok := err.(*exec.ExitError); ok {
			msg = strings.TrimSpace(string(ee.Stderr))
		}
		require(t, false, "no Debian rootfs (scripts/rootfs): "+msg)
	}
	pristine := strings.TrimSpace(string(out))
	root := filepath.Join(t.TempDir(), "rootfs")
	if out, err := exec.Command("cp", "-a", pristine, root).CombinedOutput(); err != nil {
		t.Fatalf("copy rootfs: %v\n%s", err, out)
	}
	if bin != "" {
		if out, err := exec.Command("cp", bin, filepath.Join(root, "usr/local/bin/ipcert")).CombinedOutput(); err != nil {
			t.Fatalf("install ipcert: %v\n%s", err, out)
		}
	}
	c := &container{t: t, root: root, log: &bytes.Buffer{}}
	name := fmt.Sprintf("ipcert-test-%d", os.Getpid())
	c.nspawn = exec.Command("systemd-nspawn", "-D", root, "--boot", "--private-network",
		"--register=no", "--keep-unit", "--machine="+name)
	c.nspawn.Stdout, c.nspawn.Stderr = c.log, c.log
	c.nspawn.Stdin = nil
	c.nspawn.SysProcAttr = newSession()
	if err := c.nspawn.Start(); err != nil {
		t.Fatalf("start systemd-nspawn: %v", err)
	}
	t.Cleanup(c.stop)
	deadline := time.Now().Add(60 * time.Second)
	for c.pid1 == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("the container's systemd did not appear within 60 s; nspawn said:\n%s", c.log)
		}
		c.pid1 = findDescendant(c.nspawn.Process.Pid, "systemd")
		time.Sleep(100 * time.Millisecond)
	}
	for {
		state, _ := c.sh("systemctl is-system-running")
		state = strings.TrimSpace(state)
		if state == "running" || state == "degraded" {
			break
		}
		if time.Now().After(deadline) {
			failed, _ := c.sh("systemctl --failed --no-legend")
			t.Fatalf("the container did not finish booting (state %q); failed units:\n%s\nnspawn:\n%s", state, failed, c.log)
		}
		time.Sleep(200 * time.Millisecond)
	}
	return c
}

func (c *container) stop() {
	if c.nspawn.Process == nil {
		return
	}
	if c.pid1 != 0 {
		_, _ = c.sh("systemctl poweroff")
	}
	done := make(chan struct{})
	go func() { _ = c.nspawn.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		_ = c.nspawn.Process.Kill()
		<-done
	}
}

// sh runs a shell command inside the container (all of its namespaces),
// with a clean environment, and returns its combined output.
func (c *container) sh(script string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "nsenter", "-t", strconv.Itoa(c.pid1), "-a",
		"/usr/bin/env", "-i", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME=/root", "LANG=C.UTF-8",
		"/bin/sh", "-c", script)
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// must runs script and fails the test when it exits non-zero.
func (c *container) must(script string) string {
	c.t.Helper()
	out, err := c.sh(script)
	if err != nil {
		c.t.Fatalf("in the container: %s: %v\n%s", script, err, out)
	}
	return out
}

// findDescendant is the first process below pid (breadth first) whose
// name is comm.
func findDescendant(pid int, comm string) int {
	children := map[int][]int{}
	names := map[int]string{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// pid (comm) state ppid ...
		s := string(stat)
		open, close := strings.IndexByte(s, '('), strings.LastIndexByte(s, ')')
		if open < 0 || close < open {
			continue
		}
		names[p] = s[open+1 : close]
		f := strings.Fields(s[close+1:])
		if len(f) < 2 {
			continue
		}
		pp, _ := strconv.Atoi(f[1])
		children[pp] = append(children[pp], p)
	}
	queue := children[pid]
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if names[p] == comm {
			return p
		}
		queue = append(queue, children[p]...)
	}
	return 0
}
