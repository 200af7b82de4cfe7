package diagnosis

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/preflight"
)

// Evidence is what is known locally about a failure, beyond the error. All
// fields are optional; the more are set, the sharper the cause. Diagnose
// runs no checks itself: Attempt.Evidence, AddPreflight and Gather fill
// the plain fields here.
type Evidence struct {
	// Challenge is the challenge used (http-01 or tls-alpn-01).
	Challenge spec.Challenge
	// WebRoot is set when http-01 was answered by the user's web server:
	// our responder then sees no requests, and their absence means nothing.
	WebRoot string
	// HTTPPort and TLSPort are where the CA's validator connects: 80 and
	// 443 for Let's Encrypt (docs/letsencrypt.md), other ports for the local CA.
	HTTPPort, TLSPort int
	// Seen replaces the *Error's own list of validator requests when set
	// (doctor rebuilds it from renewal.json). SeenKnown says the list is
	// meaningful even when empty.
	Seen      []acmeflow.ValidatorRequest
	SeenKnown bool
	// SeenDropped and SeenRefused are what the responder counted but did
	// not keep (acmeflow.Error).
	SeenDropped, SeenRefused int
	// CA is the user's choice: staging, production, local, or a URL.
	CA spec.CAChoice
	// CARoot is the PEM root file trusted for a URL CA's HTTPS (--ca-root),
	// for the commands of the fix.
	CARoot string
	// Responder is where ipcert's own responder listened for the
	// challenge (--http-listen, --tls-listen: ":80" when unset). For an
	// own ACME CA that validates on the standard ports (RFC 8555), a
	// responder on another port explains why no request reached it.
	Responder string
	// Identifiers are all the addresses of the order (the failure names
	// one), and StateDir the state directory (empty: the default): the
	// commands of a fix are complete with them.
	Identifiers []string
	StateDir    string
	// From the preflight checks.
	NAT       string   // direct, cloud-1to1, home-nat, cgnat, double-nat, nat, unknown
	Cloud     string   // aws, gcp, azure, oracle...
	Firewall  []string // host firewall rules that block a validation port, one per line
	PortOwner string   // who holds the validation port: "nginx (pid 812) on 0.0.0.0:80"
	// FirewallTools are the host firewalls found active (nftables,
	// iptables, ufw, firewalld).
	FirewallTools []string
	// WebServer is the running web server (nginx, apache, ...), WebServerRoot
	// its default server's real document root, WebServerRedirects that its
	// default server redirects every request (to https).
	WebServer          string
	WebServerRoot      string
	WebServerRedirects bool
	// LocalAddrs are the addresses on this machine's interfaces (known when
	// LocalAddrsKnown); PublicNow the public addresses found now.
	LocalAddrs      []netip.Addr
	LocalAddrsKnown bool
	PublicNow       []netip.Addr
	// Issued says the address was certified before (a renewal, or doctor
	// of a managed certificate): a public address that differs now means
	// the address moved, not a mistyped one.
	Issued bool
	// Probe is what a local connection to the validation port found.
	Probe *Probe
	// Now is the clock for turning "retry after <time>" into a wait.
	Now time.Time
}

// Attempt is what the caller knows of the attempt that failed. It is the
// one input of the evidence builder: issue, renew, the wizard and doctor
// each fill an Attempt (AttemptOf, RenewalAttempt) and call Evidence, so
// the same attempt gets the same evidence, and the diagnosis kept in
// renewal.json is the one that was shown.
type Attempt struct {
	// The attempt's settings, as issue's flags, the wizard or renewal.json
	// gave them: the challenge (empty: inferred from the error), the web
	// root, the CA as chosen and its --ca-root, the responders' addresses,
	// and the addresses that complete the commands of a fix.
	spec.Issuance
	// Local is the local test CA, which validates on the responder's own
	// ports (HTTPListen, TLSListen) rather than on 80 and 443.
	Local bool
	// StateDir completes the commands of a fix.
	StateDir string
	// Issued: the addresses were certified before (renewal.json).
	Issued bool
}

