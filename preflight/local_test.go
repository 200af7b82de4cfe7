package preflight

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/ipcert/ipcert/acmeflow"
)

func TestListeningPortsFromProcFixture(t *testing.T) {
	env := offlineEnv(t)
	env.Root = testdata("proc-nginx")
	ps, err := ListeningPorts(env, []int{80, 443})
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]PortState{}
	for _, p := range ps {
		got[p.Family+":"+strconv.Itoa(p.Port)] = p
	}
	if p := got["ipv4:80"]; p.Free || p.PID != 812 || p.Process != "nginx" || p.Local != "0.0.0.0:80" {
		t.Errorf("ipv4:80 = %+v", p)
	}
	if p := got["ipv6:80"]; p.Free || p.PID != 812 || !p.DualStack {
		t.Errorf("ipv6:80 = %+v", p)
	}
	// [::]:443 with bindv6only=0 holds the IPv4 port too.
	if p := got["ipv4:443"]; p.Free || p.Process != "haproxy" || !strings.Contains(p.Local, "dual-stack") {
		t.Errorf("ipv4:443 = %+v", p)
	}
	if p := got["ipv6:443"]; p.Free || p.PID != 955 {
		t.Errorf("ipv6:443 = %+v", p)
	}

	st := &state{opts: Options{}.withDefaults(), report: &Report{}}
	r := st.checkPorts(context.Background(), env)
	if r.Status != StatusWarn || !strings.Contains(r.Summary, "nginx (pid 812)") || !strings.Contains(r.Fix, "--webroot") {
		t.Errorf("result = %+v", r)
	}
}

func TestListeningPortsFree(t *testing.T) {
	env := offlineEnv(t)
	ps, err := ListeningPorts(env, []int{80, 443})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if !p.Free {
			t.Errorf("%+v not free", p)
		}
	}
}

func TestPrivilege(t *testing.T) {
	env := offlineEnv(t)
	env.Root = testdata("proc-nginx") // CapEff has CAP_NET_BIND_SERVICE
	if p := ReadPrivilege(env, 80); !p.CapNetBindService || !p.CanBind || p.UnprivilegedPortStart != 1024 {
		t.Errorf("with capability: %+v", p)
	}
	env.Root = testdata("empty-root")
	if p := ReadPrivilege(env, 80); p.CanBind {
		t.Errorf("uid 1000 without capability: %+v", p)
	}
	st := &state{opts: Options{}.withDefaults(), report: &Report{}}
	if r := st.checkPrivilege(context.Background(), env); r.Status != StatusWarn || !strings.Contains(r.Fix, "setcap cap_net_bind_service") {
		t.Errorf("result = %+v", r)
	}
	env.Getuid = func() int { return 0 }
	if p := ReadPrivilege(env, 80); !p.CanBind {
		t.Errorf("root: %+v", p)
	}
}

func TestLocalAddrsUseThePolicyTable(t *testing.T) {
	env := offlineEnv(t)
	env.Interfaces = func() ([]Interface, error) {
		return []Interface{
			{Name: "lo", Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("::1/128")}},
			{Name: "eth0", Up: true, Addrs: []netip.Prefix{
				netip.MustParsePrefix("192.168.1.20/24"), netip.MustParsePrefix("100.64.3.4/10"),
				netip.MustParsePrefix("fe80::1/64"), netip.MustParsePrefix("fd00::5/64"),
				netip.MustParsePrefix("8.8.4.4/24"), netip.MustParsePrefix("2001:db8::1/64"),
			}},
		}, nil
	}
	addrs, err := LocalAddrs(env)
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range addrs {
		want, _ := acmeflow.Classify(a.Addr)
		if a.Class != want {
			t.Errorf("%s: %s, policy says %s", a.Addr, a.Class, want)
		}
	}
	want := map[string]acmeflow.AddrClass{
		"127.0.0.1": acmeflow.ClassLoopback, "192.168.1.20": acmeflow.ClassPrivate, "100.64.3.4": acmeflow.ClassCGNAT,
		"fe80::1": acmeflow.ClassLinkLocal, "fd00::5": acmeflow.ClassULA, "8.8.4.4": acmeflow.ClassPublic,
		"2001:db8::1": acmeflow.ClassDocumentation,
	}
	for _, a := range addrs {
		if w, ok := want[a.Addr.String()]; ok && a.Class != w {
			t.Errorf("%s: %s, want %s", a.Addr, a.Class, w)
		}
	}
}

