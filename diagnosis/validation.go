package diagnosis

import (
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/internal/spec"
)

// validation explains a failed challenge from the CA's words and, above
// all, from what our responder saw.
func (g *diag) validation(t string) {
	seen := g.ev.Seen
	ours := g.ev.SeenKnown && g.ev.WebRoot == ""
	none := ours && len(seen) == 0
	answered := 0
	for _, v := range seen {
		if v.Answered {
			answered++
		}
	}
	port := g.port()
	// Boulder prefixes a remote perspective's failure with "During
	// secondary validation: " (docs/letsencrypt.md).
	secondary := contains(t, "during secondary validation")
	status := 0
	if m := statusRe.FindStringSubmatch(t); m != nil {
		status, _ = strconv.Atoi(m[1])
	}
	fw := ""
	if len(g.ev.Firewall) > 0 {
		fw = " The host firewall blocks it: " + strings.Join(g.ev.Firewall, "; ") + "."
	}
	natHint := g.natHint(port)
	// reachedUs: some validator request reached our responder, so the
	// packets do come here; unknown with a web root.
	reachedUs := ours && len(seen) > 0

	if elsewhere := g.responderElsewhere(port, none); elsewhere != "" {
		// An own CA validates on the standard ports (RFC 8555 section
		// 8.3: http-01 on 80; RFC 8737: tls-alpn-01 on 443) unless it is
		// set up otherwise; nothing reached the responder on another.
		g.set(DiagConnectRefused, "Nothing answered on the port the CA validates on",
			fmt.Sprintf("Your CA validates %s on port %d of the address (the ACME standard port, unless the CA is set up otherwise), but ipcert's responder listened on %s: none of the CA's requests reached it, so nothing of ipcert's answered where the CA knocked.%s", g.ev.Challenge, port, elsewhere, fw),
			fmt.Sprintf("Let the responder listen where the CA validates (--%s-listen :%d, the default), or set the CA up to validate on port %d (step-ca: --acme-%s-port %d, meant for tests); then run again.", listenFlag(g.ev.Challenge), port, acmeflow.PortOf(elsewhere), listenFlag(g.ev.Challenge), acmeflow.PortOf(elsewhere)),
			cmd("ss", "-ltnp"), false)
		g.evidence("ipcert's responder listened on %s; the CA validates %s on port %d", elsewhere, g.ev.Challenge, port)
		return
	}
	switch {
	case secondary && g.own():
		// An own CA that validates from several perspectives (Boulder,
		// Let's Encrypt's software, says "During secondary validation").
		g.set(DiagSecondary, "Some of the places your CA validates from reach the address, some do not", "Your CA validates from several network perspectives and needs (nearly) all of them: its primary validator reached this machine, but its remote perspectives did not. Part of the internet or network cannot reach the address: a filter by origin (geo-blocking, fail2ban/CrowdSec, a WAF), a firewall that allows only some source ranges, or a route only part of the network has.",
			fmt.Sprintf("Find what filters or routes by origin between the CA's perspectives and this machine, and leave tcp port %d open to all of them while validating.", port), g.doctorCmd(true), false)
		if m := secondaryRe.FindStringSubmatch(g.d.Problem.String()); m != nil {
			g.evidence("the remote perspective saw: %s", m[1])
		}
		if ours {
			g.evidence("our responder answered %d of %d validator requests, from %s", answered, len(seen), remotes(seen))
		}
	case g.own() && ours && answered > 0 && !contains(t, "incorrect validation certificate", "did not match", "cannot negotiate alpn"):
		g.set(DiagSecondary, "The CA's validator was answered, but the CA refused", "Some of your CA's validation requests reached ipcert's responder and were answered, yet the CA failed the challenge: the CA validates from more than one place, or something on the path changed the answer.",
			"Read the CA's log for the validation of this challenge, and make sure every place it validates from reaches the address directly.", g.stagingCmd(), false)
		if ours {
			g.evidence("our responder answered %d of %d validator requests, from %s", answered, len(seen), remotes(seen))
		}
	case secondary || ours && answered > 0 && !contains(t, "incorrect validation certificate", "did not match", "cannot negotiate alpn"):
		// Boulder: "During secondary validation: <the remote
		// perspective's error>" (multi-perspective validation: the
		// primary and the remote perspectives in other regions must all
		// succeed).
		g.set(DiagSecondary, "Some of the internet reaches the address, some does not", "Let's Encrypt validates from several places at once, and all must succeed: the primary validator reached this machine, but one from another region did not. Something filters by origin or by path: geo-blocking (a country or region filter), fail2ban/CrowdSec or a WAF/DDoS filter, a firewall that allows only some source ranges, or a route (often IPv6) that only part of the internet has.",
			fmt.Sprintf("Check the country/region filters, fail2ban/CrowdSec bans, WAF and allow-lists on the path, and that the address is routed from everywhere; leave tcp port %d open to the whole internet, IPv4 and IPv6, while validating. The probe shows which validators reach this machine.", port), g.doctorCmd(true), false)
		if m := secondaryRe.FindStringSubmatch(g.d.Problem.String()); m != nil {
			g.evidence("the remote perspective saw: %s", m[1])
		}
		if ours {
			g.evidence("our responder answered %d of %d validator requests, from %s", answered, len(seen), remotes(seen))
		}
	// Boulder va/va.go detailedError: "Timeout during connect (likely
	// firewall problem)", "Timeout during read (your server may be slow or
	// overloaded)", "Timeout after connect (your server may be slow or
	// overloaded)"; Pebble passes Go's own ("i/o timeout", "Client.Timeout
	// exceeded while awaiting headers", "context deadline exceeded").
	case contains(t, "timeout during connect", "i/o timeout", "timeout during read", "timeout after connect", "client.timeout exceeded", "deadline exceeded", "timed out"):
		// Boulder says whether the connect or the read timed out; Pebble's
		// "awaiting headers" covers both, so only our responder's log can
		// tell that the connection was made.
		if ours && len(seen) > 0 || contains(t, "timeout after connect", "timeout during read") && !none {
			g.set(DiagSlowServer, "The validator connected but got no answer in time", "The connection was made but the answer took too long: an overloaded server, or a proxy in front that accepts and stalls.",
				"Make sure the challenge path is served directly and fast; retry.", g.stagingCmd(), true)
			return
		}
		if !reachedUs && (g.hostFirewall(port) || g.elsewhere(port) || g.natFix(port)) {
			return
		}
		fwNote := ""
		if len(g.ev.FirewallTools) > 0 {
			fwNote = fmt.Sprintf(" This machine's firewall (%s) lets the port through.", strings.Join(g.ev.FirewallTools, ", "))
		}
		g.set(DiagConnectTimeout, "The validator's connection timed out", fmt.Sprintf("Packets to port %d never got an answer: a firewall on the way drops them (the provider's, a cloud security group, an upstream filter).%s%s%s", port, fw, fwNote, natHint),
			fmt.Sprintf("Open tcp port %d to the world (0.0.0.0/0 and ::/0) wherever the path filters (a cloud security group, the provider's firewall); the probe tells whether the validators get through.", port), g.doctorCmd(true), false)
	// Boulder va/va.go: "Connection refused" (ECONNREFUSED); Pebble: Go's
	// "connect: connection refused".
	case contains(t, "connection refused"):
		if g.redirected(t, port) {
			return
		}
		if !reachedUs && (g.hostFirewall(port) || g.elsewhere(port) || g.natFix(port)) {
			return
		}
		if g.ev.WebRoot != "" && g.ev.Probe != nil && g.ev.Probe.Kind == ProbeRefused {
			g.set(DiagConnectRefused, "Nothing accepted the connection", fmt.Sprintf("The validator reached the address, but no web server listens on port %d: ipcert wrote the answer into %s, and nothing serves it.", port, g.ev.WebRoot),
				"Start the web server that serves "+g.ev.WebRoot+" (listening on IPv4 and IPv6), or let ipcert's own responder answer without --webroot.", g.issueCmd(issueArgs{noWebroot: true}), false)
			return
		}
		g.set(DiagConnectRefused, "Nothing accepted the connection", fmt.Sprintf("The validator reached the address but nothing listens on port %d there (a stopped web server, a responder bound to 127.0.0.1 or to one family only), or a firewall answers with a reject.%s", port, fw),
			fmt.Sprintf("Listen on 0.0.0.0:%d and [::]:%d (ipcert's own responder does), or with --webroot make sure the web server runs and listens on both families.", port, port), cmd("ss", "-ltnp"), false)
	// Boulder va/va.go: "Connection reset by peer" (ECONNRESET).
	case contains(t, "connection reset"):
		g.set(DiagConnectReset, "The connection was reset", "Something on the path (a firewall, IPS, or a proxy that does not like the request) reset the validator's connection.",
			fmt.Sprintf("Let tcp port %d through unfiltered while validating; check IPS/WAF logs.", port), g.stagingCmd(), false)
	// Boulder va/va.go: "Network unreachable" (ENETUNREACH); Go's "no route
	// to host" (EHOSTUNREACH) from Pebble.
	case contains(t, "network unreachable", "network is unreachable", "no route to host", "host unreachable", "host is unreachable"):
		if !reachedUs && g.elsewhere(port) {
			return
		}
		g.unreachable(natHint)
	// Boulder va/http.go: "Too many redirects" (more than 10, docs/letsencrypt.md);
	// Pebble lets Go's client say "stopped after 10 redirects".
	case contains(t, "too many redirects", "stopped after 10 redirects", "redirect loop"):
		g.set(DiagTooManyRedirects, "The challenge URL redirects in a loop", "The web server redirects /.well-known/acme-challenge/ again and again (an HTTP->HTTPS rule combined with an HTTPS->HTTP one, or a proxy loop).",
			"Exempt /.well-known/acme-challenge/ from redirects and serve it from the web root over plain HTTP.", cmd("curl", "-sI", "http://"+g.hostPort(port)+"/.well-known/acme-challenge/test"), false)
	// Boulder va/http.go: "Invalid port in redirect target. Only ports 80
	// and 443 are supported, not N", "Invalid protocol scheme in redirect
	// target. ...", "Invalid host in redirect target ...".
	case contains(t, "invalid port in redirect", "invalid protocol scheme in redirect", "invalid host in redirect"):
		g.redirectPort(t)
	// Boulder va/va.go: "Server only speaks HTTP, not TLS" and "Server is
	// speaking HTTP/2 over HTTP"; Go's crypto/tls (through Pebble): "first
	// record does not look like a TLS handshake".
	case contains(t, "server only speaks http", "speaking http", "first record does not look like a tls handshake"):
		g.httpOnTLS()
	// Boulder va/tlsalpn.go and Pebble: "Cannot negotiate ALPN protocol
	// \"acme-tls/1\" for tls-alpn-01 challenge" (docs/letsencrypt.md).
	case contains(t, "cannot negotiate alpn"):
		g.set(DiagNoALPN, "The TLS server on the port does not speak acme-tls/1", fmt.Sprintf("A TLS server answered on port %d but does not know the acme-tls/1 protocol: a web server or TLS proxy owns the port, not ipcert's responder.", port),
			"Let ipcert own port 443 for the minute of issuance (stop the proxy), or use http-01 on port 80.", g.stagingCmd("--challenge", string(acmeflow.ChallengeHTTP01)), false)
		g.foreign(none)
	// Boulder va/tlsalpn.go and Pebble: "Incorrect validation certificate
	// for tls-alpn-01 challenge. ..." (docs/letsencrypt.md).
	case contains(t, "incorrect validation certificate"):
		g.set(DiagWrongCert, "The wrong certificate answered the tls-alpn-01 challenge", "The server on the port offered acme-tls/1 but presented a certificate that is not the challenge certificate for this address: another ACME client or proxy answers, or it keys on the IP rather than the RFC 8738 reverse name ("+g.reverseName()+").",
			"Stop the other responder on the port so ipcert's answers, or use http-01.", g.stagingCmd("--challenge", string(acmeflow.ChallengeHTTP01)), false)
		g.foreign(none)
	// Pebble va/va.go: "Failed to connect to HOST:PORT for the tls-alpn-01
	// challenge" (every dial or handshake failure).
	case contains(t, "failed to connect to") && g.ev.Challenge == acmeflow.ChallengeTLSALPN01:
		g.tlsConnect(none)
	// Boulder va/http.go: "The key authorization file from the server did
	// not match this challenge. Expected %q (got %q)"; Pebble: "... did not
	// match this challenge %q != %q". Boulder's "Invalid response from URL:
	// N" with no status is a body it could not read.
	case g.ev.Challenge != acmeflow.ChallengeTLSALPN01 && g.redirectedToHTTPS(t):
		g.redirectHTTPS(port)
	case contains(t, "did not match this challenge") || g.probType() == acmeflow.ProblemUnauthorized && contains(t, "invalid response from") && status == 0:
		g.wrongContent(t, none)
	case status != 0:
		g.badStatus(t, status, none)
	// Boulder va/va.go detailedError's fallback: "Error getting validation
	// data".
	case contains(t, "error getting validation data"):
		g.set(DiagConnectReset, "The validator got no usable answer", "The connection broke before a valid HTTP answer arrived: a proxy, an IPS or a half-working server.",
			fmt.Sprintf("Serve the challenge path directly on port %d.", port), g.stagingCmd(), false)
	// smallstep step-ca acme/challenge.go: "The server could not connect
	// to validation target" (any failed dial or fetch of its http-01 or
	// tls-alpn-01 validation).
	case contains(t, "could not connect to validation target"):
		g.set(DiagConnectRefused, "The CA could not connect to the address", fmt.Sprintf("The CA's validator could not reach port %d of the address: nothing listens there, a firewall drops or rejects it, or the CA validates on another port than the responder listens on.%s", port, fw),
			fmt.Sprintf("Make sure tcp port %d of the address is reachable from the CA (ss -ltnp here; the CA's network and firewall), and that the CA validates on that port (step-ca: 80 for http-01, 443 for tls-alpn-01).", port), cmd("ss", "-ltnp"), false)
	default:
		g.set(DiagUnknown, "Validation failed", "The CA could not validate the address: "+g.d.Problem.Detail,
			"Test from the outside with a real order on staging (the command), and check this machine with ipcert preflight.", g.doctorCmd(true), false)
	}
}

