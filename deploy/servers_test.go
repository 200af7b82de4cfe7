package deploy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/internal/testkit"
)

// realServer is one web server run for real from a temporary prefix.
type realServer struct {
	kind   Kind
	prefix string
	conf   string // main config file
	snip   string // where the snippet goes
	log    string
	test   Cmd      // the server's own config test
	start  []string // program and arguments, foreground
	env    []string // added to the environment of test, start and reload
	reload HookSpec // how a deploy hook reloads it
	// httpPort, when set, is the plain-HTTP port the server config
	// reserves for the snippet (Caddy's global http_port).
	httpPort int
}

func nginxServer(t *testing.T) *realServer {
	bin := testkit.NeedProgram(t, "nginx", "nginx")
	p := t.TempDir()
	s := &realServer{kind: Nginx, prefix: p, conf: filepath.Join(p, "nginx.conf"), snip: filepath.Join(p, "conf.d", "ipcert-test.conf"), log: filepath.Join(p, "server.log")}
	os.MkdirAll(filepath.Join(p, "conf.d"), 0o755)
	os.MkdirAll(filepath.Join(p, "tmp"), 0o755)
	conf := fmt.Sprintf(`daemon off;
worker_processes 1;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s/tmp/body;
    proxy_temp_path %[1]s/tmp/proxy;
    fastcgi_temp_path %[1]s/tmp/fastcgi;
    uwsgi_temp_path %[1]s/tmp/uwsgi;
    scgi_temp_path %[1]s/tmp/scgi;
    include %[1]s/conf.d/*.conf;
}
`, p)
	if err := os.WriteFile(s.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	base := []string{"-p", p + "/", "-c", s.conf, "-e", filepath.Join(p, "error.log")}
	s.test = Cmd{Path: bin, Args: append([]string{"-t"}, base...)}
	s.start = append([]string{bin}, base...)
	s.reload = HookSpec{Reload: Cmd{Path: bin, Args: append(append([]string{}, base...), "-s", "reload")}}
	return s
}

func apacheServer(t *testing.T) *realServer {
	bin := testkit.NeedProgram(t, "apache2", "apache2")
	mods := "/usr/lib/apache2/modules"
	if _, err := os.Stat(mods); err != nil {
		mods = "/usr/lib64/httpd/modules"
	}
	p := t.TempDir()
	s := &realServer{kind: Apache, prefix: p, conf: filepath.Join(p, "apache2.conf"), snip: filepath.Join(p, "sites", "ipcert-test.conf"), log: filepath.Join(p, "server.log")}
	os.MkdirAll(filepath.Join(p, "sites"), 0o755)
	// A self-contained config: Debian's apache2 binary needs its envvars
	// only for the stock apache2.conf, which this test does not use.
	var b strings.Builder
	fmt.Fprintf(&b, "ServerRoot %q\nPidFile %q\nErrorLog %q\nDefaultRuntimeDir %q\nLogLevel warn\nServerName 127.0.0.1\n",
		p, filepath.Join(p, "httpd.pid"), filepath.Join(p, "error.log"), p)
	// Debian's module set for the snippet: its default (mod_alias, no
	// mod_rewrite) plus a2enmod ssl.
	for _, m := range []string{"mpm_event", "authz_core", "alias", "ssl", "socache_shmcb"} {
		fmt.Fprintf(&b, "LoadModule %s_module %s/mod_%s.so\n", m, mods, m)
	}
	if os.Getuid() == 0 {
		// nobody by number: the group is "nogroup" on Debian, "nobody"
		// on RHEL.
		b.WriteString("User #65534\nGroup #65534\n")
	}
	// As Debian's apache2.conf: nothing outside /var/www is served unless
	// a config grants it.
	b.WriteString("<Directory />\n    AllowOverride None\n    Require all denied\n</Directory>\n<Directory /var/www/>\n    Require all granted\n</Directory>\n")
	fmt.Fprintf(&b, "SSLSessionCache \"shmcb:%s/ssl_scache(512000)\"\nIncludeOptional %s/sites/*.conf\n", p, p)
	if err := os.WriteFile(s.conf, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	s.test = Cmd{Path: bin, Args: []string{"-t", "-f", s.conf}}
	s.start = []string{bin, "-f", s.conf, "-DFOREGROUND"}
	s.reload = HookSpec{Reload: Cmd{Path: bin, Args: []string{"-f", s.conf, "-k", "graceful"}}}
	return s
}

func haproxyServer(t *testing.T) *realServer {
	bin := testkit.NeedProgram(t, "haproxy", "haproxy")
	p := t.TempDir()
	s := &realServer{kind: HAProxy, prefix: p, conf: filepath.Join(p, "haproxy.cfg"), snip: filepath.Join(p, "ipcert.d", "test.cfg"), log: filepath.Join(p, "server.log")}
	os.MkdirAll(filepath.Join(p, "ipcert.d"), 0o755)
	conf := "global\n    log stderr format raw local0\n\ndefaults\n    mode http\n    log global\n    timeout connect 5s\n    timeout client 30s\n    timeout server 30s\n"
	if err := os.WriteFile(s.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	pid := filepath.Join(p, "haproxy.pid")
	s.test = Cmd{Path: bin, Args: []string{"-c", "-f", s.conf, "-f", filepath.Dir(s.snip)}}
	s.start = []string{bin, "-W", "-db", "-p", pid, "-f", s.conf, "-f", filepath.Dir(s.snip)}
	// A user deploy hook, as renewal.json would hold it: the master
	// process re-reads the config (and combined.pem) on SIGUSR2. It
	// also proves the hook sees the certificate's paths.
	s.reload = HookSpec{Commands: []string{`test -s "$IPCERT_COMBINED" && kill -USR2 "$(cat ` + pid + `)"`}}
	return s
}

func caddyServer(t *testing.T) *realServer {
	bin := testkit.NeedProgram(t, "caddy", "caddy")
	p := t.TempDir()
	s := &realServer{kind: Caddy, prefix: p, conf: filepath.Join(p, "Caddyfile"), snip: filepath.Join(p, "ipcert-test.caddy"), log: filepath.Join(p, "server.log")}
	admin := "localhost:" + strconv.Itoa(testkit.FreePort(t))
	s.httpPort = testkit.FreePort(t)
	// Caddy's automatic HTTP->HTTPS redirects would listen on port 80:
	// the global options keep everything on the test's ports. The
	// snippet is imported as the stock Caddyfile would (IncludeLine).
	conf := fmt.Sprintf("{\n\tadmin %s\n\thttp_port %d\n\tauto_https disable_redirects\n\tstorage file_system %s\n}\n\nimport %s/ipcert-*.caddy\n", admin, s.httpPort, filepath.Join(p, "data"), p)
	if err := os.WriteFile(s.conf, []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	s.env = []string{"HOME=" + p, "XDG_DATA_HOME=" + p, "XDG_CONFIG_HOME=" + p}
	s.test = Cmd{Path: bin, Args: []string{"validate", "--config", s.conf, "--adapter", "caddyfile"}, Env: s.env}
	s.start = []string{bin, "run", "--config", s.conf, "--adapter", "caddyfile"}
	// As Debian's caddy.service reloads: --force, because the config
	// text did not change, only the certificate files behind it.
	s.reload = HookSpec{Reload: Cmd{Path: bin, Args: []string{"reload", "--config", s.conf, "--adapter", "caddyfile", "--address", admin, "--force"}, Env: s.env}}
	return s
}

// TestRealServers issues a certificate from the local CA, generates each
// snippet with free high ports, runs the real server with it, and checks
// with Verify that every address serves the stored certificate; then a
// second issuance plus the reload hook must make it serve the new serial.
func TestRealServers(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers: not in -short")
	}
	families := []struct {
		name   string
		idents []netip.Addr
	}{
		{"v4", mustAddrs("127.0.0.1")},
		{"v6", mustAddrs("::1")},
		{"dual", mustAddrs("127.0.0.1", "::1")},
	}
	servers := []struct {
		kind  Kind
		setup func(*testing.T) *realServer
	}{{Nginx, nginxServer}, {Apache, apacheServer}, {HAProxy, haproxyServer}, {Caddy, caddyServer}}
	for _, srv := range servers {
		for _, fam := range families {
			t.Run(string(srv.kind)+"/"+fam.name, func(t *testing.T) {
				s := srv.setup(t)
				runRealServer(t, s, fam.idents)
			})
		}
	}
}

func runRealServer(t *testing.T, s *realServer, idents []netip.Addr) {
	ti := newIssuer(t)
	name := store.NameFor(acmeflow.AddrStrings(idents))
	first := ti.issue(t, name, idents, s.kind == HAProxy)

	webroot := t.TempDir()
	os.MkdirAll(filepath.Join(webroot, ".well-known", "acme-challenge"), 0o755)
	os.WriteFile(filepath.Join(webroot, ".well-known", "acme-challenge", "probe"), []byte("token-body"), 0o644)
	os.WriteFile(filepath.Join(webroot, "index.html"), []byte("home page"), 0o644)
	// Workers run as nobody (nginx, apache2 started as root): the web
	// root, unlike the certificate files the master reads, must be
	// readable to them.
	os.Chmod(webroot, 0o755)
	os.Chmod(filepath.Dir(webroot), 0o755)
	httpsPort, httpPort := testkit.FreePort(t), testkit.FreePort(t)
	if s.httpPort != 0 {
		httpPort = s.httpPort
	}
	p := SnippetParams{
		Name: name, Identifiers: acmeflow.AddrStrings(idents), CertDir: ti.eng.Store.CurrentDir(name),
		WebRoot: webroot, HTTPSPort: httpsPort, HTTPPort: httpPort,
	}
	if s.kind == HAProxy {
		// HAProxy serves no files: the web server behind it answers the
		// challenge path.
		up := testkit.FreePort(t)
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(up)))
		if err != nil {
			t.Fatal(err)
		}
		hs := &http.Server{Handler: http.FileServer(http.Dir(webroot))}
		go hs.Serve(l)
		t.Cleanup(func() { hs.Close() })
		p.Upstream = net.JoinHostPort("127.0.0.1", strconv.Itoa(up))
	}
	snip, err := Snippet(s.kind, p)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(s.snip, snip, 0o644); err != nil {
		t.Fatal(err)
	}
	out, err := (ExecRunner{}).Run(context.Background(), s.test)
	if err != nil {
		t.Fatalf("config test failed: %v\n%s\nsnippet:\n%s", err, out, snip)
	}
	// Apache looks up a vhost address without a ServerName in DNS at
	// every start and test.
	if strings.Contains(string(out), "AH00549") {
		t.Errorf("config test: %s", out)
	}
	startServer(t, s.log, s.env, s.start[0], s.start[1:]...)

	opts := VerifyOptions{Roots: ti.roots, Expected: first.Version.Leaf}
	for _, a := range idents {
		addr := hostPort(a, httpsPort)
		res := waitVerify(t, addr, opts, func(r VerifyResult) bool { return r.Outcome != Unreachable }, s.log)
		if res.Outcome != Match || !res.Accepted || !res.CoversAddr || !res.ChainSent {
			t.Fatalf("%s: outcome %s (%s), accepted %v (%s), covers %v, chain sent %v", addr, res.Outcome, res.Reason, res.Accepted, res.Rejection, res.CoversAddr, res.ChainSent)
		}
		if res.TLSVersion != "TLS 1.3" {
			t.Errorf("%s: negotiated %s, want TLS 1.3", addr, res.TLSVersion)
		}
		checkHTTP(t, a, httpPort, httpsPort)
		checkHTTPS(t, addr, ti.roots, s)
	}

	second := ti.issue(t, name, idents, s.kind == HAProxy)
	if second.Version.Leaf.SerialNumber.Cmp(first.Version.Leaf.SerialNumber) == 0 {
		t.Fatal("second issuance has the same serial")
	}
	// Before the reload the server still serves the first certificate.
	if res, _ := Verify(context.Background(), hostPort(idents[0], httpsPort), VerifyOptions{Roots: ti.roots, Expected: second.Version.Leaf}); res.Outcome != Mismatch {
		t.Errorf("before reload: outcome %s (%s), want mismatch", res.Outcome, res.Reason)
	}
	paths := CertPathsIn(name, acmeflow.AddrStrings(idents), ti.eng.Store.CurrentDir(name))
	spec := s.reload
	spec.Timeout = 20 * time.Second
	for _, r := range RunHooks(context.Background(), spec, paths) {
		if !r.OK() {
			t.Fatalf("hook %s: %v\n%s", r.Command, r.Err, r.Output)
		}
	}
	opts.Expected = second.Version.Leaf
	for _, a := range idents {
		res := waitVerify(t, hostPort(a, httpsPort), opts, func(r VerifyResult) bool { return r.Outcome == Match }, s.log)
		if !res.Accepted {
			t.Errorf("after reload: not accepted: %s", res.Rejection)
		}
	}
}

// checkHTTPS: the web root (a temporary directory, outside /var/www) is
// served over HTTPS, and the server logged no error for it.
func checkHTTPS(t *testing.T, addr string, roots *x509.CertPool, s *realServer) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}
	resp, err := c.Get("https://" + addr + "/index.html")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || string(body) != "home page" {
		logs, _ := os.ReadFile(filepath.Join(s.prefix, "error.log"))
		t.Errorf("https://%s/index.html: %d %q\nerror log:\n%s", addr, resp.StatusCode, body, logs)
	}
	for _, f := range []string{s.log, filepath.Join(s.prefix, "error.log")} {
		if b, _ := os.ReadFile(f); strings.Contains(string(b), "AH00549") || strings.Contains(string(b), "AH01630") {
			t.Errorf("%s:\n%s", f, b)
		}
	}
}

