package deploy

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/netip"
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

// The services of the catalogue that are not the four web servers, each
// run for real from Debian's package on free loopback ports: the snippet
// installed (through Install, with the service's own config test where
// it has one), a renewal from the local CA, then what the catalogue says
// picks it up (the copy hook first for a service reading as its own
// user), after which every address serves the new certificate and never
// the old one.

// svcEnv is one certificate for 127.0.0.1 and ::1 and a prefix the
// services' own users can traverse.
type svcEnv struct {
	ti     *testIssuer
	name   string
	idents []netip.Addr
	prefix string
	port   int // the TLS port
	first  *acmeflow.Issued
	// group, when set, is the config's group (Layout.ConfigGroup).
	group string
}

func newSvcEnv(t *testing.T) *svcEnv {
	t.Helper()
	testkit.NeedRoot(t, "running services as their own users")
	testkit.NeedIPv6Loopback(t)
	e := &svcEnv{ti: newIssuer(t), idents: mustAddrs("127.0.0.1", "::1"), prefix: t.TempDir(), port: testkit.FreePort(t)}
	// The services' users must reach the copy and their configs.
	os.Chmod(e.prefix, 0o755)
	os.Chmod(filepath.Dir(e.prefix), 0o755)
	e.name = store.NameFor(acmeflow.AddrStrings(e.idents))
	e.first = e.ti.issue(t, e.name, e.idents, false)
	return e
}

func (e *svcEnv) paths() CertPaths {
	return CertPathsIn(e.name, acmeflow.AddrStrings(e.idents), e.ti.eng.Store.CurrentDir(e.name))
}

// params is the snippet's input; certDir is the current link or the copy.
func (e *svcEnv) params(certDir string) SnippetParams {
	return SnippetParams{Name: e.name, Identifiers: acmeflow.AddrStrings(e.idents), CertDir: certDir, HTTPSPort: e.port, Systemd: true}
}

// install writes the snippet as --write does (Install: test, write,
// test) into a layout of the test's own paths.
func (e *svcEnv) install(t *testing.T, kind Kind, p SnippetParams, configPath string, test Cmd) {
	t.Helper()
	snip, err := Snippet(kind, p)
	if err != nil {
		t.Fatal(err)
	}
	l := Layout{Kind: kind, ConfigPath: configPath, Test: test, ConfigGroup: e.group}
	res, err := Install(context.Background(), Installer{Layout: l, Content: snip, BackupDir: filepath.Join(e.prefix, "backups")})
	if err != nil || !res.Changed || (test.Path != "" && !res.Tested) {
		t.Fatalf("install: %+v %v\nsnippet:\n%s", res, err, snip)
	}
	if e.group == "" {
		os.Chmod(configPath, 0o644)
	}
}

// addrs are the TLS addresses to check.
func (e *svcEnv) addrs() []string {
	var out []string
	for _, a := range e.idents {
		out = append(out, hostPort(a, e.port))
	}
	return out
}

// serves waits until every address serves leaf, then checks five more
// handshakes each: the old certificate does not linger on any of them.
func (e *svcEnv) serves(t *testing.T, leaf *x509.Certificate, logPath string) {
	t.Helper()
	opts := VerifyOptions{Roots: e.ti.roots, Expected: leaf}
	for _, addr := range e.addrs() {
		res := waitVerify(t, addr, opts, func(r VerifyResult) bool { return r.Outcome == Match }, logPath)
		if !res.Accepted || !res.CoversAddr || !res.ChainSent {
			t.Errorf("%s: accepted %v (%s), covers %v, chain sent %v", addr, res.Accepted, res.Rejection, res.CoversAddr, res.ChainSent)
		}
		for range 5 {
			res, err := Verify(context.Background(), addr, opts)
			if err != nil || res.Outcome != Match {
				t.Fatalf("%s: after the pickup: %s (%s) %v", addr, res.Outcome, res.Reason, err)
			}
		}
	}
}

// renew issues the next certificate and runs spec as renewal's deploy
// step does (RunHooks: the copy hook, then the pickup).
func (e *svcEnv) renew(t *testing.T, spec HookSpec) *acmeflow.Issued {
	t.Helper()
	second := e.ti.issue(t, e.name, e.idents, false)
	if second.Version.Leaf.Equal(e.first.Version.Leaf) {
		t.Fatal("the renewal has the first certificate")
	}
	spec.Timeout = 20 * time.Second
	for _, r := range RunHooks(context.Background(), spec, e.paths()) {
		if !r.OK() {
			t.Fatalf("%s: %v\n%s", r.Command, r.Err, r.Output)
		}
	}
	return second
}

