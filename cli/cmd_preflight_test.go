package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/preflight"
)

// deadPort is a loopback port with nothing listening.
func deadPort(t *testing.T, network string) string {
	t.Helper()
	host := "127.0.0.1"
	if network == "tcp6" {
		host = "[::1]"
	}
	ln, err := net.Listen(network, host+":0")
	if err != nil {
		t.Skipf("no %s loopback: %v", network, err)
	}
	a := ln.Addr().String()
	ln.Close()
	return a
}

// offlineArgs point every internet endpoint at a dead loopback port and
// turn off everything that would leave the machine (UPnP multicast,
// NAT-PMP to the gateway, the self-fetch listener on port 80).
func offlineArgs(t *testing.T) []string {
	d4, d6 := deadPort(t, "tcp4"), deadPort(t, "tcp6")
	return []string{"preflight",
		"--echo4", "http://" + d4, "--dns4", "myip.opendns.com/A@" + d4, "--stun4", d4,
		"--echo6", "http://" + d6, "--dns6", "myip.opendns.com/AAAA@" + d6, "--stun6", d6,
		"--no-upnp", "--natpmp", "off", "--self-fetch=false",
		"--metadata-url", "http://" + d4, "--root", "../testdata/preflight/empty-root",
	}
}

func runCmd(t *testing.T, args []string, env map[string]string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, stdio{In: strings.NewReader(""), Out: &out, Err: &errb, Env: func(k string) string { return env[k] }})
	return code, out.String(), errb.String()
}

func TestPreflightOffline(t *testing.T) {
	start := time.Now()
	code, out, errs := runCmd(t, offlineArgs(t), nil)
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("took %v", d)
	}
	if code != exitPreflightOffline {
		t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, exitPreflightOffline, out, errs)
	}
	if !strings.Contains(out, "No internet endpoint answered") || !strings.Contains(out, "[FAIL] Public IPv4 address") {
		t.Errorf("stdout:\n%s", out)
	}
	if !strings.Contains(errs, "Running preflight checks") {
		t.Errorf("stderr:\n%s", errs)
	}
}

func TestPreflightJSONAndGivenIP(t *testing.T) {
	args := append(offlineArgs(t), "--json", "--ip", "192.168.1.5")
	code, out, _ := runCmd(t, args, nil)
	if code != exitPreflightOffline {
		t.Fatalf("exit %d", code)
	}
	var rep struct {
		Schema  int      `json:"schema"`
		Verdict string   `json:"verdict"`
		Offline bool     `json:"offline"`
		Addrs   []string `json:"addrs"`
		Results []struct {
			ID, Status, Fix string
		} `json:"results"`
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if rep.Schema != 1 || rep.Verdict != "fail" || !rep.Offline || len(rep.Addrs) != 1 || rep.Addrs[0] != "192.168.1.5" {
		t.Errorf("%+v", rep)
	}
	for _, r := range rep.Results {
		if r.ID == "address" && (r.Status != "fail" || !strings.Contains(r.Fix, "public address")) {
			t.Errorf("address: %+v", r)
		}
	}
}

func TestPreflightFlagsFromEnvAndUsage(t *testing.T) {
	args := offlineArgs(t)
	code, out, _ := runCmd(t, append(args, "--only", "address"), map[string]string{"IPCERT_IP": "8.8.4.4"})
	if code != exitOK || !strings.Contains(out, "8.8.4.4") {
		t.Errorf("exit %d\n%s", code, out)
	}
	if code, _, errs := runCmd(t, []string{"preflight", "--ip", "010.1.1.1"}, nil); code != exitUsage || !strings.Contains(errs, "leading zero") {
		t.Errorf("exit %d: %s", code, errs)
	}
	if code, _, errs := runCmd(t, []string{"preflight", "--dns4", "nonsense"}, nil); code != exitUsage || !strings.Contains(errs, "QNAME/QTYPE") {
		t.Errorf("exit %d: %s", code, errs)
	}
	if code, out, _ := runCmd(t, []string{"preflight", "--help"}, nil); code != exitOK || !strings.Contains(out, "Exit codes") {
		t.Errorf("exit %d: %s", code, out)
	}
}

func TestPrintPreflightChecklist(t *testing.T) {
	rep := preflight.Report{
		Verdict: preflight.StatusFail,
		Addrs:   []netip.Addr{netip.MustParseAddr("8.8.4.4")},
		Results: []preflight.Result{
			{ID: "ports", Title: "Ports 80 and 443", Status: preflight.StatusOK, Summary: "free", Evidence: []string{"tcp ipv4 port 80: free"}},
			{ID: "firewall", Title: "Host firewall", Status: preflight.StatusFail, Summary: "blocked: tcp 80", Evidence: []string{"iptables ipv4 tcp 80: BLOCKED by -A INPUT -j REJECT"}, Fix: "sudo iptables -I INPUT ..."},
		},
	}
	var b bytes.Buffer
	printPreflight(&b, rep, false)
	want := `Preflight for 8.8.4.4 (0 ms)

[ ok ] Ports 80 and 443: free
[FAIL] Host firewall: blocked: tcp 80
         - iptables ipv4 tcp 80: BLOCKED by -A INPUT -j REJECT
         fix: sudo iptables -I INPUT ...

Verdict: validation will probably FAIL until the failures above are fixed. Rehearse on staging: ipcert issue --ca staging
`
	if b.String() != want {
		t.Errorf("got:\n%s\nwant:\n%s", b.String(), want)
	}
}
