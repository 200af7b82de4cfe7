package acmeflow

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/acme/api"
	"github.com/ipcert/ipcert/acmeflow/safefs"
	"github.com/ipcert/ipcert/acmeflow/store"
)

// Diagnosis explains one failed issuance or renewal: where it stopped, what
// the CA said (or the local error), the likely cause reasoned from local
// evidence, the fix, and whether and when retrying can help. Code is stable
// (docs/troubleshooting.md lists every code); the texts are for people.
type Diagnosis struct {
	Code       string   `json:"code"`
	Title      string   `json:"title"`
	Step       Step     `json:"step,omitempty"`
	Identifier string   `json:"identifier,omitempty"`
	Problem    *Problem `json:"problem,omitempty"`
	// Error is the local error text when the CA sent no problem document.
	Error    string   `json:"error,omitempty"`
	Cause    string   `json:"cause"`
	Evidence []string `json:"evidence,omitempty"`
	Fix      string   `json:"fix"`
	// Command is the command of the fix, when there is one.
	Command string `json:"command,omitempty"`
	// Retryable says whether running again can succeed without changing
	// anything (a transient CA or network fault, a rate limit that lapses).
	// A failure that needs a fix first is not retryable.
	Retryable bool `json:"retryable"`
	// Retry says when a retry makes sense, in words.
	Retry string `json:"retry"`
	// RetryAfter is how long the CA asked us to wait (Retry-After, or the
	// time in a rateLimited detail); RetryAt is the moment it lapses.
	RetryAfter        time.Duration `json:"-"`
	RetryAfterSeconds int64         `json:"retry_after_seconds,omitempty"`
	RetryAt           time.Time     `json:"retry_at,omitzero"`
	// RateLimit names the Let's Encrypt limit that was hit (rateLimited).
	RateLimit string `json:"rate_limit,omitempty"`
	// Validators are the validator requests our responder saw.
	Validators []ValidatorRequest `json:"validators,omitempty"`
	// The attempt's challenge, web root and validation port, as far as
	// they are known.
	Challenge string `json:"challenge,omitempty"`
	WebRoot   string `json:"webroot,omitempty"`
	Port      int    `json:"port,omitempty"`
}

// Evidence is what is known locally about a failure, beyond the error. All
// fields are optional; the more are set, the sharper the cause. acmeflow
// does not run the preflight checks itself: callers copy their findings
// into the plain fields here.
type Evidence struct {
	// Challenge is the challenge used (http-01 or tls-alpn-01).
	Challenge string
	// WebRoot is set when http-01 was answered by the user's web server:
	// our responder then sees no requests, and their absence means nothing.
	WebRoot string
	// HTTPPort and TLSPort are where the CA's validator connects: 80 and
	// 443 for Let's Encrypt (FACTS.md), other ports for the local CA.
	HTTPPort, TLSPort int
	// Seen replaces the *Error's own list of validator requests when set
	// (doctor rebuilds it from renewal.json). SeenKnown says the list is
	// meaningful even when empty.
	Seen      []ValidatorRequest
	SeenKnown bool
	// CA is the user's choice: staging, production, local, or a URL.
	CA string
	// From the preflight checks.
	NAT       string   // direct, cloud-1to1, home-nat, cgnat, double-nat, nat, unknown
	Cloud     string   // aws, gcp, azure, oracle...
	Firewall  []string // host firewall rules that block a validation port, one per line
	PortOwner string   // who holds the validation port: "nginx (pid 812) on 0.0.0.0:80"
	// Probe is what a local connection to the validation port found.
	Probe *Probe
	// Now is the clock for turning "retry after <time>" into a wait.
	Now time.Time
}

// EvidenceForRenewal is what a certificate's renewal.json tells about its
// attempts: the challenge, the web root and the validation ports (80 and
// 443 for Let's Encrypt, the responder's own for the local test CA). A
// renewal records its failure with Diagnose(err, EvidenceForRenewal(r,
// now)).Failure(now).
func EvidenceForRenewal(r *store.Renewal, now time.Time) Evidence {
	ev := Evidence{Challenge: r.Challenge, WebRoot: r.WebRoot, HTTPPort: 80, TLSPort: 443, CA: r.CA, Now: now}
	if r.CA == "local" {
		ev.HTTPPort, ev.TLSPort = PortOf(r.HTTPListen), PortOf(r.TLSListen)
		if r.WebRoot != "" {
			ev.HTTPPort = 0 // the web server's port, unknown here; Diagnose reads it from the CA's URL
		}
	}
	return ev
}

// PortOf is the port of ADDR:PORT ([ADDR]:PORT for IPv6), or 0 when there
// is none.
func PortOf(hostport string) int {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}