// AttemptOf is the attempt of an engine request made for the CA ca (nil
// when the CA could not even be opened; choice names it then).
func AttemptOf(req *acmeflow.Request, ca *cachoice.CA, choice spec.CAChoice) Attempt {
	a := Attempt{Issuance: spec.Issuance{Challenge: req.Challenge, WebRoot: req.WebRoot, CA: choice, HTTPListen: req.HTTPListen, TLSListen: req.TLSListen, Identifiers: acmeflow.AddrStrings(req.Identifiers)}}
	if ca != nil {
		a.CA, a.Local, a.CARoot = ca.Choice, ca.Local, ca.RootFile
		// The local CA validates on the responder's ports, which the CA
		// value carries (cachoice.CA.Apply copies them into the request).
		if ca.Local || a.HTTPListen == "" {
			a.HTTPListen = ca.HTTPListen
		}
		if ca.Local || a.TLSListen == "" {
			a.TLSListen = ca.TLSListen
		}
	}
	return a
}

// RenewalAttempt is what a certificate's renewal.json tells about its
// attempts: the challenge, the web root, the CA and the responder's
// addresses.
func RenewalAttempt(r *store.Renewal) Attempt {
	return Attempt{Issuance: r.Issuance, Local: r.CA == cachoice.Local, Issued: true}
}

// Evidence is the attempt's evidence: the challenge, the web root and the
// validation ports (80 and 443 for Let's Encrypt, docs/letsencrypt.md; the
// responder's own for the local test CA).
func (a Attempt) Evidence(now time.Time) Evidence {
	ev := Evidence{Challenge: a.Challenge, WebRoot: a.WebRoot, HTTPPort: 80, TLSPort: 443, CA: a.CA, CARoot: a.CARoot, Now: now,
		Identifiers: a.Identifiers, StateDir: a.StateDir, Issued: a.Issued}
	if a.WebRoot == "" {
		ev.Responder = a.HTTPListen
		if a.Challenge == acmeflow.ChallengeTLSALPN01 {
			ev.Responder = a.TLSListen
		}
	}
	if a.Local {
		ev.HTTPPort, ev.TLSPort = acmeflow.PortOf(a.HTTPListen), acmeflow.PortOf(a.TLSListen)
		if a.WebRoot != "" {
			// The local CA knocks on the web server's port (--webroot-port),
			// unknown here; Diagnose reads it from the CA's URL.
			ev.HTTPPort = 0
		}
	}
	return ev
}

// AddPreflight copies the preflight findings that decide between causes
// into the evidence: the NAT kind, the host firewall rules that block the
// validation port, and who holds the port.
func (ev *Evidence) AddPreflight(rep preflight.Report) {
	port := ev.HTTPPort
	if ev.Challenge == acmeflow.ChallengeTLSALPN01 {
		port = ev.TLSPort
	}
	if rep.NAT.Kind != "" {
		ev.NAT, ev.Cloud = string(rep.NAT.Kind), rep.NAT.Cloud
	}
	ev.FirewallTools = rep.Firewall.Tools
	for _, v := range rep.Firewall.Verdict {
		if v.Port == port && !v.Allowed {
			ev.Firewall = append(ev.Firewall, fmt.Sprintf("%s %s port %d: %s", v.Tool, v.Family, v.Port, v.Rule))
		}
	}
	for _, w := range rep.WebServers {
		if w.Running && ev.WebServer == "" {
			ev.WebServer, ev.WebServerRoot, ev.WebServerRedirects = w.Name, w.WebRoot, w.Redirects
		}
	}
	if len(rep.Interfaces) > 0 {
		ev.LocalAddrsKnown = true
		ev.LocalAddrs = nil
		for _, i := range rep.Interfaces {
			ev.LocalAddrs = append(ev.LocalAddrs, i.Addr)
		}
	}
	ev.PublicNow = rep.Public.Addrs()
	for _, p := range rep.Ports {
		if p.Port == port && !p.Free {
			who := p.Process
			if who == "" {
				who = "a process"
			}
			ev.PortOwner = fmt.Sprintf("%s (pid %d) on %s", who, p.PID, p.Local)
			break
		}
	}
}

