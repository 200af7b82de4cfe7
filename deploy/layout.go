package deploy

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"
)

// Kind is a web server ipcert writes configuration for.
type Kind string

// The servers ipcert knows.
const (
	Nginx   Kind = "nginx"
	Apache  Kind = "apache"
	HAProxy Kind = "haproxy"
	Caddy   Kind = "caddy"
)

// Kinds lists every Kind, in the order messages name them.
var Kinds = []Kind{Nginx, Apache, HAProxy, Caddy}

// ParseKind accepts a kind and the names distributions give the same
// server (apache2 on Debian, httpd on RHEL).
func ParseKind(s string) (Kind, error) {
	switch strings.ToLower(s) {
	case "nginx":
		return Nginx, nil
	case "apache", "apache2", "httpd":
		return Apache, nil
	case "haproxy":
		return HAProxy, nil
	case "caddy":
		return Caddy, nil
	}
	return "", fmt.Errorf("unknown web server %q; ipcert writes configs for nginx, apache, haproxy and caddy", s)
}

// Distro is the family of Linux distribution, which decides where config
// files live and what the services are called.
type Distro string

// The families ipcert knows. Others get the Debian layout, the most common.
const (
	Debian Distro = "debian" // Debian, Ubuntu and derivatives
	RHEL   Distro = "rhel"   // RHEL, CentOS, Rocky, Alma, Fedora, Amazon Linux
)

// ParseDistro accepts "debian", "rhel" and common distribution IDs.
func ParseDistro(s string) (Distro, error) {
	if d, ok := distroOf(strings.ToLower(s)); ok {
		return d, nil
	}
	return "", fmt.Errorf("unknown distribution %q; use debian (also Ubuntu) or rhel (also Fedora, Rocky, Alma, Amazon Linux)", s)
}

func distroOf(id string) (Distro, bool) {
	switch id {
	case "debian", "ubuntu", "raspbian", "linuxmint", "pop", "devuan", "kali":
		return Debian, true
	case "rhel", "centos", "fedora", "rocky", "almalinux", "ol", "amzn", "scientific":
		return RHEL, true
	}
	return "", false
}

// DetectDistro reads root/etc/os-release (ID, then ID_LIKE) and falls back
// to Debian when it says nothing known.
func DetectDistro(root string) Distro {
	data, err := os.ReadFile(filepath.Join(root, "etc", "os-release"))
	if err != nil {
		data, _ = os.ReadFile(filepath.Join(root, "usr", "lib", "os-release"))
	}
	var id, like string
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		k, v, ok := strings.Cut(strings.TrimSpace(sc.Text()), "=")
		if !ok {
			continue
		}
		v = strings.Trim(v, `"'`)
		switch k {
		case "ID":
			id = v
		case "ID_LIKE":
			like = v
		}
	}
	for _, cand := range append([]string{id}, strings.Fields(like)...) {
		if d, ok := distroOf(strings.ToLower(cand)); ok {
			return d
		}
	}
	return Debian
}

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