// Diagnosis codes.
const (
	DiagInterrupted         = "interrupted"
	DiagLocked              = "locked"
	DiagBadAddress          = "address-refused"
	DiagNoShortlived        = "no-shortlived-profile"
	DiagTOS                 = "terms-not-agreed"
	DiagCADNS               = "ca-dns"
	DiagCARefused           = "ca-refused"
	DiagCATLS               = "ca-tls"
	DiagCATimeout           = "ca-timeout"
	DiagCAUnreachable       = "ca-unreachable"
	DiagBadNonce            = "bad-nonce"
	DiagServerInternal      = "server-internal"
	DiagRateLimited         = "rate-limited"
	DiagRejectedReserved    = "rejected-identifier-reserved"
	DiagRejectedProfile     = "rejected-identifier-profile"
	DiagRejectedCanonical   = "rejected-identifier-not-canonical"
	DiagRejectedIdentifier  = "rejected-identifier"
	DiagInvalidProfile      = "invalid-profile"
	DiagBadCSRCommonName    = "bad-csr-ip-in-cn"
	DiagBadCSR              = "bad-csr"
	DiagAccount             = "account"
	DiagPortBusy            = "port-busy"
	DiagPortForbidden       = "port-forbidden"
	DiagWebRootMissing      = "webroot-missing"
	DiagWebRootNotWritable  = "webroot-not-writable"
	DiagWebRootNotServed    = "webroot-not-served"
	DiagWebRootLink         = "webroot-link"
	DiagConnectTimeout      = "connect-timeout"
	DiagSlowServer          = "timeout-after-connect"
	DiagConnectRefused      = "connect-refused"
	DiagConnectReset        = "connect-reset"
	DiagNetUnreachable      = "network-unreachable"
	DiagSecondary           = "secondary-validation"
	DiagNotFound            = "not-found"
	DiagBadStatus           = "bad-status"
	DiagWrongContent        = "wrong-content"
	DiagForeignServer       = "another-server-answered"
	DiagRedirectPort        = "redirect-other-port"
	DiagTooManyRedirects    = "too-many-redirects"
	DiagHTTPOnTLSPort       = "http-on-tls-port"
	DiagNoALPN              = "alpn-not-negotiated"
	DiagWrongCert           = "wrong-validation-certificate"
	DiagTLSConnect          = "tls-connect-failed"
	DiagChallengeNotOffered = "challenge-not-offered"
	DiagDiskFull            = "disk-full"
	DiagReadOnly            = "state-read-only"
	DiagStateNotWritable    = "state-not-writable"
	DiagStateUntrusted      = "state-untrusted"
	DiagStoreRename         = "store-rename-failed"
	DiagJWS                 = "jws-rejected"
	DiagUnknown             = "unknown"
)

// Diagnose explains err. It never fails: an error it does not recognise
// still gets the step, the text and the generic next steps.
func Diagnose(err error, ev Evidence) Diagnosis {
	if ev.Now.IsZero() {
		ev.Now = time.Now()
	}
	d := Diagnosis{Code: DiagUnknown}
	if err == nil {
		d.Title = "no error"
		return d
	}
	var ae *Error
	if errors.As(err, &ae) {
		d.Step, d.Identifier = ae.Step, ae.Identifier
		d.Problem = ae.Problem
		if !ev.SeenKnown && ev.Seen == nil {
			ev.Seen = ae.Seen
			ev.SeenKnown = ae.Step == StepChallenge || ae.Step == StepFinalize
		}
	}
	if d.Problem == nil {
		d.Problem = ProblemOf(err)
	}
	if d.Problem == nil {
		d.Error = err.Error()
	}
	d.Validators = ev.Seen
	ev.Seen = seenFor(ev.Seen, d.Identifier)
	dg := &diag{d: &d, ev: ev, err: err}
	dg.inferChallenge()
	d.Challenge, d.WebRoot = dg.ev.Challenge, ev.WebRoot
	if d.Step == StepChallenge || d.Step == StepResponder {
		d.Port = dg.port()
	}
	dg.classify()
	dg.addSeenEvidence()
	dg.addPreflightEvidence()
	if d.RetryAfter > 0 {
		d.RetryAfterSeconds = int64(d.RetryAfter.Round(time.Second) / time.Second)
		if d.RetryAt.IsZero() {
			d.RetryAt = ev.Now.Add(d.RetryAfter).UTC()
		}
	}
	if d.Retry == "" {
		if d.Retryable {
			d.Retry = "now: the cause is likely transient"
		} else {
			d.Retry = "after the fix; retrying unchanged fails the same way"
		}
	}
	d.sanitize()
	return d
}

// sanitize escapes what came from the network (the CA's words, the
// validators' requests) or from a file in every text of the diagnosis:
// it is printed on terminals, logged and kept in renewal.json for doctor
// to replay (issue 12).
func (d *Diagnosis) sanitize() {
	for _, p := range []*string{&d.Title, &d.Error, &d.Cause, &d.Fix, &d.Command, &d.Retry, &d.Identifier, &d.WebRoot, &d.RateLimit} {
		*p = Printable(*p)
	}
	for i := range d.Evidence {
		d.Evidence[i] = Printable(d.Evidence[i])
	}
	if d.Validators != nil {
		vs := make([]ValidatorRequest, len(d.Validators))
		for i, v := range d.Validators {
			vs[i] = v.printable()
		}
		d.Validators = vs
	}
	if d.Problem != nil {
		p := d.Problem.printable()
		d.Problem = &p
	}
}

// printable is a copy of the problem with its texts escaped.
func (p Problem) printable() Problem {
	p.Type, p.Detail, p.Identifier = Printable(p.Type), Printable(p.Detail), Printable(p.Identifier)
	if len(p.Subproblems) > 0 {
		subs := make([]Subproblem, len(p.Subproblems))
		for i, s := range p.Subproblems {
			subs[i] = Subproblem{Type: Printable(s.Type), Detail: Printable(s.Detail), Identifier: Printable(s.Identifier)}
		}
		p.Subproblems = subs
	}
	return p
}

// Failure is the stored form of the diagnosis, for renewal.json.
func (d Diagnosis) Failure(now time.Time) store.Failure {
	f := store.Failure{
		Time: now.UTC(), Step: string(d.Step), Detail: d.Error,
		Cause: d.Cause, Fix: d.Fix, Retryable: d.Retryable, Evidence: d.Evidence,
		Code: d.Code, Title: d.Title, Command: d.Command, RetryAt: d.RetryAt,
		Challenge: d.Challenge, WebRoot: d.WebRoot, Port: d.Port,
	}
	if d.Problem != nil {
		f.Problem = d.Problem.Type
		f.Detail = d.Problem.String()
	}
	for _, v := range d.Validators {
		f.Validators = append(f.Validators, storedValidator(v))
	}
	return f
}

// storedValidator is one validator request in renewal.json: the remote
// address, and why we did not answer it when we did not.
func storedValidator(v ValidatorRequest) string {
	if v.Answered {
		return Printable(v.Remote)
	}
	why := Printable(v.Note)
	if why == "" {
		why = fmt.Sprintf("status %d", v.Status)
	}
	return Printable(v.Remote) + " (not answered: " + why + ")"
}