// redirected recognises a redirect to another port from the URL in the
// CA's message: Pebble follows any redirect and reports the failure at the
// target, Boulder refuses ports other than 80 and 443 up front.
func (g *diag) redirected(t string, port int) bool {
	if g.ev.HTTPPort == 0 && cachoice.IsLocal(g.ev.CA) {
		// The local CA's validation port is unknown: any port could be it.
		return false
	}
	for _, m := range urlRe.FindAllString(t, -1) {
		u, err := url.Parse(strings.TrimRight(m, ":.,)"))
		if err != nil {
			continue
		}
		p := u.Port()
		if p == "" {
			continue
		}
		n, _ := strconv.Atoi(p)
		if n != port && n != 80 && n != 443 {
			g.redirectPort(t)
			g.evidence("the validator ended up at %s, not on port %d", u.Host, port)
			return true
		}
	}
	return false
}

func (g *diag) redirectPort(t string) {
	g.set(DiagRedirectPort, "The challenge URL redirects to another port", "The web server answers /.well-known/acme-challenge/ with a redirect to a port other than 80 or 443 (often an HTTP->HTTPS rule to a custom port). Let's Encrypt follows redirects only to ports 80 and 443 (docs/letsencrypt.md).",
		"Exempt /.well-known/acme-challenge/ from the redirect (nginx: a location block with root and no return), or use the standalone responder or tls-alpn-01.",
		cmd("curl", "-sI", "http://"+g.hostPort(g.port())+"/.well-known/acme-challenge/test"), false)
}

