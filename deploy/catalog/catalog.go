// Package catalog is the one catalogue of the services ipcert installs a
// certificate for: the web servers (nginx, Apache, HAProxy, Caddy,
// lighttpd) and the TLS services people put on a bare IP (dnsdist,
// unbound, knot-resolver, Cockpit, stunnel). Each entry says how to find
// the service on a machine (programs, process names, unit), where its
// config for an IP certificate goes, which files it reads and as whom, how
// to test its config, and what makes it serve a new certificate, per
// distribution family where that differs (RHEL's httpd, Debian's apache2).
//
// deploy (snippets, install, renewal's deploy step), preflight (detection)
// and cli (completion, --reload) read it; it imports nothing of ipcert,
// so every package may.
package catalog

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Kind names a service.
type Kind string

// The services ipcert knows.
const (
	Nginx        Kind = "nginx"
	Apache       Kind = "apache"
	HAProxy      Kind = "haproxy"
	Caddy        Kind = "caddy"
	Lighttpd     Kind = "lighttpd"
	Dnsdist      Kind = "dnsdist"
	Unbound      Kind = "unbound"
	KnotResolver Kind = "knot-resolver"
	Cockpit      Kind = "cockpit"
	Stunnel      Kind = "stunnel"
)

// Distro is the family of Linux distribution, which decides where config
// files live and what the services are called.
type Distro string

// The families ipcert knows. Others get the Debian layout, the most common.
const (
	Debian Distro = "debian" // Debian, Ubuntu and derivatives
	RHEL   Distro = "rhel"   // RHEL, CentOS, Rocky, Alma, Fedora, Amazon Linux
)

// Pickup is what makes a running service serve a new certificate.
type Pickup string

const (
	// PickupReload: the service manager's reload (a signal the service
	// answers by re-reading its config and files, without dropping
	// connections).
	PickupReload Pickup = "reload"
	// PickupSignal: a signal (Signal) sent through the service manager,
	// for a service whose unit has no reload (Debian's stunnel@.service).
	PickupSignal Pickup = "signal"
	// PickupConsole: a command on the service's own control channel
	// (dnsdist's reloadAllCertificates()).
	PickupConsole Pickup = "console"
	// PickupRestart: only a restart; connections drop and the service is
	// unreachable until it has started again (the gap is said in Gap).
	PickupRestart Pickup = "restart"
)

// Files is the shape of the certificate files a service reads.
type Files string

const (
	// FilesPEM: fullchain.pem and privkey.pem.
	FilesPEM Files = "pem"
	// FilesCombined: one file, chain then key (HAProxy's crt).
	FilesCombined Files = "combined"
	// FilesCockpit: NAME.cert (chain) and NAME.key side by side in
	// /etc/cockpit/ws-certs.d (Cockpit refuses a merged file there).
	FilesCockpit Files = "cockpit"
)

// Service is one catalogue entry, resolved for a distribution.
type Service struct {
	Kind  Kind
	Title string // as people write it: "Apache httpd", "knot-resolver"
	// Web: an HTTP server; its snippet also answers the challenge path on
	// port 80 from a web root and redirects the rest to HTTPS.
	Web bool
	// Names are the words accepted for Kind on the command line.
	Names []string
	// Programs are the executables that show it is installed, Procs the
	// process names (/proc/PID/comm) that show it runs.
	Programs []string
	Procs    []string
	// Unit is the systemd unit of the system service ("NAME" is
	// replaced), SysV its init script when the name differs.
	Unit string
	SysV string
	// Config is where ipcert's file for certificate NAME goes ("NAME" is
	// replaced); empty for a service configured only by file names
	// (Cockpit).
	Config string
	// Test is the service's own config test (program and arguments),
	// nil when it has none.
	Test []string
	// Port is the TLS port the snippet listens on by default.
	Port int
	// Files is the shape of the files the service reads. ReadsAs, when
	// set, is the user the service reads them as after it started (on
	// reload): ipcert's state (0700 root) is closed to it, so a copy
	// readable by group Group is kept in CopyDir ("NAME" replaced),
	// refreshed before every pickup.
	Files   Files
	ReadsAs string
	Group   string
	CopyDir string
	// Pickup is what makes it serve a new certificate; Gap says what a
	// restart costs, for a person to read.
	Pickup Pickup
	Signal string
	Gap    string
}

// All lists every service, web servers first, in the order messages name
// them.
func All(d Distro) []Service {
	out := make([]Service, 0, len(kinds))
	for _, k := range kinds {
		out = append(out, Lookup(k, d))
	}
	return out
}

var kinds = []Kind{Nginx, Apache, HAProxy, Caddy, Lighttpd, Dnsdist, Unbound, KnotResolver, Cockpit, Stunnel}

