package diagnosis

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/fakeacme"
	"github.com/ipcert/ipcert/internal/localca"
	"github.com/ipcert/ipcert/internal/testkit"
	"golang.org/x/sys/unix"
)

// The matrix: ipcert's failures built the way users break them, in
// network namespaces of the test's own, each diagnosed by the real
// binary (issue, then doctor with fresh checks) and, where a fix exists,
// the fix applied and the next issuance succeeding.
//
// The root namespace is "the internet": Pebble's validator runs there
// (in this process) and knocks on the certified address from outside; an
// echo service there tells each site its public address. Each row has
// its own site:
//
//	nat:      internet 11.N.0.1 -- 11.N.0.2 router (masquerade) 10.N.0.1 -- 10.N.0.2 host
//	double:   internet -- 11.N.0.2 router0 192.168.N.1 -- 192.168.N.2 router 10.N.0.1 -- host
//	cgnat:    as double, the carrier's side 100.64.N.1/.2 (RFC 6598)
//	direct:   internet 12.N.0.1 -- 12.N.0.2 host (the public address on its interface)
//	provider: internet 11.N.0.1 -- 11.N.0.2 provider's router 12.N.0.1 -- 12.N.0.2 host (routed, filtered)
//
// The host runs the built binary with "--ca staging": in the host's
// namespace Let's Encrypt staging's name resolves (ip netns exec's
// /etc/netns/NS/hosts) to the internet's side, where a TLS relay with a
// test root (SSL_CERT_FILE) forwards to Pebble (or to fakeacme for Let's
// Encrypt's exact problem documents); an nft output rule in the host
// sends its port 443 there. So the binary reasons as for Let's Encrypt,
// and nothing leaves these namespaces. 11/8, 12/8 and 13/8 are used
// because Let's Encrypt's policy (and ipcert's) wants public addresses;
// nothing here routes to the real ones.

const leStaging = "acme-staging-v02.api.letsencrypt.org"

func needMatrix(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		testkit.Need(t, false, "the namespace matrix needs root (network namespaces)")
	}
	for _, p := range []string{"ip", "nft"} {
		testkit.NeedProgram(t, p, map[string]string{"ip": "iproute2", "nft": "nftables"}[p])
	}
}

// lab is what every row shares: the binary, Pebble, the echo service and
// the test root that signs the relays' certificate.
type lab struct {
	bin      string
	dir      string
	pebble   *localca.Server
	echoPort int
	rootFile string
	leaf     tls.Certificate
	prefix   string
}

func newLab(t *testing.T) *lab {
	t.Helper()
	l := &lab{bin: testkit.Binary(t), dir: t.TempDir(), prefix: fmt.Sprintf("ipm%d", os.Getpid()%10000)}
	// One matrix at a time on a machine: the rows' address blocks (11/8,
	// 12/8, 13/8, 2a02:898::/32 routes in the root namespace) are fixed.
	lock, err := os.OpenFile(filepath.Join(os.TempDir(), "ipcert-matrix.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { lock.Close() })
	// The validator knocks on the standard ports, as Let's Encrypt's.
	srv, err := localca.Start(localca.Options{HTTPPort: 80, TLSPort: 443})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	l.pebble = srv
	ln, err := net.Listen("tcp4", "0.0.0.0:0")
	if err != nil {
		t.Fatal(err)
	}
	l.echoPort = ln.Addr().(*net.TCPAddr).Port
	echo := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		_, _ = io.WriteString(w, host+"\n")
	})}
	go func() { _ = echo.Serve(ln) }()
	t.Cleanup(func() { _ = echo.Close() })
	// A root and a leaf for Let's Encrypt's names, trusted by the binary
	// through SSL_CERT_FILE.
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rootTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ipcert matrix root"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, &rootKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	rootCert, _ := x509.ParseCertificate(rootDER)
	leafKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: leStaging}, DNSNames: []string{leStaging},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, rootCert, &leafKey.PublicKey, rootKey)
	if err != nil {
		t.Fatal(err)
	}
	l.leaf = tls.Certificate{Certificate: [][]byte{leafDER}, PrivateKey: leafKey}
	l.rootFile = filepath.Join(l.dir, "root.pem")
	if err := os.WriteFile(l.rootFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: rootDER}), 0o644); err != nil {
		t.Fatal(err)
	}
	return l
}

// site is one row's topology.
type site struct {
	t     *testing.T
	l     *lab
	n     int
	kind  string
	names map[string]string // role -> namespace
	gw    string            // the internet's address as the host reaches it
	pub   string            // the public address of the host (or its router)
	state string            // the host's state directory
	dir   string
	path  string // PATH of the host's commands (a wrapper for nginx first)
	// stored is the code of the diagnosis issue printed and kept.
	stored string
}

func (s *site) ns(role string) string { return s.names[role] }