// ValidatorsFromFailure rebuilds the validator requests kept in a stored
// failure (Failure.Validators), enough for Diagnose to reason from.
func ValidatorsFromFailure(f store.Failure) []ValidatorRequest {
	out := []ValidatorRequest{}
	for _, s := range f.Validators {
		remote, note, unanswered := strings.Cut(s, " (not answered: ")
		out = append(out, ValidatorRequest{Challenge: f.Challenge, Remote: remote, Answered: !unanswered, Note: strings.TrimSuffix(note, ")")})
	}
	return out
}

// ErrorFromFailure rebuilds an engine error from a stored failure, so a
// later Diagnose (doctor, with fresh evidence) reasons from the same facts.
func ErrorFromFailure(f store.Failure) *Error {
	e := &Error{Step: Step(f.Step)}
	if f.Problem != "" {
		short := strings.TrimPrefix(f.Problem, ProblemNS)
		detail := strings.TrimPrefix(f.Detail, short+": ")
		e.Problem = &Problem{Type: f.Problem, Detail: detail}
	} else {
		e.Err = errors.New(f.Detail)
	}
	return e
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
		case contains(t, "tls-alpn-01", "acme-tls/1"):
			g.ev.Challenge = ChallengeTLSALPN01
		default:
			g.ev.Challenge = ChallengeHTTP01
		}
	}
	if g.ev.Challenge == ChallengeHTTP01 && g.ev.HTTPPort == 0 && g.ev.CA != "local" {
		return
	}
	if g.ev.Challenge == ChallengeHTTP01 && g.ev.HTTPPort == 0 {
		// The local CA with --webroot: the first URL the validator
		// fetched names the port (a redirect cannot be told apart then).
		if u, err := url.Parse(strings.TrimRight(urlRe.FindString(t), ":.,)")); err == nil && u.Port() != "" {
			g.ev.HTTPPort, _ = strconv.Atoi(u.Port())
		}
	}
}

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
	if p.Type == ProblemNS+"compound" && len(p.Subproblems) > 0 {
		return p.Subproblems[0].Type
	}
	return p.Type
}

func (g *diag) set(code, title, cause, fix, command string, retryable bool) {
	g.d.Code, g.d.Title, g.d.Cause, g.d.Fix, g.d.Command, g.d.Retryable = code, title, cause, fix, command, retryable
}

func (g *diag) evidence(format string, args ...any) {
	g.d.Evidence = append(g.d.Evidence, fmt.Sprintf(format, args...))
}

func (g *diag) port() int {
	if g.ev.Challenge == ChallengeTLSALPN01 {
		if g.ev.TLSPort != 0 {
			return g.ev.TLSPort
		}
		return 443
	}
	if g.ev.HTTPPort != 0 {
		return g.ev.HTTPPort
	}
	return 80
}

// stagingCmd is the rehearsal command for the failed identifiers.
func (g *diag) stagingCmd(extra string) string {
	ip := g.d.Identifier
	if ip == "" {
		ip = "ADDR"
	}
	cmd := "ipcert issue --ca staging --ip " + ip
	if g.ev.Challenge != "" && g.ev.Challenge != ChallengeHTTP01 {
		cmd += " --challenge " + g.ev.Challenge
	}
	if extra != "" {
		cmd += " " + extra
	}
	return cmd
}

func (g *diag) classify() {
	t := g.text()
	switch {
	case errors.Is(g.err, context.Canceled) || errors.Is(g.err, context.DeadlineExceeded) && g.d.Problem == nil && !clientTimeout(g.err, t):
		g.set(DiagInterrupted, "Interrupted", "The run was stopped (Ctrl-C, SIGTERM or a deadline) before the certificate was stored.",
			"Nothing changed: the current certificate, if any, is untouched. Run the command again.", "", true)
		return
	case errors.Is(g.err, store.ErrLocked):
		g.set(DiagLocked, "Another ipcert run holds the state lock", "Two runs must not write the same state at once (a renewal timer may be running right now).",
			"Wait for the other run to finish, then run again.", "ipcert status", true)
		g.d.Retry = "when the other run has finished (usually seconds)"
		return
	case errors.Is(g.err, ErrBadAddress):
		g.set(DiagBadAddress, "Let's Encrypt will not certify this address", g.errText(),
			"Use this machine's public address (ipcert preflight finds it), or rehearse loopback addresses with the local test CA.", "ipcert preflight", false)
		return
	case errors.Is(g.err, ErrNoShortlived):
		g.set(DiagNoShortlived, "The CA does not offer the shortlived profile", "IP certificates exist only under Let's Encrypt's shortlived profile (FACTS.md), and this CA's directory does not list it.",
			"Use Let's Encrypt (staging to rehearse, then production).", g.stagingCmd(""), false)
		return
	}
	if g.d.Problem == nil && g.d.Step == StepAccount && contains(t, "--agree-tos") {
		g.set(DiagTOS, "The terms of service need your agreement", "A new ACME account can only be registered after you agree to the CA's terms of service.",
			"Read the terms (the URL is in the message), then run again with --agree-tos.", g.stagingCmd("--agree-tos"), false)
		return
	}
	switch g.d.Step {
	case StepResponder:
		if g.responder(t) {
			return
		}
	case StepDirectory, StepAccount, StepOrder, StepFinalize, StepDownload:
		if g.d.Problem == nil && g.caTransport() {
			return
		}
	}
	if g.d.Problem == nil && g.d.Step == StepChallenge && contains(t, "does not offer") {
		other := ChallengeTLSALPN01
		if g.ev.Challenge == ChallengeTLSALPN01 {
			other = ChallengeHTTP01
		}
		g.set(DiagChallengeNotOffered, "The CA does not offer this challenge", g.errText(),
			"Use the challenge the CA offers.", g.stagingCmd("--challenge "+other), false)
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
	g.set(DiagUnknown, fmt.Sprintf("Failed at the %s step", g.d.Step), g.errText(),
		"Check the address, ports and firewall, then rehearse on staging; \"ipcert doctor --probe\" tests reachability from the outside.",
		"ipcert preflight", false)
}

// local: the failure is this machine's (the state directory's disk,
// mount, permissions or ownership), not the network's: each has its own
// fix, never "check the address, ports and firewall".
func (g *diag) local() bool {
	err := g.err
	var le *os.LinkError
	var ue *safefs.UntrustedError
	untouched := " The current certificate was not touched."
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		g.set(DiagDiskFull, "The disk is full", "Writing the state directory failed for lack of space (or quota): "+g.errText()+".",
			"Free some space on the file system the error names (df -h shows which is full), then run again."+untouched, "df -h", false)
		g.d.Retry = "when there is free space"
	case errors.Is(err, syscall.EROFS):
		g.set(DiagReadOnly, "The state directory is on a read-only file system", g.errText()+".",
			"Remount it read-write, or choose a writable state directory with --state-dir."+untouched, "findmnt -T /etc/ipcert", false)
	case errors.As(err, &ue):
		g.set(DiagStateUntrusted, "Refused: another user could change these files", g.errText()+".",
			"Follow the fix in the message: root only uses a state directory, binaries and hooks that only root can change (docs/security.md).", "", false)
	case errors.As(err, &le) && le.Op == "rename":
		g.set(DiagStoreRename, "Moving the new files into place failed", "rename(2) of "+le.Old+" to "+le.New+" failed: "+le.Err.Error()+". ipcert writes every file beside its final place and renames it, so this is the state directory's file system refusing (a full or read-only disk, an immutable attribute, a bind mount of single files, or something else holding the name).",
			"Check the state directory (ls -la and lsattr on "+filepath.Dir(le.New)+"), fix what the error names, and run again."+untouched, "ls -la "+filepath.Dir(le.New), false)
	case errors.Is(err, fs.ErrPermission) && (g.d.Step == StepStore || g.d.Step == "" || g.d.Step == StepAccount):
		g.set(DiagStateNotWritable, "The state directory is not writable", g.errText()+".",
			"Run as the state directory's owner (usually root: sudo), or choose another with --state-dir."+untouched, "", false)
	default:
		return false
	}
	return true
}