func (g *diag) httpOnTLS() {
	g.set(DiagHTTPOnTLSPort, "A plain-HTTP server answers on the TLS port", fmt.Sprintf("The tls-alpn-01 validator spoke TLS to port %d and got plain HTTP back: a web server (or a port forward to one) holds the port without TLS.", g.port()),
		"Let ipcert's responder own the port during issuance, fix the port forward, or use http-01.", g.stagingCmd("--challenge", string(acmeflow.ChallengeHTTP01)), false)
	g.foreign(g.ev.SeenKnown && g.ev.WebRoot == "" && len(g.ev.Seen) == 0)
}

// tlsConnect: Pebble reports every tls-alpn-01 dial or handshake failure
// as "Failed to connect"; the local probe of the port, when there is one,
// tells refused, plain HTTP and TLS without acme-tls/1 apart.
func (g *diag) tlsConnect(none bool) {
	if p := g.ev.Probe; p != nil {
		switch p.Kind {
		case ProbeHTTP:
			g.httpOnTLS()
			return
		case ProbeTLSNoALPN:
			g.set(DiagNoALPN, "The TLS server on the port does not speak acme-tls/1", fmt.Sprintf("A TLS server on port %d does not offer acme-tls/1.", g.port()),
				"Let ipcert own port 443 for the minute of issuance, or use http-01.", g.stagingCmd("--challenge", string(acmeflow.ChallengeHTTP01)), false)
			g.foreign(none)
			return
		case ProbeRefused:
			if none && (g.hostFirewall(g.port()) || g.elsewhere(g.port()) || g.natFix(g.port())) {
				return
			}
			g.set(DiagConnectRefused, "Nothing accepted the connection", fmt.Sprintf("Nothing listens on port %d of the address.", g.port()),
				fmt.Sprintf("Let ipcert's responder listen on 0.0.0.0:%d and [::]:%d.", g.port(), g.port()), cmd("ss", "-ltnp"), false)
			return
		case ProbeTimeout:
			if g.hostFirewall(g.port()) || g.elsewhere(g.port()) || g.natFix(g.port()) {
				return
			}
			g.set(DiagConnectTimeout, "The validator's connection timed out", fmt.Sprintf("Packets to port %d get no answer: a firewall on the way drops them.%s", g.port(), g.natHint(g.port())),
				fmt.Sprintf("Open tcp port %d to the world wherever the path filters (a cloud security group, the provider's firewall).", g.port()), g.doctorCmd(true), false)
			return
		}
	}
	cause := fmt.Sprintf("The validator could not complete a TLS handshake on port %d.", g.port())
	if none {
		cause += " None of its connections reached our responder: the packets were dropped or refused, or another server (plain HTTP, a TLS proxy) holds the port or the port forward."
	}
	g.set(DiagTLSConnect, "The tls-alpn-01 validator could not connect", cause,
		fmt.Sprintf("Make sure tcp %d reaches this machine and nothing else answers there; doctor (the command) probes the port.", g.port()), g.doctorCmd(false), false)
}

