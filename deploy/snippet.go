package deploy

import (
	"fmt"
	"net/netip"
	"path"
	"slices"
	"strings"

	"github.com/ipcert/ipcert/deploy/catalog"
	"github.com/ipcert/ipcert/internal/store"
)

// SnippetParams is what a snippet needs. Every value is validated before it
// goes into the config (see hostileChars): a name, path or address that
// could end a token is refused, never escaped.
type SnippetParams struct {
	Name        string   // the certificate's name in the store
	Identifiers []string // canonical IP literals, as renewal.json keeps them
	// CertDir is the certificate's current link (store.CurrentDir), so a
	// renewal only needs a reload, never a config change.
	CertDir string
	// WebRoot is served over HTTPS and answers /.well-known/acme-challenge/
	// over plain HTTP. Empty means the distribution's default.
	WebRoot string
	// Ports; zero means 443 and 80. Tests use free high ports.
	HTTPSPort, HTTPPort int
	// Distro decides the defaults that differ between distributions.
	Distro Distro
	// Upstream (HAProxy only) is the IP:PORT of the web server HAProxy
	// passes requests to, challenge requests included. Default
	// 127.0.0.1:8080.
	Upstream string
	// CopyGroup, when set, says CertDir is the copy ipcert keeps for a
	// server reading as its own user (CopyForGroup), readable by this
	// group; the header explains it.
	CopyGroup string
	// NotLocal lists identifiers that are not on a local interface: a
	// cloud VM's public IPv4 behind 1:1 NAT (docs/letsencrypt.md). The server sees
	// those connections arrive on its private address, so listening on the
	// public one would fail to bind or never match; they are served
	// through the wildcard address of their family, as the default server.
	NotLocal []string
	// Systemd: the machine runs systemd (stunnel then runs in the
	// foreground under its unit).
	Systemd bool
	// ConsoleKey (dnsdist only, required) is the base64 key of its
	// console (setKey), Console its address (default DefaultConsole):
	// renewals reach the running dnsdist through it.
	ConsoleKey string
	Console    string
	// KeepLocalhost (unbound only): no other interface: line is in its
	// config, so the snippet's would end its default of answering on
	// localhost; it names 127.0.0.1 and ::1 too (UnboundKeepsLocalhost).
	KeepLocalhost bool
}

// Marker starts every file ipcert writes; Install replaces only files that
// begin with it.
const Marker = "# Written by ipcert"

// DefaultUpstream is where HAProxy sends requests when no upstream is given.
const DefaultUpstream = "127.0.0.1:8080"

// Mozilla's "intermediate" TLS profile (ssl-config.mozilla.org, guideline
// 5.7): TLS 1.2 and 1.3, forward-secret AEAD suites only. The DHE suites of
// the profile are left out: they need a dhparam file, and every client the
// profile supports also speaks ECDHE. OCSP stapling is left out because
// Let's Encrypt ended OCSP in 2025 (docs/letsencrypt.md), and HSTS because browsers
// ignore it for IP-address hosts (RFC 6797 section 8.1.1).
const (
	mozCiphers = "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
	// TLS 1.3 suites, for the servers that set them apart (HAProxy).
	mozSuites = "TLS_AES_128_GCM_SHA256:TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256"
	mozCurves = "X25519:prime256v1:secp384r1"
	// The same suites under Go's names, for Caddy.
	mozCiphersGo = "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256 TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256 TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384 TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384 TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256 TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256"
)

// acmePath is the http-01 path (RFC 8555 section 8.3).
const acmePath = "/.well-known/acme-challenge/"

type snippetData struct {
	SnippetParams
	kind     Kind
	addrs    []netip.Addr
	nat      map[netip.Addr]bool
	upstream netip.AddrPort
	console  netip.AddrPort
	layout   Layout
}

func (d *snippetData) fullchain() string { return path.Join(d.CertDir, store.FullChainFile) }
func (d *snippetData) key() string       { return path.Join(d.CertDir, store.KeyFile) }
func (d *snippetData) combined() string  { return path.Join(d.CertDir, store.CombinedFile) }