// jws: the CA could not verify our signed request (RFC 8555 section 6.2),
// or we could not sign it.
func (g *diag) jws(t string) bool {
	pt := g.probType()
	if !contains(t, "jws", "signature") && pt != ProblemNS+"badSignatureAlgorithm" && pt != ProblemNS+"badPublicKey" {
		return false
	}
	g.set(DiagJWS, "The CA rejected our signed request", "Every ACME request is signed with the account key (JWS, RFC 8555 section 6.2), and this one was refused or could not be made: "+g.errText()+". Usually a damaged or foreign account key in the state directory, or a proxy that changes the request body.",
		"Bypass any HTTP(S) proxy for the CA (NO_PROXY); if it persists, move the account folder aside (ipcert registers a new account) and run again.", "ls -la /etc/ipcert/accounts", false)
	return true
}

func (g *diag) errText() string {
	if g.d.Problem != nil {
		return g.d.Problem.String()
	}
	var ae *Error
	if errors.As(g.err, &ae) && ae.Err != nil {
		return ae.Err.Error()
	}
	return g.err.Error()
}

// responder: the local challenge responder could not start.
func (g *diag) responder(t string) bool {
	owner := ""
	if g.ev.PortOwner != "" {
		owner = " (" + g.ev.PortOwner + ")"
	}
	switch {
	case contains(t, "address already in use"):
		g.set(DiagPortBusy, "The validation port is busy", "Another program holds the port our responder needs"+owner+".",
			"Answer through that web server's document root instead (--webroot), or stop it for the minute of issuance.",
			g.stagingCmd("--webroot /var/www/html"), false)
		if g.ev.PortOwner != "" {
			g.evidence("port owner: %s", g.ev.PortOwner)
		}
		return true
	case errors.Is(g.err, os.ErrPermission) && contains(t, "listen"), contains(t, "permission denied") && contains(t, "listen"):
		g.set(DiagPortForbidden, "Not allowed to listen on the validation port", "Ports below 1024 need root or CAP_NET_BIND_SERVICE (or a lower net.ipv4.ip_unprivileged_port_start).",
			"Run as root, or grant the capability to the binary once.", "sudo setcap cap_net_bind_service=+ep \"$(command -v ipcert)\"", false)
		return true
	case contains(t, "web root") && contains(t, "not writable", "permission denied", "read-only"):
		g.set(DiagWebRootNotWritable, "The web root is not writable", "ipcert must write the answer into "+g.ev.WebRoot+"/.well-known/acme-challenge/ and may not.",
			"Run as a user that can write there (often root or www-data), or use the standalone responder.", "sudo ipcert issue ...", false)
		return true
	case contains(t, "web root") && contains(t, "is a symbolic link"):
		g.set(DiagWebRootLink, "A link inside the web root was refused", g.errText()+".",
			"Make .well-known and .well-known/acme-challenge real directories inside the web root (or let ipcert create them), or use the standalone responder.", "ls -la "+g.ev.WebRoot+"/.well-known", false)
		return true
	case contains(t, "web root") && contains(t, "no such file", "not a directory"):
		g.set(DiagWebRootMissing, "The web root does not exist", "The directory given with --webroot ("+g.ev.WebRoot+") does not exist or is not a directory, so ipcert cannot put the answer there.",
			"Give the document root your web server serves for this address; ipcert preflight shows the default server's root.", "ipcert preflight", false)
		return true
	}
	return false
}

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
	case errors.As(err, &dnsErr):
		g.set(DiagCADNS, "Cannot resolve the CA's name", fmt.Sprintf("DNS lookup of %s failed (%v): no resolver, no network, or a resolver that blocks it.", dnsErr.Name, dnsErr.Err),
			"Check /etc/resolv.conf and the network; try: getent hosts "+dnsErr.Name, "getent hosts "+dnsErr.Name, true)
		g.d.Retry = "when DNS works again"
	case errors.Is(err, syscall.ECONNREFUSED):
		g.set(DiagCARefused, "The CA refused the connection", "Nothing listens at "+ca+": a wrong --ca URL, a local test CA that is not running, or an outbound proxy/firewall that rejects it.",
			"Check the --ca URL; for Let's Encrypt use --ca staging or --ca production.", "", true)
		g.d.Retry = "after checking the URL; at once if the CA was merely restarting"
	case errors.As(err, &certErr), errors.As(err, &unknownAuth), errors.As(err, &hostErr), errors.As(err, &recErr),
		contains(t, "x509:", "tls: ", "server gave http response to https client", "https is required"):
		g.set(DiagCATLS, "Cannot talk TLS to the CA", "The HTTPS connection to "+ca+" failed: "+g.errText()+". A TLS-intercepting proxy, a missing CA root (custom CA: --ca-root), a wrong clock, or a plain-HTTP URL.",
			"Check the system time (timedatectl), the system roots (ca-certificates), any HTTPS proxy; for a private ACME CA give its root with --ca-root.", "timedatectl", false)
	case isTimeout(err):
		g.set(DiagCATimeout, "The CA did not answer in time", "The request to "+ca+" timed out: no outbound internet, a firewall dropping outbound HTTPS, or the CA is overloaded.",
			"Check outbound HTTPS (curl -sI https://acme-staging-v02.api.letsencrypt.org/directory) and https://letsencrypt.status.io.", "curl -sI https://acme-staging-v02.api.letsencrypt.org/directory", true)
		g.d.Retry = "in a few minutes"
	case errors.Is(err, syscall.ENETUNREACH), errors.Is(err, syscall.EHOSTUNREACH), contains(t, "network is unreachable", "no route to host", "connection reset"):
		g.set(DiagCAUnreachable, "The CA is unreachable", "No route to "+ca+": this machine has no working outbound network for that family.",
			"Check the default route and outbound firewall; ipcert preflight tests outbound reachability.", "ipcert preflight", true)
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