// copyFor makes the copy for group as --write does; its hook is what
// renewals run first.
func (e *svcEnv) copyFor(t *testing.T, group string) (dir, hook string) {
	t.Helper()
	dir = filepath.Join(e.prefix, "copy")
	if _, err := CopyForGroup(e.paths(), dir, group); err != nil {
		t.Fatal(err)
	}
	return dir, CopyHook(group, dir)
}

func signalCmd(sig syscall.Signal, pid int) Cmd {
	return Cmd{Path: "kill", Args: []string{"-" + strings.TrimPrefix(unixSignalName(sig), "SIG"), strconv.Itoa(pid)}}
}

func unixSignalName(sig syscall.Signal) string {
	switch sig {
	case syscall.SIGHUP:
		return "HUP"
	case syscall.SIGUSR1:
		return "USR1"
	}
	return strconv.Itoa(int(sig))
}

// TestLighttpdRenews: lighttpd as www-data (Debian's server.username) on
// the copy, reloaded by SIGUSR1 as lighttpd.service's ExecReload does.
func TestLighttpdRenews(t *testing.T) {
	e := newSvcEnv(t)
	cmd, hook, httpPort := startLighttpd(t, e)
	for _, a := range e.idents {
		checkHTTP(t, a, httpPort, e.port)
	}
	second := e.renew(t, HookSpec{Commands: []string{hook}, Reload: signalCmd(syscall.SIGUSR1, cmd.Process.Pid)})
	e.serves(t, second.Version.Leaf, filepath.Join(e.prefix, "server.log"))
}

// startLighttpd runs Debian's lighttpd as www-data with the snippet
// installed (tested with lighttpd -tt) on the copy for www-data, serving
// e.prefix/www, and waits until it serves the first certificate. It
// returns the process, the copy hook and the plain-HTTP port.
func startLighttpd(t *testing.T, e *svcEnv) (*exec.Cmd, string, int) {
	t.Helper()
	bin := testkit.NeedProgram(t, "lighttpd", "lighttpd")
	testkit.Need(t, fileExists("/usr/lib/lighttpd/mod_openssl.so"), "lighttpd's mod_openssl is missing (apt-get install -y lighttpd-mod-openssl)")
	webroot := filepath.Join(e.prefix, "www")
	os.MkdirAll(filepath.Join(webroot, ".well-known", "acme-challenge"), 0o755)
	os.WriteFile(filepath.Join(webroot, ".well-known", "acme-challenge", "probe"), []byte("token-body"), 0o644)
	os.WriteFile(filepath.Join(webroot, "index.html"), []byte("home page"), 0o644)
	httpPort := testkit.FreePort(t)
	conf := filepath.Join(e.prefix, "lighttpd.conf")
	os.MkdirAll(filepath.Join(e.prefix, "conf-enabled"), 0o755)
	main := fmt.Sprintf(`server.document-root = %q
server.port = %d
server.bind = "127.0.0.1"
$SERVER["socket"] == "[::1]:%d" { }
server.pid-file = %q
server.username = "www-data"
server.groupname = "www-data"
server.modules = ( "mod_access" )
mimetype.assign = ( ".html" => "text/html" )
include %q
`, webroot, httpPort, httpPort, filepath.Join(e.prefix, "lighttpd.pid"), filepath.Join(e.prefix, "conf-enabled", "*.conf"))
	os.WriteFile(conf, []byte(main), 0o644)
	copyDir, hook := e.copyFor(t, "www-data")
	p := e.params(copyDir)
	p.CopyGroup, p.WebRoot, p.HTTPPort = "www-data", webroot, httpPort
	test := Cmd{Path: bin, Args: []string{"-tt", "-f", conf}}
	e.install(t, Lighttpd, p, filepath.Join(e.prefix, "conf-enabled", "90-ipcert-test.conf"), test)
	log := filepath.Join(e.prefix, "server.log")
	cmd := startServer(t, log, nil, bin, "-D", "-f", conf)
	e.serves(t, e.first.Version.Leaf, log)
	return cmd, hook, httpPort
}

