package deploy

import (
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ipcert/ipcert/internal/store"
)

// hostileChars are refused in every value that goes into a web server
// config. Each one ends or escapes a token in at least one of the formats
// we write: quotes and backslashes (all), ';' '{' '}' (nginx, Caddy), '<' '>'
// (Apache sections), '#' (HAProxy and Caddy comments), '$' (nginx variables,
// which ssl_certificate expands), '%' (Apache and HAProxy format strings), and
// whitespace, which splits arguments in HAProxy and Caddy. Refusing is
// safer than quoting, because each format quotes differently and a snippet
// is meant to be read and edited by a person.
const hostileChars = "\"'\\;{}<>#$%` \t"

// ConfigError says which value was refused and why.
type ConfigError struct {
	What  string // "certificate name", "web root", ...
	Value string
	Why   string
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("%s %q %s; it would go into a web server config, where it could change what the config means", e.What, e.Value, e.Why)
}

// checkValue refuses control characters and hostileChars.
func checkValue(what, v string) error {
	if v == "" {
		return &ConfigError{What: what, Value: v, Why: "is empty"}
	}
	for _, r := range v {
		switch {
		case r < 0x20 || r == 0x7f:
			return &ConfigError{What: what, Value: v, Why: fmt.Sprintf("contains the control character %q", r)}
		case strings.ContainsRune(hostileChars, r):
			return &ConfigError{What: what, Value: v, Why: fmt.Sprintf("contains %q", r)}
		case r > 0x7e:
			return &ConfigError{What: what, Value: v, Why: fmt.Sprintf("contains the non-ASCII character %q", r)}
		}
	}
	return nil
}

// checkName accepts certificate names the store accepts (letters, digits,
// '.', '_', '-'), which are safe in every config format.
func checkName(name string) error {
	if err := checkValue("certificate name", name); err != nil {
		return err
	}
	if err := store.ValidName(name); err != nil {
		return &ConfigError{What: "certificate name", Value: name, Why: "is not a valid name (" + err.Error() + ")"}
	}
	return nil
}

// checkPath accepts clean absolute paths without hostile characters.
func checkPath(what, p string) error {
	if err := checkValue(what, p); err != nil {
		return err
	}
	if !filepath.IsAbs(p) {
		return &ConfigError{What: what, Value: p, Why: "is not an absolute path"}
	}
	// Apache's <Directory> and include lines read these as a glob, which
	// would widen "Require all granted" to other directories.
	if i := strings.IndexAny(p, "*?[]"); i >= 0 {
		return &ConfigError{What: what, Value: p, Why: fmt.Sprintf("contains the glob character %q", p[i])}
	}
	if filepath.Clean(p) != p && filepath.Clean(p)+"/" != p {
		return &ConfigError{What: what, Value: p, Why: "is not a clean path (no '..', '//' or trailing '/.')"}
	}
	return nil
}

// checkAddr parses an identifier: an IP literal in canonical form (RFC
// 5952, as the store keeps them) with no zone.
func checkAddr(s string) (netip.Addr, error) {
	if err := checkValue("address", s); err != nil {
		return netip.Addr{}, err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, &ConfigError{What: "address", Value: s, Why: "is not an IP address"}
	}
	if a.Zone() != "" {
		return netip.Addr{}, &ConfigError{What: "address", Value: s, Why: "has a zone; certificates name addresses without zones"}
	}
	if a.Is4In6() {
		a = a.Unmap()
	}
	if a.String() != s {
		return netip.Addr{}, &ConfigError{What: "address", Value: s, Why: fmt.Sprintf("is not in canonical form (write %s)", a)}
	}
	return a, nil
}

// checkHostPort accepts IP:PORT (IPv6 in brackets).
func checkHostPort(what, s string) (netip.AddrPort, error) {
	if err := checkValue(what, s); err != nil {
		return netip.AddrPort{}, err
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Port() == 0 || ap.Addr().Zone() != "" {
		return netip.AddrPort{}, &ConfigError{What: what, Value: s, Why: "is not IP:PORT (IPv6 as [ADDR]:PORT)"}
	}
	return ap, nil
}

func checkPort(what string, p int) error {
	if p < 1 || p > 65535 {
		return &ConfigError{What: what, Value: strconv.Itoa(p), Why: "is not a port number (1-65535)"}
	}
	return nil
}

// hostPort is ADDR:PORT with IPv6 in brackets, as every format here wants.
func hostPort(a netip.Addr, port int) string {
	return netip.AddrPortFrom(a, uint16(port)).String()
}

// urlHost is the host part of a URL: the address, IPv6 in brackets, and the
// port only when it is not the scheme's default.
func urlHost(a netip.Addr, port, defaultPort int) string {
	h := a.String()
	if a.Is6() {
		h = "[" + h + "]"
	}
	if port != defaultPort {
		h += ":" + strconv.Itoa(port)
	}
	return h
}