func (s *site) sh(args ...string) {
	s.t.Helper()
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

func (s *site) in(role string, args ...string) {
	s.t.Helper()
	s.sh(append([]string{"ip", "netns", "exec", s.ns(role)}, args...)...)
}

func (s *site) nft(role, rules string) {
	s.t.Helper()
	cmd := exec.Command("ip", "netns", "exec", s.ns(role), "nft", "-f", "-")
	// One statement a line: nft -f wants no ";" before a "}".
	cmd.Stdin = strings.NewReader(strings.NewReplacer(";", "\n", "} }", "\n}\n}").Replace(rules))
	if out, err := cmd.CombinedOutput(); err != nil {
		s.t.Fatalf("nft in %s: %v\n%s\n%s", role, err, out, rules)
	}
}

func (s *site) addNS(role string) {
	s.t.Helper()
	name := fmt.Sprintf("%s-%02d%s", s.l.prefix, s.n, role)
	s.sh("ip", "netns", "add", name)
	s.t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "del", name).Run()
		_ = os.RemoveAll("/etc/netns/" + name)
	})
	s.names[role] = name
	s.in(role, "ip", "link", "set", "lo", "up")
	s.in(role, "sh", "-c", "echo 1 > /proc/sys/net/ipv4/ip_forward")
}

// link joins two namespaces ("" is the internet: the root namespace).
func (s *site) link(a, addrA, b, addrB string) {
	s.t.Helper()
	ifA, ifB := fmt.Sprintf("%s%02d%s%s", s.l.prefix, s.n, a, b), fmt.Sprintf("%s%02d%s%s", s.l.prefix, s.n, b, a)
	if a == "" {
		ifA = fmt.Sprintf("%s%02di%s", s.l.prefix, s.n, b)
	}
	args := []string{"ip", "link", "add", ifA}
	if a != "" {
		args = append(args, "netns", s.ns(a))
	}
	args = append(args, "type", "veth", "peer", "name", ifB, "netns", s.ns(b))
	s.sh(args...)
	if a == "" {
		s.t.Cleanup(func() { _ = exec.Command("ip", "link", "del", ifA).Run() })
		s.sh("ip", "addr", "add", addrA, "dev", ifA)
		s.sh("ip", "link", "set", ifA, "up")
	} else {
		s.in(a, "ip", "addr", "add", addrA, "dev", ifA)
		s.in(a, "ip", "link", "set", ifA, "up")
	}
	s.in(b, "ip", "addr", "add", addrB, "dev", ifB)
	s.in(b, "ip", "link", "set", ifB, "up")
}

func (s *site) masquerade(role string) {
	s.t.Helper()
	s.nft(role, "table ip nat { chain post { type nat hook postrouting priority 100; ip saddr { 10.0.0.0/8, 192.168.0.0/16, 100.64.0.0/10 } oifname != \"lo\" masquerade; } }")
}

// forward makes role's router forward tcp port of its outside address to
// dst (a port forward in the router's settings).
func (s *site) forward(role string, port int, dst string) {
	s.t.Helper()
	s.nft(role, fmt.Sprintf("table ip portfwd { chain pre { type nat hook prerouting priority -100; tcp dport %d dnat to %s; } }", port, dst))
}