// TestStunnelRenews: stunnel4 as stunnel4 (setuid in the snippet) in front
// of a loopback HTTP server, on the copy, re-reading it on SIGHUP.
func TestStunnelRenews(t *testing.T) {
	bin := testkit.NeedProgram(t, "stunnel4", "stunnel4")
	e := newSvcEnv(t)
	up := testkit.FreePort(t)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(up)))
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { fmt.Fprint(w, "behind stunnel") })}
	go hs.Serve(l)
	t.Cleanup(func() { hs.Close() })
	copyDir, hook := e.copyFor(t, "stunnel4")
	p := e.params(copyDir)
	p.CopyGroup, p.Upstream = "stunnel4", net.JoinHostPort("127.0.0.1", strconv.Itoa(up))
	conf := filepath.Join(e.prefix, "ipcert-test.conf")
	// stunnel has no config test that does not start it.
	e.install(t, Stunnel, p, conf, Cmd{})
	log := filepath.Join(e.prefix, "server.log")
	cmd := startServer(t, log, nil, bin, conf)
	e.serves(t, e.first.Version.Leaf, log)
	second := e.renew(t, HookSpec{Commands: []string{hook}, Reload: signalCmd(syscall.SIGHUP, cmd.Process.Pid)})
	e.serves(t, second.Version.Leaf, log)
}

// TestUnboundRenews: unbound's DoT reads the state itself (as root, before
// dropping privileges); only a restart serves a new certificate.
func TestUnboundRenews(t *testing.T) {
	bin := testkit.NeedProgram(t, "unbound", "unbound")
	check := testkit.NeedProgram(t, "unbound-checkconf", "unbound")
	e := newSvcEnv(t)
	conf := filepath.Join(e.prefix, "unbound.conf")
	os.MkdirAll(filepath.Join(e.prefix, "conf.d"), 0o755)
	main := fmt.Sprintf(`server:
    username: "unbound"
    chroot: ""
    directory: %q
    pidfile: %q
    use-syslog: no
    logfile: ""
    do-daemonize: no
    access-control: 127.0.0.0/8 allow
    access-control: ::1 allow
include-toplevel: %q
`, e.prefix, filepath.Join(e.prefix, "unbound.pid"), filepath.Join(e.prefix, "conf.d", "*.conf"))
	os.WriteFile(conf, []byte(main), 0o644)
	p := e.params(e.ti.eng.Store.CurrentDir(e.name))
	e.install(t, Unbound, p, filepath.Join(e.prefix, "conf.d", "ipcert-test.conf"), Cmd{Path: check, Args: []string{conf}})
	log := filepath.Join(e.prefix, "server.log")
	srv := &restartable{t: t, log: log, argv: []string{bin, "-d", "-c", conf}}
	srv.start()
	e.serves(t, e.first.Version.Leaf, log)
	second := e.renew(t, HookSpec{})
	srv.restart()
	e.serves(t, second.Version.Leaf, log)
}

// restartable is a service the test stops and starts again, as
// "systemctl restart" does.
type restartable struct {
	t    *testing.T
	log  string
	argv []string
	env  []string
	cmd  *exec.Cmd
	done chan struct{}
}

func (r *restartable) start() {
	r.t.Helper()
	logf, err := os.OpenFile(r.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		r.t.Fatal(err)
	}
	r.cmd = exec.Command(r.argv[0], r.argv[1:]...)
	r.cmd.Env = append(os.Environ(), r.env...)
	r.cmd.Stdout, r.cmd.Stderr = logf, logf
	if err := r.cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	done := make(chan struct{})
	r.done = done
	cmd := r.cmd
	go func() { cmd.Wait(); logf.Close(); close(done) }()
	r.t.Cleanup(r.stop)
}

func (r *restartable) stop() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-r.done:
	case <-time.After(10 * time.Second):
		r.cmd.Process.Kill()
		<-r.done
	}
	r.cmd = nil
}

func (r *restartable) restart() {
	r.t.Helper()
	r.stop()
	r.start()
}

func fileExists(p string) bool { _, err := os.Stat(p); return err == nil }