// Snippet returns the config that serves the certificate over HTTPS on each
// of its addresses with Mozilla's intermediate TLS settings, plus a port-80
// server per address that keeps /.well-known/acme-challenge/ answering from
// the web root (so http-01 renewals through the web root keep working) and
// redirects everything else to HTTPS.
func Snippet(kind Kind, p SnippetParams) ([]byte, error) {
	d, err := checkParams(kind, p)
	if err != nil {
		return nil, err
	}
	var b strings.Builder
	if d.layout.Service.Web && kind != Lighttpd {
		header(&b, d)
	} else {
		serviceHeader(&b, d)
	}
	switch kind {
	case Lighttpd:
		lighttpdSnippet(&b, d)
	case Stunnel:
		stunnelSnippet(&b, d)
	case Unbound:
		unboundSnippet(&b, d)
	case KnotResolver:
		kresdSnippet(&b, d)
	case Dnsdist:
		dnsdistSnippet(&b, d)
	case Cockpit:
		cockpitSnippet(&b, d)
	case Nginx:
		nginxSnippet(&b, d)
	case Apache:
		apacheSnippet(&b, d)
	case HAProxy:
		haproxySnippet(&b, d)
	case Caddy:
		caddySnippet(&b, d)
	}
	return []byte(b.String()), nil
}

func checkParams(kind Kind, p SnippetParams) (*snippetData, error) {
	if _, err := ParseKind(string(kind)); err != nil || kind != Kind(strings.ToLower(string(kind))) {
		return nil, fmt.Errorf("unknown service %q; ipcert writes configs for %s", kind, strings.ReplaceAll(catalog.Words(), " ", ", "))
	}
	if err := checkName(p.Name); err != nil {
		return nil, err
	}
	if len(p.Identifiers) == 0 {
		return nil, fmt.Errorf("certificate %s has no addresses to serve", p.Name)
	}
	d := &snippetData{SnippetParams: p, kind: kind}
	seen := map[netip.Addr]bool{}
	for _, id := range p.Identifiers {
		a, err := checkAddr(id)
		if err != nil {
			return nil, err
		}
		if !seen[a] {
			seen[a] = true
			d.addrs = append(d.addrs, a)
		}
	}
	d.nat = map[netip.Addr]bool{}
	for _, id := range p.NotLocal {
		a, err := checkAddr(id)
		if err != nil {
			return nil, err
		}
		if !seen[a] {
			return nil, fmt.Errorf("%s is marked as not local but is not one of the certificate's addresses (%s)", a, strings.Join(p.Identifiers, ", "))
		}
		d.nat[a] = true
	}
	if err := checkPath("certificate directory", p.CertDir); err != nil {
		return nil, err
	}
	if p.CopyGroup != "" {
		if err := checkValue("group", p.CopyGroup); err != nil {
			return nil, err
		}
	}
	if d.Distro == "" {
		d.Distro = Debian
	}
	d.layout = LayoutFor(kind, d.Distro, p.Name)
	if d.WebRoot == "" {
		d.WebRoot = d.layout.WebRoot
	}
	if err := checkPath("web root", d.WebRoot); err != nil {
		return nil, err
	}
	if d.HTTPSPort == 0 {
		d.HTTPSPort = d.layout.Service.Port
	}
	if d.HTTPPort == 0 {
		d.HTTPPort = 80
	}
	if err := checkPort("HTTPS port", d.HTTPSPort); err != nil {
		return nil, err
	}
	if err := checkPort("HTTP port", d.HTTPPort); err != nil {
		return nil, err
	}
	if d.HTTPSPort == d.HTTPPort {
		return nil, fmt.Errorf("the HTTPS and HTTP ports are both %d; they must differ", d.HTTPPort)
	}
	if kind == Dnsdist {
		if err := checkValue("console key", d.ConsoleKey); err != nil || d.ConsoleKey == "" {
			return nil, fmt.Errorf("dnsdist needs the key of its console (setKey), base64 as makeKey() prints it")
		}
		c := d.Console
		if c == "" {
			c = DefaultConsole
		}
		ap, err := checkHostPort("console", c)
		if err != nil {
			return nil, err
		}
		d.console = ap
	}
	if kind == HAProxy || kind == Stunnel {
		up := d.Upstream
		if up == "" {
			up = DefaultUpstream
		}
		ap, err := checkHostPort("upstream", up)
		if err != nil {
			return nil, err
		}
		d.upstream = ap
	} else if d.Upstream != "" {
		return nil, fmt.Errorf("an upstream is only used for haproxy and stunnel; %s does not pass connections on", kind)
	}
	return d, nil
}

