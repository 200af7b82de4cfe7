package deploy

import (
	"bufio"
	"bytes"
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"github.com/ipcert/ipcert/deploy/catalog"
)

// Kind is a service ipcert writes configuration for (catalog.Kind: the
// one catalogue of services).
type Kind = catalog.Kind

// The services ipcert knows (catalog's kinds).
const (
	Nginx        = catalog.Nginx
	Apache       = catalog.Apache
	HAProxy      = catalog.HAProxy
	Caddy        = catalog.Caddy
	Lighttpd     = catalog.Lighttpd
	Dnsdist      = catalog.Dnsdist
	Unbound      = catalog.Unbound
	KnotResolver = catalog.KnotResolver
	Cockpit      = catalog.Cockpit
	Stunnel      = catalog.Stunnel
)

// Kinds lists every Kind, in the order messages name them.
var Kinds = catalog.Kinds()

// ParseKind accepts a kind and the names distributions give the same
// service (apache2 on Debian, httpd on RHEL, stunnel4, kresd).
func ParseKind(s string) (Kind, error) { return catalog.Parse(s) }

// Distro is the family of Linux distribution (catalog.Distro).
type Distro = catalog.Distro

// The families ipcert knows. Others get the Debian layout, the most common.
const (
	Debian = catalog.Debian
	RHEL   = catalog.RHEL
)

// ParseDistro accepts "debian", "rhel" and common distribution IDs.
func ParseDistro(s string) (Distro, error) { return catalog.ParseDistro(s) }

// DetectDistro reads root/etc/os-release (ID, then ID_LIKE) and falls back
// to Debian when it says nothing known.
func DetectDistro(root string) Distro { return catalog.DetectDistro(root) }

// Layout is where a server's configuration lives on a distribution and how
// to test and reload it. LayoutFor gives the real one; tests build their
// own with temporary paths.
type Layout struct {
	Kind   Kind
	Distro Distro
	// ConfigPath is the file Install writes.
	ConfigPath string
	// EnableLink, when set, is a symlink to ConfigPath that Install also
	// creates (Debian's apache2 reads sites-enabled/, a2ensite's links).
	EnableLink string
	// IncludeFile is the file that must pull ConfigPath (or EnableLink) in,
	// IncludeLine what to add there when it does not, IncludeBase the
	// directory relative include patterns are resolved against. An empty
	// IncludeFile means the server reads ConfigPath with no help.
	IncludeFile string
	IncludeLine string
	IncludeBase string
	// Test is the server's own config test; Install runs it before writing
	// (to refuse to work on an already broken config) and after.
	Test Cmd
	// Unit is the systemd unit (and SysV service) to reload.
	Unit string
	// WebRoot is the distribution's default document root.
	WebRoot string
	// Requires are files that must exist for the snippet to load (enabled
	// modules); RequiresFix is the command that makes them.
	Requires    []string
	RequiresFix string
	// EnableModules, when set, turns missing Requires on (Debian's
	// a2enmod; its module names are appended); DisableModules turns them
	// off again when the install is rolled back.
	EnableModules, DisableModules Cmd
	// User is who the server reads its certificate as, when not root
	// (caddy.service has User=caddy): Install runs the config test as this
	// user (with runuser, when it exists and ipcert runs as root), so a
	// file the server could not read fails the test, not the start.
	// Group and CopyDir: where ipcert keeps a copy of the certificate
	// readable by that user's group (CopyForGroup).
	User    string
	Group   string
	CopyDir string
	// ConfigGroup, when set, is the group ConfigPath is written for
	// (0640): the service reads its config as that group and the file
	// holds a secret (dnsdist's console key).
	ConfigGroup string
	// Service is the catalogue's entry this layout was made from.
	Service catalog.Service
}

// TestCmd is the config test as Install runs it: as User when set, the
// user exists and this process is root.
func (l Layout) TestCmd() Cmd {
	if l.User == "" || l.Test.Path == "" || os.Geteuid() != 0 {
		return l.Test
	}
	if _, err := user.Lookup(l.User); err != nil {
		return l.Test
	}
	c := l.Test
	c.Args = append([]string{"-u", l.User, "--", c.Path}, c.Args...)
	c.Path = "runuser"
	return c
}

