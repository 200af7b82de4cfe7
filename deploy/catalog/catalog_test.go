package catalog

import (
	"strings"
	"testing"
)

// TestPickups pins what makes each service serve a new certificate, with
// systemd and without, on both families: the catalogue's one answer that
// renewal's deploy step, --write and preflight all print or run.
func TestPickups(t *testing.T) {
	want := map[Kind][4]string{ // Debian+systemd, Debian+SysV, RHEL+systemd, RHEL+SysV
		Nginx:        {"systemctl reload nginx", "service nginx reload", "systemctl reload nginx", "service nginx reload"},
		Apache:       {"systemctl reload apache2", "service apache2 reload", "systemctl reload httpd", "service httpd reload"},
		HAProxy:      {"systemctl reload haproxy", "service haproxy reload", "systemctl reload haproxy", "service haproxy reload"},
		Caddy:        {"systemctl reload caddy", "service caddy reload", "systemctl reload caddy", "service caddy reload"},
		Lighttpd:     {"systemctl reload lighttpd", "service lighttpd reload", "systemctl reload lighttpd", "service lighttpd reload"},
		Dnsdist:      {"", "", "", ""},
		Unbound:      {"systemctl restart unbound", "service unbound restart", "systemctl restart unbound", "service unbound restart"},
		KnotResolver: {"systemctl restart kresd@1", "service kresd@1 restart", "systemctl restart kresd@1", "service kresd@1 restart"},
		Cockpit:      {"systemctl restart cockpit", "service cockpit restart", "systemctl restart cockpit", "service cockpit restart"},
		Stunnel: {"systemctl kill --kill-whom=main --signal=HUP stunnel@ipcert-x", "service stunnel4 reload",
			"systemctl kill --kill-whom=main --signal=HUP stunnel@ipcert-x", "service stunnel@ipcert-x reload"},
	}
	if len(want) != len(Kinds()) {
		t.Fatalf("%d kinds, %d pinned", len(Kinds()), len(want))
	}
	for k, w := range want {
		i := 0
		for _, d := range []Distro{Debian, RHEL} {
			for _, systemd := range []bool{true, false} {
				s := Lookup(k, d).For("x")
				if got := strings.Join(s.PickupArgs(systemd), " "); got != w[i] {
					t.Errorf("%s on %s, systemd %v: %q, want %q", k, d, systemd, got, w[i])
				}
				if s.Pickup == PickupRestart && s.Gap == "" {
					t.Errorf("%s restarts without saying what the restart costs", k)
				}
				i++
			}
		}
	}
}

// TestParse: every kind and the names distributions give it.
func TestParse(t *testing.T) {
	for in, want := range map[string]Kind{"nginx": Nginx, "apache2": Apache, "httpd": Apache, "HTTPD": Apache, "stunnel4": Stunnel, "kresd": KnotResolver, "knot-resolver": KnotResolver, "cockpit": Cockpit} {
		if k, err := Parse(in); err != nil || k != want {
			t.Errorf("%s: %s %v", in, k, err)
		}
	}
	if _, err := Parse("iis"); err == nil || !strings.Contains(err.Error(), "dnsdist") {
		t.Errorf("unknown: %v", err)
	}
	for _, k := range Kinds() {
		if Lookup(k, Debian).Kind != k || len(Lookup(k, RHEL).Programs) == 0 {
			t.Errorf("%s: incomplete entry", k)
		}
	}
}
