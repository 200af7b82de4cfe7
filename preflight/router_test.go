package preflight

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/testkit"
	"github.com/miekg/dns"
	"github.com/pion/stun/v3"
)

// A home network with a real router, in network namespaces the test makes:
//
//	lan 192.168.77.2 ── 192.168.77.1 rtr WAN ── ... ── 11.0.0.254 inet
//	                    miniupnpd (UPnP IGD + NAT-PMP), nft masquerade
//
// rtr runs Debian's miniupnpd (nftables backend) on the LAN side with its
// WAN either "public" (11.0.0.1, straight to inet) or, for carrier-grade
// NAT, 100.64.0.2 behind an "isp" namespace that masquerades again to
// 11.0.0.1. inet holds the public-address sources, each answering the
// address it sees: an HTTP echo, a DNS server (A record) and a STUN
// server. The built binary runs in lan. Nothing routes out of these
// namespaces; 11/8 stands for the internet only inside them.

// needRouter skips (locally) or fails (CI=true) without root, ip, nft and
// Debian's miniupnpd and miniupnpc.
func needRouter(t *testing.T) {
	t.Helper()
	needNetns(t)
	var missing []string
	for _, p := range []string{"miniupnpd", "upnpc"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return
	}
	testkit.Need(t, false, "the router test needs "+strings.Join(missing, " and ")+" (apt-get install -y miniupnpd-nftables miniupnpc; .ci/run installs them)")
}

// ipcertBinary builds the static binary once for the package's tests.
func ipcertBinary(t *testing.T) string {
	t.Helper()
	return testkit.Binary(t)
}

type routerOpts struct {
	upnp, natpmp bool // what miniupnpd offers
	daemon       bool // run miniupnpd at all
	cgnat        bool // the router's WAN is 100.64.0.2 behind the ISP's NAT
	lan2         bool // a second LAN host, 192.168.77.3
}

type homeNet struct {
	tp       topo
	lan      string // full namespace names
	lan2     string
	rtr      string
	dir      string
	upnpdLog *testkit.Buffer
}

const (
	lanAddr   = "192.168.77.2"
	lan2Addr  = "192.168.77.3"
	rtrLAN    = "192.168.77.1"
	publicIP  = "11.0.0.1"
	inetAddr  = "11.0.0.254"
	cgnatWAN  = "100.64.0.2" // the router's WAN, which it does not reveal
	echoPort  = "8080"
	upnpdPort = "5000"
)