// LayoutFor is the layout of kind on distro for certificate name: the
// catalogue's entry (catalog.Lookup) plus how the file is pulled in.
func LayoutFor(kind Kind, distro Distro, name string) Layout {
	svc := catalog.Lookup(kind, distro).For(name)
	l := Layout{Kind: kind, Distro: distro, WebRoot: "/var/www/html", Unit: svc.Unit, Service: svc,
		ConfigPath: svc.Config, User: svc.ReadsAs, Group: svc.Group, CopyDir: svc.CopyDir}
	if len(svc.Test) > 0 {
		l.Test = Cmd{Path: svc.Test[0], Args: svc.Test[1:]}
	}
	switch kind {
	case Nginx:
		// Both families' nginx.conf include conf.d/*.conf inside http {}.
		l.IncludeFile, l.IncludeBase = "/etc/nginx/nginx.conf", "/etc/nginx"
		l.IncludeLine = "include /etc/nginx/conf.d/*.conf;   (inside the http { } block)"
		if distro == RHEL {
			l.WebRoot = "/usr/share/nginx/html"
		}
	case Apache:
		if distro == RHEL {
			l.IncludeFile, l.IncludeBase = "/etc/httpd/conf/httpd.conf", "/etc/httpd"
			l.IncludeLine = "IncludeOptional conf.d/*.conf"
		} else {
			l.EnableLink = "/etc/apache2/sites-enabled/ipcert-" + name + ".conf"
			l.IncludeFile, l.IncludeBase = "/etc/apache2/apache2.conf", "/etc/apache2"
			l.IncludeLine = "IncludeOptional sites-enabled/*.conf"
			// Debian's default enables mod_alias, not mod_ssl.
			l.Requires = []string{"/etc/apache2/mods-enabled/ssl.load", "/etc/apache2/mods-enabled/alias.load"}
			l.RequiresFix = "a2enmod ssl alias"
			l.EnableModules = Cmd{Path: "a2enmod", Args: []string{"-q"}}
			l.DisableModules = Cmd{Path: "a2dismod", Args: []string{"-q"}}
		}
	case HAProxy:
		if distro != RHEL {
			// RHEL's haproxy.service loads every file in CFGDIR.
			// Debian's unit and init script read one file, "$CONFIG"
			// (quoted in the init script, so it cannot carry a second
			// -f), plus $EXTRAOPTS unquoted from /etc/default/haproxy;
			// -f also takes a directory, so one option there serves every
			// ipcert certificate. The unit's own EXTRAOPTS is the master
			// socket, which setting the variable would drop: keep it.
			l.IncludeFile, l.IncludeBase = "/etc/default/haproxy", "/etc/haproxy"
			l.IncludeLine = `EXTRAOPTS="-S /run/haproxy-master.sock -f /etc/haproxy/ipcert.d"   (keep options you already have there)`
		}
	case Caddy:
		l.IncludeFile, l.IncludeBase = "/etc/caddy/Caddyfile", "/etc/caddy"
		l.IncludeLine = "import /etc/caddy/ipcert-*.caddy   (at the top level, outside any site block)"
	case Lighttpd:
		l.IncludeFile, l.IncludeBase = "/etc/lighttpd/lighttpd.conf", "/etc/lighttpd"
		l.IncludeLine = `include "/etc/lighttpd/conf-enabled/*.conf"`
		if distro == RHEL {
			l.WebRoot = "/var/www/lighttpd"
			l.IncludeLine = `include "/etc/lighttpd/conf.d/ipcert-*.conf"`
		}
		// ssl.engine needs mod_openssl (Debian: the package
		// lighttpd-mod-openssl).
		l.Requires = []string{lighttpdOpenSSL(distro)}
		l.RequiresFix = "apt-get install lighttpd-mod-openssl"
		if distro == RHEL {
			l.RequiresFix = "dnf install lighttpd-mod_openssl"
		}
	case Dnsdist:
		l.ConfigGroup = svc.Group
		l.IncludeFile, l.IncludeBase = "/etc/dnsdist/dnsdist.conf", "/etc/dnsdist"
		l.IncludeLine = `includeDirectory("/etc/dnsdist/conf.d")`
	case Cockpit:
		// No config: the files themselves, in Cockpit's directory.
		l.ConfigPath = svc.CopyDir + "/" + CockpitStem(name) + ".cert"
		l.Test = Cmd{Path: "/usr/lib/cockpit/cockpit-certificate-ensure", Args: []string{"--check"}}
		if distro == RHEL {
			l.Test.Path = "/usr/libexec/cockpit-certificate-ensure"
		}
	case Unbound:
		// Debian's unbound.conf reads unbound.conf.d/*.conf.
		l.IncludeFile, l.IncludeBase = "/etc/unbound/unbound.conf", "/etc/unbound"
		l.IncludeLine = `include-toplevel: "/etc/unbound/unbound.conf.d/*.conf"`
		if distro == RHEL {
			l.IncludeLine = `include-toplevel: "/etc/unbound/conf.d/*.conf"`
		}
	case KnotResolver:
		l.IncludeFile, l.IncludeBase = "/etc/knot-resolver/kresd.conf", "/etc/knot-resolver"
		l.IncludeLine = "dofile('" + l.ConfigPath + "')"
	}
	return l
}

