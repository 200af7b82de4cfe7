package diagnosis

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/internal/store"
)

type diag struct {
	d   *Diagnosis
	ev  Evidence
	err error
}

// text is everything the CA and the local error said, lower-cased, for
// matching both Boulder's and Pebble's wording.
func (g *diag) text() string {
	var b strings.Builder
	if p := g.d.Problem; p != nil {
		b.WriteString(p.Detail)
		for _, s := range p.Subproblems {
			b.WriteString(" | " + s.Type + " " + s.Detail)
		}
	}
	b.WriteString(" | " + g.err.Error())
	return strings.ToLower(b.String())
}

func contains(s string, subs ...string) bool {
	for _, x := range subs {
		if strings.Contains(s, strings.ToLower(x)) {
			return true
		}
	}
	return false
}

// probType is the problem type, or the type of the first subproblem when
// the top level is the generic compound one.
func (g *diag) probType() string {
	p := g.d.Problem
	if p == nil {
		return ""
	}
	if p.Type == acmeflow.ProblemNS+"compound" && len(p.Subproblems) > 0 {
		return p.Subproblems[0].Type
	}
	return p.Type
}

func (g *diag) set(code, title, cause, fix string, command Cmd, retryable bool) {
	g.d.Code, g.d.Title, g.d.Cause, g.d.Fix, g.d.Retryable = code, title, cause, fix, retryable
	g.setCmd(command)
}

// setCmd sets the command of the fix: the words and their one rendering.
func (g *diag) setCmd(c Cmd) {
	g.d.Args, g.d.Command = c, c.String()
}

func (g *diag) evidence(format string, args ...any) {
	g.d.Evidence = append(g.d.Evidence, fmt.Sprintf(format, args...))
}

// port is where the validator knocked: the evidence's port for the
// challenge, else the challenge's own (80, or 443 for tls-alpn-01).
func (g *diag) port() int {
	p := g.ev.HTTPPort
	if g.ev.Challenge == acmeflow.ChallengeTLSALPN01 {
		p = g.ev.TLSPort
	}
	if p == 0 {
		p = g.ev.Challenge.Port()
	}
	return p
}

// own says the CA is an ACME CA of the user's own (cachoice.IsOwn): none
// of Let's Encrypt's rules, limits or staging apply to it.
func (g *diag) own() bool { return cachoice.IsOwn(g.ev.CA) }

func (g *diag) addr() string {
	return g.d.Identifier
}

func (g *diag) reverseName() string {
	a, err := netip.ParseAddr(g.d.Identifier)
	if err != nil {
		return "the in-addr.arpa / ip6.arpa name"
	}
	return acmeflow.ReverseName(a)
}

func (g *diag) hostPort(port int) string {
	a := g.addr()
	if a == "" {
		a = "ADDR"
	}
	if port == 80 {
		if strings.Contains(a, ":") {
			return "[" + a + "]"
		}
		return a
	}
	return net.JoinHostPort(a, strconv.Itoa(port))
}

func (g *diag) natHint(port int) string {
	switch g.ev.NAT {
	case "cgnat":
		return " This machine is behind carrier-grade NAT (100.64/10): inbound connections cannot reach it over IPv4 at all; use IPv6 or a public IPv4."
	case "double-nat":
		return " This machine is behind two NATs: forward the port on both routers, or use IPv6."
	case "home-nat", "nat":
		return fmt.Sprintf(" This machine is behind a NAT router: forward tcp %d to it (--map-ports asks the router over UPnP/NAT-PMP).", port)
	case "cloud-1to1":
		return " This is a cloud VM behind 1:1 NAT: the provider's security group / firewall must allow the port."
	}
	return ""
}

func (g *diag) errText() string {
	if g.d.Problem != nil {
		return g.d.Problem.String()
	}
	var ae *acmeflow.Error
	if errors.As(g.err, &ae) && ae.Err != nil {
		return ae.Err.Error()
	}
	return g.err.Error()
}

