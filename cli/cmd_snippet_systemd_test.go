package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/testkit"
)

// systemdRootfs is a pristine Debian rootfs with systemd and nginx
// (REAL-SYSTEMS.md: debootstrap --include=systemd,systemd-sysv,dbus,nginx,...),
// cached on the machine under /var/cache/ipcert-test.
func systemdRootfs(t *testing.T) string {
	t.Helper()
	dirs, _ := filepath.Glob("/var/cache/ipcert-test/rootfs-bookworm-*")
	for _, d := range dirs {
		if _, err := os.Stat(filepath.Join(d, "usr", "sbin", "nginx")); err != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, "lib", "systemd", "systemd")); err == nil {
			return d
		}
	}
	if os.Getenv("CI") != "true" {
		t.Skip("no cached Debian rootfs with systemd and nginx in /var/cache/ipcert-test (see REAL-SYSTEMS.md; CI=true builds one)")
	}
	// CI builds and caches it (about 45 s): in a temporary directory
	// renamed into place, so an interrupted run leaves no half rootfs.
	if _, err := exec.LookPath("debootstrap"); err != nil {
		t.Fatal("debootstrap missing: apt-get install -y debootstrap (CI=true)")
	}
	if err := os.MkdirAll("/var/cache/ipcert-test", 0o755); err != nil {
		t.Fatal(err)
	}
	tmp, err := os.MkdirTemp("/var/cache/ipcert-test", ".rootfs-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	out, err := exec.Command("debootstrap", "--variant=minbase", "--include=systemd,systemd-sysv,dbus,nginx,procps,iproute2,openssl",
		"bookworm", tmp, "http://deb.debian.org/debian").CombinedOutput()
	if err != nil {
		t.Fatalf("debootstrap: %v\n%s", err, out)
	}
	final := "/var/cache/ipcert-test/rootfs-bookworm-issue14"
	if err := os.Rename(tmp, final); err != nil {
		t.Fatal(err)
	}
	return final
}

// bootSystemd boots a copy of the rootfs with systemd-nspawn on its own
// network (so nothing leaves it, and 80/443 are its own), with ipcert
// built into /usr/local/bin, and returns a function running a shell
// script inside. The container is powered off when the test ends.
func bootSystemd(t *testing.T) func(script string) (string, error) {
	t.Helper()
	if testing.Short() {
		t.Skip("systemd container: not in -short")
	}
	if os.Geteuid() != 0 {
		if os.Getenv("CI") == "true" {
			t.Fatal("needs root for systemd-nspawn (CI=true)")
		}
		t.Skip("needs root for systemd-nspawn")
	}
	nspawn, err := exec.LookPath("systemd-nspawn")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("systemd-nspawn missing: apt-get install -y systemd-container (CI=true)")
		}
		t.Skip("systemd-nspawn missing (apt-get install -y systemd-container)")
	}
	src := systemdRootfs(t)
	root := filepath.Join(t.TempDir(), "rootfs")
	if out, err := exec.Command("cp", "-a", src, root).CombinedOutput(); err != nil {
		t.Fatalf("copy rootfs: %v %s", err, out)
	}
	if out, err := exec.Command("cp", testkit.Binary(t), filepath.Join(root, "usr", "local", "bin", "ipcert")).CombinedOutput(); err != nil {
		t.Fatalf("install ipcert: %v %s", err, out)
	}
	name := fmt.Sprintf("ipcert-t14-%d", os.Getpid())
	logf, err := os.Create(filepath.Join(filepath.Dir(root), "nspawn.log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(nspawn, "-D", root, "--boot", "--private-network", "--register=no", "--keep-unit", "--machine="+name)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	var inner int
	run := func(script string) (string, error) {
		out, err := exec.Command("nsenter", "-t", strconv.Itoa(inner), "-a", "/bin/sh", "-c", script).CombinedOutput()
		return string(out), err
	}
	t.Cleanup(func() {
		if inner != 0 {
			run("systemctl poweroff")
		}
		select {
		case <-done:
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
	// The container's systemd is a child of the nspawn process.
	deadline := time.Now().Add(60 * time.Second)
	for inner == 0 {
		entries, _ := os.ReadDir("/proc")
		for _, e := range entries {
			pid, err := strconv.Atoi(e.Name())
			if err != nil {
				continue
			}
			comm, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "comm"))
			stat, _ := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
			f := strings.Fields(string(stat[strings.LastIndexByte(string(stat), ')')+1:]))
			if strings.TrimSpace(string(comm)) == "systemd" && len(f) > 1 && f[1] == strconv.Itoa(cmd.Process.Pid) {
				inner = pid
			}
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			t.Fatalf("the container's systemd did not appear:\n%s", log)
		}
		time.Sleep(50 * time.Millisecond)
	}
	for {
		out, _ := run("systemctl is-system-running")
		if s := strings.TrimSpace(out); s == "running" || s == "degraded" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("systemd in the container did not finish booting: %s", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	return run
}

// TestSnippetWriteSystemd: in a Debian system booted with systemd, with
// nginx.service active, --write reloads it (the new certificate is served);
// with the service stopped and only a private nginx running, it asks
// "systemctl is-active nginx", reloads nothing and says so, exit 0 (before,
// process names said "running", systemctl reload failed on the inactive
// unit, and --write reported a failed reload with exit 1).
func TestSnippetWriteSystemd(t *testing.T) {
	run := bootSystemd(t)
	const st = "--state-dir /root/st"
	if out, err := run("ipcert issue --ca local --ip 127.0.0.1 --agree-tos --quiet " + st); err != nil {
		t.Fatalf("issue: %v %s", err, out)
	}
	if out, _ := run("systemctl is-active nginx"); strings.TrimSpace(out) != "active" {
		t.Fatalf("nginx.service: %s", out)
	}
	out, err := run("ipcert snippet nginx 127.0.0.1 --write --https-port 8443 --http-port 8080 " + st)
	if err != nil || !strings.Contains(out, "reloaded nginx") {
		t.Fatalf("active service: %v\n%s", err, out)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		out, err := run("ipcert verify 127.0.0.1:8443 --root /root/st/certs/127.0.0.1/current/root.pem --timeout 2s " + st)
		if err == nil && strings.Contains(out, "MATCH") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("verify after the reload: %v\n%s", err, out)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// The service stopped, a private nginx running: nothing to reload.
	if out, err := run(`systemctl stop nginx && mkdir -p /root/p && printf 'pid /root/p/nginx.pid;\nerror_log /root/p/error.log;\nevents {}\nhttp { server { listen 127.0.0.1:9000; } }\n' > /root/p/nginx.conf && nginx -c /root/p/nginx.conf`); err != nil {
		t.Fatalf("private nginx: %v %s", err, out)
	}
	out, err = run("ipcert snippet nginx 127.0.0.1 --write --https-port 8444 --http-port 8080 " + st)
	if err != nil || strings.Contains(out, "reloaded nginx") || !strings.Contains(out, "Not reloaded: the nginx service is not running (systemctl is-active nginx: inactive)") ||
		!strings.Contains(out, "Some nginx process is running that the service manager did not start") || !strings.Contains(out, "sudo systemctl start nginx") {
		t.Fatalf("stopped service beside a private nginx: %v\n%s", err, out)
	}
}