// lighttpdOpenSSL is where mod_openssl lives.
func lighttpdOpenSSL(d Distro) string {
	if d == RHEL {
		return "/usr/lib64/lighttpd/mod_openssl.so"
	}
	return "/usr/lib/lighttpd/mod_openssl.so"
}

// unitFor is the service name of kind on distro.
func unitFor(kind Kind, distro Distro) string {
	return catalog.Lookup(kind, distro).Unit
}

// ReloadCmd is what makes the running service serve a new certificate,
// as the catalogue says (Service.Pickup): systemctl with systemd, the
// SysV service wrapper without; dnsdist's console.
func (l Layout) ReloadCmd(systemd bool) Cmd {
	switch {
	case l.Kind == Dnsdist:
		// The console client reads controlSocket and setKey from the
		// config (the snippet sets both) and asks the running dnsdist
		// to read its certificate files again.
		return Cmd{Path: "dnsdist", Args: []string{"--client", "--config", "/etc/dnsdist/dnsdist.conf", "--execute", "reloadAllCertificates()"}}
	case !systemd && l.Kind == Caddy:
		// Caddy's packages ship no init script ("caddy: unrecognized
		// service"): reload through its admin API as caddy.service's
		// ExecReload does, forced because only the files changed.
		return Cmd{Path: "caddy", Args: []string{"reload", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile", "--force"}}
	}
	svc := l.Service
	if svc.Kind == "" {
		svc = catalog.Lookup(l.Kind, l.Distro)
		svc.Unit = l.Unit
	}
	args := svc.PickupArgs(systemd)
	return Cmd{Path: args[0], Args: args[1:]}
}

// Included reports whether IncludeFile (read from disk) pulls in the file
// Install writes, by an include/IncludeOptional/import line or a -f option
// whose pattern (a path, a glob or a directory) matches it.
func (l Layout) Included() (bool, error) {
	if l.IncludeFile == "" {
		return true, nil
	}
	data, err := os.ReadFile(l.IncludeFile)
	if err != nil {
		return false, err
	}
	target := l.ConfigPath
	if l.EnableLink != "" {
		target = l.EnableLink
	}
	return includes(data, l.IncludeBase, target), nil
}

// includes looks for a pattern naming target in any non-comment line. It
// does not follow nested includes: the files ipcert writes go where the
// distribution's stock config looks, one level down.
func includes(conf []byte, base, target string) bool {
	sc := bufio.NewScanner(bytes.NewReader(conf))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || strings.HasPrefix(line, "--") {
			continue
		}
		fields := strings.FieldsFunc(line, func(r rune) bool {
			return r == ' ' || r == '\t' || r == '"' || r == '\'' || r == ';' || r == '='
		})
		for i, f := range fields {
			key := strings.ToLower(f)
			switch key {
			case "include", "includeoptional", "import", "-f", "config":
			// unbound; dnsdist's and kresd's Lua.
			case "include:", "include-toplevel:", "includedirectory(", "dofile(":
			default:
				continue
			}
			for _, pat := range fields[i+1:] {
				if strings.HasPrefix(pat, "-") {
					break
				}
				if !filepath.IsAbs(pat) {
					pat = filepath.Join(base, pat)
				}
				pat = filepath.Clean(pat)
				if pat == target || pat == filepath.Dir(target) {
					return true
				}
				if ok, _ := filepath.Match(pat, target); ok {
					return true
				}
			}
		}
	}
	return false
}