func newSite(t *testing.T, l *lab, n int, kind string) *site {
	t.Helper()
	s := &site{t: t, l: l, n: n, kind: kind, names: map[string]string{}, dir: t.TempDir()}
	s.state = filepath.Join(s.dir, "state")
	// The host's programs: no sbin in PATH, so that of the web servers
	// only the row's own nginx (a wrapper, below) is found; apache2ctl -S
	// waits for DNS that these namespaces do not have. The firewall
	// tools are found in /usr/sbin all the same (preflight's findTool).
	s.path = "/usr/bin:/bin"
	N := strconv.Itoa(n)
	switch kind {
	case "nat":
		s.addNS("r")
		s.addNS("h")
		s.link("", "11."+N+".0.1/24", "r", "11."+N+".0.2/24")
		s.link("r", "10."+N+".0.1/24", "h", "10."+N+".0.2/24")
		s.in("r", "ip", "route", "add", "default", "via", "11."+N+".0.1")
		s.in("h", "ip", "route", "add", "default", "via", "10."+N+".0.1")
		s.masquerade("r")
		s.gw, s.pub = "11."+N+".0.1", "11."+N+".0.2"
	case "double", "cgnat":
		mid := "192.168." + N
		if kind == "cgnat" {
			mid = "100.64." + N
		}
		s.addNS("c")
		s.addNS("r")
		s.addNS("h")
		s.link("", "11."+N+".0.1/24", "c", "11."+N+".0.2/24")
		s.link("c", mid+".1/24", "r", mid+".2/24")
		s.link("r", "10."+N+".0.1/24", "h", "10."+N+".0.2/24")
		s.in("c", "ip", "route", "add", "default", "via", "11."+N+".0.1")
		s.in("r", "ip", "route", "add", "default", "via", mid+".1")
		s.in("h", "ip", "route", "add", "default", "via", "10."+N+".0.1")
		s.masquerade("c")
		s.masquerade("r")
		s.gw, s.pub = "11."+N+".0.1", "11."+N+".0.2"
	case "direct":
		s.addNS("h")
		s.link("", "12."+N+".0.1/24", "h", "12."+N+".0.2/24")
		s.in("h", "ip", "route", "add", "default", "via", "12."+N+".0.1")
		s.gw, s.pub = "12."+N+".0.1", "12."+N+".0.2"
	case "provider":
		s.addNS("p")
		s.addNS("h")
		s.link("", "11."+N+".0.1/24", "p", "11."+N+".0.2/24")
		s.link("p", "12."+N+".0.1/24", "h", "12."+N+".0.2/24")
		s.in("p", "ip", "route", "add", "default", "via", "11."+N+".0.1")
		s.in("h", "ip", "route", "add", "default", "via", "12."+N+".0.1")
		s.sh("ip", "route", "add", "12."+N+".0.0/24", "via", "11."+N+".0.2")
		t.Cleanup(func() { _ = exec.Command("ip", "route", "del", "12."+N+".0.0/24").Run() })
		s.gw, s.pub = "11."+N+".0.1", "12."+N+".0.2"
	default:
		t.Fatalf("no site kind %q", kind)
	}
	// Let's Encrypt staging, as the host sees it: the relay on the
	// internet's side, port 443 sent to the relay's port.
	if err := os.MkdirAll("/etc/netns/"+s.ns("h"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/etc/netns/"+s.ns("h")+"/hosts", []byte("127.0.0.1 localhost\n"+s.gw+" "+leStaging+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// relay serves Let's Encrypt staging's name on the internet's side and
// passes every request to the CA at target, its URLs rewritten.
func (s *site) relay(target string, client *http.Client) {
	s.t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		s.t.Fatal(err)
	}
	base := u.Scheme + "://" + u.Host
	proxy := &httputil.ReverseProxy{Transport: client.Transport, Rewrite: func(pr *httputil.ProxyRequest) {
		pr.SetURL(&url.URL{Scheme: u.Scheme, Host: u.Host})
		// The CA builds its URLs from the Host it is asked for (Pebble),
		// or from its own (fakeacme: rewritten below).
		pr.Out.Host = pr.In.Host
		// Let's Encrypt's directory is /directory; the CA's its own.
		if pr.In.URL.Path == "/directory" {
			pr.Out.URL.Path = u.Path
		}
	}}
	proxy.ModifyResponse = func(r *http.Response) error {
		if loc := r.Header.Get("Location"); loc != "" {
			r.Header.Set("Location", strings.ReplaceAll(loc, base, "https://"+leStaging))
		}
		for _, l := range r.Header.Values("Link") {
			r.Header.Del("Link")
			r.Header.Add("Link", strings.ReplaceAll(l, base, "https://"+leStaging))
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return err
		}
		r.Body.Close()
		body = bytes.ReplaceAll(body, []byte(base), []byte("https://"+leStaging))
		r.Body = io.NopCloser(bytes.NewReader(body))
		r.ContentLength = int64(len(body))
		r.Header.Set("Content-Length", strconv.Itoa(len(body)))
		return nil
	}
	ln, err := net.Listen("tcp4", s.gw+":0")
	if err != nil {
		s.t.Fatal(err)
	}
	srv := &http.Server{Handler: proxy, TLSConfig: &tls.Config{Certificates: []tls.Certificate{s.l.leaf}}, ErrorLog: nil}
	go func() { _ = srv.ServeTLS(ln, "", "") }()
	s.t.Cleanup(func() { _ = srv.Close() })
	port := ln.Addr().(*net.TCPAddr).Port
	s.nft("h", fmt.Sprintf("table ip cafwd { chain out { type nat hook output priority -100; ip daddr %s tcp dport 443 dnat to %s:%d; } }", s.gw, s.gw, port))
}

// ipcert runs the binary in the host's namespace; it returns the exit
// code and the output.
func (s *site) ipcert(args ...string) (int, string, string) {
	s.t.Helper()
	echo := fmt.Sprintf("http://%s:%d", s.gw, s.l.echoPort)
	env := []string{"SSL_CERT_FILE=" + s.l.rootFile, "PATH=" + s.path, "HOME=" + s.dir,
		"IPCERT_ECHO4=" + echo + "/a," + echo + "/b," + echo + "/c"}
	cmd := exec.Command("ip", append([]string{"netns", "exec", s.ns("h"), "env", "-i"}, append(env, append([]string{s.l.bin}, args...)...)...)...)
	out, errs, code := testkit.Run(s.t, cmd)
	return code, out, errs
}

// issue is "ipcert issue" of the row for ip, on Let's Encrypt staging.
func (s *site) issue(ip string, extra ...string) []string {
	return append([]string{"issue", "--ca", "staging", "--ip", ip, "--agree-tos", "--state-dir", s.state, "--wait", "0s", "--timeout", "90s"}, extra...)
}

// doctored is doctor's fresh diagnosis of ip, as its JSON gives it.
func (s *site) doctored(ip string) Diagnosis {
	s.t.Helper()
	code, out, errs := s.ipcert("doctor", ip, "--state-dir", s.state, "--json")
	var rep struct {
		Targets []struct {
			Now    *Diagnosis `json:"diagnosis"`
			Stored *Diagnosis `json:"stored_diagnosis"`
		} `json:"targets"`
	}
	defer func() {
		if len(rep.Targets) == 1 && rep.Targets[0].Stored != nil {
			s.stored = rep.Targets[0].Stored.Code
		}
	}()
	if os.Getenv("IPCERT_MATRIX_DEBUG") != "" {
		s.t.Logf("doctor:\n%s\n%s", out, errs)
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Targets) != 1 || rep.Targets[0].Now == nil {
		s.t.Fatalf("doctor (exit %d): %v\n%s\n%s", code, err, out, errs)
	}
	return *rep.Targets[0].Now
}

// serve runs an HTTP server inside role's namespace on addr.
func (s *site) serve(role, addr string, h http.Handler) {
	s.t.Helper()
	var ln net.Listener
	if err := inNS(s.ns(role), func() error {
		var err error
		ln, err = net.Listen("tcp", addr)
		return err
	}); err != nil {
		s.t.Fatal(err)
	}
	srv := &http.Server{Handler: h}
	go func() { _ = srv.Serve(ln) }()
	s.t.Cleanup(func() { _ = srv.Close() })
}

// inNS runs fn on an OS thread moved into the namespace, never reused
// (preflight/netns_test.go).
func inNS(ns string, fn func() error) error {
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

// nginx runs nginx in the host's namespace with the server blocks given,
// and puts a wrapper first in the host's PATH so that "nginx -T" (what
// preflight reads) shows that configuration.
func (s *site) nginx(servers string) {
	s.t.Helper()
	bin := testkit.NeedProgram(s.t, "nginx", "nginx")
	conf := filepath.Join(s.dir, "nginx.conf")
	s.writeNginx(servers)
	wrap := filepath.Join(s.dir, "bin")
	if err := os.MkdirAll(wrap, 0o755); err != nil {
		s.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(wrap, "nginx"), []byte("#!/bin/sh\nexec "+bin+" -c "+conf+" \"$@\"\n"), 0o755); err != nil {
		s.t.Fatal(err)
	}
	s.path = wrap + ":" + s.path
	s.in("h", bin, "-c", conf)
	s.t.Cleanup(func() { _ = exec.Command("ip", "netns", "exec", s.ns("h"), bin, "-c", conf, "-s", "stop").Run() })
}

func (s *site) writeNginx(servers string) {
	s.t.Helper()
	conf := fmt.Sprintf(`user root;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
	access_log %[1]s/access.log;
	client_body_temp_path %[1]s/tmp-body;
	proxy_temp_path %[1]s/tmp-proxy;
	fastcgi_temp_path %[1]s/tmp-fcgi;
	uwsgi_temp_path %[1]s/tmp-uwsgi;
	scgi_temp_path %[1]s/tmp-scgi;
%[2]s
}
`, s.dir, strings.NewReplacer("; ", ";\n", "{ ", "{\n", "} ", "}\n").Replace(servers))
	if err := os.WriteFile(filepath.Join(s.dir, "nginx.conf"), []byte(conf), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

func (s *site) reloadNginx(servers string) {
	s.t.Helper()
	s.writeNginx(servers)
	bin := testkit.NeedProgram(s.t, "nginx", "nginx")
	old := s.nginxWorkers()
	s.in("h", bin, "-c", filepath.Join(s.dir, "nginx.conf"), "-s", "reload")
	// The reload is done when the old workers are gone (they would go on
	// serving a validator's kept-alive connection the old way) and the
	// challenge path is answered without the redirect.
	deadline := time.Now().Add(30 * time.Second)
	for {
		gone := true
		for _, w := range s.nginxWorkers() {
			gone = gone && !slices.Contains(old, w)
		}
		if gone {
			break
		}
		if time.Now().After(deadline) {
			s.t.Fatal("nginx's old workers did not exit after the reload")
		}
		time.Sleep(20 * time.Millisecond)
	}
	for st := 0; st != http.StatusNotFound; st = s.status("http://" + s.pub + "/.well-known/acme-challenge/reload-check") {
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(filepath.Join(s.dir, "error.log"))
			s.t.Fatalf("nginx answers the challenge path with %d after the reload, not 404\n%s", st, log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// nginxWorkers are the worker processes of the row's nginx.
func (s *site) nginxWorkers() []string {
	pid, err := os.ReadFile(filepath.Join(s.dir, "nginx.pid"))
	if err != nil {
		return nil
	}
	p := strings.TrimSpace(string(pid))
	kids, _ := os.ReadFile("/proc/" + p + "/task/" + p + "/children")
	return strings.Fields(string(kids))
}

// status is the HTTP status of a GET of u from inside the host.
func (s *site) status(u string) int {
	s.t.Helper()
	c := &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			var conn net.Conn
			err := inNS(s.ns("h"), func() error {
				var d net.Dialer
				var err error
				conn, err = d.DialContext(ctx, network, addr)
				return err
			})
			return conn, err
		}},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := c.Get(u)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// webDir makes a document root under the site's directory.
func (s *site) webDir(name string) string {
	s.t.Helper()
	d := filepath.Join(s.dir, name)
	if err := os.MkdirAll(d, 0o755); err != nil {
		s.t.Fatal(err)
	}
	return d
}

// selfSigned writes a certificate and key for nginx's TLS server.
func (s *site) selfSigned() (string, string) {
	s.t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "site"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	kder, _ := x509.MarshalECPrivateKey(key)
	c, k := filepath.Join(s.dir, "site.crt"), filepath.Join(s.dir, "site.key")
	_ = os.WriteFile(c, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644)
	_ = os.WriteFile(k, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	return c, k
}

// run runs a suggested command: ipcert's in the host, nft/iptables in
// the host (as root: sudo dropped).
func (s *site) run(c Cmd) (int, string, string) {
	s.t.Helper()
	w := []string(c)
	if len(w) > 0 && w[0] == "sudo" {
		w = w[1:]
	}
	if len(w) == 0 {
		s.t.Fatal("no command to run")
	}
	if w[0] == "ipcert" {
		return s.ipcert(w[1:]...)
	}
	out, err := exec.Command("ip", append([]string{"netns", "exec", s.ns("h")}, w...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("%s: %v\n%s", c, err, out)
	}
	return 0, string(out), ""
}

type matrixRow struct {
	name string
	kind string
	// setup breaks the site; it returns the address to certify and the
	// flags of the first issuance.
	setup func(s *site) (ip string, flags []string)
	want  string
	// fix applies what the diagnosis says and returns the command to
	// run next (the diagnosis's own, or the issuance again); nil: no fix
	// exists, the cause is all there is.
	fix func(s *site, d Diagnosis, first []string) []string
	// fakeProblem: the CA is fakeacme answering this problem document at
	// the challenge (Let's Encrypt's exact words).
	fakeProblem string
}

// suggested is the diagnosis's own command, which must be the fix: an
// issuance, a real order from outside, or the firewall's own tool.
func suggested(s *site, d Diagnosis, _ []string) []string {
	sub, ok := d.Args.Ipcert()
	_, probe := d.Args.Flag("--probe")
	w := []string(d.Args)
	if len(w) > 0 && w[0] == "sudo" {
		w = w[1:]
	}
	fw := len(w) > 0 && (w[0] == "nft" || w[0] == "iptables" || w[0] == "ip6tables")
	if !(ok && (sub == "issue" || sub == "doctor" && probe) || fw) {
		s.t.Fatalf("the diagnosis's command is not a fix: %s\n  cause: %s\n  fix: %s\n  evidence: %q", d.Command, d.Cause, d.Fix, d.Evidence)
	}
	return d.Args
}

// again is the first issuance again.
func again(_ *site, _ Diagnosis, first []string) []string {
	return append([]string{"ipcert"}, first...)
}

func TestMatrixNetns(t *testing.T) {
	needMatrix(t)
	l := newLab(t)
	html := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, "<html><title>Router Login</title></html>")
	})
	notFound := http.NotFoundHandler()
	rows := matrixRows(html, notFound)
	start := time.Now()
	// At most a few rows at once: the relay, Pebble and the binaries
	// share two cores (and the race detector), and a CA that answers
	// late is another failure than the row's.
	slots := make(chan struct{}, 6)
	for i, r := range rows {
		t.Run(r.name, func(t *testing.T) {
			t.Parallel()
			slots <- struct{}{}
			defer func() { <-slots }()
			rowStart := time.Now()
			s := newSite(t, l, i+1, r.kind)
			if r.fakeProblem != "" {
				fa := fakeacme.Start(fakeacme.Options{Problem: []byte(r.fakeProblem), At: fakeacme.AtChallenge})
				t.Cleanup(fa.Close)
				s.relay(fa.DirectoryURL(), fa.Client())
			} else {
				s.relay(l.pebble.DirectoryURL(), l.pebble.HTTPClient())
			}
			ip, flags := r.setup(s)
			first := s.issue(ip, flags...)
			code, _, errs := s.ipcert(first...)
			if code == 0 {
				t.Fatalf("the broken site issued:\n%s", errs)
			}
			d := s.doctored(ip)
			if d.Code != r.want {
				t.Fatalf("doctor says %q, want %q\n  cause: %s\n  fix: %s\n  command: %s\n  evidence: %q\nissue said:\n%s", d.Code, r.want, d.Cause, d.Fix, d.Command, d.Evidence, errs)
			}
			// What issue printed right after the failure is the same cause.
			if s.stored != r.want {
				t.Errorf("issue said %q, doctor %q\nissue said:\n%s", s.stored, r.want, errs)
			}
			if strings.Contains(d.Command, "ufw") {
				t.Errorf("ufw suggested on a host without it: %s", d.Command)
			}
			if r.fix == nil {
				t.Logf("%s: %s (no fix: %s) in %s", d.Code, d.Cause, d.Fix, time.Since(rowStart).Round(time.Millisecond))
				return
			}
			next := Cmd(r.fix(s, d, first))
			code, out, errs := s.run(next)
			if w := []string(next); w[0] != "ipcert" && w[0] != "sudo" || len(w) > 1 && w[0] == "sudo" && w[1] != "ipcert" {
				// A firewall command: then the issuance again.
				code, out, errs = s.ipcert(first...)
			}
			if code != 0 {
				if os.Getenv("IPCERT_MATRIX_DEBUG") != "" {
					log, _ := os.ReadFile(filepath.Join(s.dir, "error.log"))
					conf, _ := os.ReadFile(filepath.Join(s.dir, "nginx.conf"))
					t.Logf("nginx:\n%s\n%s", conf, log)
				}
				t.Fatalf("after the fix (%s), exit %d:\n%s\n%s", next, code, out, errs)
			}
			t.Logf("%s -> %s, fixed in %s", d.Code, next, time.Since(rowStart).Round(time.Millisecond))
		})
	}
	t.Cleanup(func() { t.Logf("%d rows in %s", len(rows), time.Since(start).Round(time.Second)) })
}

func matrixRows(html, notFound http.Handler) []matrixRow {
	n := func(s *site) string { return strconv.Itoa(s.n) }
	return []matrixRow{
		{name: "home NAT, no port forward, the router refuses", kind: "nat", want: DiagNotForwarded,
			setup: func(s *site) (string, []string) { return s.pub, nil },
			fix: func(s *site, d Diagnosis, first []string) []string {
				s.forward("r", 80, "10."+n(s)+".0.2")
				return suggested(s, d, first)
			}},
		{name: "home NAT, no port forward, the router drops", kind: "nat", want: DiagNotForwarded,
			setup: func(s *site) (string, []string) {
				s.nft("r", "table inet flt { chain inp { type filter hook input priority 0; tcp dport 80 drop; } }")
				return s.pub, nil
			},
			fix: func(s *site, d Diagnosis, first []string) []string {
				s.forward("r", 80, "10."+n(s)+".0.2")
				return suggested(s, d, first)
			}},
		{name: "home NAT, the forward leads to another machine's web page", kind: "nat", want: DiagForeignServer,
			setup: func(s *site) (string, []string) {
				s.addNS("o")
				s.link("r", "10."+n(s)+".1.1/24", "o", "10."+n(s)+".1.2/24")
				s.in("o", "ip", "route", "add", "default", "via", "10."+n(s)+".1.1")
				s.serve("o", "0.0.0.0:80", html)
				s.forward("r", 80, "10."+n(s)+".1.2")
				return s.pub, nil
			},
			fix: func(s *site, d Diagnosis, first []string) []string {
				s.in("r", "nft", "delete", "table", "ip", "portfwd")
				s.forward("r", 80, "10."+n(s)+".0.2")
				return suggested(s, d, first)
			}},
		{name: "home NAT forwarded, the host's nftables drops", kind: "nat", want: DiagFirewall,
			setup: func(s *site) (string, []string) {
				s.forward("r", 80, "10."+n(s)+".0.2")
				s.nft("h", "table inet filter { chain input { type filter hook input priority 0; policy accept; tcp dport 80 drop; } }")
				return s.pub, nil
			},
			fix: suggested},
		{name: "double NAT, the outer router does not forward", kind: "double", want: DiagNotForwarded,
			setup: func(s *site) (string, []string) {
				s.forward("r", 80, "10."+n(s)+".0.2")
				return s.pub, nil
			},
			fix: func(s *site, d Diagnosis, first []string) []string {
				s.forward("c", 80, "192.168."+n(s)+".2")
				return suggested(s, d, first)
			}},
		{name: "carrier-grade NAT: the address is not the host's", kind: "cgnat", want: DiagCGNAT,
			setup: func(s *site) (string, []string) {
				s.forward("r", 80, "10."+n(s)+".0.2")
				return s.pub, nil
			}},
		{name: "no NAT, an nftables reject rule", kind: "direct", want: DiagFirewall,
			setup: func(s *site) (string, []string) {
				s.nft("h", "table inet filter { chain input { type filter hook input priority 0; policy accept; tcp dport 80 reject with tcp reset; } }")
				return s.pub, nil
			},
			fix: suggested},
		{name: "no NAT, an nftables drop rule", kind: "direct", want: DiagFirewall,
			setup: func(s *site) (string, []string) {
				s.nft("h", "table inet filter { chain input { type filter hook input priority 0; policy accept; tcp dport 80 drop; } }")
				return s.pub, nil
			},
			fix: suggested},
		{name: "no NAT, an iptables DROP rule", kind: "direct", want: DiagFirewall,
			setup: func(s *site) (string, []string) {
				testkit.NeedProgram(s.t, "iptables", "iptables")
				s.in("h", "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "80", "-j", "DROP")
				return s.pub, nil
			},
			fix: suggested},
		{name: "no NAT, an iptables REJECT rule", kind: "direct", want: DiagFirewall,
			setup: func(s *site) (string, []string) {
				testkit.NeedProgram(s.t, "iptables", "iptables")
				s.in("h", "iptables", "-A", "INPUT", "-p", "tcp", "--dport", "80", "-j", "REJECT", "--reject-with", "tcp-reset")
				return s.pub, nil
			},
			fix: suggested},
		{name: "the provider's firewall drops, not the host's", kind: "provider", want: DiagConnectTimeout,
			setup: func(s *site) (string, []string) {
				s.nft("p", "table inet flt { chain fw { type filter hook forward priority 0; tcp dport 80 drop; } }")
				return s.pub, nil
			},
			fix: func(s *site, d Diagnosis, first []string) []string {
				s.in("p", "nft", "delete", "table", "inet", "flt")
				return suggested(s, d, first) // doctor ADDR --probe: a real order from outside
			}},
		{name: "no NAT, a proxy in front answers: no router blamed", kind: "provider", want: DiagForeignServer,
			setup: func(s *site) (string, []string) {
				s.addNS("o")
				s.link("p", "10."+n(s)+".1.1/24", "o", "10."+n(s)+".1.2/24")
				s.in("o", "ip", "route", "add", "default", "via", "10."+n(s)+".1.1")
				s.serve("o", "0.0.0.0:80", html)
				s.forward("p", 80, "10."+n(s)+".1.2")
				return s.pub, nil
			},
			fix: func(s *site, d Diagnosis, first []string) []string {
				if strings.Contains(strings.ToLower(d.Cause+d.Fix), "router") {
					s.t.Errorf("a router is blamed on a host with no NAT: %s / %s", d.Cause, d.Fix)
				}
				s.in("p", "nft", "delete", "table", "ip", "portfwd")
				return again(s, d, first)
			}},
		{name: "an IPv6 address that is not routed", kind: "direct", want: DiagNetUnreachable,
			setup: func(s *site) (string, []string) {
				v6 := fmt.Sprintf("2a02:898:%x::2", 0x100+s.n)
				s.in("h", "ip", "-6", "addr", "add", v6+"/64", "dev", s.hostIf(), "nodad")
				route := fmt.Sprintf("2a02:898:%x::/48", 0x100+s.n)
				s.sh("ip", "-6", "route", "replace", "unreachable", route)
				s.t.Cleanup(func() { _ = exec.Command("ip", "-6", "route", "del", "unreachable", route).Run() })
				return v6, nil
			},
			fix: suggested}, // the IPv4 address instead
		{name: "the CA reached another machine", kind: "direct", want: DiagWrongAddress,
			setup: func(s *site) (string, []string) {
				s.addNS("o")
				s.link("", "13."+n(s)+".0.1/24", "o", "13."+n(s)+".0.2/24")
				s.in("o", "ip", "route", "add", "default", "via", "13."+n(s)+".0.1")
				s.serve("o", "0.0.0.0:80", notFound)
				return "13." + n(s) + ".0.2", nil
			},
			fix: suggested}, // this machine's public address
		{name: "the address moved since it was certified", kind: "direct", want: DiagAddressChanged,
			setup: func(s *site) (string, []string) {
				if code, _, errs := s.ipcert(s.issue(s.pub)...); code != 0 {
					s.t.Fatalf("the first issuance failed: %s", errs)
				}
				s.in("h", "ip", "addr", "del", s.pub+"/24", "dev", s.hostIf())
				s.in("h", "ip", "addr", "add", "12."+n(s)+".0.5/24", "dev", s.hostIf())
				s.in("h", "ip", "route", "add", "default", "via", s.gw)
				return s.pub, nil
			},
			fix: suggested}, // the address it has now
		{name: "port 80 held by nginx: its real root", kind: "direct", want: DiagPortBusy,
			setup: func(s *site) (string, []string) {
				s.nginx("server { listen 80 default_server; root " + s.webDir("site") + "; }")
				return s.pub, nil
			},
			fix: suggested},
		{name: "tls-alpn-01 with port 443 held by nginx: http-01 through its root", kind: "direct", want: DiagPortBusy,
			setup: func(s *site) (string, []string) {
				c, k := s.selfSigned()
				root := s.webDir("site")
				s.nginx("server { listen 80 default_server; root " + root + "; }\n server { listen 443 ssl default_server; ssl_certificate " + c + "; ssl_certificate_key " + k + "; root " + root + "; }")
				return s.pub, []string{"--challenge", "tls-alpn-01"}
			},
			fix: suggested},
		{name: "--webroot is not the root nginx serves", kind: "direct", want: DiagWebRootNotServed,
			setup: func(s *site) (string, []string) {
				s.nginx("server { listen 80 default_server; root " + s.webDir("site") + "; }")
				return s.pub, []string{"--webroot", s.webDir("elsewhere")}
			},
			fix: suggested},
		{name: "the whole server redirects to https", kind: "direct", want: DiagRedirectHTTPS,
			setup: func(s *site) (string, []string) {
				c, k := s.selfSigned()
				s.nginx("server { listen 80 default_server; root " + s.webDir("site") + "; return 301 https://$host$request_uri; }\n server { listen 443 ssl default_server; ssl_certificate " + c + "; ssl_certificate_key " + k + "; root " + s.webDir("app") + "; }")
				return s.pub, []string{"--webroot", s.webDir("site")}
			},
			fix: func(s *site, d Diagnosis, first []string) []string {
				c, k := filepath.Join(s.dir, "site.crt"), filepath.Join(s.dir, "site.key")
				s.reloadNginx("server { listen 80 default_server; root " + s.webDir("site") + "; location ^~ /.well-known/acme-challenge/ { root " + s.webDir("site") + "; } location / { return 301 https://$host$request_uri; } }\n server { listen 443 ssl default_server; ssl_certificate " + c + "; ssl_certificate_key " + k + "; root " + s.webDir("app") + "; }")
				return again(s, d, first)
			}},
		{name: "the challenge path redirects to another port", kind: "direct", want: DiagRedirectPort,
			setup: func(s *site) (string, []string) {
				s.nginx("server { listen 80 default_server; root " + s.webDir("site") + "; return 301 http://$host:8080$request_uri; }")
				return s.pub, []string{"--webroot", s.webDir("site")}
			},
			fix: func(s *site, d Diagnosis, first []string) []string {
				s.reloadNginx("server { listen 80 default_server; root " + s.webDir("site") + "; location ^~ /.well-known/acme-challenge/ { } location / { return 301 http://$host:8080$request_uri; } }")
				return again(s, d, first)
			}},
		{name: "--webroot, but the web server is stopped", kind: "direct", want: DiagConnectRefused,
			setup: func(s *site) (string, []string) {
				return s.pub, []string{"--webroot", s.webDir("site")}
			},
			fix: suggested}, // ipcert's own responder
		{name: "multi-perspective: a secondary validator is blocked", kind: "direct", want: DiagSecondary,
			fakeProblem: `{"type":"urn:ietf:params:acme:error:connection","detail":"During secondary validation: 12.0.0.2: Fetching http://12.0.0.2/.well-known/acme-challenge/x: Timeout during connect (likely firewall problem)","status":400}`,
			setup:       func(s *site) (string, []string) { return s.pub, nil }},
	}
}

// hostIf is the host's interface towards the internet (direct sites).
func (s *site) hostIf() string {
	return fmt.Sprintf("%s%02dh", s.l.prefix, s.n)
}

// TestMatrixWizardRehearsal: the real wizard (accessible mode, the built
// binary in a host's namespace) rehearses on Let's Encrypt staging, whose
// name does not resolve there; the user quits on the failure; the last
// words send them to doctor, and doctor explains that very failure (its
// CA, the name that did not resolve) and re-checks the name.
func TestMatrixWizardRehearsal(t *testing.T) {
	needMatrix(t)
	l := newLab(t)
	s := newSite(t, l, 40, "direct")
	// No entry for staging's name, and a resolver that is not there.
	if err := os.WriteFile("/etc/netns/"+s.ns("h")+"/hosts", []byte("127.0.0.1 localhost\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile("/etc/netns/"+s.ns("h")+"/resolv.conf", []byte("nameserver 127.0.0.1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// address (the detected public one), preflight: go, CA: rehearse on
	// staging then production, challenge: http-01, key, e-mail, terms;
	// on the failure: quit.
	in := "1\n1\n1\n1\n\n\ny\n4\n"
	echo := fmt.Sprintf("http://%s:%d", s.gw, l.echoPort)
	cmd := exec.Command("ip", "netns", "exec", s.ns("h"), "env", "-i", "SSL_CERT_FILE="+l.rootFile, "PATH="+s.path, "HOME="+s.dir,
		"IPCERT_ECHO4="+echo+"/a,"+echo+"/b,"+echo+"/c", l.bin, "--accessible", "--state-dir", s.state)
	cmd.Stdin = strings.NewReader(in)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	_ = cmd.Run()
	last := errb.String()
	// The failure was at the directory step, before any address: doctor
	// of the state directory lists it first.
	if !strings.Contains(last, "Run \"ipcert doctor --state-dir "+s.state+"\"") && !strings.Contains(last, "Run \"ipcert doctor "+s.pub+" --state-dir "+s.state+"\"") {
		t.Fatalf("the wizard's last words do not send to doctor of %s:\n%s", s.state, last)
	}
	code, report, errs := s.ipcert("doctor", "--state-dir", s.state)
	if code != 1 || strings.Contains(report, "No failures stored") {
		t.Fatalf("doctor (exit %d) does not explain the rehearsal:\n%s\n%s", code, report, errs)
	}
	for _, w := range []string{"on Let's Encrypt staging", "[" + DiagCADNS + "]", "[FAIL] resolve: " + leStaging} {
		if !strings.Contains(report, w) {
			t.Errorf("doctor lacks %q:\n%s", w, report)
		}
	}
}