// Kinds lists every Kind, in the order of All.
func Kinds() []Kind { return append([]Kind(nil), kinds...) }

// WebKinds lists the web servers.
func WebKinds() []Kind {
	var out []Kind
	for _, k := range kinds {
		if Lookup(k, Debian).Web {
			out = append(out, k)
		}
	}
	return out
}

// Words is every Kind, space-separated, for completion and messages.
func Words() string {
	w := make([]string, len(kinds))
	for i, k := range kinds {
		w[i] = string(k)
	}
	return strings.Join(w, " ")
}

// Parse accepts a kind and the names distributions give the same service
// (apache2 and httpd, stunnel4, kresd).
func Parse(s string) (Kind, error) {
	low := strings.ToLower(s)
	for _, k := range kinds {
		for _, n := range Lookup(k, Debian).Names {
			if n == low {
				return k, nil
			}
		}
	}
	return "", fmt.Errorf("unknown service %q; ipcert writes configs for %s", s, strings.ReplaceAll(Words(), " ", ", "))
}

// Lookup is kind's entry on distro; an unknown kind gives a zero Service.
func Lookup(k Kind, d Distro) Service {
	s := Service{Kind: k, Title: string(k), Names: []string{string(k)}, Programs: []string{string(k)}, Procs: []string{string(k)},
		Unit: string(k), Files: FilesPEM, Pickup: PickupReload, Port: 443}
	switch k {
	case Nginx:
		s.Web = true
		s.Config = "/etc/nginx/conf.d/ipcert-NAME.conf"
		s.Test = []string{"nginx", "-t"}
	case Apache:
		s.Web = true
		s.Title = "Apache httpd"
		s.Names = []string{"apache", "apache2", "httpd"}
		if d == RHEL {
			s.Programs, s.Procs, s.Unit = []string{"apachectl", "httpd"}, []string{"httpd"}, "httpd"
			s.Config = "/etc/httpd/conf.d/ipcert-NAME.conf"
			s.Test = []string{"apachectl", "-t"}
		} else {
			// apache2ctl first: "apache2ctl -S" loads envvars.
			s.Programs, s.Procs, s.Unit = []string{"apache2ctl", "apache2"}, []string{"apache2"}, "apache2"
			s.Config = "/etc/apache2/sites-available/ipcert-NAME.conf"
			// apache2ctl, not apache2: it loads /etc/apache2/envvars,
			// without which Debian's config does not parse.
			s.Test = []string{"apache2ctl", "-t"}
		}
	case HAProxy:
		s.Web = true
		s.Title = "HAProxy"
		s.Files = FilesCombined
		if d == RHEL {
			s.Config = "/etc/haproxy/conf.d/ipcert-NAME.cfg"
			s.Test = []string{"haproxy", "-c", "-f", "/etc/haproxy/haproxy.cfg", "-f", "/etc/haproxy/conf.d"}
		} else {
			s.Config = "/etc/haproxy/ipcert.d/NAME.cfg"
			s.Test = []string{"haproxy", "-c", "-f", "/etc/haproxy/haproxy.cfg", "-f", "/etc/haproxy/ipcert.d"}
		}
	case Caddy:
		s.Web = true
		s.Title = "Caddy"
		s.Config = "/etc/caddy/ipcert-NAME.caddy"
		s.Test = []string{"caddy", "validate", "--config", "/etc/caddy/Caddyfile", "--adapter", "caddyfile"}
		// Both families' caddy.service run User=caddy.
		s.ReadsAs, s.Group, s.CopyDir = "caddy", "caddy", "/etc/caddy/ipcert/NAME"
	case Lighttpd:
		s.Web = true
		// Debian's lighttpd.conf includes conf-enabled/*.conf; RHEL's
		// reads conf.d/*.conf through modules.conf only for named
		// files, so there the include line is the user's.
		s.Config = "/etc/lighttpd/conf-enabled/90-ipcert-NAME.conf"
		if d == RHEL {
			s.Config = "/etc/lighttpd/conf.d/ipcert-NAME.conf"
		}
		s.Test = []string{"lighttpd", "-tt", "-f", "/etc/lighttpd/lighttpd.conf"}
		// It re-reads ssl.pemfile as its server.username on SIGUSR1
		// (the unit's ExecReload); from root-only files that reload
		// shuts it down.
		s.ReadsAs, s.Group, s.CopyDir = "www-data", "www-data", "/etc/lighttpd/ipcert/NAME"
		if d == RHEL {
			s.ReadsAs, s.Group = "lighttpd", "lighttpd"
		}
	case Dnsdist:
		s.Title = "dnsdist"
		s.Config = "/etc/dnsdist/conf.d/ipcert-NAME.conf"
		s.Test = []string{"dnsdist", "--check-config", "--config", "/etc/dnsdist/dnsdist.conf"}
		s.Port = 853
		// Debian's unit runs it as _dnsdist from the start: it reads
		// the files as that user, at start and at every
		// reloadAllCertificates().
		s.ReadsAs, s.Group, s.CopyDir = "_dnsdist", "_dnsdist", "/etc/dnsdist/ipcert/NAME"
		if d == RHEL {
			s.ReadsAs, s.Group = "dnsdist", "dnsdist"
		}
		s.Pickup = PickupConsole
	case Unbound:
		s.Config = "/etc/unbound/unbound.conf.d/ipcert-NAME.conf"
		if d == RHEL {
			s.Config = "/etc/unbound/conf.d/ipcert-NAME.conf"
		}
		s.Test = []string{"unbound-checkconf"}
		s.Port = 853
		// Read as root before it drops privileges: the state is fine.
		s.Pickup = PickupRestart
		s.Gap = "unbound keeps the old certificate on SIGHUP and unbound-control reload; a restart drops its cache and leaves the address unanswered for about a second"
	case KnotResolver:
		s.Names = []string{"knot-resolver", "kresd"}
		s.Programs, s.Procs = []string{"kresd"}, []string{"kresd"}
		s.Unit = "kresd@1"
		s.Config = "/etc/knot-resolver/ipcert-NAME.lua"
		s.Port = 853
		s.ReadsAs, s.Group, s.CopyDir = "knot-resolver", "knot-resolver", "/etc/knot-resolver/ipcert/NAME"
		s.Pickup = PickupRestart
		s.Gap = "kresd reads the files once at start (a swapped file is not noticed); a restart empties its cache and leaves the address unanswered for about a second"
	case Cockpit:
		s.Title = "Cockpit"
		s.Programs, s.Procs = []string{"cockpit-ws", "/usr/lib/cockpit/cockpit-ws", "/usr/libexec/cockpit-ws"}, []string{"cockpit-ws", "cockpit-tls"}
		s.Port = 9090
		s.Files = FilesCockpit
		// cockpit-certificate-ensure reads the directory as root.
		s.CopyDir = "/etc/cockpit/ws-certs.d"
		s.Pickup = PickupRestart
		s.Gap = "restarting cockpit.service ends every open Cockpit session; users log in again"
	case Stunnel:
		s.Title = "stunnel"
		s.Names = []string{"stunnel", "stunnel4"}
		s.Programs, s.Procs = []string{"stunnel4", "stunnel"}, []string{"stunnel4", "stunnel"}
		// Debian's stunnel@.service runs one config in the foreground
		// and has no reload; its init script starts every
		// /etc/stunnel/*.conf and reloads with SIGHUP.
		s.Unit, s.SysV = "stunnel@ipcert-NAME", "stunnel4"
		if d == RHEL {
			s.Programs, s.Procs, s.Unit, s.SysV = []string{"stunnel"}, []string{"stunnel"}, "stunnel@ipcert-NAME", ""
		}
		s.Pickup, s.Signal = PickupSignal, "HUP"
		// Debian's init script starts every /etc/stunnel/*.conf.
		s.Config = "/etc/stunnel/ipcert-NAME.conf"
		// It re-reads cert= and key= on SIGHUP as its setuid user;
		// from root-only files it silently keeps the old certificate.
		s.ReadsAs, s.Group, s.CopyDir = "stunnel4", "stunnel4", "/etc/stunnel/ipcert/NAME"
		if d == RHEL {
			s.ReadsAs, s.Group = "nobody", "nobody"
		}
	default:
		return Service{}
	}
	return s
}

