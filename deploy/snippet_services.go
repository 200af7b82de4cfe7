package deploy

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/netip"
	"os"
	"path"
	"regexp"
	"strings"

	"github.com/ipcert/ipcert/deploy/catalog"
)

// The configs of the services that are not plain web servers (and of
// lighttpd), each from the catalogue's entry: where the files are, who
// reads them, what picks up a new certificate.

// markerLua and markerINI start the files of services whose config
// language does not take "#" comments (Lua: dnsdist, knot-resolver).
const markerLua = "-- Written by ipcert"

// IsOurs reports whether a file's content starts with one of the markers
// ipcert writes (Marker, or its Lua spelling).
func IsOurs(b []byte) bool {
	return bytes.HasPrefix(b, []byte(Marker)) || bytes.HasPrefix(b, []byte(markerLua))
}

// DefaultConsole is dnsdist's default console address.
const DefaultConsole = "127.0.0.1:5199"

// serviceHeader says, as comments in the service's own syntax, what the
// file is, which files the service reads and what makes it serve a new
// certificate (the catalogue's Pickup and Gap).
func serviceHeader(b *strings.Builder, d *snippetData) {
	var h strings.Builder
	header(&h, d)
	svc := d.layout.Service
	switch svc.Pickup {
	case catalog.PickupRestart:
		if d.kind == Cockpit {
			break
		}
		fmt.Fprintf(&h, "# A new certificate needs a restart (%s), which ipcert does after\n# each renewal: %s.\n", d.layout.ReloadCmd(true), svc.Gap)
	case catalog.PickupConsole:
		fmt.Fprintf(&h, "# After each renewal ipcert asks the running dnsdist to read the files\n# again through its console: %s\n", d.layout.ReloadCmd(true))
	case catalog.PickupSignal:
		fmt.Fprintf(&h, "# After each renewal ipcert sends SIG%s (%s): it reads the files again.\n", svc.Signal, d.layout.ReloadCmd(true))
	}
	text := h.String()
	if d.kind == Dnsdist || d.kind == KnotResolver {
		// Lua: "--" comments.
		lines := strings.SplitAfter(text, "\n")
		for i, l := range lines {
			if strings.HasPrefix(l, "#") {
				lines[i] = "--" + l[1:]
			}
		}
		text = strings.Join(lines, "")
	}
	b.WriteString(text)
}

// listenAddrs are the distinct addresses a service listens on (NATed
// ones through their family's wildcard).
func (d *snippetData) listenAddrs() []netip.Addr {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, a := range d.addrs {
		l := d.listenAddr(a)
		if !seen[l] {
			seen[l] = true
			out = append(out, l)
		}
	}
	return out
}

func lighttpdSnippet(b *strings.Builder, d *snippetData) {
	fmt.Fprintf(b, "\n# mod_openssl: Debian's package lighttpd-mod-openssl. lighttpd re-reads the\n")
	fmt.Fprintf(b, "# files as its server.username on SIGUSR1 (the unit's reload): from files\n")
	fmt.Fprintf(b, "# only root can read, that reload would shut it down, hence the copy.\n")
	fmt.Fprintf(b, "server.modules += ( \"mod_openssl\", \"mod_redirect\" )\n")
	for _, a := range d.listenAddrs() {
		fmt.Fprintf(b, "\n$SERVER[\"socket\"] == \"%s\" {\n", hostPort(a, d.HTTPSPort))
		fmt.Fprintf(b, "    ssl.engine  = \"enable\"\n")
		fmt.Fprintf(b, "    ssl.pemfile = \"%s\"\n", d.fullchain())
		fmt.Fprintf(b, "    ssl.privkey = \"%s\"\n", d.key())
		fmt.Fprintf(b, "    ssl.openssl.ssl-conf-cmd = ( \"MinProtocol\" => \"TLSv1.2\", \"Curves\" => \"%s\",\n", mozCurves)
		fmt.Fprintf(b, "        \"CipherString\" => \"%s\",\n", mozCiphers)
		fmt.Fprintf(b, "        \"Options\" => \"-SessionTicket,-ServerPreference\" )\n")
		fmt.Fprintf(b, "    server.document-root = \"%s\"\n}\n", d.WebRoot)
	}
	fmt.Fprintf(b, "\n# Plain HTTP stays on lighttpd's own server.port: for these addresses the\n")
	fmt.Fprintf(b, "# challenge path answers from the web root (ipcert --webroot), the rest\n# is redirected to HTTPS.\n")
	fmt.Fprintf(b, "$HTTP[\"scheme\"] == \"http\" {\n")
	for _, a := range d.addrs {
		fmt.Fprintf(b, "    $HTTP[\"host\"] == \"%s\" {\n", urlHost(a, d.HTTPPort, 80))
		fmt.Fprintf(b, "        server.document-root = \"%s\"\n", d.WebRoot)
		fmt.Fprintf(b, "        $HTTP[\"url\"] !~ \"^/\\.well-known/acme-challenge/\" {\n")
		fmt.Fprintf(b, "            url.redirect = ( \"\" => \"https://%s${url.path}${qsa}\" )\n", urlHost(a, d.HTTPSPort, 443))
		fmt.Fprintf(b, "        }\n    }\n")
	}
	fmt.Fprintf(b, "}\n")
}