var (
	urlRe = regexp.MustCompile(`https?://[^\s"'<>]+`)
	// Boulder: "Invalid response from URL: 404"; Pebble: "Non-200 status
	// code from HTTP: URL returned 404".
	statusRe     = regexp.MustCompile(`(?:invalid response from \S+: |returned )(\d{3})\b`)
	retryAfterRe = regexp.MustCompile(`retry after (\d{4}-\d{2}-\d{2}[ t]\d{2}:\d{2}:\d{2})(?: utc|z)?`)
	gotBodyRe    = regexp.MustCompile(`(?:\(got "|!= ")(.*?)"\)?$`)
)

// problem handles every failure that carries an ACME problem document.
func (g *diag) problem(t string) bool {
	switch g.probType() {
	case ProblemRateLimited:
		g.rateLimited(t)
	case ProblemBadNonce:
		g.set(DiagBadNonce, "The CA kept rejecting our nonces", "Every retry of the request got badNonce: a proxy or load balancer between us and the CA that caches or replays responses, or trouble at the CA.",
			"Retry in a few minutes; if it persists, bypass any HTTP(S) proxy for the CA (NO_PROXY) and check https://letsencrypt.status.io.", "", true)
		g.d.Retry = "in a few minutes"
	case ProblemServerInternal:
		g.set(DiagServerInternal, "The CA had an internal error", "The CA failed while handling the request ("+g.d.Problem.Detail+"); nothing on this machine caused it.",
			"Retry later and check https://letsencrypt.status.io; a renewal retries on its own with backoff.", "", true)
		g.d.Retry = "in a few minutes (a renewal backs off: 1 min, 10 min, 100 min, then daily)"
		if ra := g.retryAfterHeader(); ra > 0 {
			g.d.RetryAfter = ra
			g.d.Retry = "not before " + ra.Round(time.Second).String() + " from now (the CA's Retry-After)"
		}
	case ProblemRejectedIdentifier:
		g.rejected(t)
	case ProblemInvalidProfile:
		g.set(DiagInvalidProfile, "The CA does not know the requested profile", "The order named a profile the CA does not offer: "+g.d.Problem.Detail+". IP certificates need \"shortlived\" (FACTS.md).",
			"Use Let's Encrypt with the shortlived profile (ipcert always asks for it); a custom --ca must offer shortlived.", g.stagingCmd(""), false)
	case ProblemBadCSR:
		if contains(t, "common name") {
			g.set(DiagBadCSRCommonName, "The CSR put the IP address in the Common Name", "Let's Encrypt refuses a CSR with an IP address in the Common Name (boulder csr/csr.go); shortlived certificates have an empty subject.",
				"ipcert always sends an empty subject: this CSR came from elsewhere, or from an old ipcert; upgrade and run again.", "ipcert --version", false)
		} else {
			g.set(DiagBadCSR, "The CA refused the CSR", "The CA said: "+g.d.Problem.Detail+".",
				"Try another key type (--key-type ec256 is the safe choice) and run again.", g.stagingCmd("--key-type ec256"), false)
		}
	case ProblemAccountDoesNotExist, ProblemNS + "invalidContact", ProblemNS + "unsupportedContact",
		ProblemNS + "externalAccountRequired", ProblemNS + "userActionRequired":
		g.account()
	case ProblemNS + "unsupportedIdentifier":
		g.set(DiagRejectedProfile, "The CA does not issue for IP addresses", "The CA refused IP identifiers: "+g.d.Problem.Detail+".",
			"Use Let's Encrypt (staging, then production), which issues for IP addresses under the shortlived profile.", g.stagingCmd(""), false)
	case ProblemConnection, ProblemUnauthorized, ProblemTLS, ProblemMalformed, ProblemNS + "incorrectResponse", ProblemNS + "dns", ProblemNS + "caa":
		if g.d.Step == StepAccount || g.d.Step == StepOrder && g.probType() == ProblemUnauthorized {
			g.account()
			return true
		}
		if g.probType() == ProblemMalformed && g.d.Step != StepChallenge {
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
// rateLimited detail links to, to the limit (FACTS.md "Rate limits").
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
		advice, "", true)
	g.d.RateLimit = limit
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
	case contains(t, "profile does not permit ip", "does not permit ip address"):
		g.set(DiagRejectedProfile, "The profile does not allow IP addresses", "Let's Encrypt issues for IP addresses only under the shortlived profile (\"Default profile does not permit IP address identifiers\", boulder ra/ra.go).",
			"Order with the shortlived profile; ipcert does so unless the CA lacks it.", g.stagingCmd(""), false)
	case contains(t, "canonical", "ip address is invalid"):
		g.set(DiagRejectedCanonical, "The address is not written canonically", "ACME wants the RFC 5952 form of an IP address (lower case, shortest, no zone, no leading zeros): "+g.d.Problem.Detail+".",
			"Give the address as ipcert prints it (netip form), e.g. 2001:db8::7 rather than 2001:0db8:0:0::7.", "", false)
	default:
		g.set(DiagRejectedReserved, "Let's Encrypt refuses this address", "The address is in an IANA special-purpose block (private, loopback, CGNAT 100.64/10, documentation, ...) or otherwise forbidden by policy: "+g.d.Problem.Detail+".",
			"Certify the machine's public address (ipcert preflight finds it); behind CGNAT use IPv6 or get a public IPv4.", "ipcert preflight", false)
		if contains(t, "blocked", "forbidden", "policy") {
			g.d.Code = DiagRejectedIdentifier
		}
	}
}

