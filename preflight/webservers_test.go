package preflight

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWebServersNginxRunning(t *testing.T) {
	env := offlineEnv(t)
	env.Root = testdata("proc-nginx") // pid 812 is nginx, 955 haproxy
	env.LookPath = lookPaths("nginx")
	env.Runner = replay{"nginx -T": "web/nginx-T-debian.txt"}
	wss := FindWebServers(context.Background(), env)
	if len(wss) != 2 {
		t.Fatalf("%+v", wss)
	}
	ng := wss[0]
	if ng.Name != "nginx" || !ng.Running || ng.PIDs[0] != 812 || ng.WebRoot != "/var/www/html" || ng.ConfigTest != "nginx -t" {
		t.Errorf("nginx: %+v", ng)
	}
	if !strings.Contains(ng.WebRootFrom, "sites-enabled/default") {
		t.Errorf("from: %s", ng.WebRootFrom)
	}
	if hp := wss[1]; hp.Name != "haproxy" || !hp.Running || hp.Installed {
		t.Errorf("haproxy: %+v", hp)
	}
	st := &state{opts: Options{}.withDefaults(), report: &Report{}}
	r := st.checkWebServers(context.Background(), env)
	if r.Status != StatusOK || !strings.Contains(r.Fix, "--webroot /var/www/html") || len(st.report.WebServers) != 2 {
		t.Errorf("%+v", r)
	}
}

func TestWebServersNginxRedirect(t *testing.T) {
	env := offlineEnv(t)
	env.Root = testdata("proc-nginx")
	env.LookPath = lookPaths("nginx")
	env.Runner = replay{"nginx -T": "web/nginx-T-redirect.txt"}
	st := &state{opts: Options{}.withDefaults(), report: &Report{}}
	r := st.checkWebServers(context.Background(), env)
	if r.Status != StatusWarn || !strings.Contains(r.Fix, "exempt /.well-known/acme-challenge/") {
		t.Errorf("%+v", r)
	}
	if ws := st.report.WebServers[0]; !ws.Redirects || ws.WebRoot != "" {
		t.Errorf("%+v", ws)
	}
}

func TestWebServersApacheDefaultVhost(t *testing.T) {
	env := offlineEnv(t)
	env.Root = testdata("apache-root")
	env.LookPath = lookPaths("apache2ctl")
	env.Runner = replay{"apache2ctl -S": "web/apache2ctl-S-debian.txt"}
	wss := FindWebServers(context.Background(), env)
	if len(wss) != 1 || wss[0].Name != "apache" || wss[0].Running {
		t.Fatalf("%+v", wss)
	}
	// The default :80 vhost's DocumentRoot, not the Main DocumentRoot.
	if ws := wss[0]; ws.WebRoot != "/srv/www/default" || ws.WebRootFrom != "/etc/apache2/sites-enabled/000-default.conf:3" {
		t.Errorf("%+v", ws)
	}
	// When the file is unreadable, the Main DocumentRoot.
	env.Root = testdata("empty-root")
	if ws := FindWebServers(context.Background(), env)[0]; ws.WebRoot != "/var/www/html" {
		t.Errorf("%+v", ws)
	}
}

func TestWebServersNone(t *testing.T) {
	if wss := FindWebServers(context.Background(), offlineEnv(t)); len(wss) != 0 {
		t.Errorf("%+v", wss)
	}
}

// A server with no listen directive listens on *:80 and inherits the http
// block's root.
func TestParseNginxHTTPRootAndImplicitListen(t *testing.T) {
	env := offlineEnv(t)
	env.LookPath = lookPaths("nginx")
	env.Runner = replay{"nginx -T": "web/nginx-T-httproot.txt"}
	wss := FindWebServers(context.Background(), env)
	if len(wss) != 1 || wss[0].WebRoot != "/srv/shared" {
		t.Errorf("%+v", wss)
	}
}

func TestApacheSingleVhostLine(t *testing.T) {
	env := offlineEnv(t)
	env.Root = testdata("apache-root")
	env.LookPath = lookPaths("apache2ctl")
	env.Runner = replay{"apache2ctl -S": "web/apache2ctl-S-single.txt"}
	if ws := FindWebServers(context.Background(), env)[0]; ws.WebRoot != "/srv/www/default" {
		t.Errorf("%+v", ws)
	}
}

// TestWebServersFromTheCatalogue: preflight's commands are the catalogue's,
// for the machine's distribution: on RHEL Apache is httpd (issue 26 item
// 6: preflight said "systemctl reload apache2" there), and the services
// that are not web servers show what picks up a certificate.
func TestWebServersFromTheCatalogue(t *testing.T) {
	root := t.TempDir()
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	os.MkdirAll(filepath.Join(root, "run", "systemd", "system"), 0o755)
	os.WriteFile(filepath.Join(root, "etc", "os-release"), []byte("ID=\"rocky\"\nID_LIKE=\"rhel centos fedora\"\n"), 0o644)
	env := offlineEnv(t)
	env.Root = root
	env.LookPath = lookPaths("httpd", "unbound")
	wss := FindWebServers(context.Background(), env)
	if len(wss) != 2 {
		t.Fatalf("%+v", wss)
	}
	if a := wss[0]; a.Name != "apache" || !a.Web || a.Reload != "systemctl reload httpd" || a.ConfigTest != "apachectl -t" || a.Binary != "/usr/sbin/httpd" {
		t.Errorf("apache on RHEL: %+v", a)
	}
	if u := wss[1]; u.Name != "unbound" || u.Web || u.Reload != "systemctl restart unbound" || u.Pickup != "restart" || u.Gap == "" {
		t.Errorf("unbound: %+v", u)
	}
	// Debian, no systemd: the init script's names.
	os.WriteFile(filepath.Join(root, "etc", "os-release"), []byte("ID=debian\n"), 0o644)
	os.Remove(filepath.Join(root, "run", "systemd", "system"))
	env.LookPath = lookPaths("apache2ctl")
	if a := FindWebServers(context.Background(), env)[0]; a.Reload != "service apache2 reload" || a.ConfigTest != "apache2ctl -t" {
		t.Errorf("apache on Debian: %+v", a)
	}
}
