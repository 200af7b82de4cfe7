package diagnosis

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/acme/api"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/netlimit"
)

// caTransport: the CA itself could not be reached or talked to.
func (g *diag) caTransport() bool {
	err := g.err
	var dnsErr *net.DNSError
	var certErr *tls.CertificateVerificationError
	var unknownAuth x509.UnknownAuthorityError
	var hostErr x509.HostnameError
	var recErr tls.RecordHeaderError
	t := strings.ToLower(err.Error())
	ca := "the CA"
	if u := caURL(t); u != "" {
		ca = u
	}
	switch {
	case netlimit.IsTooLarge(err):
		// internal/netlimit's cap on every body from the CA (issue 22).
		g.set(DiagCATooLarge, "The CA sent more than ipcert reads", g.errText()+". A directory, order or certificate chain is a few KB; this is no ACME CA, or a proxy or captive portal answers in its place.",
			"Check the --ca URL (for Let's Encrypt: --ca staging or --ca production): it must name an ACME directory, a small JSON document.", nil, false)
	case errors.As(err, &dnsErr):
		g.set(DiagCADNS, "Cannot resolve the CA's name", fmt.Sprintf("DNS lookup of %s failed (%v): no resolver, no network, or a resolver that blocks it.", dnsErr.Name, dnsErr.Err),
			"Check /etc/resolv.conf and the network; try: getent hosts "+dnsErr.Name, cmd("getent", "hosts", dnsErr.Name), true)
		g.d.Retry = "when DNS works again"
	case errors.Is(err, syscall.ECONNREFUSED):
		fix := "Check the --ca URL; for Let's Encrypt use --ca staging or --ca production."
		if g.own() {
			fix = "Check that your CA runs and listens at " + ca + " (the --ca URL), and that no firewall between rejects it."
		}
		g.set(DiagCARefused, "The CA refused the connection", "Nothing listens at "+ca+": a wrong --ca URL, a local test CA that is not running, or an outbound proxy/firewall that rejects it.",
			fix, nil, true)
		g.d.Retry = "after checking the URL; at once if the CA was merely restarting"
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &recErr),
		// Go's crypto/x509, crypto/tls and net/http wording towards the CA
		// (the CA's own words come as problem documents, never here).
		contains(t, "x509:", "tls: ", "server gave http response to https client", "https is required"):
		g.set(DiagCATLS, "Cannot talk TLS to the CA", "The HTTPS connection to "+ca+" failed: "+g.errText()+". A TLS-intercepting proxy, a missing CA root (custom CA: --ca-root), a wrong clock, or a plain-HTTP URL.",
			"Check the system time (timedatectl), the system roots (ca-certificates), any HTTPS proxy; for a private ACME CA give its root with --ca-root.", cmd("timedatectl"), false)
	case isTimeout(err):
		c := cmd("curl", "-sI", acmeflow.LEStaging)
		if g.ev.CA == "production" {
			c = cmd("curl", "-sI", acmeflow.LEProduction)
		}
		if g.own() {
			c = cmd("curl", "-sI", string(g.ev.CA))
			if g.ev.CARoot != "" {
				c = cmd("curl", "-sI", "--cacert", g.ev.CARoot, string(g.ev.CA))
			}
		}
		fix := "Check outbound HTTPS to the CA (" + c.String() + ") and https://letsencrypt.status.io."
		if g.own() {
			fix = "Check that your CA runs and that this machine reaches it: " + c.String()
		}
		g.set(DiagCATimeout, "The CA did not answer in time", "The request to "+ca+" timed out: no route or a firewall dropping HTTPS to it, or the CA is overloaded.",
			fix, c, true)
		g.d.Retry = "in a few minutes"
	// Go's net wording when the errno was lost in a wrapped text.
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH), contains(t, "network is unreachable", "no route to host", "connection reset"):
		g.set(DiagCAUnreachable, "The CA is unreachable", "No route to "+ca+": this machine has no working outbound network for that family.",
			"Check the default route and outbound firewall; ipcert preflight tests outbound reachability.", g.preflightCmd(), true)
		g.d.Retry = "when the network is back"
	default:
		return false
	}
	return true
}

func caURL(t string) string {
	if m := urlRe.FindString(t); m != "" {
		if u, err := url.Parse(m); err == nil {
			return u.Host
		}
	}
	return ""
}

// clientTimeout tells an HTTP client's own timeout towards the CA from the
// run's deadline: the engine reports the latter as the context's error with
// the request's error only as text (Engine.wrapCtx), so a *url.Error in the
// chain is the client's.
func clientTimeout(err error, t string) bool {
	var ue *url.Error
	return errors.As(err, &ue) && ue.Timeout() || strings.Contains(t, "client.timeout exceeded")
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, os.ErrDeadlineExceeded)
}