func newHomeNet(t *testing.T, o routerOpts) *homeNet {
	t.Helper()
	tp := topo{t: t, prefix: fmt.Sprintf("ipcrt%d-", os.Getpid()%100000)}
	names := []string{"inet", "rtr", "lan"}
	if o.cgnat {
		names = append(names, "isp")
	}
	if o.lan2 {
		names = append(names, "lan2")
	}
	for _, n := range names {
		full := tp.ns(n)
		tp.sh("ip", "netns", "add", full)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", full).Run() })
		tp.in(n, "ip", "link", "set", "lo", "up")
	}
	h := &homeNet{tp: tp, lan: tp.ns("lan"), lan2: tp.ns("lan2"), rtr: tp.ns("rtr"), dir: t.TempDir(), upnpdLog: &testkit.Buffer{}}

	// The LAN: a bridge in the router, so a second host can join.
	tp.in("rtr", "ip", "link", "add", "br0", "type", "bridge")
	tp.in("rtr", "ip", "addr", "add", rtrLAN+"/24", "dev", "br0")
	tp.in("rtr", "ip", "link", "set", "br0", "up")
	lanHost := func(ns, ifHost, ifRtr, addr string) {
		tp.sh("ip", "link", "add", ifRtr, "netns", tp.ns("rtr"), "type", "veth", "peer", "name", ifHost, "netns", tp.ns(ns))
		tp.in("rtr", "ip", "link", "set", ifRtr, "master", "br0")
		tp.in("rtr", "ip", "link", "set", ifRtr, "up")
		tp.in(ns, "ip", "addr", "add", addr+"/24", "dev", ifHost)
		tp.in(ns, "ip", "link", "set", ifHost, "up")
		tp.in(ns, "ip", "route", "add", "default", "via", rtrLAN)
	}
	lanHost("lan", "hlan", "rlan1", lanAddr)
	if o.lan2 {
		lanHost("lan2", "hlan2", "rlan2", lan2Addr)
	}
	tp.in("rtr", "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	if o.cgnat {
		tp.link("rtr", "rwan", cgnatWAN+"/24", "isp", "ilan", "100.64.0.1/24")
		tp.in("rtr", "ip", "route", "add", "default", "via", "100.64.0.1")
		tp.link("isp", "iwan", publicIP+"/24", "inet", "iisp", inetAddr+"/24")
		tp.in("isp", "ip", "route", "add", "default", "via", inetAddr)
		tp.in("isp", "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
		tp.nft("isp", `table ip nat {
			chain post { type nat hook postrouting priority 100; oifname "iwan" masquerade; }
		}`)
	} else {
		tp.link("rtr", "rwan", publicIP+"/24", "inet", "irtr", inetAddr+"/24")
		tp.in("rtr", "ip", "route", "add", "default", "via", inetAddr)
	}
	// The chains miniupnpd 2.3 fills (its defaults: table inet filter,
	// chains miniupnpd, prerouting_miniupnpd, postrouting_miniupnpd),
	// around the router's own masquerade.
	tp.nft("rtr", `table inet filter {
		chain forward { type filter hook forward priority 0; policy accept; jump miniupnpd; }
		chain miniupnpd { }
		chain prerouting { type nat hook prerouting priority -100; policy accept; jump prerouting_miniupnpd; }
		chain postrouting { type nat hook postrouting priority 100; policy accept; jump postrouting_miniupnpd; oifname "rwan" masquerade; }
		chain prerouting_miniupnpd { }
		chain postrouting_miniupnpd { }
	}`)
	h.serveSources(t)
	if o.daemon {
		h.startMiniupnpd(t, o)
	}
	return h
}

// startMiniupnpd runs Debian's miniupnpd in the router, in the foreground
// (-d), with its pid file in the test's directory.
func (h *homeNet) startMiniupnpd(t *testing.T, o routerOpts) {
	t.Helper()
	yes := func(b bool) string {
		if b {
			return "yes"
		}
		return "no"
	}
	conf := strings.Join([]string{
		"ext_ifname=rwan",
		"listening_ip=br0",
		"port=" + upnpdPort,
		"enable_upnp=" + yes(o.upnp),
		"enable_natpmp=" + yes(o.natpmp),
		"secure_mode=yes",
		"system_uptime=yes",
		"uuid=fc4ec57e-b051-11db-88f8-0060085db3f6",
		"lease_file=" + filepath.Join(h.dir, "leases"),
		"allow 1-65535 192.168.77.0/24 1-65535",
		"deny 0-65535 0.0.0.0/0 0-65535",
		"",
	}, "\n")
	cf := filepath.Join(h.dir, "miniupnpd.conf")
	if err := os.WriteFile(cf, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", h.rtr, "miniupnpd", "-f", cf, "-d", "-P", filepath.Join(h.dir, "miniupnpd.pid"))
	cmd.Stdout, cmd.Stderr = h.upnpdLog, h.upnpdLog
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(5 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
		if t.Failed() {
			t.Logf("miniupnpd log:\n%s", h.upnpdLog.String())
		}
	})
	want := "Listening for NAT-PMP"
	if !o.natpmp {
		want = "HTTP listening on port " + upnpdPort
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(h.upnpdLog.String(), want) {
		select {
		case <-exited:
			t.Fatalf("miniupnpd exited at start:\n%s", h.upnpdLog.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("miniupnpd did not start within 10s:\n%s", h.upnpdLog.String())
		}
	}
}

// serveSources starts the public-address sources in inet: each answers
// with the address it sees, as the real ones do.
func (h *homeNet) serveSources(t *testing.T) {
	t.Helper()
	var ln net.Listener
	var dnsPC, stunPC net.PacketConn
	if err := inNetns(h.tp.ns("inet"), func() error {
		var err error
		if ln, err = net.Listen("tcp4", inetAddr+":"+echoPort); err != nil {
			return err
		}
		if dnsPC, err = net.ListenPacket("udp4", inetAddr+":53"); err != nil {
			return err
		}
		stunPC, err = net.ListenPacket("udp4", inetAddr+":3478")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		_, _ = io.WriteString(w, host+"\n")
	})}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })

	ds := &dns.Server{PacketConn: dnsPC, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		m := new(dns.Msg)
		m.SetReply(req)
		host, _, _ := net.SplitHostPort(w.RemoteAddr().String())
		if rr, err := dns.NewRR(req.Question[0].Name + " 0 IN A " + host); err == nil {
			m.Answer = append(m.Answer, rr)
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	ds.NotifyStartedFunc = func() { close(started) }
	go func() { _ = ds.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = ds.Shutdown() })

	t.Cleanup(func() { _ = stunPC.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := stunPC.ReadFrom(buf)
			if err != nil {
				return
			}
			req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if req.Decode() != nil {
				continue
			}
			ua := from.(*net.UDPAddr)
			resp, err := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
				&stun.XORMappedAddress{IP: ua.IP, Port: ua.Port}, stun.Fingerprint)
			if err == nil {
				_, _ = stunPC.WriteTo(resp.Raw, from)
			}
		}
	}()
}

