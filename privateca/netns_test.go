package privateca

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/spec"
)

// needNetns skips (locally) or fails (CI=true) without root, ip and nft,
// as preflight's namespace tests do.
func needNetns(t *testing.T) {
	t.Helper()
	require(t, os.Geteuid() == 0, "it needs root (network namespaces)")
	_, err := exec.LookPath("ip")
	require(t, err == nil, "it needs ip (apt-get install -y iproute2)")
}

func sh(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// privateLAN makes two namespaces joined by a veth pair, the CA at
// 10.77.0.1 and the host at 10.77.0.2, and returns their names. Nothing
// in them routes anywhere else.
func privateLAN(t *testing.T) (caNS, hostNS string) {
	t.Helper()
	prefix := fmt.Sprintf("ipcpca%d-", os.Getpid()%100000)
	caNS, hostNS = prefix+"ca", prefix+"host"
	for _, n := range []string{caNS, hostNS} {
		sh(t, "ip", "netns", "add", n)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", n).Run() })
		sh(t, "ip", "netns", "exec", n, "ip", "link", "set", "lo", "up")
	}
	sh(t, "ip", "link", "add", "cveth", "netns", caNS, "type", "veth", "peer", "name", "hveth", "netns", hostNS)
	sh(t, "ip", "netns", "exec", caNS, "ip", "addr", "add", "10.77.0.1/24", "dev", "cveth")
	sh(t, "ip", "netns", "exec", caNS, "ip", "link", "set", "cveth", "up")
	sh(t, "ip", "netns", "exec", hostNS, "ip", "addr", "add", "10.77.0.2/24", "dev", "hveth")
	sh(t, "ip", "netns", "exec", hostNS, "ip", "link", "set", "hveth", "up")
	return caNS, hostNS
}

// TestStepCAPrivateAddress: an internal service at a private address
// (10.77.0.2) gets its certificate from the organisation's step-ca at
// another private address, validated over the LAN on the real ports 80
// and 443 (step-ca's defaults: no test flags), with http-01 and
// tls-alpn-01, then renews. Before the fix the address was refused
// locally ("Let's Encrypt refuses it") because any CA not on loopback was
// held to Let's Encrypt's address policy.
func TestStepCAPrivateAddress(t *testing.T) {
	needNetns(t)
	caNS, hostNS := privateLAN(t)
	const validity = 20 * time.Hour
	ca := startStepCA(t, caOpts{Host: "10.77.0.1", Netns: caNS, Validity: validity})
	ip := netip.MustParseAddr("10.77.0.2")
	state := t.TempDir()

	// preflight for this CA leaves the address to the CA's own policy.
	out, errs, code := ipcert(t, hostNS, "preflight", "--ip", ip.String(), "--ca", ca.Directory, "--only", "address", "--json")
	var rep struct {
		Results []struct{ ID, Status, Summary string } `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Results) != 1 {
		t.Fatalf("preflight --json (exit %d): %v\n%s%s", code, err, out, errs)
	}
	if r := rep.Results[0]; code != 0 || r.Status != "ok" || !strings.Contains(r.Summary, "CA's own policy") {
		t.Errorf("preflight --ca %s for %s: exit %d, %+v; want ok, left to the CA's policy", ca.Directory, ip, code, r)
	}

	for _, c := range []struct {
		name      string
		challenge spec.Challenge
	}{
		{"lan-http", acmeflow.ChallengeHTTP01},
		{"lan-tls", acmeflow.ChallengeTLSALPN01},
	} {
		out, errs := mustIpcert(t, hostNS, "issue", "--ip", ip.String(), "--name", c.name, "--ca", ca.Directory, "--ca-root", ca.PKI.RootFile,
			"--challenge", string(c.challenge), "--agree-tos", "--state-dir", state)
		t.Logf("issue %s:\n%s%s", c.name, errs, out)
		checkNoProfileNotice(t, errs)
		// The validator came from the CA's address, over the LAN, to the
		// real port.
		port := ":80"
		if c.challenge == acmeflow.ChallengeTLSALPN01 {
			port = ":443"
		}
		if !strings.Contains(errs, "validator 10.77.0.1:") || !strings.Contains(errs, "-> 10.77.0.2"+port) {
			t.Errorf("%s: no validator request from 10.77.0.1 to 10.77.0.2%s in the output", c.name, port)
		}
		checkCert(t, ca, state, c.name, ip, validity)
	}
	out, errs, code = ipcert(t, hostNS, "renew", "--force", "--state-dir", state)
	t.Logf("renew --force:\n%s%s", errs, out)
	if code != 10 || !strings.Contains(out, "lan-http: renewed, version 2") || !strings.Contains(out, "lan-tls: renewed, version 2") {
		t.Fatalf("renew --force: exit %d (want 10), output:\n%s%s", code, out, errs)
	}
	// A 20-hour certificate is always less than a day from expiry: that
	// is no reason to warn on every run (it once did).
	if strings.Contains(errs, "warning:") {
		t.Errorf("renewing 20-hour certificates from a CA without ARI logged a warning:\n%s", errs)
	}
	for _, name := range []string{"lan-http", "lan-tls"} {
		checkCert(t, ca, state, name, ip, validity)
	}
}
