package cluster

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/localca"
	"github.com/ipcert/ipcert/internal/testkit"
)

func runIpcert(t *testing.T, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command(testkit.Binary(t), args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + t.TempDir()}
	return testkit.Run(t, cmd)
}

// TestClusterWithTheBinary: three machines (state directories) join one
// cluster; each runs `ipcert agent` on its own port behind a round-robin
// balancer that the CA validates through; `ipcert issue --cluster` on the
// first orders for three addresses without a responder of its own (the
// agents answer from etcd), and every machine then serves the new
// certificate: `ipcert cluster status` says so, and each machine's current
// fullchain is the issuer's. A machine joining with another key is refused.
func TestClusterWithTheBinary(t *testing.T) {
	e := startEtcd(t)
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	out, errs, code := runIpcert(t, "cluster", "init", "--etcd", e.URL, "--state-dir", dirs[0])
	if code != 0 {
		t.Fatalf("cluster init: exit %d\n%s%s", code, errs, out)
	}
	if !strings.Contains(out, "ipcert cluster join --etcd "+e.URL+" --cluster-key FILE") {
		t.Errorf("init does not give the join command:\n%s", out)
	}
	key := filepath.Join(dirs[0], KeyFile)
	if st, err := os.Stat(key); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("cluster key: %v %v", st, err)
	}
	// Another key is refused, before anything is written.
	wrong := keyFile(t)
	bad := t.TempDir()
	if _, errs, code := runIpcert(t, "cluster", "join", "--etcd", e.URL, "--cluster-key", wrong, "--state-dir", bad); code != 1 || !strings.Contains(errs, "copy cluster.key from a machine already in the cluster") {
		t.Errorf("join with another key: exit %d\n%s", code, errs)
	}
	if _, err := os.Stat(filepath.Join(bad, ConfigFile)); err == nil {
		t.Error("a refused join left cluster.json")
	}
	for _, d := range dirs[1:] {
		if out, errs, code := runIpcert(t, "cluster", "join", "--etcd", e.URL, "--cluster-key", key, "--state-dir", d); code != 0 {
			t.Fatalf("cluster join: exit %d\n%s%s", code, errs, out)
		}
	}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	var targets []string
	for i, d := range dirs {
		// The agent binds it: a port from below the kernel's ephemeral
		// range, which no other connection takes meanwhile.
		addr := "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))
		targets = append(targets, addr)
		cmd := exec.CommandContext(ctx, testkit.Binary(t), "agent", "--state-dir", d, "--http-listen", addr, "--tls-listen", "", "--id", "m"+string(rune('1'+i)))
		log := &testkit.Buffer{}
		cmd.Stdout, cmd.Stderr = log, log
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cancel()
			_ = cmd.Wait()
			if t.Failed() {
				t.Logf("agent m%d:\n%s", i+1, log.String())
			}
		})
	}
	// Wait until the three agents are registered.
	waitStatus := func(ok func(map[string]any) bool) map[string]any {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			out, _, _ := runIpcert(t, "cluster", "status", "--json", "--state-dir", dirs[0])
			var st map[string]any
			if json.Unmarshal([]byte(out), &st) == nil && ok(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("cluster status never showed what was expected:\n%s", out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitStatus(func(st map[string]any) bool { ms, _ := st["machines"].([]any); return len(ms) == 3 })

	proxy := startRoundRobin(t, "0.0.0.0:0", targets) // keeps its port from the start
	port := proxy.l.Addr().(*net.TCPAddr).Port
	ca, err := localca.Start(localca.Options{HTTPPort: port, TLSPort: port})
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	root := filepath.Join(t.TempDir(), "ca-root.pem")
	if err := os.WriteFile(root, ca.ListenerRootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	out, errs, code = runIpcert(t, "issue", "--cluster", "--ip", "127.0.0.1", "--ip", "127.0.0.2", "--ip", "127.0.0.3", "--name", "shared",
		"--ca", ca.DirectoryURL(), "--ca-root", root, "--agree-tos", "--state-dir", dirs[0])
	t.Logf("issue --cluster: exit %d\n%s%s", code, errs, out)
	if code != 0 {
		t.Fatalf("issue --cluster: exit %d", code)
	}
	if !strings.Contains(errs, "Shared with the cluster as version 1 of shared") {
		t.Errorf("issue does not say it shared the certificate")
	}
	proxy.mu.Lock()
	counts := append([]int(nil), proxy.count...)
	proxy.mu.Unlock()
	if counts[1] == 0 || counts[2] == 0 {
		t.Errorf("the validator did not reach every machine: %v", counts)
	}
	waitStatus(func(st map[string]any) bool {
		cs, _ := st["certificates"].([]any)
		if len(cs) != 1 {
			return false
		}
		c := cs[0].(map[string]any)
		_, stale := c["stale_on"]
		return !stale
	})
	want, err := os.ReadFile(filepath.Join(dirs[0], "certs", "shared", "current", "fullchain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs[1:] {
		got, err := os.ReadFile(filepath.Join(d, "certs", "shared", "current", "fullchain.pem"))
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s serves another certificate than the issuer's: %v", d, err)
		}
	}
	out, _, code = runIpcert(t, "cluster", "status", "--state-dir", dirs[2])
	if code != 0 || !strings.Contains(out, "shared: version 1") || !strings.Contains(out, "served by every machine") {
		t.Errorf("cluster status: exit %d\n%s", code, out)
	}

	// Another machine renews it (the issuer may be gone): its agent wrote
	// renewal.json from the cluster's settings, without hooks.
	var settings map[string]any
	if b, err := os.ReadFile(filepath.Join(dirs[1], "certs", "shared", "renewal.json")); err != nil {
		t.Fatal(err)
	} else if err := json.Unmarshal(b, &settings); err != nil || settings["cluster"] != true || settings["deploy_hooks"] != nil {
		t.Fatalf("machine 2's renewal.json: %v\n%s", err, b)
	}
	out, errs, code = runIpcert(t, "renew", "--force", "--state-dir", dirs[1])
	t.Logf("renew --force on machine 2: exit %d\n%s%s", code, errs, out)
	if code != 10 || !strings.Contains(out, "shared: renewed") {
		t.Fatalf("renew --force on machine 2: exit %d, want 10", code)
	}
	waitStatus(func(st map[string]any) bool {
		cs, _ := st["certificates"].([]any)
		if len(cs) != 1 {
			return false
		}
		c := cs[0].(map[string]any)
		_, stale := c["stale_on"]
		return c["version"] == float64(2) && !stale
	})
	second, err := os.ReadFile(filepath.Join(dirs[1], "certs", "shared", "current", "fullchain.pem"))
	if err != nil || bytes.Equal(second, want) {
		t.Fatalf("machine 2 renewed nothing: %v", err)
	}
	for _, d := range []string{dirs[0], dirs[2]} {
		got, err := os.ReadFile(filepath.Join(d, "certs", "shared", "current", "fullchain.pem"))
		if err != nil || !bytes.Equal(got, second) {
			t.Errorf("%s does not serve machine 2's renewal: %v", d, err)
		}
	}

	// The store goes away: the machines keep serving, status --check
	// warns (the certificates are far from critical), and an order fails
	// closed before anything is sent.
	if out, _, code := runIpcert(t, "status", "--check", "--state-dir", dirs[0]); code != 0 {
		t.Fatalf("status --check with the store up: exit %d\n%s", code, out)
	}
	_ = e.cmd.Process.Kill()
	_ = e.cmd.Wait()
	out, _, code = runIpcert(t, "status", "--check", "--state-dir", dirs[0])
	if code != 1 || !strings.Contains(out, "cluster store unreachable") {
		t.Errorf("status --check with the store down: exit %d, want 1 (WARNING) naming the store\n%s", code, out)
	}
	out, errs, code = runIpcert(t, "issue", "--cluster", "--ip", "127.0.0.1", "--name", "shared", "--ca", ca.DirectoryURL(), "--ca-root", root, "--agree-tos", "--state-dir", dirs[0])
	if code != 1 || !strings.Contains(errs, "does not answer") || strings.Contains(errs, "Ordering") {
		t.Errorf("issue --cluster with the store down: exit %d, want 1 before ordering\n%s%s", code, errs, out)
	}
	if got, err := os.ReadFile(filepath.Join(dirs[2], "certs", "shared", "current", "fullchain.pem")); err != nil || !bytes.Equal(got, second) {
		t.Errorf("machine 3 stopped serving its certificate with the store down: %v", err)
	}
}