func (g *diag) account() {
	p := g.d.Problem
	switch p.Type {
	case ProblemNS + "invalidContact", ProblemNS + "unsupportedContact":
		g.set(DiagAccount, "The CA refused the contact e-mail", "The account's contact address was refused: "+p.Detail+".",
			"Give a working address with --email, or none at all (it is optional).", g.stagingCmd("--email you@example.org"), false)
	case ProblemNS + "externalAccountRequired":
		g.set(DiagAccount, "The CA needs external account binding", "This CA only registers accounts bound to an existing customer account (EAB); Let's Encrypt never does.",
			"Use Let's Encrypt, or a CA account with EAB credentials (not supported by ipcert).", g.stagingCmd(""), false)
	case ProblemNS + "userActionRequired":
		g.set(DiagAccount, "The CA needs you to act", "The CA asks for an action, usually agreeing to new terms of service: "+p.Detail+".",
			"Open the URL in the message (or the terms), then run again with --agree-tos.", g.stagingCmd("--agree-tos"), false)
	case ProblemAccountDoesNotExist:
		g.set(DiagAccount, "The CA does not know the stored account", "The account was deactivated or belongs to another CA instance.",
			"Run again: ipcert registers a new account when the CA forgets the old one.", "", true)
	default:
		g.set(DiagAccount, "The CA refused the account", "The CA said: "+p.Detail+". The stored account key may be for another CA, or the account was deactivated.",
			"Move the account folder aside (accounts/<ca-host>/ in the state directory) so ipcert registers a new one, then run again.", "", false)
	}
}

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
	openCmd := fmt.Sprintf("sudo ufw allow %d/tcp", port)

	switch {
	case secondary || ours && answered > 0 && !contains(t, "incorrect validation certificate", "did not match", "cannot negotiate alpn"):
		g.set(DiagSecondary, "Some validators were blocked", "The primary validator reached this machine but the remote perspectives (other regions) did not: a filter by origin such as geo-blocking, fail2ban/CrowdSec, or a WAF or DDoS filter. Let's Encrypt validates from several places and all must succeed (FACTS.md).",
			fmt.Sprintf("Leave tcp port %d open to the whole internet, v4 and v6, while validating; whitelist the ACME challenge path in the WAF; do not geo-block it.", port), "ipcert doctor --probe", false)
		if ours {
			g.evidence("our responder answered %d of %d validator requests, from %s", answered, len(seen), remotes(seen))
		}
	case contains(t, "timeout during connect", "i/o timeout", "timeout during read", "timeout after connect", "client.timeout exceeded", "deadline exceeded", "timed out"):
		// Boulder says whether the connect or the read timed out; Pebble's
		// "awaiting headers" covers both, so only our responder's log can
		// tell that the connection was made.
		if ours && len(seen) > 0 || contains(t, "timeout after connect", "timeout during read") && !none {
			g.set(DiagSlowServer, "The validator connected but got no answer in time", "The connection was made but the answer took too long: an overloaded server, or a proxy in front that accepts and stalls.",
				"Make sure the challenge path is served directly and fast; retry.", g.stagingCmd(""), true)
			return
		}
		g.set(DiagConnectTimeout, "The validator's connection timed out", fmt.Sprintf("Packets to port %d never got an answer: a cloud security group, the host firewall or the router drops them, or the port is not forwarded.%s%s", port, fw, natHint),
			fmt.Sprintf("Open tcp port %d to the world (0.0.0.0/0 and ::/0) in the cloud security group and the host firewall; behind a home router forward it to this machine.", port), openCmd, false)
	case contains(t, "connection refused"):
		if g.redirected(t, port) {
			return
		}
		g.set(DiagConnectRefused, "Nothing accepted the connection", fmt.Sprintf("The validator reached the address but nothing listens on port %d there (a stopped web server, a responder bound to 127.0.0.1 or to one family only), or a firewall answers with a reject.%s", port, fw),
			fmt.Sprintf("Listen on 0.0.0.0:%d and [::]:%d (ipcert's own responder does), or with --webroot make sure the web server runs and listens on both families.", port, port), "ss -ltnp", false)
	case contains(t, "connection reset"):
		g.set(DiagConnectReset, "The connection was reset", "Something on the path (a firewall, IPS, or a proxy that does not like the request) reset the validator's connection.",
			fmt.Sprintf("Let tcp port %d through unfiltered while validating; check IPS/WAF logs.", port), g.stagingCmd(""), false)
	case contains(t, "network unreachable", "no route to host", "host unreachable"):
		g.set(DiagNetUnreachable, "The address is unreachable from the internet", "The validator has no route to the address: it is not routed on the internet, or an upstream router rejects it."+natHint,
			"Check that the address is really this machine's public address.", "ipcert preflight", false)
	case contains(t, "too many redirects", "stopped after 10 redirects", "redirect loop"):
		g.set(DiagTooManyRedirects, "The challenge URL redirects in a loop", "The web server redirects /.well-known/acme-challenge/ again and again (an HTTP->HTTPS rule combined with an HTTPS->HTTP one, or a proxy loop).",
			"Exempt /.well-known/acme-challenge/ from redirects and serve it from the web root over plain HTTP.", "curl -sI http://"+g.hostPort(port)+"/.well-known/acme-challenge/test", false)
	case contains(t, "invalid port in redirect", "invalid protocol scheme in redirect", "invalid host in redirect"):
		g.redirectPort(t)
	case contains(t, "server only speaks http", "speaking http", "first record does not look like a tls handshake"):
		g.httpOnTLS()
	case contains(t, "cannot negotiate alpn"):
		g.set(DiagNoALPN, "The TLS server on the port does not speak acme-tls/1", fmt.Sprintf("A TLS server answered on port %d but does not know the acme-tls/1 protocol: a web server or TLS proxy owns the port, not ipcert's responder.", port),
			"Let ipcert own port 443 for the minute of issuance (stop the proxy), or use http-01 on port 80.", g.stagingCmd("--challenge http-01"), false)
		g.foreign(none)
	case contains(t, "incorrect validation certificate"):
		g.set(DiagWrongCert, "The wrong certificate answered the tls-alpn-01 challenge", "The server on the port offered acme-tls/1 but presented a certificate that is not the challenge certificate for this address: another ACME client or proxy answers, or it keys on the IP rather than the RFC 8738 reverse name ("+g.reverseName()+").",
			"Stop the other responder on the port so ipcert's answers, or use http-01.", g.stagingCmd("--challenge http-01"), false)
		g.foreign(none)
	case contains(t, "failed to connect to") && g.ev.Challenge == ChallengeTLSALPN01:
		g.tlsConnect(none)
	case contains(t, "did not match this challenge") || g.probType() == ProblemUnauthorized && contains(t, "invalid response from") && status == 0:
		g.wrongContent(t, none)
	case status != 0:
		g.badStatus(t, status, none)
	case contains(t, "error getting validation data"):
		g.set(DiagConnectReset, "The validator got no usable answer", "The connection broke before a valid HTTP answer arrived: a proxy, an IPS or a half-working server.",
			fmt.Sprintf("Serve the challenge path directly on port %d.", port), g.stagingCmd(""), false)
	default:
		g.set(DiagUnknown, "Validation failed", "The CA could not validate the address: "+g.d.Problem.Detail,
			"Run ipcert doctor --probe for an external test, and ipcert preflight for the local checks.", "ipcert doctor --probe", false)
	}
}

