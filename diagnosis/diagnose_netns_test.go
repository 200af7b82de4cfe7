package diagnosis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/testkit"
)

// TestReproTimeoutInNetns reproduces "Timeout during connect" for real: the
// identifier is an address inside a network namespace the test creates,
// where nftables drops the validator's packets. It needs root and
// ip/nft, so it runs in CI (.ci/run) and skips elsewhere. Traffic stays on
// the veth pair between this namespace and the test's own.
func TestReproTimeoutInNetns(t *testing.T) {
	need := func(format string, args ...any) {
		t.Helper()
		testkit.Need(t, false, fmt.Sprintf(format, args...))
	}
	if os.Geteuid() != 0 {
		need("needs root to create a network namespace")
	}
	for _, tool := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			need("needs %s (iproute2, nftables)", tool)
		}
	}
	run := func(args ...string) {
		t.Helper()
		out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
		if err != nil {
			need("%s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	id := rand.IntN(0xffff)
	ns := fmt.Sprintf("ipcdiag%04x", id)
	host, peer := fmt.Sprintf("ipcd%04xh", id), fmt.Sprintf("ipcd%04xn", id)
	// 198.18.0.0/15 is reserved for benchmark networks (RFC 2544): it
	// collides with nothing real.
	third := 1 + id%250
	hostAddr := fmt.Sprintf("198.18.%d.1", third)
	nsAddr := netip.MustParseAddr(fmt.Sprintf("198.18.%d.2", third))
	run("ip", "netns", "add", ns)
	t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
	run("ip", "link", "add", host, "type", "veth", "peer", "name", peer)
	t.Cleanup(func() { exec.Command("ip", "link", "del", host).Run() })
	run("ip", "link", "set", peer, "netns", ns)
	run("ip", "addr", "add", hostAddr+"/30", "dev", host)
	run("ip", "link", "set", host, "up")
	run("ip", "netns", "exec", ns, "ip", "addr", "add", nsAddr.String()+"/30", "dev", peer)
	run("ip", "netns", "exec", ns, "ip", "link", "set", peer, "up")
	run("ip", "netns", "exec", ns, "ip", "link", "set", "lo", "up")

	port := testkit.FreePort(t)
	run("ip", "netns", "exec", ns, "nft", fmt.Sprintf(
		"add table inet ipcert; add chain inet ipcert input { type filter hook input priority 0; policy accept; }; add rule inet ipcert input tcp dport %d drop", port))
	// Without the rule the kernel in the namespace would answer with a
	// reset; make sure the drop is what the validator meets.
	c, err := net.DialTimeout("tcp", net.JoinHostPort(nsAddr.String(), strconv.Itoa(port)), 500*time.Millisecond)
	if err == nil {
		c.Close()
		t.Fatal("the namespace accepted a connection; the drop rule is not in place")
	}
	if !isTimeout(err) {
		t.Fatalf("dial into the namespace: %v, want a timeout", err)
	}

	ca := diagCA(t, port, 0)
	req := diagRequest(ca, acmeflow.ChallengeHTTP01, testkit.FreePort(t))
	req.Identifiers = []netip.Addr{nsAddr}
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	_, err = newEngine(t).Obtain(ctx, req)
	if err == nil {
		t.Fatal("issuance succeeded through a dropping firewall")
	}
	ae, ok := err.(*acmeflow.Error)
	if !ok {
		t.Fatalf("%T %v", err, err)
	}
	t.Logf("failed after %s: %v", time.Since(start).Round(time.Millisecond), ae)
	d := Diagnose(ae, Evidence{Challenge: acmeflow.ChallengeHTTP01, HTTPPort: port, Firewall: []string{fmt.Sprintf("nftables inet ipcert input: tcp dport %d drop", port)}})
	checkDiag(t, d, diagWant{code: DiagConnectTimeout, cause: []string{"never got an answer", "host firewall blocks it"}, fix: []string{"open tcp port"},
		evidence: []string{"no validator request reached our responder", "firewall: nftables"}})
}