// LayoutFor is the layout of kind on distro for certificate name.
func LayoutFor(kind Kind, distro Distro, name string) Layout {
	l := Layout{Kind: kind, Distro: distro, WebRoot: "/var/www/html", Unit: unitFor(kind, distro)}
	file := "ipcert-" + name
	switch kind {
	case Nginx:
		// Both families' nginx.conf include conf.d/*.conf inside http {}.
		l.ConfigPath = "/etc/nginx/conf.d/" + file + ".conf"
		l.IncludeFile, l.IncludeBase = "/etc/nginx/nginx.conf", "/etc/nginx"
		l.IncludeLine = "include /etc/nginx/conf.d/*.conf;   (inside the http { } block)"
		l.Test = Cmd{Path: "nginx", Args: []string{"-t"}}
		if distro == RHEL {
			l.WebRoot = "/usr/share/nginx/html"
		}
	case Apache:
		if distro == RHEL {
			l.ConfigPath = "/etc/httpd/conf.d/" + file + ".conf"
			l.IncludeFile, l.IncludeBase = "/etc/httpd/conf/httpd.conf", "/etc/httpd"
			l.IncludeLine = "IncludeOptional conf.d/*.conf"
			l.Test = Cmd{Path: "apachectl", Args: []string{"-t"}}
		} else {
			l.ConfigPath = "/etc/apache2/sites-available/" + file + ".conf"
			l.EnableLink = "/etc/apache2/sites-enabled/" + file + ".conf"
			l.IncludeFile, l.IncludeBase = "/etc/apache2/apache2.conf", "/etc/apache2"
			l.IncludeLine = "IncludeOptional sites-enabled/*.conf"
			// apache2ctl, not apache2: it loads /etc/apache2/envvars,
			// without which Debian's config does not parse.
			l.Test = Cmd{Path: "apache2ctl", Args: []string{"-t"}}
			// Debian's default enables mod_alias, not mod_ssl.
			l.Requires = []string{"/etc/apache2/mods-enabled/ssl.load", "/etc/apache2/mods-enabled/alias.load"}
			l.RequiresFix = "a2enmod ssl alias"
			l.EnableModules = Cmd{Path: "a2enmod", Args: []string{"-q"}}
			l.DisableModules = Cmd{Path: "a2dismod", Args: []string{"-q"}}
		}
	case HAProxy:
		if distro == RHEL {
			// RHEL's haproxy.service loads every file in CFGDIR.
			l.ConfigPath = "/etc/haproxy/conf.d/" + file + ".cfg"
			l.Test = Cmd{Path: "haproxy", Args: []string{"-c", "-f", "/etc/haproxy/haproxy.cfg", "-f", "/etc/haproxy/conf.d"}}
		} else {
			// Debian's unit and init script read one file, "$CONFIG"
			// (quoted in the init script, so it cannot carry a second
			// -f), plus $EXTRAOPTS unquoted from /etc/default/haproxy;
			// -f also takes a directory, so one option there serves every
			// ipcert certificate. The unit's own EXTRAOPTS is the master
			// socket, which setting the variable would drop: keep it.
			l.ConfigPath = "/etc/haproxy/ipcert.d/" + name + ".cfg"
			l.IncludeFile, l.IncludeBase = "/etc/default/haproxy", "/etc/haproxy"
			l.IncludeLine = `EXTRAOPTS="-S /run/haproxy-master.sock -f /etc/haproxy/ipcert.d"   (keep options you already have there)`
			l.Test = Cmd{Path: "haproxy", Args: []string{"-c", "-f", "/etc/haproxy/haproxy.cfg", "-f", "/etc/haproxy/ipcert.d"}}
		}
	case Caddy:
		l.ConfigPath = "/etc/caddy/" + file + ".caddy"
		l.IncludeFile, l.IncludeBase = "/etc/caddy/Caddyfile", "/etc/caddy"
		l.IncludeLine = "import /etc/caddy/ipcert-*.caddy   (at the top level, outside any site block)"
		l.Test = Cmd{Path: "caddy", Args: []string{"validate", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"}}
		// Both families' caddy.service run User=caddy, which cannot read
		// ipcert's state (0700 root): the snippet names a copy for it.
		l.User, l.Group, l.CopyDir = "caddy", "caddy", "/etc/caddy/ipcert/"+name
	}
	return l
}

// unitFor is the service name of kind on distro.
func unitFor(kind Kind, distro Distro) string {
	switch {
	case kind == Apache && distro == RHEL:
		return "httpd"
	case kind == Apache:
		return "apache2"
	}
	return string(kind)
}

// ReloadCmd is how to reload the server: systemctl with systemd, the SysV
// service wrapper without.
func (l Layout) ReloadCmd(systemd bool) Cmd {
	switch {
	case systemd:
		return Cmd{Path: "systemctl", Args: []string{"reload", l.Unit}}
	case l.Kind == Caddy:
		// Caddy's packages ship no init script ("caddy: unrecognized
		// service"): reload through its admin API as caddy.service's
		// ExecReload does, forced because only the files changed.
		return Cmd{Path: "caddy", Args: []string{"reload", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile", "--force"}}
	}
	return Cmd{Path: "service", Args: []string{l.Unit, "reload"}}
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
		if line == "" || line[0] == '#' {
			continue
		}
		fields := strings.FieldsFunc(line, func(r rune) bool {
			return r == ' ' || r == '\t' || r == '"' || r == '\'' || r == ';' || r == '='
		})
		for i, f := range fields {
			key := strings.ToLower(f)
			if key != "include" && key != "includeoptional" && key != "import" && key != "-f" && key != "config" {
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