// problem handles every failure that carries an ACME problem document.
func (g *diag) problem(t string) bool {
	switch g.probType() {
	case acmeflow.ProblemRateLimited:
		g.rateLimited(t)
	case acmeflow.ProblemBadNonce:
		g.set(DiagBadNonce, "The CA kept rejecting our nonces", "Every retry of the request got badNonce: a proxy or load balancer between us and the CA that caches or replays responses, or trouble at the CA.",
			"Retry in a few minutes; if it persists, bypass any HTTP(S) proxy for the CA (NO_PROXY) and check https://letsencrypt.status.io.", nil, true)
		g.d.Retry = "in a few minutes"
	case acmeflow.ProblemServerInternal:
		g.set(DiagServerInternal, "The CA had an internal error", "The CA failed while handling the request ("+g.d.Problem.Detail+"); nothing on this machine caused it.",
			"Retry later and check https://letsencrypt.status.io; a renewal retries on its own with backoff.", nil, true)
		g.d.Retry = "in a few minutes (a renewal backs off: 1 min, 10 min, 100 min, then daily)"
		if ra := g.retryAfterHeader(); ra > 0 {
			g.d.RetryAfter = ra
			g.d.Retry = "not before " + ra.Round(time.Second).String() + " from now (the CA's Retry-After)"
		}
	case acmeflow.ProblemRejectedIdentifier:
		g.rejected(t)
	case acmeflow.ProblemInvalidProfile:
		g.set(DiagInvalidProfile, "The CA does not know the requested profile", "The order named a profile the CA does not offer: "+g.d.Problem.Detail+". IP certificates need \"shortlived\" (docs/letsencrypt.md).",
			"Use Let's Encrypt with the shortlived profile (ipcert always asks for it); a custom --ca must offer shortlived.", g.stagingCmd(), false)
	case acmeflow.ProblemBadCSR:
		// Boulder csr/csr.go: "CSR contains IP address in Common Name"
		// (docs/letsencrypt.md).
		if contains(t, "common name") {
			g.set(DiagBadCSRCommonName, "The CSR put the IP address in the Common Name", "Let's Encrypt refuses a CSR with an IP address in the Common Name (boulder csr/csr.go); shortlived certificates have an empty subject.",
				"ipcert always sends an empty subject: this CSR came from elsewhere, or from an old ipcert; upgrade and run again.", cmd("ipcert", "--version"), false)
		} else {
			g.set(DiagBadCSR, "The CA refused the CSR", "The CA said: "+g.d.Problem.Detail+".",
				"Try another key type (--key-type ec256 is the safe choice) and run again.", g.stagingCmd("--key-type", "ec256"), false)
		}
	case acmeflow.ProblemAccountDoesNotExist, acmeflow.ProblemNS + "invalidContact", acmeflow.ProblemNS + "unsupportedContact",
		acmeflow.ProblemNS + "externalAccountRequired", acmeflow.ProblemNS + "userActionRequired":
		g.account()
	case acmeflow.ProblemNS + "unsupportedIdentifier":
		g.set(DiagRejectedProfile, "The CA does not issue for IP addresses", "The CA refused IP identifiers: "+g.d.Problem.Detail+".",
			"Use Let's Encrypt (staging, then production), which issues for IP addresses under the shortlived profile.", g.stagingCmd(), false)
	case acmeflow.ProblemConnection, acmeflow.ProblemUnauthorized, acmeflow.ProblemTLS, acmeflow.ProblemMalformed, acmeflow.ProblemNS + "incorrectResponse", acmeflow.ProblemNS + "dns", acmeflow.ProblemNS + "caa":
		if g.d.Step == acmeflow.StepAccount || g.d.Step == acmeflow.StepOrder && g.probType() == acmeflow.ProblemUnauthorized {
			g.account()
			return true
		}
		if g.probType() == acmeflow.ProblemMalformed && g.d.Step != acmeflow.StepChallenge {
			return false
		}
		g.validation(t)
	default:
		return false
	}
	return true
}

func (g *diag) retryAfterHeader() time.Duration {
	var rl *acme.RateLimitedError
	if errors.As(g.err, &rl) && rl.RetryAfter != "" {
		if d, err := api.ParseRetryAfter(rl.RetryAfter); err == nil {
			return d
		}
	}
	if g.d.Problem != nil && g.d.Problem.RetryAfter > 0 {
		return g.d.Problem.RetryAfter
	}
	return 0
}