func stunnelSnippet(b *strings.Builder, d *snippetData) {
	fmt.Fprintf(b, "\n# stunnel re-reads cert and key as %s on SIGHUP; from files only root\n", d.layout.User)
	fmt.Fprintf(b, "# can read it would keep the old certificate without a word, hence the copy.\n")
	if d.Systemd {
		fmt.Fprintf(b, "# Run by systemd as %s (Type=simple): in the foreground.\n", d.layout.Unit)
		fmt.Fprintf(b, "foreground = yes\npid =\n")
	} else {
		fmt.Fprintf(b, "pid = /run/stunnel4/ipcert-%s.pid\n", d.Name)
	}
	fmt.Fprintf(b, "setuid = %s\nsetgid = %s\n", d.layout.User, d.layout.Group)
	for i, a := range d.listenAddrs() {
		fmt.Fprintf(b, "\n[ipcert-%s-%d]\n", d.Name, i+1)
		// stunnel reads HOST:PORT up to the last colon, without brackets.
		fmt.Fprintf(b, "accept = %s:%d\n", a, d.HTTPSPort)
		fmt.Fprintf(b, "connect = %s\n", d.upstream)
		fmt.Fprintf(b, "cert = %s\n", d.fullchain())
		fmt.Fprintf(b, "key = %s\n", d.key())
		fmt.Fprintf(b, "sslVersionMin = TLSv1.2\n")
		fmt.Fprintf(b, "ciphers = %s\n", mozCiphers)
		fmt.Fprintf(b, "ciphersuites = %s\n", mozSuites)
		fmt.Fprintf(b, "curves = %s\n", mozCurves)
		fmt.Fprintf(b, "options = NO_TICKET\n")
	}
}

func unboundSnippet(b *strings.Builder, d *snippetData) {
	fmt.Fprintf(b, "\n# unbound reads these files as root before it drops privileges.\n")
	fmt.Fprintf(b, "# It listens only on the interfaces its config names; add an access-control\n")
	fmt.Fprintf(b, "# line for the clients of DoT (an open resolver answers everyone).\n")
	fmt.Fprintf(b, "server:\n")
	if d.KeepLocalhost {
		fmt.Fprintf(b, "    # No other interface: line was set, so unbound answered on localhost;\n")
		fmt.Fprintf(b, "    # these keep it answering there.\n")
		fmt.Fprintf(b, "    interface: 127.0.0.1\n    interface: ::1\n")
	}
	for _, a := range d.listenAddrs() {
		fmt.Fprintf(b, "    interface: %s@%d\n", a, d.HTTPSPort)
	}
	fmt.Fprintf(b, "    tls-port: %d\n", d.HTTPSPort)
	fmt.Fprintf(b, "    tls-service-pem: \"%s\"\n", d.fullchain())
	fmt.Fprintf(b, "    tls-service-key: \"%s\"\n", d.key())
	fmt.Fprintf(b, "    tls-ciphers: \"%s\"\n", mozCiphers)
	fmt.Fprintf(b, "    tls-ciphersuites: \"%s\"\n", mozSuites)
}

func kresdSnippet(b *strings.Builder, d *snippetData) {
	fmt.Fprintf(b, "\n-- kresd reads the files once, when net.tls runs, as knot-resolver.\n")
	fmt.Fprintf(b, "-- Add this to kresd.conf to load it: dofile('%s')\n", d.layout.ConfigPath)
	fmt.Fprintf(b, "net.tls('%s', '%s')\n", d.fullchain(), d.key())
	for _, a := range d.listenAddrs() {
		fmt.Fprintf(b, "net.listen('%s', %d, { kind = 'tls' })\n", a, d.HTTPSPort)
	}
	fmt.Fprintf(b, "-- DNS-over-HTTPS on the same certificate: net.listen(ADDR, 443, { kind = 'doh2' })\n")
}