// Gather adds, right after a failure, the local facts that decide between
// causes: the host firewall's verdict and the owner of the validation port
// (preflight's local checks only, no network), and, for a challenge
// failure, a probe of the port (our responder is closed by now, so the
// probe meets whatever else holds it: that tells a refused port, plain
// HTTP and a TLS proxy apart). Other failures get nothing.
func (ev *Evidence) Gather(ctx context.Context, err error) {
	ev.GatherIn(ctx, nil, err)
}

// GatherIn is Gather with, for Let's Encrypt (staging or production), the
// checks that ask the network too, in env: the NAT verdict and the public
// addresses now (a few seconds at most), so that the failure is explained
// with the router, the carrier's NAT or a moved address as doctor would.
// A nil env is Gather's: local checks only.
func (ev *Evidence) GatherIn(ctx context.Context, env *preflight.Env, err error) {
	var ae *acmeflow.Error
	if !errors.As(err, &ae) || !(ae.Step == acmeflow.StepChallenge && ae.Problem != nil || ae.Step == acmeflow.StepResponder) {
		return
	}
	port := ev.HTTPPort
	if ev.Challenge == acmeflow.ChallengeTLSALPN01 {
		port = ev.TLSPort
	}
	if port == 0 {
		return
	}
	var addrs []netip.Addr
	a, perr := netip.ParseAddr(ae.Identifier)
	if perr == nil {
		addrs = append(addrs, a)
	}
	online := env != nil && (ev.CA == cachoice.Staging || ev.CA == cachoice.Production)
	penv, budget := preflight.DefaultEnv(), 3*time.Second
	if online {
		penv, budget = *env, 6*time.Second
	}
	pctx, cancel := context.WithTimeout(ctx, budget)
	rep := PreflightIn(pctx, penv, addrs, ev.CA, ev.HTTPPort, ev.TLSPort, !online)
	cancel()
	ev.AddPreflight(rep)
	if ev.Probe == nil && perr == nil && ae.Step == acmeflow.StepChallenge {
		qctx, cancel := context.WithTimeout(ctx, 3*time.Second)
		p := ProbeValidationPort(qctx, a, port, ev.Challenge)
		cancel()
		ev.Probe = &p
	}
}

// Preflight runs the preflight checks that bear on validation for the
// addresses and the CA choice ca: the one place diagnosis (doctor, and
// Gather) calls preflight. For the local test CA and an own ACME CA the
// address is left to that CA (not Let's Encrypt's policy); for an own CA
// the NAT check, which asks the internet for this machine's public
// address, does not run: such a CA validates from its own network (an
// internal address has no public one).
func Preflight(ctx context.Context, addrs []netip.Addr, ca spec.CAChoice, httpPort, tlsPort int, offline bool) preflight.Report {
	return PreflightIn(ctx, preflight.DefaultEnv(), addrs, ca, httpPort, tlsPort, offline)
}

// PreflightIn is Preflight in env (doctor's: the public-address sources
// as IPCERT_ECHO4 and the like set them).
func PreflightIn(ctx context.Context, env preflight.Env, addrs []netip.Addr, ca spec.CAChoice, httpPort, tlsPort int, offline bool) preflight.Report {
	local, own := cachoice.IsLocal(ca), cachoice.IsOwn(ca)
	only := []string{preflight.IDInterfaces, preflight.IDPorts, preflight.IDPrivilege, preflight.IDWebServers, preflight.IDFirewall, preflight.IDAddress}
	if !offline && !own {
		// The public addresses now too: an address that moved, or one
		// that never was this machine's, shows against them.
		only = append(only, preflight.IDNAT, preflight.IDPublic4, preflight.IDPublic6)
	}
	opts := preflight.Options{IPs: addrs, LocalCA: local, OwnCA: own, HTTPPort: httpPort, TLSPort: tlsPort, Only: only}
	return preflight.Run(ctx, env, opts, nil)
}

// withEvidence is a failure together with the evidence its caller
// diagnosed it with (WithEvidence).
type withEvidence struct {
	err error
	ev  Evidence
}

func (w *withEvidence) Error() string { return w.err.Error() }
func (w *withEvidence) Unwrap() error { return w.err }

