package deploy

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/internal/testkit"
)

// TestBrowserLoadsEachWebServer is what users see: Debian's chromium,
// headless, trusting only the test CA's root (an NSS database of its own),
// loads https://127.0.0.1:PORT/ from each web server serving its snippet
// and from Cockpit, and gets the page, not a certificate warning (without
// the root in its database it shows none: ERR_CERT_AUTHORITY_INVALID). Chromium runs in an empty
// network namespace (it reaches nothing but the one port, bridged by socat
// to the server on the test's loopback).
func TestBrowserLoadsEachWebServer(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers and a browser: not in -short")
	}
	testkit.NeedRoot(t, "a network namespace for the browser")
	chromium := testkit.NeedProgram(t, "chromium", "chromium")
	certutil := testkit.NeedProgram(t, "certutil", "libnss3-tools")
	socat := testkit.NeedProgram(t, "socat", "socat")
	testkit.NeedProgram(t, "nsenter", "util-linux")
	for _, srv := range []struct {
		kind  Kind
		setup func(*testing.T) *realServer
	}{{Nginx, nginxServer}, {Apache, apacheServer}, {HAProxy, haproxyServer}, {Caddy, caddyServer}} {
		t.Run(string(srv.kind), func(t *testing.T) {
			s := srv.setup(t)
			ti, port := serveSnippet(t, s)
			dom := browserLoad(t, chromium, certutil, socat, ti.ca.IssuerRootPEM(), port, "/index.html")
			if !strings.Contains(dom, "home page") {
				t.Fatalf("chromium did not show the page:\n%s", dom)
			}
		})
	}
	t.Run("lighttpd", func(t *testing.T) {
		e := newSvcEnv(t)
		startLighttpd(t, e)
		if dom := browserLoad(t, chromium, certutil, socat, e.ti.ca.IssuerRootPEM(), e.port, "/index.html"); !strings.Contains(dom, "home page") {
			t.Fatalf("chromium did not show the page:\n%s", dom)
		}
	})
	// Cockpit: its login page, from cockpit-ws serving the files
	// InstallFiles put in ws-certs.d beside a self-signed certificate.
	t.Run("cockpit", func(t *testing.T) {
		ws := "/usr/lib/cockpit/cockpit-ws"
		testkit.Need(t, isExec(ws), "Cockpit is not installed (apt-get install -y cockpit-ws)")
		e := newSvcEnv(t)
		certs := filepath.Join(e.prefix, "cockpit", "ws-certs.d")
		os.MkdirAll(certs, 0o755)
		l := LayoutFor(Cockpit, Debian, e.name)
		l.CopyDir = certs
		l.Test.Env = []string{"XDG_CONFIG_DIRS=" + e.prefix}
		if _, err := InstallFiles(context.Background(), Installer{Layout: l}, e.paths()); err != nil {
			t.Fatal(err)
		}
		log := filepath.Join(e.prefix, "server.log")
		startServer(t, log, []string{"XDG_CONFIG_DIRS=" + e.prefix}, ws, "--port", strconv.Itoa(e.port), "--address", "127.0.0.1")
		waitVerify(t, hostPort(e.idents[0], e.port), VerifyOptions{Roots: e.ti.roots, Expected: e.first.Version.Leaf}, func(r VerifyResult) bool { return r.Outcome == Match }, log)
		if dom := browserLoad(t, chromium, certutil, socat, e.ti.ca.IssuerRootPEM(), e.port, "/"); !strings.Contains(dom, `id="login"`) {
			t.Fatalf("chromium did not show Cockpit's login page:\n%s", dom)
		}
	})
}