// rateLimits maps the anchor of LE's rate-limit documentation, which every
// rateLimited detail links to, to the limit (docs/letsencrypt.md). The
// texts are Boulder's ratelimits/ wording for when the link is missing:
// "too many certificates (5) already issued for this exact set of
// identifiers in the last 168h0m0s", "too many failed authorizations (5)
// for ...", "too many new orders (300) ..."
// (testdata/problems/rateLimited-*.json).
var rateLimits = []struct{ anchor, text, name, advice string }{
	{"#new-certificates-per-exact-set-of-identifiers", "for this exact set of identifiers", "5 certificates per exact set of identifiers per 7 days",
		"Reuse the certificate you already have (ipcert status) instead of issuing again; renewals through ipcert renew send ARI's replaces and are exempt."},
	{"#new-certificates-per-registered-domain", "already issued for \"", "50 certificates per IPv4 address (or IPv6 /64) per 7 days",
		"Stop issuing for this address until the window passes; renewals with ARI's replaces are exempt."},
	{"#new-certificates-per-ip", "", "50 certificates per IPv4 address (or IPv6 /64) per 7 days",
		"Stop issuing for this address until the window passes; renewals with ARI's replaces are exempt."},
	{"#authorization-failures-per-", "too many failed authorizations", "5 failed validations per identifier per account per hour",
		"Fix the validation problem first (ipcert doctor), rehearse on staging, which allows 200 failures an hour, then come back to production."},
	{"#consecutive-authorization-failures", "temporarily prevented", "too many consecutive failed validations: the account is paused for this identifier",
		"Fix validation on staging first, then unpause the account at the URL in the message."},
	{"#new-orders-per-account", "too many new orders", "300 new orders per account per 3 hours",
		"Something is ordering in a loop: stop it (ipcert timer status), fix the failure, and wait."},
	{"#new-registrations-per-ip", "too many new registrations", "10 new accounts per IP address per 3 hours",
		"Keep the state directory between runs so the same account is reused (--state-dir)."},
}

func (g *diag) rateLimited(t string) {
	if g.own() {
		// Let's Encrypt's limits and their names are Let's Encrypt's; an
		// own CA has its own, if any. When to retry is read the same way.
		g.set(DiagRateLimited, "Rate limited by the CA", "Your CA refused the request because of one of its own limits: "+g.errText()+". Retrying earlier only extends the wait.",
			"Wait for the time the CA names (Retry-After), then retry once; its limits are in the CA's configuration.", nil, true)
	} else {
		limit := ""
		advice := "Wait, then retry once; rehearse on staging, whose limits are far higher."
		for _, r := range rateLimits {
			if strings.Contains(t, r.anchor) || r.text != "" && strings.Contains(t, r.text) {
				limit, advice = r.name, r.advice
				break
			}
		}
		if limit == "" {
			limit = "a Let's Encrypt rate limit (see the link in the detail)"
		}
		g.set(DiagRateLimited, "Rate limited: "+limit, "Let's Encrypt refused the request because of "+limit+". Retrying earlier only extends the wait; it never helps.",
			advice, nil, true)
		g.d.RateLimit = limit
	}
	if ra := g.retryAfterHeader(); ra > 0 {
		g.d.RetryAfter = ra
	}
	if m := retryAfterRe.FindStringSubmatch(t); m != nil {
		if at, err := time.Parse("2006-01-02 15:04:05", strings.Replace(m[1], "t", " ", 1)); err == nil {
			g.d.RetryAt = at.UTC()
			if g.d.RetryAfter == 0 {
				g.d.RetryAfter = max(at.Sub(g.ev.Now), 0)
			}
		}
	}
	switch {
	case !g.d.RetryAt.IsZero():
		g.d.Retry = "not before " + g.d.RetryAt.UTC().Format("2006-01-02 15:04:05 UTC")
	case g.d.RetryAfter > 0:
		g.d.Retry = "not before " + g.d.RetryAfter.Round(time.Second).String() + " from now (Retry-After)"
	default:
		g.d.Retry = "not within the hour"
	}
	if g.d.RetryAfter > 0 {
		g.evidence("Retry-After: %s", g.d.RetryAfter.Round(time.Second))
	}
}