func (g *diag) addr() string {
	return g.d.Identifier
}

func (g *diag) reverseName() string {
	a, err := netip.ParseAddr(g.d.Identifier)
	if err != nil {
		return "the in-addr.arpa / ip6.arpa name"
	}
	return ReverseName(a)
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
		return fmt.Sprintf(" This machine is behind a NAT router: forward tcp %d to it (ipcert preflight --map-ports can try UPnP/NAT-PMP).", port)
	case "cloud-1to1":
		return " This is a cloud VM behind 1:1 NAT: the provider's security group / firewall must allow the port."
	}
	return ""
}

// redirected recognises a redirect to another port from the URL in the
// CA's message: Pebble follows any redirect and reports the failure at the
// target, Boulder refuses ports other than 80 and 443 up front.
func (g *diag) redirected(t string, port int) bool {
	if g.ev.HTTPPort == 0 && g.ev.CA == "local" {
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
	g.set(DiagRedirectPort, "The challenge URL redirects to another port", "The web server answers /.well-known/acme-challenge/ with a redirect to a port other than 80 or 443 (often an HTTP->HTTPS rule to a custom port). Let's Encrypt follows redirects only to ports 80 and 443 (FACTS.md).",
		"Exempt /.well-known/acme-challenge/ from the redirect (nginx: a location block with root and no return), or use the standalone responder or tls-alpn-01.",
		"curl -sI http://"+g.hostPort(g.port())+"/.well-known/acme-challenge/test", false)
}

func (g *diag) httpOnTLS() {
	g.set(DiagHTTPOnTLSPort, "A plain-HTTP server answers on the TLS port", fmt.Sprintf("The tls-alpn-01 validator spoke TLS to port %d and got plain HTTP back: a web server (or a port forward to one) holds the port without TLS.", g.port()),
		"Let ipcert's responder own the port during issuance, fix the port forward, or use http-01.", g.stagingCmd("--challenge http-01"), false)
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
				"Let ipcert own port 443 for the minute of issuance, or use http-01.", g.stagingCmd("--challenge http-01"), false)
			g.foreign(none)
			return
		case ProbeRefused:
			g.set(DiagConnectRefused, "Nothing accepted the connection", fmt.Sprintf("Nothing listens on port %d of the address.", g.port()),
				fmt.Sprintf("Let ipcert's responder listen on 0.0.0.0:%d and [::]:%d.", g.port(), g.port()), "ss -ltnp", false)
			return
		case ProbeTimeout:
			g.set(DiagConnectTimeout, "The validator's connection timed out", fmt.Sprintf("Packets to port %d get no answer.%s", g.port(), g.natHint(g.port())),
				fmt.Sprintf("Open tcp port %d to the world in the security group and host firewall.", g.port()), fmt.Sprintf("sudo ufw allow %d/tcp", g.port()), false)
			return
		}
	}
	cause := fmt.Sprintf("The validator could not complete a TLS handshake on port %d.", g.port())
	if none {
		cause += " None of its connections reached our responder: the packets were dropped or refused, or another server (plain HTTP, a TLS proxy) holds the port or the port forward."
	}
	g.set(DiagTLSConnect, "The tls-alpn-01 validator could not connect", cause,
		fmt.Sprintf("Make sure tcp %d reaches this machine and nothing else answers there; ipcert doctor ADDR probes the port.", g.port()), "ipcert doctor "+g.addr(), false)
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
	case none || htmlPage && g.ev.WebRoot == "":
		g.set(DiagForeignServer, "Another web server answered the validator", fmt.Sprintf("The validator got a page from some server on port %d, but none of its requests reached our responder: typically the router's own web interface (the port is not forwarded to this machine) or another machine behind the same address.", g.port()),
			fmt.Sprintf("Forward tcp %d on the router to this machine (and turn off the router's remote administration on it), then retry.", g.port()), "ipcert preflight --map-ports", false)
		g.evidence("no validator request reached our responder")
	case g.ev.WebRoot != "":
		g.set(DiagWrongContent, "The web server served something else at the challenge URL", "The file ipcert wrote into "+g.ev.WebRoot+" was not what the web server returned for /.well-known/acme-challenge/<token>: the web root is not the one served for this address (another vhost is the default for Host=<ip>), or a rewrite rule (a single-page app, a CMS) answers every path.",
			"Give --webroot the document root of the server that answers for the bare IP (the default server), or add a location for /.well-known/acme-challenge/ to it.", "ipcert preflight", false)
	default:
		g.set(DiagWrongContent, "The validator got the wrong answer", "The server on the port answered the challenge path with the wrong body: a proxy or another program answers in front of ipcert's responder.",
			"Make sure nothing sits between the validator and ipcert's responder on the port.", g.stagingCmd(""), false)
	}
	if body != "" {
		if len(body) > 80 {
			body = body[:80] + "..."
		}
		g.evidence("the validator got: %q", body)
	}
}