// WithEvidence attaches ev to err, for a recorder that receives only the
// error (wizard.Deps.RecordFailure): EvidenceOf gives ev back, so the
// diagnosis stored is the one the caller showed. The error still reads,
// Is and As as err.
func WithEvidence(err error, ev Evidence) error {
	if err == nil {
		return nil
	}
	return &withEvidence{err: err, ev: ev}
}

// EvidenceOf is the evidence attached to err by WithEvidence, or else
// fallback.
func EvidenceOf(err error, fallback Evidence) Evidence {
	var w *withEvidence
	if errors.As(err, &w) {
		return w.ev
	}
	return fallback
}

// inferChallenge fills what the caller did not know from the error itself:
// the challenge from the validator log or the CA's words, and the
// validation port from the URL the validator fetched.
func (g *diag) inferChallenge() {
	t := g.text()
	if g.ev.Challenge == "" {
		switch {
		case len(g.ev.Seen) > 0:
			g.ev.Challenge = g.ev.Seen[0].Challenge
		// Both CAs name the challenge in tls-alpn-01 failures ("for the
		// tls-alpn-01 challenge", "ALPN protocol \"acme-tls/1\"").
		case contains(t, "tls-alpn-01", "acme-tls/1"):
			g.ev.Challenge = acmeflow.ChallengeTLSALPN01
		default:
			g.ev.Challenge = acmeflow.ChallengeHTTP01
		}
	}
	if g.ev.Challenge == acmeflow.ChallengeHTTP01 && g.ev.HTTPPort == 0 && !cachoice.IsLocal(g.ev.CA) {
		return
	}
	if g.ev.Challenge == acmeflow.ChallengeHTTP01 && g.ev.HTTPPort == 0 {
		// The local CA with --webroot: the first URL the validator
		// fetched names the port (a redirect cannot be told apart then).
		if u, err := url.Parse(strings.TrimRight(urlRe.FindString(t), ":.,)")); err == nil && u.Port() != "" {
			g.ev.HTTPPort, _ = strconv.Atoi(u.Port())
		}
	}
}

// addSeenEvidence states what our responder saw: none at all says the
// packets never arrived; the primary but not the secondaries says a filter
// by origin.
func (g *diag) addSeenEvidence() {
	if !g.ev.SeenKnown || g.d.Step != acmeflow.StepChallenge {
		return
	}
	if g.ev.WebRoot != "" {
		g.evidence("http-01 was answered by your web server from %s: ipcert cannot see the validator's requests", g.ev.WebRoot)
		return
	}
	if len(g.ev.Seen) == 0 {
		if !slices.ContainsFunc(g.d.Evidence, func(s string) bool { return strings.HasPrefix(s, "no validator request") }) {
			g.evidence("no validator request reached our responder")
		}
		g.addSeenCounts()
		return
	}
	for _, v := range g.ev.Seen {
		if v.Time.IsZero() {
			g.evidence("validator request from %s", v.Remote)
			continue
		}
		g.evidence("%s at %s", v.String(), v.Time.UTC().Format("15:04:05"))
	}
	g.addSeenCounts()
}

// addSeenCounts says how much the responder counted past its record.
func (g *diag) addSeenCounts() {
	if g.ev.SeenDropped+g.ev.SeenRefused > 0 {
		g.evidence("%s", acmeflow.SeenCountsText(g.ev.SeenDropped, g.ev.SeenRefused))
	}
}

func (g *diag) addPreflightEvidence() {
	for _, f := range g.ev.Firewall {
		g.evidence("firewall: %s", f)
	}
	if g.ev.NAT != "" && g.ev.NAT != "direct" && g.ev.NAT != "unknown" {
		nat := "NAT: " + g.ev.NAT
		if g.ev.Cloud != "" {
			nat += " (" + g.ev.Cloud + ")"
		}
		g.evidence("%s", nat)
	}
	if g.ev.PortOwner != "" && g.d.Code != DiagPortBusy {
		g.evidence("port owner: %s", g.ev.PortOwner)
	}
	if p := g.ev.Probe; p != nil {
		g.evidence("local probe of %s: %s", p.Target, p.Detail)
	}
}
