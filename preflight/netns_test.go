package preflight

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/testkit"
	"golang.org/x/sys/unix"
)

// A real topology in network namespaces the test creates (and deletes):
//
//	nat host 10.9.0.2 -- 10.9.0.1 router 11.0.0.1 (masquerade) -- 11.0.0.254 inet
//	direct host 12.0.0.2 (nft: tcp dport 80 drop) ----------------- 12.0.0.254 inet
//
// "inet" runs a fake echo service on :8080 that answers the address it
// sees. Veth pairs are created directly inside the namespaces, so the root
// namespace's interfaces, routes and firewall are never touched, and no
// packet leaves these namespaces. 11/8 and 12/8 are used because the
// checks must see "public" addresses; nothing here routes to the real ones.

func needNetns(t *testing.T) {
	t.Helper()
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, p := range []string{"ip", "nft"} {
		if _, err := exec.LookPath(p); err != nil {
			missing = append(missing, p)
		}
	}
	if len(missing) == 0 {
		return
	}
	testkit.Need(t, false, "the network-namespace test needs "+strings.Join(missing, ", ")+" (.ci/run installs iproute2 and nftables; run as root)")
}

type topo struct {
	t      *testing.T
	prefix string
}

func (tp topo) ns(name string) string { return tp.prefix + name }