// foreign adds the decisive local fact: the validator talked to some
// server, and it was not ours.
func (g *diag) foreign(none bool) {
	if none {
		g.evidence("no validator request reached our responder: another server answered on port %d", g.port())
	}
}

func (g *diag) wrongContent(t string, none bool) {
	body := ""
	if m := gotBodyRe.FindStringSubmatch(g.d.Problem.Detail); m != nil {
		body = m[1]
	}
	htmlPage := contains(strings.ToLower(body), "<html", "<!doctype", "router", "login", "<title")
	switch {
	case (none || htmlPage && g.ev.WebRoot == "") && g.elsewhere(g.port()):
		return
	case (none || htmlPage && g.ev.WebRoot == "") && !g.behindNAT() && g.ev.NAT != "":
		g.foreignNoNAT("a page")
	case none || htmlPage && g.ev.WebRoot == "":
		g.set(DiagForeignServer, "Another web server answered the validator", fmt.Sprintf("The validator got a page from some server on port %d, but none of its requests reached our responder: typically the router's own web interface (the port is not forwarded to this machine) or another machine behind the same address.", g.port()),
			fmt.Sprintf("Forward tcp %d on the router to this machine (and turn off the router's remote administration on it), then retry.", g.port()), g.forwardCmd(), false)
		g.evidence("no validator request reached our responder")
	case g.ev.WebRoot != "":
		g.set(DiagWrongContent, "The web server served something else at the challenge URL", "The file ipcert wrote into "+g.ev.WebRoot+" was not what the web server returned for /.well-known/acme-challenge/<token>: the web root is not the one served for this address (another vhost is the default for Host=<ip>), or a rewrite rule (a single-page app, a CMS) answers every path.",
			"Give --webroot the document root of the server that answers for the bare IP (the default server), or add a location for /.well-known/acme-challenge/ to it.", g.preflightCmd(), false)
	default:
		g.set(DiagWrongContent, "The validator got the wrong answer", "The server on the port answered the challenge path with the wrong body: a proxy or another program answers in front of ipcert's responder.",
			"Make sure nothing sits between the validator and ipcert's responder on the port.", g.stagingCmd(), false)
	}
	if body != "" {
		if len(body) > 80 {
			body = body[:80] + "..."
		}
		g.evidence("the validator got: %q", body)
	}
}

