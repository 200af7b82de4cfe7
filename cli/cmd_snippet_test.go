package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/deploy"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/internal/testkit"
)

func TestSnippetCommand(t *testing.T) {
	dir := t.TempDir()
	verifyIssue(t, dir, "127.0.0.1", "::1")
	st, _ := store.Open(dir)
	name := store.NameFor([]string{"127.0.0.1", "::1"})

	// The name may be left out when there is one certificate; flags may
	// follow the positional arguments.
	code, out, errs := verifyRun(t, "snippet", "nginx", "--state-dir", dir, "--distro", "debian", "--https-port", "8443")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	want, err := deploy.Snippet(deploy.Nginx, deploy.SnippetParams{Name: name, Identifiers: []string{"127.0.0.1", "::1"}, CertDir: st.CurrentDir(name), HTTPSPort: 8443, Distro: deploy.Debian})
	if err != nil {
		t.Fatal(err)
	}
	if out != string(want) {
		t.Errorf("stdout is not the snippet:\n%s", out)
	}
	if !strings.Contains(errs, "--write") || !strings.Contains(errs, "/etc/nginx/conf.d/ipcert-"+name+".conf") || !strings.Contains(errs, "port 80") {
		t.Errorf("stderr should say how to install and warn about the port-80 responder:\n%s", errs)
	}

	// HAProxy: combined.pem appears and renewals keep it.
	code, out, errs = verifyRun(t, "snippet", "haproxy", name, "--state-dir", dir, "--json")
	if code != exitOK {
		t.Fatalf("haproxy: exit %d: %s", code, errs)
	}
	var got snippetOut
	if err := json.Unmarshal([]byte(out), &got); err != nil || !strings.Contains(got.Snippet, "combined.pem") {
		t.Fatalf("json: %v %+v", err, got)
	}
	if _, err := os.Stat(filepath.Join(st.CurrentDir(name), store.CombinedFile)); err != nil {
		t.Errorf("combined.pem: %v", err)
	}
	if r, _ := st.LoadRenewal(name); !r.Combined {
		t.Error("renewal.json does not keep combined.pem")
	}
	if !strings.Contains(errs, "combined.pem") {
		t.Errorf("stderr does not mention combined.pem: %s", errs)
	}

	// Hostile values are refused before anything is written.
	for _, bad := range [][]string{
		{"snippet", "nginx", name, "--state-dir", dir, "--webroot", "/var/www;include /etc/shadow"},
		{"snippet", "apache", name, "--state-dir", dir, "--webroot", "/var/www\n</VirtualHost>"},
		{"snippet", "haproxy", name, "--state-dir", dir, "--upstream", "127.0.0.1:80 check\nbackend x"},
		{"snippet", "nginx", "a;b", "--state-dir", dir},
		{"snippet", "nginx", "../x", "--state-dir", dir},
		{"snippet", "iis", name, "--state-dir", dir},
		{"snippet", "--state-dir", dir},
		{"snippet", "nginx", name, "--state-dir", dir, "--distro", "arch"},
	} {
		code, out, errs := verifyRun(t, bad...)
		if code != exitUsage || out != "" || !strings.Contains(errs, "ipcert snippet:") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q", bad, code, out, errs)
		}
	}
	code, _, errs = verifyRun(t, "snippet", "nginx", name, "--state-dir", dir, "--webroot", `/srv/"x"`)
	if code != exitUsage || !strings.Contains(errs, `web root "/srv/\"x\"" contains '"'`) {
		t.Errorf("quote in web root: %d %s", code, errs)
	}
	// A renewal.json edited to hold a hostile address is refused too (the
	// store already refuses it; deploy.Snippet would as well).
	r, _ := st.LoadRenewal(name)
	r.Identifiers = []string{"127.0.0.1;"}
	st.SaveRenewal(r)
	if code, out, errs := verifyRun(t, "snippet", "nginx", name, "--state-dir", dir); code == exitOK || out != "" || !strings.Contains(errs, `"127.0.0.1;"`) {
		t.Errorf("hostile identifier: %d %s", code, errs)
	}

	// Two certificates: the name is required.
	verifyIssue(t, dir, "::1")
	if code, _, errs := verifyRun(t, "snippet", "nginx", "--state-dir", dir); code != exitUsage || !strings.Contains(errs, "say which") {
		t.Errorf("two certificates: %d %s", code, errs)
	}
}