// sourceFlags point every public-address source of the binary at inet's
// fakes; IPv6 at a documentation address no namespace routes, so no
// built-in internet endpoint is ever asked.
func sourceFlags() []string {
	return []string{
		"--echo4", "http://" + inetAddr + ":" + echoPort + "/ip",
		"--dns4", "myip.opendns.com/A@" + inetAddr + ":53",
		"--stun4", inetAddr + ":3478",
		"--echo6", "http://[2001:db8::1]:8080/ip",
	}
}

// run runs the binary inside ns.
func (h *homeNet) run(t *testing.T, ns string, args ...string) (string, string, int) {
	t.Helper()
	return h.runEnv(t, ns, nil, args...)
}

func (h *homeNet) runEnv(t *testing.T, ns string, env []string, args ...string) (string, string, int) {
	t.Helper()
	cmd := exec.Command("ip", append([]string{"netns", "exec", ns, ipcertBinary(t)}, args...)...)
	cmd.Env = append([]string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + h.dir}, env...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// preflight runs `ipcert preflight --json` in the LAN host and decodes it.
func (h *homeNet) preflight(t *testing.T, extra ...string) (Report, int) {
	t.Helper()
	args := append([]string{"preflight", "--json", "--self-fetch=false",
		"--only", IDPublic4, "--only", IDInterfaces, "--only", IDNAT, "--only", IDAddress}, sourceFlags()...)
	out, errs, code := h.run(t, h.lan, append(args, extra...)...)
	var rep Report
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("preflight --json (exit %d): %v\n%s\n%s", code, err, out, errs)
	}
	for _, r := range rep.Results {
		t.Logf("preflight %s: %s in %d ms: %s", r.ID, r.Status, r.DurationMS, r.Summary)
	}
	return rep, code
}

// upnpcList is miniupnpd's own list of mappings, as `upnpc -l` in ns
// prints them: lines such as " 0 TCP    80->192.168.77.3:80   'x' ” 0".
func (h *homeNet) upnpcList(t *testing.T, ns string) []string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "upnpc", "-l").CombinedOutput()
	if err != nil {
		t.Fatalf("upnpc -l: %v\n%s", err, out)
	}
	var maps []string
	for _, l := range strings.Split(string(out), "\n") {
		if f := strings.Fields(l); len(f) >= 3 && (f[1] == "TCP" || f[1] == "UDP") {
			maps = append(maps, strings.Join(f[1:3], " "))
		}
	}
	return maps
}

// natRules is what miniupnpd put in the router's nft chains.
func (h *homeNet) natRules(t *testing.T) string {
	t.Helper()
	var all []string
	for _, c := range []string{"miniupnpd", "prerouting_miniupnpd", "postrouting_miniupnpd"} {
		out, err := exec.Command("ip", "netns", "exec", h.rtr, "nft", "list", "chain", "inet", "filter", c).CombinedOutput()
		if err != nil {
			t.Fatalf("nft list chain %s: %v\n%s", c, err, out)
		}
		for _, l := range strings.Split(string(out), "\n") {
			l = strings.TrimSpace(l)
			if strings.Contains(l, "dport") || strings.Contains(l, "dnat") || strings.Contains(l, "snat") {
				all = append(all, c+": "+l)
			}
		}
	}
	return strings.Join(all, "\n")
}