// serveSnippet issues a certificate for 127.0.0.1, starts s with its
// snippet on a free port and waits until it serves the certificate.
func serveSnippet(t *testing.T, s *realServer) (*testIssuer, int) {
	t.Helper()
	ti := newIssuer(t)
	idents := mustAddrs("127.0.0.1")
	name := store.NameFor(acmeflow.AddrStrings(idents))
	iss := ti.issue(t, name, idents, s.kind == HAProxy)
	webroot := t.TempDir()
	os.WriteFile(filepath.Join(webroot, "index.html"), []byte("home page"), 0o644)
	os.Chmod(webroot, 0o755)
	os.Chmod(filepath.Dir(webroot), 0o755)
	httpsPort, httpPort := testkit.FreePort(t), testkit.FreePort(t)
	if s.httpPort != 0 {
		httpPort = s.httpPort
	}
	p := SnippetParams{Name: name, Identifiers: acmeflow.AddrStrings(idents), CertDir: ti.eng.Store.CurrentDir(name), WebRoot: webroot, HTTPSPort: httpsPort, HTTPPort: httpPort}
	if s.kind == HAProxy {
		p.Upstream = fileServer(t, webroot)
	}
	snip, err := Snippet(s.kind, p)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(s.snip, snip, 0o644)
	startServer(t, s.log, s.env, s.start[0], s.start[1:]...)
	waitVerify(t, hostPort(idents[0], httpsPort), VerifyOptions{Roots: ti.roots, Expected: iss.Version.Leaf}, func(r VerifyResult) bool { return r.Outcome == Match }, s.log)
	return ti, httpsPort
}

// browserLoad runs chromium in a new network namespace with the test
// root as its only added trust, and returns the DOM it shows for
// https://127.0.0.1:PORT/PATH.
func browserLoad(t *testing.T, chromium, certutil, socat string, rootPEM []byte, port int, path string) string {
	t.Helper()
	home := t.TempDir()
	db := filepath.Join(home, ".pki", "nssdb")
	os.MkdirAll(db, 0o700)
	root := filepath.Join(home, "root.pem")
	os.WriteFile(root, rootPEM, 0o644)
	for _, args := range [][]string{{"-N", "-d", "sql:" + db, "--empty-password"}, {"-A", "-d", "sql:" + db, "-n", "ipcert-test-root", "-t", "C,,", "-i", root}} {
		if out, err := exec.Command(certutil, args...).CombinedOutput(); err != nil {
			t.Fatalf("certutil %v: %v\n%s", args, err, out)
		}
	}
	// Inside the namespace, 127.0.0.1:PORT leads back to the test's
	// loopback through socat and nsenter (a script: socat's EXEC takes
	// no colon).
	bridge := filepath.Join(home, "bridge.sh")
	os.WriteFile(bridge, []byte(fmt.Sprintf("#!/bin/sh\nexec nsenter --net=/proc/%d/ns/net %s STDIO TCP4:127.0.0.1:%d\n", os.Getpid(), socat, port)), 0o755)
	url := fmt.Sprintf("https://127.0.0.1:%d%s", port, path)
	script := fmt.Sprintf(`ip link set lo up
%s TCP4-LISTEN:%d,bind=127.0.0.1,reuseaddr,fork EXEC:%s &
while ! %s -u /dev/null TCP4:127.0.0.1:%d 2>/dev/null; do sleep 0.05; done
%s --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir=%s --timeout=20000 --dump-dom %s
kill $!`, socat, port, bridge, socat, port, chromium, filepath.Join(home, "profile"), url)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "unshare", "-n", "sh", "-c", script)
	cmd.Env = append(os.Environ(), "HOME="+home)
	// The namespace's socat and chromium go with it when time is up.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\nstdout:\n%s\nstderr:\n%s", err, out, stderr.String())
	}
	if !strings.Contains(string(out), "<body") {
		t.Logf("chromium's log:\n%s", stderr.String())
	}
	return string(out)
}

// fileServer serves dir on a free loopback port (HAProxy's upstream).
func fileServer(t *testing.T, dir string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(testkit.FreePort(t)))
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.FileServer(http.Dir(dir))}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	return l.Addr().String()
}