func (g *diag) badStatus(t string, status int, none bool) {
	if none && g.ev.WebRoot == "" && g.elsewhere(g.port()) {
		return
	}
	if none && g.ev.WebRoot == "" && !g.behindNAT() && g.ev.NAT != "" {
		g.foreignNoNAT(fmt.Sprintf("HTTP %d", status))
		return
	}
	if none && g.ev.WebRoot == "" {
		g.set(DiagForeignServer, "Another web server answered the validator", fmt.Sprintf("The validator got HTTP %d from a server on port %d, but none of its requests reached our responder: the port leads to another server (the router's admin page, another machine, a proxy).", status, g.port()),
			fmt.Sprintf("Forward tcp %d to this machine, or stop whatever answers there during issuance.", g.port()), g.forwardCmd(), false)
		g.evidence("no validator request reached our responder")
		return
	}
	if status == 404 {
		if g.ev.WebRoot != "" {
			c := g.preflightCmd()
			fix := "Give --webroot the document root of the default server (ipcert preflight shows it), or add a location /.well-known/acme-challenge/ { root " + g.ev.WebRoot + "; } to the default server."
			if r := g.ev.WebServerRoot; r != "" && r != g.ev.WebRoot {
				c = g.issueCmd(issueArgs{webroot: r})
				fix = "Give --webroot the document root of " + g.ev.WebServer + "'s default server, " + r + ", or add a location /.well-known/acme-challenge/ { root " + g.ev.WebRoot + "; } to the default server."
			}
			g.set(DiagWebRootNotServed, "The web root is not what the server serves for this address", "The challenge file was written into "+g.ev.WebRoot+" but the web server answered 404: the default server for Host=<ip> uses another document root, or a location block hides /.well-known/.",
				fix, c, false)
			return
		}
		g.set(DiagNotFound, "The challenge URL answered 404", "The server on the port did not have the challenge file: it is not ipcert's responder, or a web server with no default vhost for Host=<ip>.",
			"Serve /.well-known/acme-challenge/ on the default server for the bare IP, or answer with ipcert's standalone responder.", g.preflightCmd(), false)
		return
	}
	g.set(DiagBadStatus, fmt.Sprintf("The challenge URL answered HTTP %d", status), fmt.Sprintf("The server answered the challenge path with status %d instead of 200: an access rule (403), an authentication wall (401), or an upstream error (5xx).", status),
		"Allow unauthenticated GETs of /.well-known/acme-challenge/ from anywhere.", cmd("curl", "-si", "http://"+g.hostPort(g.port())+"/.well-known/acme-challenge/test"), status >= 500)
}