func (g *diag) classify() {
	t := g.text()
	switch {
	case errors.Is(g.err, context.Canceled) || errors.Is(g.err, context.DeadlineExceeded) && g.d.Problem == nil && !clientTimeout(g.err, t):
		g.set(DiagInterrupted, "Interrupted", "The run was stopped (Ctrl-C, SIGTERM or a deadline) before the certificate was stored.",
			"Nothing changed: the current certificate, if any, is untouched. Run the command again.", nil, true)
		return
	case errors.Is(g.err, store.ErrLocked):
		g.set(DiagLocked, "Another ipcert run holds the state lock", "Two runs must not write the same state at once (a renewal timer may be running right now).",
			"Wait for the other run to finish, then run again.", g.statusCmd(), true)
		g.d.Retry = "when the other run has finished (usually seconds)"
		return
	case errors.Is(g.err, acmeflow.ErrBadAddress) && g.own():
		g.set(DiagBadAddress, "No CA can validate this address", g.errText(),
			"Give an address the CA can connect to (this machine's address on the CA's network).", nil, false)
		return
	case errors.Is(g.err, acmeflow.ErrBadAddress):
		g.set(DiagBadAddress, "Let's Encrypt will not certify this address", g.errText(),
			"Use this machine's public address (ipcert preflight finds it), or rehearse loopback addresses with the local test CA.", g.preflightCmd(), false)
		return
	case errors.Is(g.err, acmeflow.ErrNoShortlived):
		g.set(DiagNoShortlived, "The CA does not offer the shortlived profile", "IP certificates exist only under Let's Encrypt's shortlived profile (docs/letsencrypt.md), and this CA's directory does not list it.",
			"Use Let's Encrypt (staging to rehearse, then production).", g.stagingCmd(), false)
		return
	}
	// Our own engine's wording (acmeflow: the account step asks for
	// --agree-tos), not the CA's.
	if g.d.Problem == nil && g.d.Step == acmeflow.StepAccount && contains(t, "--agree-tos") {
		g.set(DiagTOS, "The terms of service need your agreement", "A new ACME account can only be registered after you agree to the CA's terms of service.",
			"Read the terms (the URL is in the message), then run again with --agree-tos.", g.issueCmd(issueArgs{extra: nil}), false)
		return
	}
	switch g.d.Step {
	case acmeflow.StepResponder:
		if g.responder(t) {
			return
		}
	case acmeflow.StepDirectory, acmeflow.StepAccount, acmeflow.StepOrder, acmeflow.StepFinalize, acmeflow.StepDownload:
		if g.d.Problem == nil && g.caTransport() {
			return
		}
	}
	// Our engine's wording when the authorization lacks the challenge
	// ("the CA does not offer ...").
	if g.d.Problem == nil && g.d.Step == acmeflow.StepChallenge && contains(t, "does not offer") {
		other := acmeflow.ChallengeTLSALPN01
		if g.ev.Challenge == acmeflow.ChallengeTLSALPN01 {
			other = acmeflow.ChallengeHTTP01
		}
		g.set(DiagChallengeNotOffered, "The CA does not offer this challenge", g.errText(),
			"Use the challenge the CA offers.", g.stagingCmd("--challenge", string(other)), false)
		return
	}
	if g.local() {
		return
	}
	if g.d.Problem != nil && g.problem(t) {
		return
	}
	if g.d.Problem == nil && g.caTransport() {
		return
	}
	if g.jws(t) {
		return
	}
	fix := "Check the address, ports and firewall, then rehearse on staging; ipcert preflight checks this machine."
	if g.own() {
		fix = "Check the address, ports and firewall between your CA and this machine, then run again; ipcert preflight checks this machine."
	}
	g.set(DiagUnknown, fmt.Sprintf("Failed at the %s step", g.d.Step), g.errText(), fix, g.preflightCmd(), false)
}

var (
	urlRe = regexp.MustCompile(`https?://[^\s"'<>]+`)
	// Boulder va/http.go: "Invalid response from %s: %d"; Pebble va/va.go:
	// "Non-200 status code from HTTP: %s returned %d".
	statusRe = regexp.MustCompile(`(?:invalid response from \S+: |returned )(\d{3})\b`)
	// Boulder's rateLimited detail: "..., retry after 2025-09-18 09:13:16
	// UTC: see https://letsencrypt.org/docs/rate-limits/#...".
	retryAfterRe = regexp.MustCompile(`retry after (\d{4}-\d{2}-\d{2}[ t]\d{2}:\d{2}:\d{2})(?: utc|z)?`)
	// The body the validator got: Boulder's `(got "...")`, Pebble's
	// `!= "..."` (see validation).
	gotBodyRe = regexp.MustCompile(`(?:\(got "|!= ")(.*?)"\)?$`)
)
