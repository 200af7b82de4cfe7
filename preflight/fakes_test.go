package preflight

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
	"github.com/pion/stun/v3"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/testkit"
)

// Fakes of the internet endpoints, all on loopback: nothing here sends
// traffic to any other address.

// fakeEcho serves answer (an address, or a Cloudflare-style trace) after
// delay, on 127.0.0.1 or [::1].
func fakeEcho(t *testing.T, family int, answer string, delay time.Duration) string {
	t.Helper()
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		_, _ = io.WriteString(w, answer)
	})
	srv := httptest.NewUnstartedServer(h)
	ln := listenLoop(t, family, "tcp")
	srv.Listener = ln.(net.Listener)
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// listenLoop listens on loopback of the family, or skips when the host has
// no ::1.
func listenLoop(t *testing.T, family int, proto string) any {
	t.Helper()
	host := "127.0.0.1"
	if family == 6 {
		host = "[::1]"
	}
	var (
		x   any
		err error
	)
	if proto == "tcp" {
		x, err = net.Listen(fmt.Sprintf("tcp%d", family), host+":0")
	} else {
		x, err = net.ListenPacket(fmt.Sprintf("udp%d", family), host+":0")
	}
	if err != nil {
		if family == 6 {
			testkit.NeedIPv6Loopback(t)
		}
		t.Fatal(err)
	}
	return x
}

// fakeDNS answers any query with answer as an A/AAAA record (qtype A or
// AAAA) or a TXT string, after delay.
func fakeDNS(t *testing.T, family int, answer string, delay time.Duration) string {
	t.Helper()
	pc := listenLoop(t, family, "udp").(net.PacketConn)
	srv := &dns.Server{PacketConn: pc, Handler: dns.HandlerFunc(func(w dns.ResponseWriter, req *dns.Msg) {
		time.Sleep(delay)
		m := new(dns.Msg)
		m.SetReply(req)
		q := req.Question[0]
		var rr dns.RR
		var err error
		switch q.Qtype {
		case dns.TypeA:
			rr, err = dns.NewRR(q.Name + " 0 IN A " + answer)
		case dns.TypeAAAA:
			rr, err = dns.NewRR(q.Name + " 0 IN AAAA " + answer)
		default:
			rr, err = dns.NewRR(q.Name + ` 0 IN TXT "` + answer + `"`)
			if rr != nil {
				rr.Header().Class = q.Qclass
			}
		}
		if err == nil {
			m.Answer = append(m.Answer, rr)
		}
		_ = w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go func() { _ = srv.ActivateAndServe() }()
	<-started
	t.Cleanup(func() { _ = srv.Shutdown() })
	return pc.LocalAddr().String()
}

// fakeSTUN answers binding requests with answer as XOR-MAPPED-ADDRESS,
// after delay.
func fakeSTUN(t *testing.T, family int, answer string, delay time.Duration) string {
	t.Helper()
	pc := listenLoop(t, family, "udp").(net.PacketConn)
	t.Cleanup(func() { _ = pc.Close() })
	ip := net.ParseIP(answer)
	go func() {
		buf := make([]byte, 1500)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req := &stun.Message{Raw: append([]byte(nil), buf[:n]...)}
			if req.Decode() != nil {
				continue
			}
			resp, err := stun.Build(stun.NewTransactionIDSetter(req.TransactionID), stun.BindingSuccess,
				&stun.XORMappedAddress{IP: ip, Port: 4242}, stun.Fingerprint)
			if err != nil {
				continue
			}
			time.Sleep(delay)
			_, _ = pc.WriteTo(resp.Raw, from)
		}
	}()
	return pc.LocalAddr().String()
}

// deadTCP is a loopback TCP port with nothing listening (connection
// refused at once).
func deadTCP(t *testing.T, family int) string {
	t.Helper()
	host := "127.0.0.1"
	if family == 6 {
		host = "::1"
	}
	// A port from outside the kernel's ephemeral range: no other test's
	// bind(0) can take it after we checked it.
	p, err := acmeflow.FreePort(host)
	if err != nil {
		t.Fatal(err)
	}
	return net.JoinHostPort(host, strconv.Itoa(p))
}

// blackholeUDP is a loopback UDP port that reads and never answers.
func blackholeUDP(t *testing.T, family int) string {
	t.Helper()
	pc := listenLoop(t, family, "udp").(net.PacketConn)
	t.Cleanup(func() { _ = pc.Close() })
	go func() {
		buf := make([]byte, 1500)
		for {
			if _, _, err := pc.ReadFrom(buf); err != nil {
				return
			}
		}
	}()
	return pc.LocalAddr().String()
}

// blackholeTCP accepts connections and never answers.
func blackholeTCP(t *testing.T, family int) string {
	t.Helper()
	ln := listenLoop(t, family, "tcp").(net.Listener)
	t.Cleanup(func() { _ = ln.Close() })
	go func() {
		var conns []net.Conn
		defer func() {
			for _, c := range conns {
				_ = c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	return ln.Addr().String()
}

// replay is a Runner that answers from recorded outputs, keyed by the
// base name of the program and its arguments.
type replay map[string]string

func (r replay) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	key := strings.TrimSpace(filepath.Base(name) + " " + strings.Join(args, " "))
	file, ok := r[key]
	if !ok {
		return nil, fmt.Errorf("replay: no recording for %q", key)
	}
	if strings.HasPrefix(file, "!") {
		return nil, errors.New(file[1:])
	}
	b, err := os.ReadFile(filepath.Join("..", "testdata", "preflight", file))
	if err != nil {
		return nil, err
	}
	return b, nil
}

// lookPaths finds exactly the named programs, in /usr/sbin.
func lookPaths(names ...string) func(string) (string, error) {
	return func(n string) (string, error) {
		for _, x := range names {
			if x == n {
				return "/usr/sbin/" + n, nil
			}
		}
		return "", errors.New("not found")
	}
}

func testdata(p string) string { return filepath.Join("..", "testdata", "preflight", p) }

// offlineEnv has no endpoints, no commands, no UPnP/NAT-PMP and reads an
// empty root: a base for tests to fill in.
func offlineEnv(t *testing.T) Env {
	return Env{
		Root:          testdata("empty-root"),
		Runner:        replay{},
		LookPath:      lookPaths(),
		Getuid:        func() int { return 1000 },
		NATPMP:        "off",
		SourceTimeout: 500 * time.Millisecond,
		Interfaces: func() ([]Interface, error) {
			return []Interface{{Name: "lo", Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}}}, nil
		},
		Listen: func(ctx context.Context, network, addr string) (net.Listener, error) {
			return nil, errors.New("listening disabled in this test")
		},
	}
}