// seenFor keeps the validator requests that were about ident: in an order
// for several addresses, requests for the others say nothing about this
// one. The Host header (http-01, docs/letsencrypt.md: the IP literal) or the SNI
// (tls-alpn-01, the reverse name) names the identifier; requests that name
// none are kept.
func seenFor(seen []acmeflow.ValidatorRequest, ident string) []acmeflow.ValidatorRequest {
	a, err := netip.ParseAddr(ident)
	if err != nil {
		return seen
	}
	var out []acmeflow.ValidatorRequest
	for _, v := range seen {
		host := v.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		switch {
		case v.SNI != "" && v.SNI != acmeflow.ReverseName(a):
		case v.SNI == "" && host != "" && host != a.String():
		default:
			out = append(out, v)
		}
	}
	if seen != nil && out == nil {
		out = []acmeflow.ValidatorRequest{}
	}
	return out
}

func remotes(seen []acmeflow.ValidatorRequest) string {
	var out []string
	for _, v := range seen {
		h, _, err := net.SplitHostPort(v.Remote)
		if err != nil {
			h = v.Remote
		}
		if !slices.Contains(out, h) {
			out = append(out, h)
		}
	}
	if len(out) == 0 {
		return "nowhere"
	}
	return strings.Join(out, ", ")
}

// responderElsewhere is where ipcert's responder listened, when the CA is
// the user's own, none of its requests reached the responder, and the
// responder was on another port than the one the CA validates on.
func (g *diag) responderElsewhere(port int, none bool) string {
	if !g.own() || !none || g.ev.Responder == "" {
		return ""
	}
	if p := acmeflow.PortOf(g.ev.Responder); p != 0 && p != port {
		return g.ev.Responder
	}
	return ""
}

// listenFlag is the responder flag's stem for a challenge (--http-listen,
// --tls-listen) and step-ca's (--acme-http-port, --acme-tls-port).
func listenFlag(challenge spec.Challenge) string {
	if challenge == acmeflow.ChallengeTLSALPN01 {
		return "tls"
	}
	return "http"
}