func (tp topo) sh(args ...string) {
	tp.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		tp.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (tp topo) in(ns string, args ...string) {
	tp.t.Helper()
	tp.sh(append([]string{"ip", "netns", "exec", tp.ns(ns)}, args...)...)
}

func (tp topo) nft(ns, rules string) {
	tp.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", tp.ns(ns), "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(rules)
	if out, err := cmd.CombinedOutput(); err != nil {
		tp.t.Fatalf("nft in %s: %v\n%s", ns, err, out)
	}
}

// link makes a veth pair with one end in each namespace, addresses them
// and brings them up.
func (tp topo) link(nsA, ifA, addrA, nsB, ifB, addrB string) {
	tp.t.Helper()
	tp.sh("ip", "link", "add", ifA, "netns", tp.ns(nsA), "type", "veth", "peer", "name", ifB, "netns", tp.ns(nsB))
	tp.in(nsA, "ip", "addr", "add", addrA, "dev", ifA)
	tp.in(nsA, "ip", "link", "set", ifA, "up")
	tp.in(nsB, "ip", "addr", "add", addrB, "dev", ifB)
	tp.in(nsB, "ip", "link", "set", ifB, "up")
}

// inNetns runs fn on a fresh OS thread moved into the namespace. The
// thread is never unlocked, so the runtime discards it afterwards instead
// of reusing a thread in the wrong namespace. Sockets opened by fn stay in
// that namespace.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		f, err := os.Open("/run/netns/" + ns)
		if err != nil {
			errc <- err
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// netnsRunner runs commands inside a namespace.
type netnsRunner struct{ ns string }

func (r netnsRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", r.ns, name}, args...)...).Output()
}

// nsEnv is an Env whose network, interfaces and commands are those of ns.
func (tp topo) nsEnv(ns string) Env {
	full := tp.ns(ns)
	echo := "http://12.0.0.254:8080"
	return Env{
		Echo4:    []string{echo + "/a", echo + "/b", echo + "/c"},
		Root:     testdata("empty-root"), // no DMI cloud, no ufw.conf
		Runner:   netnsRunner{full},
		LookPath: lookPaths("nft"),
		Getuid:   os.Geteuid,
		NATPMP:   "off",
		Dial: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := inNetns(full, func() error {
				var d net.Dialer
				var err error
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		},
		Interfaces: func() ([]Interface, error) {
			var ifs []Interface
			err := inNetns(full, func() error {
				var err error
				ifs, err = systemInterfaces()
				return err
			})
			return ifs, err
		},
	}
}

func TestNetnsTopology(t *testing.T) {
	needNetns(t)
	tp := topo{t: t, prefix: fmt.Sprintf("ipcpf%d-", os.Getpid()%100000)}
	for _, n := range []string{"inet", "rtr", "nat", "dir"} {
		tp.sh("ip", "netns", "add", tp.ns(n))
		name := tp.ns(n)
		t.Cleanup(func() { _ = exec.Command("ip", "netns", "del", name).Run() })
	}
	for _, n := range []string{"inet", "rtr", "nat", "dir"} {
		tp.in(n, "ip", "link", "set", "lo", "up")
	}
	tp.link("rtr", "rwan", "11.0.0.1/24", "inet", "irtr", "11.0.0.254/24")
	tp.link("rtr", "rlan", "10.9.0.1/24", "nat", "hlan", "10.9.0.2/24")
	tp.link("dir", "deth", "12.0.0.2/24", "inet", "idir", "12.0.0.254/24")
	tp.in("nat", "ip", "route", "add", "default", "via", "10.9.0.1")
	tp.in("rtr", "ip", "route", "add", "default", "via", "11.0.0.254")
	tp.in("dir", "ip", "route", "add", "default", "via", "12.0.0.254")
	tp.in("rtr", "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
	tp.nft("rtr", `table ip nat {
		chain post { type nat hook postrouting priority 100; oifname "rwan" masquerade; }
	}`)
	tp.nft("dir", `table inet filter {
		chain input { type filter hook input priority 0; policy accept; tcp dport 80 drop; }
	}`)

	// The fake echo service, inside "inet".
	var ln net.Listener
	if err := inNetns(tp.ns("inet"), func() error {
		var err error
		ln, err = net.Listen("tcp4", "0.0.0.0:8080")
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

	opts := Options{Only: []string{IDPublic4, IDInterfaces, IDNAT, IDFirewall, IDAddress}, Timeout: 4 * time.Second}

	t.Run("direct", func(t *testing.T) {
		rep := Run(context.Background(), tp.nsEnv("dir"), opts, nil)
		if rep.Public.V4.Addr.String() != "12.0.0.2" {
			t.Fatalf("public %+v", rep.Public.V4)
		}
		if rep.NAT.Kind != NATDirect {
			t.Errorf("nat %+v", rep.NAT)
		}
		fw, _ := rep.Result(IDFirewall)
		if fw.Status != StatusWarn || !strings.Contains(fw.Summary, "tcp 80 ipv4 by nftables") {
			t.Errorf("firewall %+v", fw)
		}
		blocked := false
		for _, v := range rep.Firewall.Verdict {
			if v.Port == 80 && v.Family == "ipv4" && !v.Allowed && strings.Contains(v.Rule, "drop") {
				blocked = true
			}
			if v.Port == 443 && !v.Allowed {
				t.Errorf("443 blocked: %+v", v)
			}
		}
		if !blocked {
			t.Errorf("the drop rule for port 80 was not seen: %+v", rep.Firewall)
		}
	})

	t.Run("nat", func(t *testing.T) {
		rep := Run(context.Background(), tp.nsEnv("nat"), opts, nil)
		if rep.Public.V4.Addr.String() != "11.0.0.1" || rep.Public.V4.Votes != 3 {
			t.Fatalf("public %+v", rep.Public.V4)
		}
		if rep.NAT.Kind != NATBehind {
			t.Errorf("nat %+v", rep.NAT)
		}
		r, _ := rep.Result(IDNAT)
		if r.Status != StatusWarn || !strings.Contains(r.Fix, "10.9.0.2") {
			t.Errorf("nat result %+v", r)
		}
		if fw, _ := rep.Result(IDFirewall); fw.Status != StatusOK {
			t.Errorf("firewall %+v", fw)
		}
		if ifc, _ := rep.Result(IDInterfaces); !strings.Contains(ifc.Summary, "none public") {
			t.Errorf("interfaces %+v", ifc)
		}
	})

	// The router answers NAT-PMP (a fake inside the router namespace,
	// reached across the veth): home NAT, with the router's external
	// address matching what the echo service saw.
	t.Run("nat-pmp router", func(t *testing.T) {
		var pc net.PacketConn
		if err := inNetns(tp.ns("rtr"), func() error {
			var err error
			pc, err = net.ListenPacket("udp4", "10.9.0.1:5351")
			return err
		}); err != nil {
			t.Fatal(err)
		}
		serveFakeNATPMP(t, pc, "11.0.0.1", nil)
		env := tp.nsEnv("nat")
		env.NATPMP = "10.9.0.1:5351"
		rep := Run(context.Background(), env, opts, nil)
		if rep.NAT.Kind != NATHome || rep.NAT.Router.String() != "11.0.0.1" || rep.NAT.RouterSource != "nat-pmp" {
			t.Errorf("nat %+v", rep.NAT)
		}
	})
}
