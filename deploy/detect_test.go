package deploy

import (
	"context"
	"strings"
	"testing"
)

func TestDetectServers(t *testing.T) {
	ctx := context.Background()
	deb := Env{Root: "../testdata/deploy/debian"}
	if d := DetectDistro(deb.Root); d != Debian {
		t.Errorf("ubuntu tree: %s", d)
	}
	all := DetectServers(ctx, deb)
	if len(all) != 2 || all[0].Kind != Nginx || !all[0].Running || all[1].Kind != Apache || all[1].Running || !all[0].Systemd {
		t.Fatalf("debian: %+v", all)
	}
	s, err := DetectServer(ctx, deb, "")
	if err != nil || s.Kind != Nginx {
		t.Fatalf("the running one: %+v %v", s, err)
	}
	if c := s.ReloadCmd(); c.String() != "systemctl reload nginx" {
		t.Errorf("reload %s", c)
	}
	if l := s.Layout("203.0.113.7"); l.ConfigPath != "/etc/nginx/conf.d/ipcert-203.0.113.7.conf" || l.Test.String() != "nginx -t" {
		t.Errorf("layout %+v", l)
	}
	a, err := DetectServer(ctx, deb, Apache)
	if err != nil || a.Kind != Apache {
		t.Fatalf("apache: %+v %v", a, err)
	}
	if l := a.Layout("x"); l.ConfigPath != "/etc/apache2/sites-available/ipcert-x.conf" || l.EnableLink != "/etc/apache2/sites-enabled/ipcert-x.conf" || l.Test.String() != "apache2ctl -t" {
		t.Errorf("debian apache layout %+v", l)
	}
	if _, err := DetectServer(ctx, deb, HAProxy); err == nil || !strings.Contains(err.Error(), "haproxy is not installed") {
		t.Errorf("missing haproxy: %v", err)
	}

	rh := Env{Root: "../testdata/deploy/rhel"}
	if d := DetectDistro(rh.Root); d != RHEL {
		t.Errorf("rocky tree: %s", d)
	}
	if _, err := DetectServer(ctx, rh, ""); err == nil || !strings.Contains(err.Error(), "several services ipcert configures are running (apache, haproxy)") {
		t.Errorf("ambiguous: %v", err)
	}
	h, err := DetectServer(ctx, rh, Apache)
	if err != nil || h.Systemd || !strings.HasSuffix(h.Binary, "/usr/sbin/httpd") {
		t.Fatalf("rhel apache: %+v %v", h, err)
	}
	if c := h.ReloadCmd(); c.String() != "service httpd reload" {
		t.Errorf("reload without systemd: %s", c)
	}
	if l := h.Layout("x"); l.ConfigPath != "/etc/httpd/conf.d/ipcert-x.conf" || l.EnableLink != "" {
		t.Errorf("rhel apache layout %+v", l)
	}
	if d := DetectDistro(t.TempDir()); d != Debian {
		t.Errorf("no os-release: %s, want the Debian default", d)
	}
}

func TestParseKindAndDistro(t *testing.T) {
	for in, want := range map[string]Kind{"nginx": Nginx, "apache2": Apache, "httpd": Apache, "HAProxy": HAProxy, "caddy": Caddy} {
		if k, err := ParseKind(in); err != nil || k != want {
			t.Errorf("%s: %s %v", in, k, err)
		}
	}
	if _, err := ParseKind("iis"); err == nil {
		t.Error("iis accepted")
	}
	if d, err := ParseDistro("fedora"); err != nil || d != RHEL {
		t.Errorf("fedora: %s %v", d, err)
	}
	if _, err := ParseDistro("arch"); err == nil {
		t.Error("arch accepted")
	}
}

// TestReloadCmdCaddyWithoutSystemd: Caddy ships no init script, so without
// systemd its reload goes through its admin API, as caddy.service does.
func TestReloadCmdCaddyWithoutSystemd(t *testing.T) {
	got := LayoutFor(Caddy, Debian, "n").ReloadCmd(false).String()
	if got != "caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile --force" {
		t.Errorf("caddy without systemd: %s", got)
	}
	if got := (Server{Kind: Caddy, Distro: Debian}).ReloadCmd().String(); got != "caddy reload --config /etc/caddy/Caddyfile --adapter caddyfile --force" {
		t.Errorf("Server.ReloadCmd: %s", got)
	}
	if got := LayoutFor(Caddy, Debian, "n").ReloadCmd(true).String(); got != "systemctl reload caddy" {
		t.Errorf("with systemd: %s", got)
	}
}