// TestKnotResolverRenews: kresd drops to knot-resolver (as its unit's
// User= does) before net.tls reads the copy; only a restart serves a new
// certificate.
func TestKnotResolverRenews(t *testing.T) {
	bin := testkit.NeedProgram(t, "kresd", "knot-resolver")
	uid, gid := needUser(t, "knot-resolver")
	e := newSvcEnv(t)
	copyDir, hook := e.copyFor(t, "knot-resolver")
	p := e.params(copyDir)
	p.CopyGroup = "knot-resolver"
	snip := filepath.Join(e.prefix, "ipcert-test.lua")
	e.install(t, KnotResolver, p, snip, Cmd{})
	run := filepath.Join(e.prefix, "run")
	os.Mkdir(run, 0o750)
	os.Chown(run, uid, gid)
	conf := filepath.Join(e.prefix, "kresd.conf")
	// No trust anchor: nothing to refresh, no query leaves loopback.
	main := fmt.Sprintf("user('knot-resolver', 'knot-resolver')\ntrust_anchors.remove('.')\ndofile(%q)\n", snip)
	os.WriteFile(conf, []byte(main), 0o644)
	log := filepath.Join(e.prefix, "server.log")
	srv := &restartable{t: t, log: log, argv: []string{bin, "-n", "-c", conf, run}}
	srv.start()
	e.serves(t, e.first.Version.Leaf, log)
	second := e.renew(t, HookSpec{Commands: []string{hook}})
	srv.restart()
	e.serves(t, second.Version.Leaf, log)
}

// TestDnsdistRenews: dnsdist runs as _dnsdist from the start (Debian's
// unit), inside a network namespace of its own with a socat bridge per
// address; its config (with the console key) is 0640 root:_dnsdist, its
// certificate the copy, and the console's reloadAllCertificates() (run
// as the catalogue's pickup says) serves the renewal without a restart.
func TestDnsdistRenews(t *testing.T) {
	bin := testkit.NeedProgram(t, "dnsdist", "dnsdist")
	socat := testkit.NeedProgram(t, "socat", "socat")
	testkit.NeedProgram(t, "nsenter", "util-linux")
	testkit.NeedProgram(t, "setpriv", "util-linux")
	needUser(t, "_dnsdist")
	e := newSvcEnv(t)
	e.group = "_dnsdist"
	copyDir, hook := e.copyFor(t, "_dnsdist")
	console := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(testkit.FreePort(t)))
	p := e.params(copyDir)
	p.CopyGroup, p.ConsoleKey, p.Console = "_dnsdist", testConsoleKey, console.String()
	os.MkdirAll(filepath.Join(e.prefix, "conf.d"), 0o755)
	conf := filepath.Join(e.prefix, "dnsdist.conf")
	// As Debian's dnsdist.conf: no security polling (no query leaves).
	os.WriteFile(conf, []byte(fmt.Sprintf("setSecurityPollSuffix(\"\")\nincludeDirectory(%q)\n", filepath.Join(e.prefix, "conf.d"))), 0o644)
	e.install(t, Dnsdist, p, filepath.Join(e.prefix, "conf.d", "ipcert-test.conf"), Cmd{Path: bin, Args: []string{"--check-config", "--config", conf}})
	if fi, err := os.Stat(filepath.Join(e.prefix, "conf.d", "ipcert-test.conf")); err != nil || fi.Mode().Perm() != 0o640 {
		t.Fatalf("the config holds the console key: want 0640, got %v %v", fi, err)
	}
	log := filepath.Join(e.prefix, "server.log")
	script := fmt.Sprintf("ip link set lo up && exec setpriv --reuid=_dnsdist --regid=_dnsdist --clear-groups %s --supervised --disable-syslog --config %s", bin, conf)
	cmd := startServer(t, log, nil, "unshare", "-n", "sh", "-c", script)
	ns := strconv.Itoa(cmd.Process.Pid)
	for _, a := range e.idents {
		listen, target := fmt.Sprintf("TCP4-LISTEN:%d,bind=%s,reuseaddr,fork", e.port, a), fmt.Sprintf("TCP4:%s:%d", a, e.port)
		if a.Is6() {
			listen, target = fmt.Sprintf("TCP6-LISTEN:%d,bind=[%s],reuseaddr,fork", e.port, a), fmt.Sprintf("TCP6:[%s]:%d", a, e.port)
		}
		// socat's address syntax takes no colon inside EXEC: a script.
		bridge := filepath.Join(e.prefix, "bridge-"+strconv.Itoa(len(a.String()))+".sh")
		os.WriteFile(bridge, []byte("#!/bin/sh\nexec nsenter -t "+ns+" -n "+socat+" STDIO "+target+"\n"), 0o755)
		startServer(t, filepath.Join(e.prefix, "socat-"+a.String()+".log"), nil, socat, listen, "EXEC:"+bridge)
	}
	e.serves(t, e.first.Version.Leaf, log)
	// The pickup as ReloadCmd builds it, entered into the namespace.
	pickup := Layout{Kind: Dnsdist}.ReloadCmd(true)
	if !strings.Contains(pickup.String(), "reloadAllCertificates()") {
		t.Fatalf("dnsdist's pickup: %s", pickup)
	}
	args := append([]string{"-t", ns, "-n", bin}, pickup.Args...)
	for i, a := range args {
		if a == "/etc/dnsdist/dnsdist.conf" {
			args[i] = conf
		}
	}
	second := e.renew(t, HookSpec{Commands: []string{hook}, Reload: Cmd{Path: "nsenter", Args: args}})
	e.serves(t, second.Version.Leaf, log)
}