// listenAddr is where the server listens for a: a itself, or for an
// address behind NAT the wildcard of its family.
func (d *snippetData) listenAddr(a netip.Addr) netip.Addr {
	switch {
	case !d.nat[a]:
		return a
	case a.Is4():
		return netip.IPv4Unspecified()
	}
	return netip.IPv6Unspecified()
}

// plainAddrs are the addresses that get their own port-80 server: every
// local one and the first NATed one of each family (a second would be a
// second default server on the same wildcard).
func (d *snippetData) plainAddrs() []netip.Addr {
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, a := range d.addrs {
		l := d.listenAddr(a)
		if seen[l] {
			continue
		}
		seen[l] = true
		out = append(out, a)
	}
	return out
}

func (d *snippetData) anyNAT() bool { return len(d.nat) > 0 }

func header(b *strings.Builder, d *snippetData) {
	ids := make([]string, len(d.addrs))
	for i, a := range d.addrs {
		ids[i] = a.String()
	}
	proto := "HTTPS"
	if !d.layout.Service.Web {
		proto = "TLS"
	}
	fmt.Fprintf(b, "%s for certificate %s: %s on %s.\n", Marker, d.Name, proto, strings.Join(ids, ", "))
	if d.kind == Cockpit {
		// Not a config: what --write puts where (cockpitSnippet).
		return
	}
	if d.layout.ConfigPath != "" {
		fmt.Fprintf(b, "# \"ipcert snippet %s %s --write\" installs it as %s,\n", d.kind, d.Name, d.layout.ConfigPath)
		fmt.Fprintf(b, "# tests the config and reloads; it replaces this file (keeping a backup).\n")
	}
	certs := d.fullchain() + " and privkey.pem"
	if d.kind == HAProxy {
		certs = d.combined() + " (certificate chain and key in one file)"
	}
	if d.CopyGroup != "" {
		fmt.Fprintf(b, "# Certificate: %s, a copy readable by group %s:\n", certs, d.CopyGroup)
		fmt.Fprintf(b, "# the server runs as its own user and cannot read ipcert's private state.\n")
		fmt.Fprintf(b, "# \"--write\" makes the copy; every renewal refreshes it, then reloads.\n")
	} else if d.layout.Service.Pickup == catalog.PickupReload {
		fmt.Fprintf(b, "# Certificate: %s;\n# renewals swap \"current\", so a reload is all a new certificate needs.\n", certs)
	} else {
		fmt.Fprintf(b, "# Certificate: %s;\n# renewals swap \"current\" (what makes the service read it is below).\n", certs)
	}
	fmt.Fprintf(b, "# TLS: Mozilla's intermediate profile, without OCSP stapling (Let's Encrypt\n")
	fmt.Fprintf(b, "# ended OCSP) and without HSTS (browsers ignore it for IP addresses).\n")
	for _, a := range d.addrs {
		if d.nat[a] {
			fmt.Fprintf(b, "# %s is not on a local interface (NAT): it is served on every address of\n", a)
			fmt.Fprintf(b, "# its family as the default server; connections arrive on the private address.\n")
			if d.kind == Caddy {
				fmt.Fprintf(b, "# Caddy picks the certificate by SNI, which clients do not send for an IP:\n")
				fmt.Fprintf(b, "# add \"default_sni %s\" to the global options at the top of the Caddyfile.\n", a)
			}
		}
	}
}