// TestSnippetHintsRepeatFlags: the printed next commands carry the flags
// that matter; followed as printed, they act on the same state directory
// with the same ports and web root (before, they dropped them all).
func TestSnippetHintsRepeatFlags(t *testing.T) {
	dir := t.TempDir()
	verifyIssue(t, dir, "127.0.0.1")
	code, _, errs := verifyRun(t, "snippet", "nginx", "127.0.0.1", "--state-dir", dir, "--https-port", "8443", "--http-port", "8080", "--webroot", "/srv/www")
	want := "To install it: sudo ipcert snippet nginx 127.0.0.1 --write --http-port 8080 --https-port 8443 --webroot /srv/www --state-dir " + dir
	if code != exitOK || !strings.Contains(errs, want) {
		t.Errorf("install hint: exit %d, want %q in:\n%s", code, want, errs)
	}
	code, _, errs = verifyRun(t, "snippet", "apache", "127.0.0.1", "--state-dir", dir, "--webroot", "/srv/www")
	want = "Switch it to the web root once: sudo ipcert issue --ip 127.0.0.1 --webroot /srv/www --ca local --name 127.0.0.1 --webroot-port 80 --agree-tos --state-dir " + dir
	if code != exitOK || !strings.Contains(errs, want) {
		t.Errorf("switch hint: exit %d, want %q in:\n%s", code, want, errs)
	}
}

// TestIssueHintsRepeatStateDir: the commands printed after an issuance
// name the state directory it used.
func TestIssueHintsRepeatStateDir(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := verifyRun(t, "issue", "--ca", "local", "--state-dir", dir, "--agree-tos", "--ip", "127.0.0.1")
	want := `"ipcert renew --state-dir ` + dir + `" (run it from "ipcert timer install --state-dir ` + dir + `")`
	if code != exitOK || !strings.Contains(out+errs, want) {
		t.Errorf("exit %d, want %q in:\n%s\n%s", code, want, out, errs)
	}
}

// TestIssueV6LogsWhereTheResponderListens: for a v6-only order the log
// names [::1], where the validator connects, not only 127.0.0.1.
func TestIssueV6LogsWhereTheResponderListens(t *testing.T) {
	dir := t.TempDir()
	code, _, errs := verifyRun(t, "issue", "--ca", "local", "--state-dir", dir, "--agree-tos", "--ip", "::1")
	line := ""
	for _, l := range strings.Split(errs, "\n") {
		if strings.Contains(l, "http-01 responder on ") {
			line = l
		}
	}
	if code != exitOK || !strings.Contains(line, "[::1]:") {
		t.Errorf("exit %d, want the responder's [::1] address in %q:\n%s", code, line, errs)
	}
}

// needSystemNginxStopped is for tests that run "snippet nginx --write" for
// real: Debian's nginx installed, its system service stopped (it is then
// never reloaded or started), and root. The file the test installs into
// /etc/nginx/conf.d (high ports only) is removed when it ends.
func needSystemNginxStopped(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("real servers: not in -short")
	}
	testkit.NeedRoot(t, "installing into /etc/nginx/conf.d")
	_, err := os.Stat("/etc/nginx/conf.d")
	testkit.Need(t, err == nil, "Debian's nginx is not installed (apt-get install -y nginx)")
	if st := deploy.ServiceStatus(context.Background(), nil, "nginx", deploy.TimerSystemdRunning("/"), "/"); st.Active {
		t.Skipf("the system nginx is running (%s); this test must not reload it", st)
	}
}