func (g *diag) rejected(t string) {
	switch {
	// Boulder ra/ra.go: "Default profile does not permit IP address
	// identifiers" (docs/letsencrypt.md).
	case contains(t, "profile does not permit ip", "does not permit ip address"):
		g.set(DiagRejectedProfile, "The profile does not allow IP addresses", "Let's Encrypt issues for IP addresses only under the shortlived profile (\"Default profile does not permit IP address identifiers\", boulder ra/ra.go).",
			"Order with the shortlived profile; ipcert does so unless the CA lacks it.", g.stagingCmd(), false)
	// Boulder policy/pa.go: `Cannot issue for "2a01:04f8::7": IP address is
	// invalid` (testdata/problems/rejectedIdentifier-noncanonical.json).
	case contains(t, "canonical", "ip address is invalid"):
		g.set(DiagRejectedCanonical, "The address is not written canonically", "ACME wants the RFC 5952 form of an IP address (lower case, shortest, no zone, no leading zeros): "+g.d.Problem.Detail+".",
			"Give the address as ipcert prints it (netip form), e.g. 2001:db8::7 rather than 2001:0db8:0:0::7.", nil, false)
	case g.own():
		g.set(DiagRejectedIdentifier, "The CA refuses this address", "Your CA's policy does not allow this address: "+g.d.Problem.Detail+".",
			"Allow the address in the CA's policy (step-ca: the provisioner's or authority's policy x509 allow ips), or certify an address it allows.", nil, false)
	default:
		g.set(DiagRejectedReserved, "Let's Encrypt refuses this address", "The address is in an IANA special-purpose block (private, loopback, CGNAT 100.64/10, documentation, ...) or otherwise forbidden by policy: "+g.d.Problem.Detail+".",
			"Certify the machine's public address (ipcert preflight finds it); behind CGNAT use IPv6 or get a public IPv4.", g.preflightCmd(), false)
		// Boulder policy/pa.go's blocked-list wording ("... forbidden by
		// policy"); a reserved block reads `IP address is in a reserved
		// address block: [RFC1918]: Private-Use`
		// (testdata/problems/rejectedIdentifier-reserved.json).
		if contains(t, "blocked", "forbidden", "policy") {
			g.d.Code = DiagRejectedIdentifier
		}
	}
}

func (g *diag) account() {
	p := g.d.Problem
	switch p.Type {
	case acmeflow.ProblemNS + "invalidContact", acmeflow.ProblemNS + "unsupportedContact":
		g.set(DiagAccount, "The CA refused the contact e-mail", "The account's contact address was refused: "+p.Detail+".",
			"Give a working address with --email, or none at all (it is optional).", g.stagingCmd("--email", "you@example.org"), false)
	case acmeflow.ProblemNS + "externalAccountRequired":
		g.set(DiagAccount, "The CA needs external account binding", "This CA only registers accounts bound to an existing customer account (EAB); Let's Encrypt never does.",
			ebaFix(g.own()), g.stagingCmd(), false)
	case acmeflow.ProblemNS + "userActionRequired":
		g.set(DiagAccount, "The CA needs you to act", "The CA asks for an action, usually agreeing to new terms of service: "+p.Detail+".",
			"Open the URL in the message (or the terms), then run again with --agree-tos.", g.issueCmd(issueArgs{extra: nil}), false)
	case acmeflow.ProblemAccountDoesNotExist:
		g.set(DiagAccount, "The CA does not know the stored account", "The account was deactivated or belongs to another CA instance.",
			"Run again: ipcert registers a new account when the CA forgets the old one.", nil, true)
	default:
		g.set(DiagAccount, "The CA refused the account", "The CA said: "+p.Detail+". The stored account key may be for another CA, or the account was deactivated.",
			"Move the account folder aside (accounts/<ca-host>/ in the state directory) so ipcert registers a new one, then run again.", nil, false)
	}
}

// jws: the CA could not verify our signed request (RFC 8555 section 6.2),
// or we could not sign it.
func (g *diag) jws(t string) bool {
	pt := g.probType()
	// Boulder wfe "JWS verification error", lego's "signature" errors;
	// the typed ones are badSignatureAlgorithm and badPublicKey.
	if !contains(t, "jws", "signature") && pt != acmeflow.ProblemNS+"badSignatureAlgorithm" && pt != acmeflow.ProblemNS+"badPublicKey" {
		return false
	}
	g.set(DiagJWS, "The CA rejected our signed request", "Every ACME request is signed with the account key (JWS, RFC 8555 section 6.2), and this one was refused or could not be made: "+g.errText()+". Usually a damaged or foreign account key in the state directory, or a proxy that changes the request body.",
		"Bypass any HTTP(S) proxy for the CA (NO_PROXY); if it persists, move the account folder aside (ipcert registers a new account) and run again.", cmd("ls", "-la", g.stateDir()+"/accounts"), false)
	return true
}

func ebaFix(own bool) string {
	if own {
		return "Give the key ID and MAC key of the CA's ACME provisioner: --eab-kid KID --eab-hmac-file FILE (the key in a file only root reads, chmod 600)."
	}
	return "Give the key ID and MAC key your CA gave you: --eab-kid KID --eab-hmac-file FILE (the key in a file only root reads, chmod 600); Let's Encrypt never needs them."
}