// checkHTTP: the port-80 server answers the challenge path from the web
// root and redirects the rest to HTTPS on the right port.
func checkHTTP(t *testing.T, a netip.Addr, httpPort, httpsPort int) {
	t.Helper()
	c := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	base := "http://" + hostPort(a, httpPort)
	resp, err := c.Get(base + "/.well-known/acme-challenge/probe")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "token-body" {
		t.Errorf("%s challenge path: %d %q", base, resp.StatusCode, body)
	}
	resp, err = c.Get(base + "/some/page?x=1")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	want := "https://" + hostPort(a, httpsPort) + "/some/page?x=1"
	if resp.StatusCode != 301 || resp.Header.Get("Location") != want {
		t.Errorf("%s redirect: %d Location %q, want 301 %q", base, resp.StatusCode, resp.Header.Get("Location"), want)
	}
}

// TestNATSnippetsPassConfigTests runs each real server's own config test
// on the snippet for an address behind NAT (served through the wildcard,
// as the default server). The tests parse and check without binding, so
// no test listens on a non-loopback address.
func TestNATSnippetsPassConfigTests(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers: not in -short")
	}
	for _, srv := range []struct {
		kind  Kind
		setup func(*testing.T) *realServer
	}{{Nginx, nginxServer}, {Apache, apacheServer}, {HAProxy, haproxyServer}, {Caddy, caddyServer}} {
		t.Run(string(srv.kind), func(t *testing.T) {
			s := srv.setup(t)
			ti := newIssuer(t)
			idents := mustAddrs("127.0.0.1", "::1")
			name := store.NameFor(acmeflow.AddrStrings(idents))
			ti.issue(t, name, idents, srv.kind == HAProxy)
			httpPort := testkit.FreePort(t)
			if s.httpPort != 0 {
				httpPort = s.httpPort
			}
			p := SnippetParams{Name: name, Identifiers: acmeflow.AddrStrings(idents), NotLocal: []string{"127.0.0.1"},
				CertDir: ti.eng.Store.CurrentDir(name), WebRoot: t.TempDir(), HTTPSPort: testkit.FreePort(t), HTTPPort: httpPort}
			snip, err := Snippet(srv.kind, p)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.Contains(string(snip), "0.0.0.0:") && !strings.Contains(string(snip), "*:") && srv.kind != Caddy {
				t.Fatalf("no wildcard listener:\n%s", snip)
			}
			os.WriteFile(s.snip, snip, 0o644)
			if out, err := (ExecRunner{}).Run(context.Background(), s.test); err != nil {
				t.Fatalf("%s: %v\n%s\nsnippet:\n%s", s.test, err, out, snip)
			}
		})
	}
}