// For replaces NAME in Config and CopyDir.
func (s Service) For(name string) Service {
	s.Config = strings.ReplaceAll(s.Config, "NAME", name)
	s.CopyDir = strings.ReplaceAll(s.CopyDir, "NAME", name)
	s.Unit = strings.ReplaceAll(s.Unit, "NAME", name)
	return s
}

// SysVName is the init script's name.
func (s Service) SysVName() string {
	if s.SysV != "" {
		return s.SysV
	}
	return s.Unit
}

// TestLine is the config test as a person types it.
func (s Service) TestLine() string { return strings.Join(s.Test, " ") }

// PickupArgs is the service-manager command that makes the system
// service serve a new certificate: systemctl with systemd, the SysV
// script without. A console pickup is not a service-manager command: nil
// (deploy builds it).
func (s Service) PickupArgs(systemd bool) []string {
	verb := "reload"
	switch s.Pickup {
	case PickupConsole:
		return nil
	case PickupRestart:
		verb = "restart"
	case PickupSignal:
		if systemd {
			return []string{"systemctl", "kill", "--kill-whom=main", "--signal=" + s.Signal, s.Unit}
		}
	}
	if systemd {
		return []string{"systemctl", verb, s.Unit}
	}
	return []string{"service", s.SysVName(), verb}
}

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