func nginxSnippet(b *strings.Builder, d *snippetData) {
	fmt.Fprintf(b, "\n# default_server: browsers send no SNI (and no host name) to an IP address,\n")
	fmt.Fprintf(b, "# so these servers must be the ones nginx picks on their address:port when\n")
	fmt.Fprintf(b, "# other sites listen there too. Only one default per address:port: nginx -t\n")
	fmt.Fprintf(b, "# names a second one.\n")
	fmt.Fprintf(b, "server {\n")
	done := map[netip.Addr]bool{}
	for _, a := range d.addrs {
		l := d.listenAddr(a)
		if done[l] {
			continue
		}
		done[l] = true
		fmt.Fprintf(b, "    listen %s ssl default_server;\n", hostPort(l, d.HTTPSPort))
	}
	fmt.Fprintf(b, "\n    ssl_certificate     %s;\n", d.fullchain())
	fmt.Fprintf(b, "    ssl_certificate_key %s;\n\n", d.key())
	fmt.Fprintf(b, "    ssl_protocols TLSv1.2 TLSv1.3;\n")
	fmt.Fprintf(b, "    ssl_ecdh_curve %s;\n", mozCurves)
	fmt.Fprintf(b, "    ssl_ciphers %s;\n", mozCiphers)
	fmt.Fprintf(b, "    ssl_prefer_server_ciphers off;\n")
	fmt.Fprintf(b, "    ssl_session_timeout 1d;\n")
	fmt.Fprintf(b, "    ssl_session_cache shared:MozSSL:10m;\n")
	fmt.Fprintf(b, "    ssl_session_tickets off;\n\n")
	fmt.Fprintf(b, "    root %s;\n", d.WebRoot)
	fmt.Fprintf(b, "    location / {\n        try_files $uri $uri/ =404;\n    }\n}\n")
	for _, a := range d.plainAddrs() {
		fmt.Fprintf(b, "\nserver {\n")
		fmt.Fprintf(b, "    listen %s default_server;\n\n", hostPort(d.listenAddr(a), d.HTTPPort))
		fmt.Fprintf(b, "    # http-01 validation answers from the web root (ipcert --webroot).\n")
		fmt.Fprintf(b, "    location ^~ %s {\n", acmePath)
		fmt.Fprintf(b, "        root %s;\n", d.WebRoot)
		fmt.Fprintf(b, "        default_type text/plain;\n")
		fmt.Fprintf(b, "        try_files $uri =404;\n    }\n")
		target := urlHost(a, d.HTTPSPort, 443)
		if d.nat[a] {
			// The wildcard server answers for every NATed address of
			// its family: send each request back to the one it asked.
			target = "$host"
			if d.HTTPSPort != 443 {
				target += ":" + fmt.Sprint(d.HTTPSPort)
			}
		}
		fmt.Fprintf(b, "    location / {\n        return 301 https://%s$request_uri;\n    }\n}\n", target)
	}
}