// TestSnippetWriteBesidePrivateNginx: only a private nginx runs, the
// system service is stopped. --write installs and tests, and says that
// nothing was reloaded and why; before, it printed "reloaded nginx" after
// "service nginx reload" had exited 0 having signalled nothing.
func TestSnippetWriteBesidePrivateNginx(t *testing.T) {
	needSystemNginxStopped(t)
	dir := t.TempDir()
	name := fmt.Sprintf("t14-private-%d", os.Getpid())
	if code, _, errs := verifyRun(t, "issue", "--ca", "local", "--state-dir", dir, "--agree-tos", "--quiet", "--ip", "127.0.0.1", "--name", name); code != exitOK {
		t.Fatalf("issue: %s", errs)
	}
	conf := "/etc/nginx/conf.d/ipcert-" + name + ".conf"
	t.Cleanup(func() { os.Remove(conf) })

	// The private nginx: its own prefix, config and port.
	prefix := t.TempDir()
	os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755)
	port, _ := acmeflow.FreePort("127.0.0.1")
	pconf := filepath.Join(prefix, "nginx.conf")
	os.WriteFile(pconf, []byte(fmt.Sprintf("daemon off;\npid %[1]s/nginx.pid;\nerror_log %[1]s/error.log;\nevents { worker_connections 16; }\nhttp {\n    access_log off;\n    client_body_temp_path %[1]s/tmp/b;\n    proxy_temp_path %[1]s/tmp/p;\n    fastcgi_temp_path %[1]s/tmp/f;\n    uwsgi_temp_path %[1]s/tmp/u;\n    scgi_temp_path %[1]s/tmp/s;\n    server { listen 127.0.0.1:%[2]d; }\n}\n", prefix, port)), 0o644)
	cmd := exec.Command("nginx", "-p", prefix+"/", "-c", pconf, "-e", filepath.Join(prefix, "error.log"))
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); <-done })
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, err := os.Stat(filepath.Join(prefix, "nginx.pid")); err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the private nginx did not start")
		}
		time.Sleep(20 * time.Millisecond)
	}

	hp, _ := acmeflow.FreePort("127.0.0.1")
	pp, _ := acmeflow.FreePort("127.0.0.1")
	code, out, errs := verifyRun(t, "snippet", "nginx", name, "--write", "--state-dir", dir, "--webroot", prefix,
		"--https-port", strconv.Itoa(hp), "--http-port", strconv.Itoa(pp))
	if code != exitOK || !strings.Contains(out, "Wrote "+conf) || !strings.Contains(out, "config test passed") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	if strings.Contains(out, "reloaded nginx") || !strings.Contains(out, "Not reloaded: the nginx service is not running (/etc/init.d/nginx status") ||
		!strings.Contains(out, "Some nginx process is running that the service manager did not start") {
		t.Errorf("must say nothing was reloaded, and why:\n%s", out)
	}
}

