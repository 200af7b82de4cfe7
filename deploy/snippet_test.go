package deploy

import (
	"errors"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// testConsoleKey is a dnsdist console key (makeKey()'s form), for tests only.
const testConsoleKey = "MXNeLFWHUe4363BBKrY06cAsH8NWNb+Se2eXU5+Bb74="

var update = flag.Bool("update", false, "rewrite the golden files in testdata/snippets")

// TestSnippetGolden pins every snippet kind for IPv4, IPv6 and both. After
// an intended change: go test ./deploy -run TestSnippetGolden -update, and
// read the diff.
func TestSnippetGolden(t *testing.T) {
	// Fixed names, so that the golden files do not depend on NameFor.
	families := map[string]struct {
		name     string
		ids      []string
		notLocal []string
	}{
		"v4":   {"203.0.113.7", []string{"203.0.113.7"}, nil},
		"v6":   {"2001-db8--7", []string{"2001:db8::7"}, nil},
		"dual": {"203.0.113.7_2001-db8--7", []string{"203.0.113.7", "2001:db8::7"}, nil},
		// A cloud VM: the public IPv4 is 1:1 NAT, the IPv6 on the interface.
		"nat": {"203.0.113.7_2001-db8--7", []string{"203.0.113.7", "2001:db8::7"}, []string{"203.0.113.7"}},
	}
	for _, kind := range Kinds {
		for fam, f := range families {
			t.Run(string(kind)+"-"+fam, func(t *testing.T) {
				name, ids := f.name, f.ids
				got, err := Snippet(kind, SnippetParams{
					Name: name, Identifiers: ids, NotLocal: f.notLocal,
					CertDir: "/etc/ipcert/certs/" + name + "/current", ConsoleKey: testConsoleKey,
				})
				if err != nil {
					t.Fatal(err)
				}
				golden := filepath.Join("..", "testdata", "snippets", string(kind)+"-"+fam+".conf")
				if *update {
					if err := os.MkdirAll(filepath.Dir(golden), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(golden, got, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if string(got) != string(want) {
					t.Errorf("%s differs from the generated snippet (run with -update after checking the change):\n%s", golden, got)
				}
				if !IsOurs(got) {
					t.Errorf("snippet does not start with the marker %q", Marker)
				}
				for _, id := range ids {
					if !strings.Contains(string(got), id) {
						t.Errorf("address %s missing", id)
					}
				}
			})
		}
	}
}

func TestSnippetPortsAndDistro(t *testing.T) {
	p := SnippetParams{Name: "x", Identifiers: []string{"127.0.0.1", "::1"}, CertDir: "/s/certs/x/current", HTTPSPort: 8443, HTTPPort: 8080}
	for kind, want := range map[Kind][]string{
		Nginx:   {"listen 127.0.0.1:8443 ssl default_server;", "listen [::1]:8443 ssl default_server;", "listen [::1]:8080 default_server;", "return 301 https://[::1]:8443$request_uri;", "root /var/www/html;"},
		Apache:  {"Listen 127.0.0.1:8443 https", "Listen [::1]:8080 http", "<VirtualHost 127.0.0.1:8443 [::1]:8443>", `Redirect 301 / "https://[::1]:8443/"`, "ServerName ipcert-x.invalid"},
		HAProxy: {"bind [::1]:8443 ssl crt /s/certs/x/current/combined.pem", "redirect prefix https://[::1]:8443 code 301", "server web 127.0.0.1:8080"},
		Caddy:   {"https://127.0.0.1:8443, https://[::1]:8443 {", "bind 127.0.0.1 [::1]", "redir https://[::1]:8443{uri} permanent"},
	} {
		pp := p
		if kind == HAProxy {
			pp.HTTPPort = 8081
		}
		got, err := Snippet(kind, pp)
		if err != nil {
			t.Fatalf("%s: %v", kind, err)
		}
		for _, w := range want {
			if !strings.Contains(string(got), w) {
				t.Errorf("%s snippet lacks %q:\n%s", kind, w, got)
			}
		}
	}
	// Default ports: Apache relies on the distribution's Listen lines.
	got, _ := Snippet(Apache, SnippetParams{Name: "x", Identifiers: []string{"127.0.0.1"}, CertDir: "/c", Distro: RHEL})
	if strings.Contains(string(got), "\nListen") {
		t.Errorf("apache with 443/80 must not add Listen lines:\n%s", got)
	}
	got, _ = Snippet(Nginx, SnippetParams{Name: "x", Identifiers: []string{"127.0.0.1"}, CertDir: "/c", Distro: RHEL})
	if !strings.Contains(string(got), "root /usr/share/nginx/html;") || !strings.Contains(string(got), "return 301 https://127.0.0.1$request_uri;") {
		t.Errorf("RHEL nginx default web root or default-port redirect wrong:\n%s", got)
	}
}

// TestSnippetRefusesHostileValues feeds values that would end a token or a
// line in one of the formats; each must be refused with a ConfigError that
// names the value.
func TestSnippetRefusesHostileValues(t *testing.T) {
	good := SnippetParams{Name: "ok", Identifiers: []string{"192.0.2.1"}, CertDir: "/etc/ipcert/certs/ok/current", WebRoot: "/var/www/html", ConsoleKey: testConsoleKey}
	cases := map[string]func(p *SnippetParams){
		"name quote":       func(p *SnippetParams) { p.Name = `a"b` },
		"name semicolon":   func(p *SnippetParams) { p.Name = "a;b" },
		"name brace":       func(p *SnippetParams) { p.Name = "a}b" },
		"name newline":     func(p *SnippetParams) { p.Name = "a\nb" },
		"name slash":       func(p *SnippetParams) { p.Name = "../x" },
		"path newline":     func(p *SnippetParams) { p.CertDir = "/etc/x\nssl_certificate /tmp/evil" },
		"path semicolon":   func(p *SnippetParams) { p.CertDir = "/etc/x; include /tmp/evil" },
		"path brace":       func(p *SnippetParams) { p.WebRoot = "/var/www/}server{" },
		"path quote":       func(p *SnippetParams) { p.WebRoot = `/var/www/"x` },
		"path single":      func(p *SnippetParams) { p.WebRoot = `/var/www/'x` },
		"path space":       func(p *SnippetParams) { p.WebRoot = "/var/www/a b" },
		"path dollar":      func(p *SnippetParams) { p.WebRoot = "/var/www/$host" },
		"path relative":    func(p *SnippetParams) { p.WebRoot = "www" },
		"path dotdot":      func(p *SnippetParams) { p.WebRoot = "/var/www/../../etc" },
		"path angle":       func(p *SnippetParams) { p.WebRoot = "/var/www/</VirtualHost>" },
		"path hash":        func(p *SnippetParams) { p.CertDir = "/etc/x#y" },
		"path glob":        func(p *SnippetParams) { p.WebRoot = "/var/*" },
		"path bracket":     func(p *SnippetParams) { p.WebRoot = "/var/www[1]" },
		"addr semicolon":   func(p *SnippetParams) { p.Identifiers = []string{"192.0.2.1;"} },
		"addr brace":       func(p *SnippetParams) { p.Identifiers = []string{"192.0.2.1}"} },
		"addr newline":     func(p *SnippetParams) { p.Identifiers = []string{"192.0.2.1\nlisten 0.0.0.0:1"} },
		"addr quote":       func(p *SnippetParams) { p.Identifiers = []string{`"192.0.2.1"`} },
		"addr zone":        func(p *SnippetParams) { p.Identifiers = []string{"fe80::1%eth0"} },
		"addr noncanon":    func(p *SnippetParams) { p.Identifiers = []string{"2001:DB8::1"} },
		"addr hostname":    func(p *SnippetParams) { p.Identifiers = []string{"example.com"} },
		"upstream hostile": func(p *SnippetParams) { p.Upstream = "127.0.0.1:80;x" },
		"upstream name":    func(p *SnippetParams) { p.Upstream = "backend:80" },
		"upstream zone":    func(p *SnippetParams) { p.Upstream = "[fe80::1%eth0]:80" },
		"notlocal hostile": func(p *SnippetParams) { p.NotLocal = []string{"192.0.2.1;"} },
	}
	for name, mutate := range cases {
		t.Run(name, func(t *testing.T) {
			for _, kind := range Kinds {
				p := good
				mutate(&p)
				if strings.HasPrefix(name, "upstream") && kind != HAProxy {
					continue
				}
				out, err := Snippet(kind, p)
				if err == nil {
					t.Fatalf("%s: accepted, produced:\n%s", kind, out)
				}
				var ce *ConfigError
				if !errors.As(err, &ce) {
					t.Fatalf("%s: error %v is not a ConfigError", kind, err)
				}
				if !strings.Contains(err.Error(), "web server config") {
					t.Errorf("%s: error does not say why: %v", kind, err)
				}
			}
		})
	}
	for _, kind := range Kinds {
		if _, err := Snippet(kind, good); err != nil {
			t.Errorf("%s: the good parameters were refused: %v", kind, err)
		}
	}
	if _, err := Snippet("iis", good); err == nil {
		t.Error("unknown kind accepted")
	}
	bad := good
	bad.HTTPPort, bad.HTTPSPort = 8080, 8080
	if _, err := Snippet(Nginx, bad); err == nil {
		t.Error("equal ports accepted")
	}
}

func TestSnippetNotLocalMustBeIdentifier(t *testing.T) {
	_, err := Snippet(Nginx, SnippetParams{Name: "x", Identifiers: []string{"192.0.2.1"}, CertDir: "/c", NotLocal: []string{"192.0.2.9"}})
	if err == nil || !strings.Contains(err.Error(), "not one of the certificate's addresses") {
		t.Errorf("%v", err)
	}
}

func TestSnippetIPv6Upstream(t *testing.T) {
	got, err := Snippet(HAProxy, SnippetParams{Name: "x", Identifiers: []string{"192.0.2.1"}, CertDir: "/c", Upstream: "[::1]:8080"})
	if err != nil || !strings.Contains(string(got), "server web [::1]:8080") {
		t.Errorf("%v\n%s", err, got)
	}
}

// TestUnboundKeepsLocalhost: only interface: lines of ipcert's own file
// (localhost ones it added included) leave unbound's localhost default to
// keep; any other line means the user chose its interfaces.
func TestUnboundKeepsLocalhost(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ipcert-x.conf")
	p := SnippetParams{Name: "x", Identifiers: []string{"192.0.2.1"}, CertDir: "/c", KeepLocalhost: true}
	snip, err := Snippet(Unbound, p)
	if err != nil || !strings.Contains(string(snip), "interface: 127.0.0.1\n    interface: ::1\n") {
		t.Fatalf("%v\n%s", err, snip)
	}
	if !UnboundKeepsLocalhost(nil, path) {
		t.Error("no interface at all: localhost must be kept")
	}
	if UnboundKeepsLocalhost([]byte("10.0.0.1\n"), path) {
		t.Error("the user's own interface: nothing to keep")
	}
	os.WriteFile(path, snip, 0o644)
	if !UnboundKeepsLocalhost([]byte("127.0.0.1\n::1\n192.0.2.1@853\n"), path) {
		t.Error("only ipcert's own lines: localhost must stay kept on a rewrite")
	}
	if UnboundKeepsLocalhost([]byte("127.0.0.1\n::1\n192.0.2.1@853\n10.0.0.1\n"), path) {
		t.Error("a line of the user's beside ipcert's: nothing to keep")
	}
}