func (g *diag) badStatus(t string, status int, none bool) {
	if none && g.ev.WebRoot == "" {
		g.set(DiagForeignServer, "Another web server answered the validator", fmt.Sprintf("The validator got HTTP %d from a server on port %d, but none of its requests reached our responder: the port leads to another server (the router's admin page, another machine, a proxy).", status, g.port()),
			fmt.Sprintf("Forward tcp %d to this machine, or stop whatever answers there during issuance.", g.port()), "ipcert preflight --map-ports", false)
		g.evidence("no validator request reached our responder")
		return
	}
	if status == 404 {
		if g.ev.WebRoot != "" {
			g.set(DiagWebRootNotServed, "The web root is not what the server serves for this address", "The challenge file was written into "+g.ev.WebRoot+" but the web server answered 404: the default server for Host=<ip> uses another document root, or a location block hides /.well-known/.",
				"Give --webroot the document root of the default server (ipcert preflight shows it), or add a location /.well-known/acme-challenge/ { root "+g.ev.WebRoot+"; } to the default server.", "ipcert preflight", false)
			return
		}
		g.set(DiagNotFound, "The challenge URL answered 404", "The server on the port did not have the challenge file: it is not ipcert's responder, or a web server with no default vhost for Host=<ip>.",
			"Serve /.well-known/acme-challenge/ on the default server for the bare IP, or answer with ipcert's standalone responder.", "ipcert preflight", false)
		return
	}
	g.set(DiagBadStatus, fmt.Sprintf("The challenge URL answered HTTP %d", status), fmt.Sprintf("The server answered the challenge path with status %d instead of 200: an access rule (403), an authentication wall (401), or an upstream error (5xx).", status),
		"Allow unauthenticated GETs of /.well-known/acme-challenge/ from anywhere.", "curl -si http://"+g.hostPort(g.port())+"/.well-known/acme-challenge/test", status >= 500)
}

// seenFor keeps the validator requests that were about ident: in an order
// for several addresses, requests for the others say nothing about this
// one. The Host header (http-01, FACTS.md: the IP literal) or the SNI
// (tls-alpn-01, the reverse name) names the identifier; requests that name
// none are kept.
func seenFor(seen []ValidatorRequest, ident string) []ValidatorRequest {
	a, err := netip.ParseAddr(ident)
	if err != nil {
		return seen
	}
	var out []ValidatorRequest
	for _, v := range seen {
		host := v.Host
		if h, _, err := net.SplitHostPort(host); err == nil {
			host = h
		}
		host = strings.Trim(host, "[]")
		switch {
		case v.SNI != "" && v.SNI != ReverseName(a):
		case v.SNI == "" && host != "" && host != a.String():
		default:
			out = append(out, v)
		}
	}
	if seen != nil && out == nil {
		out = []ValidatorRequest{}
	}
	return out
}

func remotes(seen []ValidatorRequest) string {
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

// addSeenEvidence states what our responder saw: none at all says the
// packets never arrived; the primary but not the secondaries says a filter
// by origin.
func (g *diag) addSeenEvidence() {
	if !g.ev.SeenKnown || g.d.Step != StepChallenge {
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
		return
	}
	for _, v := range g.ev.Seen {
		if v.Time.IsZero() {
			g.evidence("validator request from %s", v.Remote)
			continue
		}
		g.evidence("%s at %s", v.String(), v.Time.UTC().Format("15:04:05"))
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