// TestCockpitRenews: InstallFiles puts ipcert-NAME.cert and .key into
// ws-certs.d beside Cockpit's self-signed one, cockpit-certificate-ensure
// accepts them, and cockpit-tls (started as cockpit.service does: ensure,
// then cockpit-tls, in a mount namespace with its own /run/cockpit and a
// network namespace bridged by socat) serves them; after the copy hook of
// a renewal and a restart, the new one.
func TestCockpitRenews(t *testing.T) {
	ensure := "/usr/lib/cockpit/cockpit-certificate-ensure"
	tlsBin := "/usr/lib/cockpit/cockpit-tls"
	testkit.Need(t, isExec(ensure) && isExec(tlsBin), "Cockpit is not installed (apt-get install -y cockpit-ws)")
	socat := testkit.NeedProgram(t, "socat", "socat")
	testkit.NeedProgram(t, "nsenter", "util-linux")
	e := newSvcEnv(t)
	certs := filepath.Join(e.prefix, "cockpit", "ws-certs.d")
	os.MkdirAll(certs, 0o755)
	// Cockpit's own self-signed certificate, which ipcert's must win over.
	self := testChain(t, t.TempDir())
	k, _ := os.ReadFile(self.Key)
	c, _ := os.ReadFile(self.FullChain)
	os.WriteFile(filepath.Join(certs, "0-self-signed.key"), k, 0o600)
	// One certificate: Cockpit checks the expiry of its own file and
	// refuses a chain there.
	leaf, _ := pem.Decode(c)
	os.WriteFile(filepath.Join(certs, "0-self-signed.cert"), pem.EncodeToMemory(leaf), 0o644)
	env := []string{"XDG_CONFIG_DIRS=" + e.prefix}
	l := LayoutFor(Cockpit, Debian, e.name)
	l.CopyDir = certs
	l.Test.Env = env
	res, err := InstallFiles(context.Background(), Installer{Layout: l}, e.paths())
	if err != nil || !res.Tested || !strings.Contains(res.TestOutput, CockpitStem(e.name)+".cert") {
		t.Fatalf("install: %+v %v", res, err)
	}
	os.MkdirAll("/run/cockpit", 0o755)
	script := fmt.Sprintf(`set -e
mount -t tmpfs tmpfs /run/cockpit
mkdir -p /run/cockpit/tls /run/cockpit/wsinstance
ip link set lo up
export XDG_CONFIG_DIRS=%s RUNTIME_DIRECTORY=/run/cockpit/tls
%s --for-cockpit-tls
exec %s --port %d --idle-timeout 0`, e.prefix, ensure, tlsBin, e.port)
	log := filepath.Join(e.prefix, "server.log")
	srv := &restartable{t: t, log: log, argv: []string{"unshare", "-m", "-n", "sh", "-c", script}}
	srv.start()
	bridges := func() {
		ns := strconv.Itoa(srv.cmd.Process.Pid)
		for _, a := range e.idents {
			// cockpit-tls started by hand binds 0.0.0.0 only (cockpit.socket
			// gives it both families under systemd): both bridges end on
			// 127.0.0.1 inside.
			target := fmt.Sprintf("TCP4:127.0.0.1:%d", e.port)
			bridge := filepath.Join(e.prefix, "bridge-"+strconv.Itoa(len(a.String()))+".sh")
			os.WriteFile(bridge, []byte("#!/bin/sh\nexec nsenter -t "+ns+" -n "+socat+" STDIO "+target+"\n"), 0o755)
		}
	}
	bridges()
	for _, a := range e.idents {
		listen := fmt.Sprintf("TCP4-LISTEN:%d,bind=%s,reuseaddr,fork", e.port, a)
		if a.Is6() {
			listen = fmt.Sprintf("TCP6-LISTEN:%d,bind=[%s],reuseaddr,fork", e.port, a)
		}
		// The script is read at each connection: after the restart it
		// names the new namespace.
		startServer(t, filepath.Join(e.prefix, "socat-"+a.String()+".log"), nil, socat, listen, "EXEC:"+filepath.Join(e.prefix, "bridge-"+strconv.Itoa(len(a.String()))+".sh"))
	}
	e.serves(t, e.first.Version.Leaf, log)
	second := e.renew(t, HookSpec{Commands: []string{CopyHookAs("root", certs, CopyCockpit)}})
	srv.restart()
	bridges()
	e.serves(t, second.Version.Leaf, log)
}