// upnpdLogged waits until miniupnpd's log satisfies ok: its lines reach
// the buffer through a pipe, possibly after the client already has the
// answer. False if they never do (10 s).
func (h *homeNet) upnpdLogged(ok func(log string) bool) bool {
	deadline := time.Now().Add(10 * time.Second)
	for !ok(h.upnpdLog.String()) {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

func (h *homeNet) checkNoMappings(t *testing.T) {
	t.Helper()
	if m := h.upnpcList(t, h.lan); len(m) > 0 {
		t.Errorf("mappings left in miniupnpd after the run (upnpc -l): %v", m)
	}
	if r := h.natRules(t); r != "" {
		t.Errorf("nft rules left in the router after the run:\n%s", r)
	}
}

func natResult(t *testing.T, rep Report) Result {
	t.Helper()
	r, ok := rep.Result(IDNAT)
	if !ok {
		t.Fatalf("no NAT result in %+v", rep.Results)
	}
	return r
}

// TestHomeRouter drives `ipcert preflight` on a LAN host behind Debian's
// miniupnpd. Before the SSDP fix UPnP never worked against it: goupnp's
// search used up the NAT check's whole timeout and the device description
// was then fetched with the expired context.
func TestHomeRouter(t *testing.T) {
	needRouter(t)
	h := newHomeNet(t, routerOpts{upnp: true, natpmp: true, daemon: true, lan2: true})

	t.Run("preflight", func(t *testing.T) {
		rep, code := h.preflight(t)
		if rep.Public.V4.Addr.String() != publicIP || rep.Public.V4.Votes != 3 {
			t.Fatalf("public IPv4 %+v, want %s from all three sources", rep.Public.V4, publicIP)
		}
		if rep.NAT.Kind != NATHome || rep.NAT.Router.String() != publicIP {
			t.Errorf("nat %+v, want home NAT with router %s", rep.NAT, publicIP)
		}
		r := natResult(t, rep)
		if r.Status != StatusWarn || !strings.Contains(r.Fix, lanAddr) || !strings.Contains(r.Fix, "--map-ports") {
			t.Errorf("nat result %+v: want a warning whose fix names %s and --map-ports", r, lanAddr)
		}
		for _, want := range []string{"UPnP " + rtrLAN + ":" + upnpdPort + ": router's external address " + publicIP, "NAT-PMP " + rtrLAN + ":5351: router's external address " + publicIP} {
			if !strings.Contains(strings.Join(r.Evidence, "\n"), want) {
				t.Errorf("nat evidence lacks %q: %v", want, r.Evidence)
			}
		}
		if len(rep.NAT.Mappings) != 0 || code == exitFailForTest {
			t.Errorf("mappings without --map-ports: %+v (exit %d)", rep.NAT.Mappings, code)
		}
		// The person reading it: NAT, the router's address, the fix.
		out, _, _ := h.run(t, h.lan, append([]string{"preflight", "--self-fetch=false", "--only", IDNAT, "--only", IDPublic4}, sourceFlags()...)...)
		for _, want := range []string{"home NAT", publicIP, "fix: forward tcp 80 (and 443) on the router to " + lanAddr} {
			if !strings.Contains(out, want) {
				t.Errorf("preflight output lacks %q:\n%s", want, out)
			}
		}
		h.checkNoMappings(t)
	})

	for _, c := range []struct {
		name  string
		flags []string
		want  []string // protocols asked
	}{
		{"map-ports", nil, []string{"nat-pmp", "upnp"}},
		{"map-ports upnp only", []string{"--natpmp", "off"}, []string{"upnp"}},
		{"map-ports nat-pmp only", []string{"--no-upnp"}, []string{"nat-pmp"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			before := strings.Count(h.upnpdLog.String(), "192.168.77.2:80")
			rep, _ := h.preflight(t, append([]string{"--map-ports"}, c.flags...)...)
			got := map[string]int{}
			for _, m := range rep.NAT.Mappings {
				got[m.Proto]++
				if m.Granted != m.Requested || m.Error != "" || !m.Removed {
					t.Errorf("mapping %+v: want granted as asked and removed", m)
				}
			}
			for _, p := range c.want {
				if got[p] != 2 {
					t.Errorf("%s mappings: %d, want 2 (80 and 443): %+v", p, got[p], rep.NAT.Mappings)
				}
			}
			if len(rep.NAT.Mappings) != 2*len(c.want) {
				t.Errorf("mappings %+v, want only %v", rep.NAT.Mappings, c.want)
			}
			// miniupnpd itself saw the mappings made ...
			if !h.upnpdLogged(func(l string) bool { return strings.Count(l, "192.168.77.2:80") > before }) {
				t.Errorf("miniupnpd logged no mapping to %s:80", lanAddr)
			}
			// ... and holds none afterwards.
			h.checkNoMappings(t)
		})
	}

	// Another device on the LAN holds external 80 and 443: UPnP refuses
	// (ConflictInMappingEntry), NAT-PMP grants other external ports. The
	// validator only knocks on 80/443, so the fix is to forward by hand;
	// the other device's mappings are left alone.
	t.Run("ports taken by another LAN host", func(t *testing.T) {
		for _, p := range []string{"80", "443"} {
			if out, err := exec.Command("ip", "netns", "exec", h.lan2, "upnpc", "-e", "other device", "-a", lan2Addr, p, p, "TCP").CombinedOutput(); err != nil {
				t.Fatalf("upnpc -a from the second host: %v\n%s", err, out)
			}
		}
		t.Cleanup(func() {
			for _, p := range []string{"80", "443"} {
				_ = exec.Command("ip", "netns", "exec", h.lan2, "upnpc", "-d", p, "TCP").Run()
			}
		})
		others := h.upnpcList(t, h.lan2)
		if len(others) != 2 {
			t.Fatalf("the second host's mappings: %v", others)
		}
		rep, _ := h.preflight(t, "--map-ports")
		var pmpOther, upnpRefused int
		for _, m := range rep.NAT.Mappings {
			switch m.Proto {
			case "nat-pmp":
				if m.Granted != 0 && m.Granted != m.Requested && strings.Contains(m.Error, fmt.Sprintf("instead of %d", m.Requested)) && m.Removed {
					pmpOther++
				}
			case "upnp":
				if m.Granted == 0 && m.Error != "" {
					upnpRefused++
				}
			}
		}
		if pmpOther != 2 || upnpRefused != 2 {
			t.Errorf("mappings %+v: want NAT-PMP to grant other external ports (and remove them) and UPnP to refuse", rep.NAT.Mappings)
		}
		r := natResult(t, rep)
		if !strings.Contains(r.Fix, "forward them by hand") {
			t.Errorf("fix %q does not say to forward by hand", r.Fix)
		}
		if after := h.upnpcList(t, h.lan2); strings.Join(after, ",") != strings.Join(others, ",") {
			t.Errorf("the other device's mappings changed: %v, were %v", after, others)
		}
		if r := h.natRules(t); strings.Contains(r, lanAddr) {
			t.Errorf("rules for %s left in the router:\n%s", lanAddr, r)
		}
	})
}

// exitFailForTest is `ipcert preflight`'s exit code when a check failed.
const exitFailForTest = 3

// TestHomeRouterCGNAT: the router's WAN is in 100.64/10 behind the ISP's
// NAT. preflight must say CGNAT, fail before any order, and point at
// IPv6 and port forwarding.
func TestHomeRouterCGNAT(t *testing.T) {
	needRouter(t)
	h := newHomeNet(t, routerOpts{upnp: true, natpmp: true, daemon: true, cgnat: true})
	rep, code := h.preflight(t)
	if rep.Public.V4.Addr.String() != publicIP {
		t.Fatalf("public IPv4 %+v, want the ISP's %s", rep.Public.V4, publicIP)
	}
	r := natResult(t, rep)
	if rep.NAT.Kind != NATCGNAT || r.Status != StatusFail || code != exitFailForTest {
		t.Fatalf("nat %+v, result %+v, exit %d: want CGNAT, fail, exit 3", rep.NAT, r, code)
	}
	for _, want := range []string{"IPv6", "public IPv4"} {
		if !strings.Contains(r.Fix, want) {
			t.Errorf("CGNAT fix %q lacks %q", r.Fix, want)
		}
	}
	// miniupnpd hides its 100.64/10 WAN address (UPnP gives none, NAT-PMP
	// "network failure"); the hop probe finds the ISP's side of it.
	if !strings.Contains(r.Summary, "100.64.0.1") || !strings.Contains(strings.Join(r.Evidence, "\n"), "hop 2 towards "+inetAddr+": 100.64.0.1 (cgnat)") {
		t.Errorf("result %+v does not name the ISP's CGNAT hop 100.64.0.1", r)
	}
	for _, want := range []string{"the router reports no external address", "network failure"} {
		if !strings.Contains(strings.Join(r.Evidence, "\n"), want) {
			t.Errorf("evidence lacks %q: %v", want, r.Evidence)
		}
	}
}

// TestHomeRouterUPnPOff: a router with UPnP and NAT-PMP switched off.
// preflight finds the public address, says NAT, and gives the manual
// port-forward instructions with the LAN address and the ports.
func TestHomeRouterUPnPOff(t *testing.T) {
	needRouter(t)
	h := newHomeNet(t, routerOpts{daemon: false})
	rep, _ := h.preflight(t, "--map-ports")
	if rep.Public.V4.Addr.String() != publicIP {
		t.Fatalf("public IPv4 %+v", rep.Public.V4)
	}
	r := natResult(t, rep)
	if rep.NAT.Kind != NATBehind || len(rep.NAT.Mappings) != 0 {
		t.Errorf("nat %+v, want behind NAT without mappings", rep.NAT)
	}
	if want := "forward tcp 80 (and 443) on the router to this machine (" + lanAddr + ")"; !strings.Contains(r.Fix, want) {
		t.Errorf("fix %q lacks %q", r.Fix, want)
	}
}

var builtPebble struct {
	once sync.Once
	path string
	err  error
}

// pebbleBinary builds Let's Encrypt's Pebble (the version in go.mod) once.
func pebbleBinary(t *testing.T) string {
	t.Helper()
	builtPebble.once.Do(func() {
		dir, err := os.MkdirTemp("", "ipcert-pebble-bin-")
		if err != nil {
			builtPebble.err = err
			return
		}
		bin := filepath.Join(dir, "pebble")
		cmd := exec.Command("go", "build", "-o", bin, "github.com/letsencrypt/pebble/v2/cmd/pebble")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			builtPebble.err = fmt.Errorf("build pebble: %v\n%s", err, out)
			return
		}
		builtPebble.path = bin
	})
	if builtPebble.err != nil {
		t.Fatal(builtPebble.err)
	}
	return builtPebble.path
}

// startPebble runs Pebble in inet on 11.0.0.254:14000; its validator
// connects to ports 80 and 443 of the addresses it validates, as Let's
// Encrypt's does. It returns the directory URL and the file of the root
// of its HTTPS certificate (for --ca-root).
func (h *homeNet) startPebble(t *testing.T) (string, string) {
	t.Helper()
	bin := pebbleBinary(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "pebble in inet"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IPAddresses: []net.IP{net.ParseIP(inetAddr)}, KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}, IsCA: true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	certFile, keyFile := filepath.Join(h.dir, "pebble-cert.pem"), filepath.Join(h.dir, "pebble-key.pem")
	_ = os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	_ = os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	cfg := map[string]any{"pebble": map[string]any{
		"listenAddress": inetAddr + ":14000", "managementListenAddress": inetAddr + ":15000",
		"certificate": certFile, "privateKey": keyFile, "httpPort": 80, "tlsPort": 443,
		"externalAccountBindingRequired": false, "retryAfter": map[string]int{"authz": 1, "order": 1},
		"profiles": map[string]any{"shortlived": map[string]any{"description": "160 hours", "validityPeriod": 576000}},
	}}
	data, _ := json.Marshal(cfg)
	cfgFile := filepath.Join(h.dir, "pebble.json")
	if err := os.WriteFile(cfgFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("ip", "netns", "exec", h.tp.ns("inet"), bin, "-config", cfgFile)
	// Set on purpose: no random validation sleeps, no rejected nonces, a
	// fresh validation every order (Pebble reads them at start).
	cmd.Env = []string{"PATH=/usr/bin:/bin", "PEBBLE_VA_NOSLEEP=1", "PEBBLE_WFE_NONCEREJECT=0", "PEBBLE_AUTHZREUSE=0"}
	log := &testkit.Buffer{}
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-exited
		if t.Failed() {
			t.Logf("pebble log:\n%s", log.String())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(log.String(), "ACME directory available at") {
		select {
		case <-exited:
			t.Fatalf("pebble exited at start:\n%s", log.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("pebble did not start within 10s:\n%s", log.String())
		}
	}
	return "https://" + inetAddr + ":14000/dir", certFile
}

// TestHomeRouterIssue: the user's path through a real router. `ipcert
// issue --ip auto --map-ports` finds the router's public address, has
// miniupnpd forward the validation port to the LAN host, is validated by
// the CA from the internet side through the router, and removes the
// mapping; `renew --map-ports` does the same. Without the consent flag the
// CA cannot reach the host.
func TestHomeRouterIssue(t *testing.T) {
	needRouter(t)
	h := newHomeNet(t, routerOpts{upnp: true, natpmp: true, daemon: true})
	dir, root := h.startPebble(t)
	state := filepath.Join(h.dir, "state")
	env := []string{
		"IPCERT_ECHO4=http://" + inetAddr + ":" + echoPort + "/ip",
		"IPCERT_DNS4=myip.opendns.com/A@" + inetAddr + ":53",
		"IPCERT_STUN4=" + inetAddr + ":3478",
		"IPCERT_ECHO6=http://[2001:db8::1]:8080/ip",
	}
	issue := func(t *testing.T, extra ...string) (string, string, int) {
		t.Helper()
		args := append([]string{"issue", "--ip", "auto", "--ca", dir, "--ca-root", root, "--agree-tos", "--state-dir", state, "--timeout", "60s"}, extra...)
		return h.runEnv(t, h.lan, env, args...)
	}

	t.Run("without consent the CA cannot reach the host", func(t *testing.T) {
		out, errs, code := issue(t, "--name", "nomap")
		if code != 1 || !strings.Contains(errs, "11.0.0.1") {
			t.Fatalf("exit %d, want 1 (validation failed at the router):\n%s%s", code, out, errs)
		}
		h.checkNoMappings(t)
	})
	for _, c := range []struct{ name, challenge, port string }{
		{"http", "http-01", "80"},
		{"tls", "tls-alpn-01", "443"},
	} {
		t.Run(c.challenge, func(t *testing.T) {
			out, errs, code := issue(t, "--name", c.name, "--challenge", c.challenge, "--map-ports")
			t.Logf("issue:\n%s%s", errs, out)
			if code == 0 && !strings.Contains(errs, "Asking the CA to validate") {
				// Pebble reuses a valid authorization of the account one
				// time in a hundred even with PEBBLE_AUTHZREUSE=0 (wfe.go:
				// rand.Intn(100) > percent): nothing was validated, so
				// order once more to see the validator come through.
				out, errs, code = issue(t, "--name", c.name, "--challenge", c.challenge, "--map-ports")
				t.Logf("issue again (the CA reused the authorization):\n%s%s", errs, out)
			}
			if code != 0 {
				t.Fatalf("exit %d", code)
			}
			for _, want := range []string{
				"Issuing for " + publicIP + " ",
				"The router forwards tcp " + c.port + " to " + lanAddr + ":" + c.port + " (upnp, external address " + publicIP + ")",
				"validator " + inetAddr + ":",
				"-> " + lanAddr + ":" + c.port,
				"Removed the router's mapping of tcp " + c.port,
			} {
				if !strings.Contains(errs, want) {
					t.Errorf("output lacks %q", want)
				}
			}
			if !h.upnpdLogged(func(l string) bool {
				return strings.Contains(l, "AddPortMapping: ext port "+c.port+" to "+lanAddr+":"+c.port)
			}) {
				t.Errorf("miniupnpd did not log the mapping of %s", c.port)
			}
			h.checkNoMappings(t)
		})
	}
	t.Run("renew", func(t *testing.T) {
		out, errs, code := h.runEnv(t, h.lan, env, "renew", "--force", "--map-ports", "--state-dir", state, "http", "tls")
		t.Logf("renew:\n%s%s", errs, out)
		if code != 10 || !strings.Contains(out, "http: renewed, version 2") || !strings.Contains(out, "tls: renewed, version 2") {
			t.Fatalf("renew --force --map-ports: exit %d", code)
		}
		if n := strings.Count(errs, "Removed the router's mapping"); n != 2 {
			t.Errorf("%d mappings removed, want 2", n)
		}
		h.checkNoMappings(t)
	})
	// As the timer runs it, without the flag: the consent given at issue
	// (renewal.json's map_ports) still maps the port.
	t.Run("renew as the timer runs it", func(t *testing.T) {
		out, errs, code := h.runEnv(t, h.lan, env, "renew", "--force", "--quiet", "--state-dir", state, "http")
		t.Logf("renew:\n%s%s", errs, out)
		if code != 10 || !strings.Contains(out, "http: renewed, version 3") {
			t.Fatalf("renew --force without --map-ports: exit %d", code)
		}
		h.checkNoMappings(t)
	})
}

// TestHomeRouterIssueNATPMP: a router with UPnP off and NAT-PMP on; the
// mapping for the issuance is made and removed over NAT-PMP.
func TestHomeRouterIssueNATPMP(t *testing.T) {
	needRouter(t)
	h := newHomeNet(t, routerOpts{natpmp: true, daemon: true})
	dir, root := h.startPebble(t)
	env := []string{
		"IPCERT_ECHO4=http://" + inetAddr + ":" + echoPort + "/ip",
		"IPCERT_ECHO6=http://[2001:db8::1]:8080/ip",
	}
	out, errs, code := h.runEnv(t, h.lan, env, "issue", "--ip", "auto", "--ca", dir, "--ca-root", root, "--agree-tos",
		"--state-dir", filepath.Join(h.dir, "state"), "--timeout", "60s", "--map-ports")
	t.Logf("issue:\n%s%s", errs, out)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{
		"The router forwards tcp 80 to " + lanAddr + ":80 (nat-pmp, external address " + publicIP + ")",
		"validator " + inetAddr + ":",
		"Removed the router's mapping of tcp 80",
	} {
		if !strings.Contains(errs, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	if !h.upnpdLogged(func(log string) bool {
		return strings.Contains(log, "NAT-PMP port mapping request : 80->"+lanAddr+":80 tcp lifetime=900s") && strings.Contains(log, "lifetime=0s")
	}) {
		t.Errorf("miniupnpd did not log the NAT-PMP mapping and its removal")
	}
	if r := h.natRules(t); r != "" {
		t.Errorf("nft rules left in the router:\n%s", r)
	}
}

// TestHomeRouterWizard: the wizard's Preflight step on the same network,
// the built binary in a real terminal (tmux) on the LAN host: it shows the
// router's public address and home NAT, and with consent (m, y) maps the
// ports over the real router and removes them again.
func TestHomeRouterWizard(t *testing.T) {
	needRouter(t)
	h := newHomeNet(t, routerOpts{upnp: true, natpmp: true, daemon: true})
	script := "ip netns exec " + h.lan + " env LANG=C.UTF-8 TERM=xterm-256color HOME=" + h.dir +
		" IPCERT_ECHO4=http://" + inetAddr + ":" + echoPort + "/ip IPCERT_DNS4=myip.opendns.com/A@" + inetAddr + ":53" +
		" IPCERT_STUN4=" + inetAddr + ":3478 IPCERT_ECHO6=http://[2001:db8::1]:8080/ip " +
		ipcertBinary(t) + " --state-dir " + filepath.Join(h.dir, "state") + "; sleep 600"
	tm := testkit.StartTmux(t, h.dir, 120, 40, "sh", "-c", script)
	tm.Wait = 20 * time.Second
	waitFor := tm.WaitFor
	waitFor("step 1 of 9")
	tm.Keys("Enter")
	waitFor("step 2 of 9", publicIP)
	tm.Keys("Enter")
	// The verdict line appears when every check is done; "m" is ignored
	// while a run is going on.
	p := waitFor("step 3 of 9", "home NAT", publicIP, "No blocker found")
	t.Logf("preflight step:\n%s", p)
	before := strings.Count(h.upnpdLog.String(), "AddPortMapping")
	tm.Keys("m")
	waitFor("forward ports 80 and 443")
	tm.Keys("y")
	deadline := time.Now().Add(20 * time.Second)
	for strings.Count(h.upnpdLog.String(), "DeletePortMapping") < 2 || strings.Count(h.upnpdLog.String(), "AddPortMapping") < before+2 {
		if time.Now().After(deadline) {
			t.Fatalf("the wizard's consent did not map and unmap 80/443 on miniupnpd; pane:\n%s", tm.Pane())
		}
		time.Sleep(50 * time.Millisecond) // polling interval, bounded by the deadline
	}
	p = waitFor("step 3 of 9", "home NAT")
	t.Logf("after mapping:\n%s", p)
	h.checkNoMappings(t)
}
