package boulderca

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/boulder"
	"github.com/ipcert/ipcert/internal/testkit"
)

// clusterNet is three machines behind a load-balancing router, etcd in a
// namespace of its own, and the Boulder stack's namespace (its primary VA
// and three remote perspectives) on the router's other side. The router
// sends each new connection to the address to the next machine
// (nftables numgen: a deterministic round robin, as a load balancer does;
// an ECMP hash spreads the same way, by chance).
type clusterNet struct {
	s        *boulder.Stack
	addr     string // the shared address
	machines []string
	etcdURL  string
	prefix   string
}

// sharedBase numbers the shared addresses, one per run (Boulder counts
// certificates per address set): on no machine's interface, the router
// balances them.
var sharedBase atomic.Int32

func nsRun(t *testing.T, ns string, args ...string) {
	t.Helper()
	full := append([]string{"ip", "netns", "exec", ns}, args...)
	if out, err := exec.Command(full[0], full[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(full, " "), err, out)
	}
}

func run(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func newClusterNet(t *testing.T, s *boulder.Stack) *clusterNet {
	t.Helper()
	testkit.NeedProgram(t, "etcd", "etcd-server")
	testkit.NeedProgram(t, "nft", "nftables")
	p := fmt.Sprintf("ipcc%d-", os.Getpid()%100000)
	sharedAddr := fmt.Sprintf("64.112.116.%d", 10+sharedBase.Add(1))
	cn := &clusterNet{s: s, addr: sharedAddr, prefix: p}
	rtr, db := p+"rtr", p+"db"
	names := []string{rtr, db}
	for i := 1; i <= 3; i++ {
		cn.machines = append(cn.machines, fmt.Sprintf("%sm%d", p, i))
	}
	names = append(names, cn.machines...)
	for _, n := range names {
		_ = exec.Command("ip", "netns", "del", n).Run()
		run(t, "ip", "netns", "add", n)
		t.Cleanup(func() {
			_ = exec.Command("ip", "netns", "del", n).Run()
			_ = os.RemoveAll(filepath.Join("/etc/netns", n))
		})
		nsRun(t, n, "ip", "link", "set", "lo", "up")
	}
	veth := func(a, aName, aAddr, b, bName, bAddr string) {
		run(t, "ip", "link", "add", aName, "netns", a, "type", "veth", "peer", "name", bName, "netns", b)
		nsRun(t, a, "ip", "addr", "add", aAddr, "dev", aName)
		nsRun(t, a, "ip", "link", "set", aName, "up")
		nsRun(t, b, "ip", "addr", "add", bAddr, "dev", bName)
		nsRun(t, b, "ip", "link", "set", bName, "up")
	}
	// Boulder's namespace <-> the router.
	veth(s.NS, "ipccb", "10.210.0.2/24", rtr, "ipccr", "10.210.0.1/24")
	nsRun(t, s.NS, "ip", "route", "add", "10.211.0.0/16", "via", "10.210.0.1")
	nsRun(t, s.NS, "ip", "route", "add", "10.212.0.0/24", "via", "10.210.0.1")
	nsRun(t, s.NS, "ip", "route", "add", sharedAddr+"/32", "via", "10.210.0.1")
	// etcd's namespace.
	veth(db, "ipccd", "10.212.0.2/24", rtr, "ipccrd", "10.212.0.1/24")
	nsRun(t, db, "ip", "route", "add", "default", "via", "10.212.0.1")
	// The machines: each reaches Boulder's WFE (10.77.77.77, "boulder")
	// and etcd through the router.
	for i, m := range cn.machines {
		veth(m, "eth0", fmt.Sprintf("10.211.%d.2/24", i+1), rtr, fmt.Sprintf("ipccm%d", i+1), fmt.Sprintf("10.211.%d.1/24", i+1))
		nsRun(t, m, "ip", "route", "add", "default", "via", fmt.Sprintf("10.211.%d.1", i+1))
		etc := filepath.Join("/etc/netns", m)
		if err := os.MkdirAll(etc, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(etc, "hosts"), []byte("127.0.0.1 localhost\n10.77.77.77 boulder\n"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	nsRun(t, rtr, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	nsRun(t, rtr, "ip", "route", "add", "10.77.77.77/32", "via", "10.210.0.2")
	rules := fmt.Sprintf(`table ip lb {
  chain pre {
    type nat hook prerouting priority dstnat;
    ip daddr %s tcp dport { 80, 443 } dnat to numgen inc mod 3 map { 0 : 10.211.1.2, 1 : 10.211.2.2, 2 : 10.211.3.2 }
  }
}
`, sharedAddr)
	f := filepath.Join(t.TempDir(), "lb.nft")
	if err := os.WriteFile(f, []byte(rules), 0o644); err != nil {
		t.Fatal(err)
	}
	nsRun(t, rtr, "nft", "-f", f)

	// etcd, in its own namespace.
	etcdBin := testkit.NeedProgram(t, "etcd", "etcd-server")
	cn.etcdURL = "http://10.212.0.2:2379"
	cmd := exec.Command("ip", "netns", "exec", db, etcdBin, "--name", "c", "--data-dir", filepath.Join(t.TempDir(), "etcd"),
		"--listen-client-urls", cn.etcdURL, "--advertise-client-urls", cn.etcdURL,
		"--listen-peer-urls", "http://127.0.0.1:2380", "--initial-advertise-peer-urls", "http://127.0.0.1:2380",
		"--initial-cluster", "c=http://127.0.0.1:2380", "--log-level", "warn")
	log := &testkit.Buffer{}
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := s.Dial(context.Background(), "tcp", "10.212.0.2:2379") // from Boulder's side, through the router
		if err == nil {
			c.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd did not listen in 20 s:\n%s", log.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	return cn
}

// in runs the built binary in machine i's namespace.
func (cn *clusterNet) in(t *testing.T, i int, args ...string) (string, string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", cn.machines[i], testkit.Binary(t)}, args...)...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + t.TempDir()}
	return testkit.Run(t, cmd)
}

// TestBoulderClusterBehindBalancer: one address served by three machines
// behind a balancer; Boulder validates from its primary VA and three remote
// perspectives, and each connection reaches the next machine. The control
// first: a machine that answers alone (the others' agents hold no answer)
// fails validation. Then the machines form a cluster over etcd, each runs
// `ipcert agent`, `ipcert issue --cluster` orders from one of them, every
// validator is answered by whichever machine it reached, and every machine
// serves the certificate.
func TestBoulderClusterBehindBalancer(t *testing.T) {
	s := boulderStack(t)
	cn := newClusterNet(t, s)
	dirs := []string{t.TempDir(), t.TempDir(), t.TempDir()}
	if out, errs, code := cn.in(t, 0, "cluster", "init", "--etcd", cn.etcdURL, "--state-dir", dirs[0]); code != 0 {
		t.Fatalf("cluster init: exit %d\n%s%s", code, errs, out)
	}
	for i := 1; i < 3; i++ {
		if out, errs, code := cn.in(t, i, "cluster", "join", "--etcd", cn.etcdURL, "--cluster-key", filepath.Join(dirs[0], "cluster.key"), "--state-dir", dirs[i]); code != 0 {
			t.Fatalf("cluster join m%d: exit %d\n%s%s", i+1, code, errs, out)
		}
	}
	// Agents on machines 2 and 3 (machine 1 answers alone first).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logs := make([]*testkit.Buffer, 3)
	agents := make([]*exec.Cmd, 3)
	startAgent := func(i int) {
		logs[i] = &testkit.Buffer{}
		cmd := exec.CommandContext(ctx, "ip", "netns", "exec", cn.machines[i], testkit.Binary(t), "agent", "--state-dir", dirs[i], "--id", fmt.Sprintf("m%d", i+1),
			"--address", fmt.Sprintf("10.211.%d.2", i+1))
		agents[i] = cmd
		cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + t.TempDir()}
		cmd.Stdout, cmd.Stderr = logs[i], logs[i]
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			cancel()
			if cmd.ProcessState == nil {
				_ = cmd.Wait()
			}
			if t.Failed() {
				t.Logf("agent m%d:\n%s", i+1, logs[i].String())
			}
		})
		// Listening once it said so.
		deadline := time.Now().Add(20 * time.Second)
		for !strings.Contains(logs[i].String(), "answering validators") {
			if time.Now().After(deadline) {
				t.Fatalf("agent m%d did not start:\n%s", i+1, logs[i].String())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	startAgent(1)
	startAgent(2)

	ca := []string{"--ca", s.Directory, "--ca-root", s.TLSRoot, "--agree-tos"}
	sharedAddr := cn.addr
	out, errs, code := cn.in(t, 0, append([]string{"issue", "--ip", sharedAddr, "--name", "alone", "--state-dir", t.TempDir()}, ca...)...)
	t.Logf("control, machine 1 alone: exit %d\n%s%s", code, errs, out)
	if code == 0 {
		t.Fatal("the control succeeded: one machine answered validators that the balancer sent to all three")
	}

	startAgent(0)
	out, errs, code = cn.in(t, 0, append([]string{"issue", "--cluster", "--ip", sharedAddr, "--name", "shared", "--state-dir", dirs[0]}, ca...)...)
	t.Logf("issue --cluster: exit %d\n%s%s", code, errs, out)
	if code != 0 {
		t.Fatalf("issue --cluster behind the balancer: exit %d", code)
	}
	answered := 0
	for i := range 3 {
		if strings.Contains(logs[i].String(), "answered=true") {
			answered++
		}
	}
	if answered < 3 {
		t.Errorf("%d machines answered validators, want all 3", answered)
	}
	// Every machine serves it.
	deadline := time.Now().Add(30 * time.Second)
	for {
		out, _, code := cn.in(t, 1, "cluster", "status", "--state-dir", dirs[1])
		if code == 0 && strings.Contains(out, "served by every machine") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("cluster status never said every machine serves it:\n%s", out)
		}
		time.Sleep(200 * time.Millisecond)
	}
	want, err := os.ReadFile(filepath.Join(dirs[0], "certs", "shared", "current", "fullchain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs[1:] {
		if got, err := os.ReadFile(filepath.Join(d, "certs", "shared", "current", "fullchain.pem")); err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s does not hold the cluster's certificate: %v", d, err)
		}
	}

	// Machine 3's agent stops (its registration outlives it by up to 30 s):
	// the next order is refused before anything is sent, naming it, rather
	// than burning a failed validation.
	_ = agents[2].Process.Kill()
	_ = agents[2].Wait()
	out, errs, code = cn.in(t, 0, append([]string{"issue", "--cluster", "--ip", sharedAddr, "--name", "shared", "--state-dir", dirs[0]}, ca...)...)
	t.Logf("issue --cluster with machine 3 down: exit %d\n%s%s", code, errs, out)
	if code != 1 || !strings.Contains(errs, "not every machine answers the validators") || !strings.Contains(errs, "m3 at 10.211.3.2") {
		t.Errorf("an order with a machine down: exit %d, want 1 naming m3 before ordering", code)
	}
	if strings.Contains(errs, "Ordering") {
		t.Errorf("it ordered although a machine was down")
	}
}