// TestUnboundFailedRestartRollsBack: a config unbound-checkconf passes but
// unbound cannot start with (an interface on an address no interface
// has) fails the restart; Install restores the previous file, restarts
// again, and unbound serves as before. The restart is the real one of a
// daemonizing unbound: stop the running one, start anew.
func TestUnboundFailedRestartRollsBack(t *testing.T) {
	bin := testkit.NeedProgram(t, "unbound", "unbound")
	check := testkit.NeedProgram(t, "unbound-checkconf", "unbound")
	e := newSvcEnv(t)
	conf := filepath.Join(e.prefix, "unbound.conf")
	pid := filepath.Join(e.prefix, "unbound.pid")
	os.MkdirAll(filepath.Join(e.prefix, "conf.d"), 0o755)
	main := fmt.Sprintf("server:\n    username: \"\"\n    chroot: \"\"\n    directory: %q\n    pidfile: %q\n    use-syslog: no\n    logfile: %q\n    do-daemonize: yes\ninclude-toplevel: %q\n",
		e.prefix, pid, filepath.Join(e.prefix, "server.log"), filepath.Join(e.prefix, "conf.d", "*.conf"))
	os.WriteFile(conf, []byte(main), 0o644)
	stop := fmt.Sprintf(`p=$(cat %[1]s 2>/dev/null) && kill "$p" 2>/dev/null; while [ -n "$p" ] && kill -0 "$p" 2>/dev/null; do sleep 0.05; done; rm -f %[1]s`, pid)
	restart := Cmd{Path: "sh", Args: []string{"-c", stop + "; exec " + bin + " -c " + conf}}
	t.Cleanup(func() { exec.Command("sh", "-c", stop).Run() })
	l := Layout{Kind: Unbound, ConfigPath: filepath.Join(e.prefix, "conf.d", "ipcert-test.conf"), Test: Cmd{Path: check, Args: []string{conf}}, Unit: "unbound"}
	p := e.params(e.ti.eng.Store.CurrentDir(e.name))
	good, err := Snippet(Unbound, p)
	if err != nil {
		t.Fatal(err)
	}
	backups := filepath.Join(e.prefix, "backups")
	if res, err := Install(context.Background(), Installer{Layout: l, Content: good, BackupDir: backups, Reload: restart}); err != nil || !res.Reloaded {
		t.Fatalf("first install: %+v %v", res, err)
	}
	e.serves(t, e.first.Version.Leaf, filepath.Join(e.prefix, "server.log"))
	p.Identifiers = append(p.Identifiers, "192.0.2.1")
	bad, err := Snippet(Unbound, p)
	if err != nil {
		t.Fatal(err)
	}
	res, err := Install(context.Background(), Installer{Layout: l, Content: bad, BackupDir: backups, Reload: restart})
	if err == nil || !res.RolledBack || res.Reloaded || !strings.Contains(err.Error(), "previous config was restored and sh -c") {
		t.Fatalf("install of a config unbound cannot start with: %+v %v", res, err)
	}
	if got, _ := os.ReadFile(l.ConfigPath); string(got) != string(good) {
		t.Fatal("the previous config is not back")
	}
	e.serves(t, e.first.Version.Leaf, filepath.Join(e.prefix, "server.log"))
}