func apacheSnippet(b *strings.Builder, d *snippetData) {
	// Both families' stock configs already listen on 80 and on 443 (with
	// mod_ssl); another Listen on the same port would fail to bind.
	if d.HTTPSPort != 443 || d.HTTPPort != 80 {
		fmt.Fprintf(b, "\n# Ports other than 80/443 are not in the distribution's Listen lines.\n")
		for _, lp := range []struct {
			port  int
			def   int
			proto string
		}{{d.HTTPSPort, 443, "https"}, {d.HTTPPort, 80, "http"}} {
			switch {
			case lp.port == lp.def:
			case d.anyNAT():
				// A wildcard Listen beside a specific one on the same
				// port would fail to bind.
				fmt.Fprintf(b, "Listen %d %s\n", lp.port, lp.proto)
			default:
				for _, a := range d.addrs {
					fmt.Fprintf(b, "Listen %s %s\n", hostPort(a, lp.port), lp.proto)
				}
			}
		}
	}
	fmt.Fprintf(b, "# Needs mod_ssl and mod_alias (Debian: a2enmod ssl, which --write runs itself;\n# RHEL: dnf install mod_ssl).\n")
	var vh []string
	for _, a := range d.addrs {
		v := apacheVhostAddr(d, a, d.HTTPSPort)
		if !slices.Contains(vh, v) {
			vh = append(vh, v)
		}
	}
	if d.anyNAT() {
		fmt.Fprintf(b, "# Clients send no SNI for an IP, so on *:%d this must be the first\n", d.HTTPSPort)
		fmt.Fprintf(b, "# VirtualHost Apache reads (the default); check with: apache2ctl -S\n")
	}
	fmt.Fprintf(b, "\n<VirtualHost %s>\n", strings.Join(vh, " "))
	apacheServerName(b, d, d.addrs[0])
	fmt.Fprintf(b, "    DocumentRoot \"%s\"\n", d.WebRoot)
	apacheGrant(b, d.WebRoot)
	fmt.Fprintf(b, "\n    SSLEngine on\n")
	fmt.Fprintf(b, "    SSLCertificateFile \"%s\"\n", d.fullchain())
	fmt.Fprintf(b, "    SSLCertificateKeyFile \"%s\"\n\n", d.key())
	fmt.Fprintf(b, "    SSLProtocol -all +TLSv1.2 +TLSv1.3\n")
	fmt.Fprintf(b, "    SSLOpenSSLConfCmd Curves %s\n", mozCurves)
	fmt.Fprintf(b, "    SSLCipherSuite %s\n", mozCiphers)
	fmt.Fprintf(b, "    SSLHonorCipherOrder off\n")
	fmt.Fprintf(b, "    SSLSessionTickets off\n")
	fmt.Fprintf(b, "</VirtualHost>\n")
	for _, a := range d.plainAddrs() {
		fmt.Fprintf(b, "\n<VirtualHost %s>\n", apacheVhostAddr(d, a, d.HTTPPort))
		apacheServerName(b, d, a)
		fmt.Fprintf(b, "    DocumentRoot \"%s\"\n", d.WebRoot)
		apacheGrant(b, d.WebRoot)
		fmt.Fprintf(b, "    # http-01 validation answers from the web root (ipcert --webroot);\n")
		fmt.Fprintf(b, "    # everything else is redirected, path and query kept.\n")
		// mod_alias's prefix Redirect, inside <If>: it is on by default
		// (mod_rewrite is not, on Debian), and unlike RedirectMatch or an
		// expression target it does not escape the target, so "[::1]"
		// stays "[::1]" (a regex redirect sends "%5b::1%5d"). In <If> it
		// runs after the access check, hence the grant above.
		fmt.Fprintf(b, "    <If \"%%{REQUEST_URI} !~ m#^/\\.well-known/acme-challenge/#\">\n")
		fmt.Fprintf(b, "        Redirect 301 / \"https://%s/\"\n", urlHost(a, d.HTTPSPort, 443))
		fmt.Fprintf(b, "    </If>\n")
		fmt.Fprintf(b, "</VirtualHost>\n")
	}
}

// apacheVhostAddr is a's address in a VirtualHost line: "*" for an
// address behind NAT (Apache matches vhosts on the local address, which is
// the private one).
func apacheVhostAddr(d *snippetData, a netip.Addr, port int) string {
	if d.nat[a] {
		return "*:" + fmt.Sprint(port)
	}
	return hostPort(a, port)
}

// apacheServerName names the vhost. Apache refuses "[::1]" as a
// ServerName (the brackets read as a glob), and a vhost without one makes
// it look the address up in DNS at every start and config test (AH00549
// "Failed to resolve server name"). An IPv6 vhost gets a name that never
// resolves (.invalid, RFC 6761): IP-based vhosts match on the address, and
// self-referential URLs follow the client's Host (UseCanonicalName Off).
func apacheServerName(b *strings.Builder, d *snippetData, a netip.Addr) {
	if a.Is4() {
		fmt.Fprintf(b, "    ServerName %s\n", a)
		return
	}
	fmt.Fprintf(b, "    # Apache takes no IPv6 literal here; this name only stops a DNS lookup.\n")
	fmt.Fprintf(b, "    ServerName ipcert-%s.invalid\n", d.Name)
}

// apacheGrant lets Apache serve the web root: Debian's and RHEL's main
// configs deny everything outside /var/www (AH01630 otherwise, e.g. for
// --webroot /srv/www).
func apacheGrant(b *strings.Builder, root string) {
	fmt.Fprintf(b, "    <Directory \"%s\">\n        Require all granted\n    </Directory>\n", root)
}