// TestSnippetRefusedWriteKeepsSettings: a --write refused because the
// target file was not written by ipcert leaves renewal.json as it was
// (before, it recorded "reload": "nginx" anyway).
func TestSnippetRefusedWriteKeepsSettings(t *testing.T) {
	needSystemNginxStopped(t)
	dir := t.TempDir()
	name := fmt.Sprintf("t14-refused-%d", os.Getpid())
	if code, _, errs := verifyRun(t, "issue", "--ca", "local", "--state-dir", dir, "--agree-tos", "--quiet", "--ip", "127.0.0.1", "--name", name); code != exitOK {
		t.Fatalf("issue: %s", errs)
	}
	conf := "/etc/nginx/conf.d/ipcert-" + name + ".conf"
	if err := os.WriteFile(conf, []byte("# the user's own file\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.Remove(conf) })
	st, _ := store.Open(dir)
	before, _ := os.ReadFile(filepath.Join(st.CertDir(name), "renewal.json"))
	code, _, errs := verifyRun(t, "snippet", "nginx", name, "--write", "--state-dir", dir, "--https-port", "18443", "--http-port", "18080")
	if code != exitFailure || !strings.Contains(errs, "was not written by ipcert") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	after, _ := os.ReadFile(filepath.Join(st.CertDir(name), "renewal.json"))
	if string(after) != string(before) {
		t.Errorf("renewal.json changed by a refused --write:\n%s", after)
	}
	if b, _ := os.ReadFile(conf); string(b) != "# the user's own file\n" {
		t.Errorf("the user's file changed: %q", b)
	}
}

// TestSnippetCaddyWriteKeepsCopyForCaddyUser: "snippet caddy --write"
// makes the copy caddy.service's user can read (group caddy), names it in
// the config, tests the config as user caddy, and records the built-in
// hook, so that "ipcert renew" refreshes the copy with the new
// certificate (the stock Caddyfile does not import ipcert's file, so the
// host's caddy config is not changed in effect; both files are removed).
func TestSnippetCaddyWriteKeepsCopyForCaddyUser(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers: not in -short")
	}
	testkit.NeedRoot(t, "installing into /etc/caddy")
	_, err := os.Stat("/etc/caddy/Caddyfile")
	testkit.Need(t, err == nil, "Debian's caddy is not installed (apt-get install -y caddy)")
	dir := t.TempDir()
	name := fmt.Sprintf("t14-caddy-%d", os.Getpid())
	if code, _, errs := verifyRun(t, "issue", "--ca", "local", "--state-dir", dir, "--agree-tos", "--quiet", "--ip", "127.0.0.1", "--name", name); code != exitOK {
		t.Fatalf("issue: %s", errs)
	}
	conf, copyDir := "/etc/caddy/ipcert-"+name+".caddy", "/etc/caddy/ipcert/"+name
	t.Cleanup(func() { os.Remove(conf); os.RemoveAll(copyDir); os.Remove("/etc/caddy/ipcert") })
	code, out, errs := verifyRun(t, "snippet", "caddy", name, "--write", "--state-dir", dir, "--https-port", "18443", "--http-port", "18080")
	if code != exitOK || !strings.Contains(out, "config test passed (runuser -u caddy -- caddy validate") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	b, _ := os.ReadFile(conf)
	if !strings.Contains(string(b), "tls "+copyDir+"/fullchain.pem "+copyDir+"/privkey.pem") {
		t.Errorf("the config must name the copy:\n%s", b)
	}
	st, _ := store.Open(dir)
	r, _ := st.LoadRenewal(name)
	if r.Reload != "caddy" || len(r.DeployHooks) != 1 || r.DeployHooks[0] != deploy.CopyHook("caddy", copyDir) {
		t.Fatalf("renewal.json: reload %q hooks %q", r.Reload, r.DeployHooks)
	}
	// caddy itself can read the copy.
	if out, err := exec.Command("runuser", "-u", "caddy", "--", "cat", copyDir+"/privkey.pem").CombinedOutput(); err != nil {
		t.Fatalf("user caddy cannot read the key copy: %v %s", err, out)
	}
	// A renewal refreshes it (the reload after it fails here: no caddy
	// runs, which the renewal reports; the copy is done before).
	_, rout, rerrs := verifyRun(t, "renew", "--force", name, "--state-dir", dir)
	// Without systemd the reload goes to Caddy's admin API (there is no
	// init script: "service caddy reload" says "unrecognized service").
	if !deploy.TimerSystemdRunning("/") && (!strings.Contains(rout+rerrs, "caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile --force") || strings.Contains(rout+rerrs, "unrecognized service")) {
		t.Errorf("renew's reload of caddy without systemd:\n%s\n%s", rout, rerrs)
	}
	v, err := st.CurrentVersion(name)
	if err != nil || v.N != 2 {
		t.Fatalf("renew: version %d %v", v.N, err)
	}
	want, _ := os.ReadFile(filepath.Join(v.Dir, store.FullChainFile))
	if got, _ := os.ReadFile(copyDir + "/fullchain.pem"); string(got) != string(want) {
		t.Error("the renewal did not refresh the copy")
	}
	if out, err := exec.Command("runuser", "-u", "caddy", "--", "cat", copyDir+"/privkey.pem").CombinedOutput(); err != nil {
		t.Fatalf("after the renewal user caddy cannot read the key copy: %v %s", err, out)
	}
}

// TestSnippetServicesWrite: "snippet --write" for services of the
// catalogue beyond the web servers, into the real /etc of Debian's
// packages (no service runs here, so nothing is reloaded): dnsdist's file
// is 0640 root:_dnsdist with a console key that a rewrite keeps, and the
// include line its stock config lacks is named; unbound's goes where the
// stock config reads it, root's state named; Cockpit gets its two files,
// checked by cockpit-certificate-ensure. renewal.json then holds the copy
// hook and the service to pick the certificate up.
func TestSnippetServicesWrite(t *testing.T) {
	if testing.Short() {
		t.Skip("real services: not in -short")
	}
	testkit.NeedRoot(t, "installing into /etc")
	for _, f := range []string{"/etc/dnsdist/dnsdist.conf", "/etc/unbound/unbound.conf", "/etc/cockpit/ws-certs.d"} {
		_, err := os.Stat(f)
		testkit.Need(t, err == nil, f+" is missing (apt-get install -y dnsdist unbound cockpit-ws)")
	}
	dir := t.TempDir()
	name := fmt.Sprintf("t27-svc-%d", os.Getpid())
	if code, _, errs := verifyRun(t, "issue", "--ca", "local", "--state-dir", dir, "--agree-tos", "--quiet", "--ip", "127.0.0.1", "--name", name); code != exitOK {
		t.Fatalf("issue: %s", errs)
	}
	st, _ := store.Open(dir)

	t.Run("dnsdist", func(t *testing.T) {
		conf, copyDir := "/etc/dnsdist/conf.d/ipcert-"+name+".conf", "/etc/dnsdist/ipcert/"+name
		t.Cleanup(func() {
			os.Remove(conf)
			os.RemoveAll(copyDir)
			os.Remove("/etc/dnsdist/ipcert")
			os.Remove("/etc/dnsdist/conf.d")
		})
		code, out, errs := verifyRun(t, "snippet", "dnsdist", name, "--write", "--state-dir", dir, "--https-port", "18853")
		if code != exitOK || !strings.Contains(out, `includeDirectory("/etc/dnsdist/conf.d")`) || !strings.Contains(out, "config test passed") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errs)
		}
		fi, err := os.Stat(conf)
		if err != nil || fi.Mode().Perm() != 0o640 {
			t.Fatalf("%s: %v %v", conf, fi, err)
		}
		if g, _ := user.LookupGroup("_dnsdist"); g == nil || fmt.Sprint(fi.Sys().(*syscall.Stat_t).Gid) != g.Gid {
			t.Errorf("%s is not group _dnsdist", conf)
		}
		first, _ := os.ReadFile(conf)
		if !strings.Contains(string(first), copyDir+"/fullchain.pem") || !strings.Contains(string(first), "setKey(") {
			t.Fatalf("config:\n%s", first)
		}
		if code, out, errs := verifyRun(t, "snippet", "dnsdist", name, "--write", "--state-dir", dir, "--https-port", "18853"); code != exitOK || !strings.Contains(out, "unchanged") {
			t.Errorf("a rewrite must keep the console key (file unchanged): exit %d\n%s\n%s", code, out, errs)
		}
		r, _ := st.LoadRenewal(name)
		if r.Reload != "dnsdist" || !slices.Contains(r.DeployHooks, deploy.CopyHook("_dnsdist", copyDir)) {
			t.Errorf("renewal.json: reload %q hooks %q", r.Reload, r.DeployHooks)
		}
	})

	t.Run("unbound", func(t *testing.T) {
		// Debian's stock config names the root trust anchor that
		// unbound.service's first start copies from dns-root-data
		// (ExecStartPre, no network); no service started here.
		if _, err := os.Stat("/var/lib/unbound/root.key"); err != nil {
			if out, err := exec.Command("/usr/libexec/unbound-helper", "root_trust_anchor_update").CombinedOutput(); err != nil {
				t.Fatalf("unbound-helper: %v %s", err, out)
			}
		}
		conf := "/etc/unbound/unbound.conf.d/ipcert-" + name + ".conf"
		t.Cleanup(func() { os.Remove(conf) })
		code, out, errs := verifyRun(t, "snippet", "unbound", name, "--write", "--state-dir", dir, "--https-port", "18853")
		if code != exitOK || !strings.Contains(out, "config test passed (unbound-checkconf)") || strings.Contains(out, "does not read it yet") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errs)
		}
		b, _ := os.ReadFile(conf)
		// Debian's stock config names no interface: the snippet keeps
		// unbound answering on localhost.
		if !strings.Contains(string(b), "tls-service-pem: \""+st.CurrentDir(name)+"/fullchain.pem\"") || !strings.Contains(string(b), "interface: 127.0.0.1@18853") || !strings.Contains(string(b), "interface: 127.0.0.1\n    interface: ::1\n") {
			t.Errorf("config:\n%s", b)
		}
		if code, out, errs := verifyRun(t, "snippet", "unbound", name, "--write", "--state-dir", dir, "--https-port", "18853"); code != exitOK || !strings.Contains(out, "unchanged") {
			t.Errorf("a rewrite must keep localhost (file unchanged): exit %d\n%s\n%s", code, out, errs)
		}
		if r, _ := st.LoadRenewal(name); r.Reload != "unbound" {
			t.Errorf("renewal.json: reload %q", r.Reload)
		}
	})

	t.Run("cockpit", func(t *testing.T) {
		certs := "/etc/cockpit/ws-certs.d/ipcert-" + name
		t.Cleanup(func() { os.Remove(certs + ".cert"); os.Remove(certs + ".key") })
		code, out, errs := verifyRun(t, "snippet", "cockpit", name, "--write", "--state-dir", dir)
		if code != exitOK || !strings.Contains(out, "config test passed (/usr/lib/cockpit/cockpit-certificate-ensure --check)") {
			t.Fatalf("exit %d\n%s\n%s", code, out, errs)
		}
		want, _ := os.ReadFile(filepath.Join(st.CurrentDir(name), store.FullChainFile))
		if got, _ := os.ReadFile(certs + ".cert"); string(got) != string(want) {
			t.Error("ipcert-NAME.cert is not the chain")
		}
		r, _ := st.LoadRenewal(name)
		if r.Reload != "cockpit" || !slices.Contains(r.DeployHooks, deploy.CopyHookAs("root", "/etc/cockpit/ws-certs.d", deploy.CopyCockpit)) {
			t.Errorf("renewal.json: reload %q hooks %q", r.Reload, r.DeployHooks)
		}
	})
}