// secondaryRe is the remote perspective's own error in Boulder's
// "During secondary validation: ..." detail.
var secondaryRe = regexp.MustCompile(`(?i)during secondary validation: (.*)$`)

// unreachable: the validator had no route to the address (ENETUNREACH,
// EHOSTUNREACH). An IPv6 address that is not routed is the common case:
// a prefix the provider does not route (yet), or one that changed.
func (g *diag) unreachable(natHint string) {
	a, ok := g.identAddr()
	if ok && a.Is6() {
		fix := "Check that the provider routes this address's prefix to the machine (its panel, or a ping from outside); until then certify the IPv4 address."
		c := g.preflightCmd()
		for _, p := range g.ev.PublicNow {
			if p.Is4() {
				c = g.issueCmd(issueArgs{ips: []string{p.String()}})
				fix = fmt.Sprintf("Check that the provider routes this address's prefix to the machine (its panel, or a ping from outside); meanwhile certify the IPv4 address %s.", p)
				break
			}
		}
		g.set(DiagNetUnreachable, "The IPv6 address is not routed", fmt.Sprintf("The validator has no route to %s (\"network is unreachable\"): the IPv6 prefix is not routed on the internet to this machine (a prefix the provider has not routed, a changed delegation, a missing route on the router), though the address may be on an interface here.", a),
			fix, c, false)
		return
	}
	g.set(DiagNetUnreachable, "The address is unreachable from the internet", "The validator has no route to the address: it is not routed on the internet, or an upstream router rejects it."+natHint,
		"Check that the address is really this machine's public address, and routed to it.", g.preflightCmd(), false)
}

// redirectedToHTTPS: the validator of http-01 ended at an https:// URL
// (Boulder and Pebble follow the web server's redirect and name where
// they ended), or the web server's default server redirects everything.
func (g *diag) redirectedToHTTPS(t string) bool {
	if strings.Contains(t, "https://") && contains(t, "/.well-known/acme-challenge/") {
		return true
	}
	if p := g.ev.Probe; p != nil && p.Kind == ProbeHTTPRedirect && strings.Contains(p.Detail, "https://") {
		return true
	}
	return g.ev.WebServerRedirects && g.ev.WebRoot != ""
}

// redirectHTTPS: the whole server redirects to https, and the validator
// followed to a server that does not have the answer.
func (g *diag) redirectHTTPS(port int) {
	root := g.ev.WebRoot
	if root == "" {
		root = g.ev.WebServerRoot
	}
	if root == "" {
		root = "/var/www/html"
	}
	server := "the web server"
	if g.ev.WebServer != "" {
		server = g.ev.WebServer
	}
	snippet := "location ^~ /.well-known/acme-challenge/ { root " + root + "; }"
	if g.ev.WebServer == "apache" {
		snippet = "RewriteCond %{REQUEST_URI} !^/\\.well-known/acme-challenge/ before the RewriteRule that redirects"
	}
	g.set(DiagRedirectHTTPS, "The whole server redirects to https", fmt.Sprintf("%s answers every plain-HTTP request on port %d with a redirect to https, the challenge path too; the validator followed it and the https server did not serve the answer (another root, or another server).", server, port),
		fmt.Sprintf("Exempt /.well-known/acme-challenge/ from the redirect in the port-%d server (nginx: move the redirect into location / { return 301 https://$host$request_uri; } and add %s), reload, and run again.", port, snippet),
		cmd("curl", "-sI", "http://"+g.hostPort(port)+"/.well-known/acme-challenge/test"), false)
}

// foreignNoNAT: another server answered the validator on a machine that
// is not behind a NAT (no router to blame).
func (g *diag) foreignNoNAT(got string) {
	g.set(DiagForeignServer, "Another web server answered the validator", fmt.Sprintf("The validator got %s from some server on port %d, but none of its requests reached our responder, and this machine is not behind a NAT: another program here holds the address's port (ipcert's responder listened on another address), or a proxy or load balancer in front of the address answers.", got, g.port()),
		fmt.Sprintf("Find what answers on port %d of the address (ss -ltnp here; the provider's load balancer or proxy) and let the challenge path reach ipcert's responder.", g.port()), cmd("ss", "-ltnp"), false)
	g.evidence("no validator request reached our responder")
}