func haproxySnippet(b *strings.Builder, d *snippetData) {
	backend := "ipcert_" + d.Name + "_web"
	fmt.Fprintf(b, "# HAProxy passes requests on to %s (backend %s).\n", d.upstream, backend)
	fmt.Fprintf(b, "# Browsers send no SNI to an IP address, and HAProxy does not match IP SANs\n")
	fmt.Fprintf(b, "# against SNI anyway: the first crt on a bind line is what they get. Keep\n")
	fmt.Fprintf(b, "# ipcert's first; add other sites' certificates after it (crt FILE), and\n")
	fmt.Fprintf(b, "# never strict-sni, which refuses every handshake without SNI.\n")
	fmt.Fprintf(b, "\nfrontend ipcert_%s_https\n", d.Name)
	fmt.Fprintf(b, "    mode http\n")
	fmt.Fprintf(b, "    timeout client 30s\n")
	for _, a := range d.plainAddrs() {
		fmt.Fprintf(b, "    bind %s ssl crt %s ssl-min-ver TLSv1.2 ciphers %s ciphersuites %s curves %s prefer-client-ciphers no-tls-tickets%s\n",
			hostPort(d.listenAddr(a), d.HTTPSPort), d.combined(), mozCiphers, mozSuites, mozCurves, haproxyV6only(d, a))
	}
	fmt.Fprintf(b, "    default_backend %s\n", backend)
	for i, a := range d.plainAddrs() {
		fmt.Fprintf(b, "\nfrontend ipcert_%s_http%d\n", d.Name, i+1)
		fmt.Fprintf(b, "    mode http\n")
		fmt.Fprintf(b, "    timeout client 30s\n")
		fmt.Fprintf(b, "    bind %s%s\n", hostPort(d.listenAddr(a), d.HTTPPort), haproxyV6only(d, a))
		fmt.Fprintf(b, "    # http-01 validation goes through to the web server.\n")
		fmt.Fprintf(b, "    acl acme_challenge path_beg %s\n", acmePath)
		fmt.Fprintf(b, "    http-request redirect prefix https://%s code 301 unless acme_challenge\n", urlHost(a, d.HTTPSPort, 443))
		fmt.Fprintf(b, "    default_backend %s\n", backend)
	}
	fmt.Fprintf(b, "\nbackend %s\n", backend)
	fmt.Fprintf(b, "    mode http\n")
	fmt.Fprintf(b, "    timeout connect 5s\n")
	fmt.Fprintf(b, "    timeout server 30s\n")
	fmt.Fprintf(b, "    server web %s\n", d.upstream)
}

// haproxyV6only keeps a [::] bind to IPv6, beside a 0.0.0.0 one.
func haproxyV6only(d *snippetData, a netip.Addr) string {
	if d.nat[a] && a.Is6() {
		return " v6only"
	}
	return ""
}

func caddySnippet(b *strings.Builder, d *snippetData) {
	var sites, binds []string
	for _, a := range d.addrs {
		sites = append(sites, "https://"+hostPort(a, d.HTTPSPort))
		if !d.nat[a] {
			binds = append(binds, urlHost(a, 0, 0))
		}
	}
	fmt.Fprintf(b, "\n%s {\n", strings.Join(sites, ", "))
	if len(binds) > 0 && !d.anyNAT() {
		fmt.Fprintf(b, "\tbind %s\n", strings.Join(binds, " "))
	}
	fmt.Fprintf(b, "\ttls %s %s {\n", d.fullchain(), d.key())
	fmt.Fprintf(b, "\t\tprotocols tls1.2 tls1.3\n")
	fmt.Fprintf(b, "\t\tciphers %s\n", mozCiphersGo)
	fmt.Fprintf(b, "\t\tcurves x25519 secp256r1 secp384r1\n")
	fmt.Fprintf(b, "\t}\n")
	fmt.Fprintf(b, "\troot * %s\n", d.WebRoot)
	fmt.Fprintf(b, "\tfile_server\n}\n")
	for _, a := range d.addrs {
		fmt.Fprintf(b, "\nhttp://%s {\n", hostPort(a, d.HTTPPort))
		if !d.nat[a] {
			fmt.Fprintf(b, "\tbind %s\n", urlHost(a, 0, 0))
		}
		fmt.Fprintf(b, "\t# http-01 validation answers from the web root (ipcert --webroot).\n")
		fmt.Fprintf(b, "\thandle %s* {\n", acmePath)
		fmt.Fprintf(b, "\t\troot * %s\n", d.WebRoot)
		fmt.Fprintf(b, "\t\tfile_server\n\t}\n")
		fmt.Fprintf(b, "\thandle {\n\t\tredir https://%s{uri} permanent\n\t}\n}\n", urlHost(a, d.HTTPSPort, 443))
	}
}