func dnsdistSnippet(b *strings.Builder, d *snippetData) {
	fmt.Fprintf(b, "\n-- The console that \"dnsdist --client\" (run by ipcert after each renewal)\n")
	fmt.Fprintf(b, "-- uses for reloadAllCertificates(); these replace a controlSocket/setKey\n-- set earlier in dnsdist.conf.\n")
	fmt.Fprintf(b, "controlSocket(\"%s\")\n", d.console)
	fmt.Fprintf(b, "setKey(\"%s\")\n", d.ConsoleKey)
	opts := fmt.Sprintf("{ minTLSVersion = \"tls1.2\", ciphers = \"%s\", ciphersTLS13 = \"%s\", numberOfTicketsKeys = 0 }", mozCiphers, mozSuites)
	for _, a := range d.listenAddrs() {
		fmt.Fprintf(b, "addTLSLocal(\"%s\", \"%s\", \"%s\", %s)\n", hostPort(a, d.HTTPSPort), d.fullchain(), d.key(), opts)
	}
	fmt.Fprintf(b, "-- DNS-over-HTTPS on the same files: addDOHLocal(\"ADDR:443\", \"%s\", \"%s\", \"/dns-query\")\n", d.fullchain(), d.key())
}

// cockpitSnippet is no config: Cockpit takes the certificate from
// /etc/cockpit/ws-certs.d, the last NAME.cert (with its NAME.key) in
// alphabetical order. It says what --write puts there.
func cockpitSnippet(b *strings.Builder, d *snippetData) {
	dir := d.layout.CopyDir
	fmt.Fprintf(b, "# Not a config file: Cockpit has no setting for its certificate. It serves the last\n")
	fmt.Fprintf(b, "# *.cert in %s (alphabetically) with the .key of the same\n", dir)
	fmt.Fprintf(b, "# name, and refuses a file holding both. \"--write\" copies them there\n")
	fmt.Fprintf(b, "# (root-only, as cockpit-certificate-ensure reads them as root), every\n")
	fmt.Fprintf(b, "# renewal refreshes them, then: %s\n", d.layout.ReloadCmd(true))
	fmt.Fprintf(b, "# (%s).\n", d.layout.Service.Gap)
	fmt.Fprintf(b, "#\n#   %s  <- %s\n#   %s  <- %s\n", path.Join(dir, CockpitStem(d.Name)+".cert"), path.Join(d.CertDir, "fullchain.pem"),
		path.Join(dir, CockpitStem(d.Name)+".key"), path.Join(d.CertDir, "privkey.pem"))
	fmt.Fprintf(b, "#\n# Cockpit listens on port %d of every address.\n", d.layout.Service.Port)
}

// CockpitStem is the file name (without .cert/.key) ipcert gives a
// certificate in Cockpit's directory: after "0-self-signed", so Cockpit
// prefers it.
func CockpitStem(name string) string { return "ipcert-" + name }

// DnsdistConsoleKey is the console key of the dnsdist config ipcert
// installed at path (so rewriting it keeps the running dnsdist reachable),
// or a new random one when there is none.
func DnsdistConsoleKey(path string) (string, error) {
	if b, err := os.ReadFile(path); err == nil && IsOurs(b) {
		if m := setKeyLine.FindSubmatch(b); m != nil {
			if k, err := base64.StdEncoding.DecodeString(string(m[1])); err == nil && len(k) == 32 {
				return string(m[1]), nil
			}
		}
	}
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(k), nil
}

var setKeyLine = regexp.MustCompile(`(?m)^setKey\("([A-Za-z0-9+/=]{44})"\)$`)

// UnboundKeepsLocalhost says whether unbound's config, apart from ipcert's
// own file at path, names no interface: then unbound answers on localhost
// only by default, which the snippet's interface: lines would end, so the
// snippet must name localhost itself. interfaces is what
// "unbound-checkconf -o interface" prints (one per line, ipcert's file
// included).
func UnboundKeepsLocalhost(interfaces []byte, path string) bool {
	ours := map[string]int{}
	if b, err := os.ReadFile(path); err == nil && IsOurs(b) {
		for _, l := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(l), "interface:"); ok {
				ours[strings.TrimSpace(v)]++
			}
		}
	}
	for _, l := range strings.Split(string(interfaces), "\n") {
		l = strings.TrimSpace(l)
		if l == "" {
			continue
		}
		if ours[l] > 0 {
			ours[l]--
			continue
		}
		return false
	}
	return true
}