func TestAddressCheckPolicyAndCost(t *testing.T) {
	for _, tc := range []struct {
		ip      string
		local   bool
		failing bool
		status  Status
		want    string
	}{
		{"8.8.4.4", false, false, StatusOK, "accepts"},
		{"192.168.1.5", false, false, StatusFail, "rejectedIdentifier"},
		{"127.0.0.1", true, false, StatusOK, "local test CA"},
		{"8.8.4.4", false, true, StatusWarn, "5 failed authorizations"},
	} {
		st := &state{opts: Options{IPs: []netip.Addr{netip.MustParseAddr(tc.ip)}, LocalCA: tc.local}.withDefaults(), report: &Report{}, results: map[string]Result{}}
		if tc.failing {
			st.results[IDFirewall] = Result{ID: IDFirewall, Status: StatusFail}
		}
		r := st.checkAddress(context.Background(), offlineEnv(t))
		if r.Status != tc.status || !strings.Contains(r.Summary+r.Fix, tc.want) {
			t.Errorf("%s (local %v, failing %v): %+v", tc.ip, tc.local, tc.failing, r)
		}
		// A "!" row says why in its summary (issue 24 item 11), not only
		// "an address Let's Encrypt accepts".
		if r.Status == StatusWarn && !strings.Contains(r.Summary, "other checks fail (firewall)") {
			t.Errorf("%s: a warning whose summary does not say why: %q", tc.ip, r.Summary)
		}
	}
}

// The self-fetch's own listener (this process) does not count as busy.
func TestListeningPortsIgnoresOwnSocket(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	env := offlineEnv(t)
	env.Root = "/"
	ps, err := ListeningPorts(env, []int{port})
	if err != nil {
		t.Skipf("no /proc/net/tcp: %v", err)
	}
	for _, p := range ps {
		if !p.Free {
			t.Errorf("own socket reported: %+v", p)
		}
	}
}

// TestListeningPortsSocketClosedMeanwhile: a listener in the table that
// no process holds by the time the descriptors are read (the self-fetch's
// own, which comes and goes while the ports check runs) is not "held by an
// unknown process" when a second look at the table has lost it; one that
// stays with no owner visible is still held.
func TestListeningPortsSocketClosedMeanwhile(t *testing.T) {
	env := offlineEnv(t)
	env.Root = testdata("proc-nginx")
	orphan := procTCPLine{netip.MustParseAddrPort("0.0.0.0:8081"), tcpListen, 999999}
	for _, stays := range []bool{false, true} {
		reads := 0
		readListenTable = func(proc, family string) ([]procTCPLine, error) {
			if family != "ipv4" {
				return nil, nil
			}
			reads++
			if reads == 1 || stays {
				return []procTCPLine{orphan}, nil
			}
			return nil, nil
		}
		ps, err := ListeningPorts(env, []int{8081})
		readListenTable = listenTable
		if err != nil {
			t.Fatal(err)
		}
		if ps[0].Family != "ipv4" || ps[0].Free == stays {
			t.Errorf("socket stays %v: %+v", stays, ps[0])
		}
	}
}

// TestParseNetTCP reads the kernel's socket tables as /proc/net/tcp and
// tcp6 print them (little-endian words, big-endian ports), and skips what
// it cannot read.
func TestParseNetTCP(t *testing.T) {
	const tcp = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0
   1: 0100007F:1F90 0100007F:D2B0 01 00000000:00000000 00:00000000 00000000  1000        0 777 1 0000000000000000 20 4 30 10 -1
   2: garbage
   3: 0100007G:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1
`
	got, err := parseNetTCP(strings.NewReader(tcp))
	want := []procTCPLine{
		{netip.MustParseAddrPort("0.0.0.0:80"), tcpListen, 12345},
		{netip.MustParseAddrPort("127.0.0.1:8080"), 1, 777},
	}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("tcp: %v, %v; want %v", got, err, want)
	}
	const tcp6 = `  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:01BB 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1 0000000000000000 100 0 0 10 0
   1: 00000000000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4343 1 0000000000000000 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4444 1 0000000000000000 100 0 0 10 0
   3: B80D0120000000000000000001000000:0050 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4545 1 0000000000000000 100 0 0 10 0
`
	got, err = parseNetTCP(strings.NewReader(tcp6))
	want = []procTCPLine{
		{netip.MustParseAddrPort("[::]:443"), tcpListen, 4242},
		{netip.MustParseAddrPort("[::1]:80"), tcpListen, 4343},
		{netip.MustParseAddrPort("127.0.0.1:80"), tcpListen, 4444}, // an IPv4-mapped listener
		{netip.MustParseAddrPort("[2001:db8::1]:80"), tcpListen, 4545},
	}
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("tcp6: %v, %v; want %v", got, err, want)
	}
}
