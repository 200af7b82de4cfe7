// Package diagnosis explains why an issuance or a renewal failed: the
// model (Diagnosis, its codes and its stored form in renewal.json), the
// classifiers that reason from the error (the CA and its transport in
// ca.go, validation in validation.go, this machine in local.go), the one
// evidence builder every caller uses (evidence.go: Attempt), the rendering
// for people (render.go), the local probe of a validation port (probe.go)
// and doctor's examination of stored failures (doctor.go).
//
// It imports acmeflow, store, cachoice and preflight; none of them imports
// it. It never exits, and writes only on the writers it is given (Write,
// WriteFailure, and doctor's progress lines).
package diagnosis

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/internal/untrusted"
)

// Diagnosis explains one failed issuance or renewal: where it stopped, what
// the CA said (or the local error), the likely cause reasoned from local
// evidence, the fix, and whether and when retrying can help. Code is stable
// (docs/troubleshooting.md lists every code); the texts are for people.
type Diagnosis struct {
	Code       string            `json:"code"`
	Title      string            `json:"title"`
	Step       acmeflow.Step     `json:"step,omitempty"`
	Identifier string            `json:"identifier,omitempty"`
	Problem    *acmeflow.Problem `json:"problem,omitempty"`
	// Error is the local error text when the CA sent no problem document.
	Error    string   `json:"error,omitempty"`
	Cause    string   `json:"cause"`
	Evidence []string `json:"evidence,omitempty"`
	Fix      string   `json:"fix"`
	// Command is the command of the fix, when there is one, on one line;
	// Args are its words (Command is their rendering, Cmd.String).
	Command string `json:"command,omitempty"`
	Args    Cmd    `json:"command_args,omitempty"`
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
	Validators []acmeflow.ValidatorRequest `json:"validators,omitempty"`
	// The attempt's challenge, web root and validation port, as far as
	// they are known.
	Challenge spec.Challenge `json:"challenge,omitempty"`
	WebRoot   string         `json:"webroot,omitempty"`
	Port      int            `json:"port,omitempty"`
	// The attempt's CA, the root trusted for it (a URL CA's --ca-root) and
	// where the responder listened: kept with the failure, so that doctor
	// re-checks a first issuance that has no renewal.json as it was asked.
	CA        spec.CAChoice `json:"ca,omitempty"`
	CARoot    string        `json:"ca_root,omitempty"`
	Responder string        `json:"responder,omitempty"`

	// ownCA: the CA is the user's own ACME CA (WriteFailure's next step
	// is a probe at that CA, not at Let's Encrypt staging).
	ownCA bool
	// stateDir and addr complete WriteFailure's doctor commands.
	stateDir, addr string
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
	DiagCATooLarge          = "ca-too-large"
	DiagFirewall            = "host-firewall"
	DiagNotForwarded        = "port-not-forwarded"
	DiagCGNAT               = "cgnat"
	DiagWrongAddress        = "wrong-address"
	DiagAddressChanged      = "address-changed"
	DiagRedirectHTTPS       = "redirect-to-https"
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
	var ae *acmeflow.Error
	if errors.As(err, &ae) {
		d.Step, d.Identifier = ae.Step, ae.Identifier
		d.Problem = ae.Problem
		if !ev.SeenKnown && ev.Seen == nil {
			ev.Seen = ae.Seen
			ev.SeenDropped, ev.SeenRefused = ae.SeenDropped, ae.SeenRefused
			ev.SeenKnown = ae.Step == acmeflow.StepChallenge || ae.Step == acmeflow.StepFinalize
		}
	}
	if d.Problem == nil {
		d.Problem = acmeflow.ProblemOf(err)
	}
	if d.Problem == nil {
		d.Error = err.Error()
	}
	d.Validators = ev.Seen
	ev.Seen = seenFor(ev.Seen, d.Identifier)
	dg := &diag{d: &d, ev: ev, err: err}
	d.ownCA, d.stateDir, d.addr = dg.own(), ev.StateDir, d.Identifier
	if d.addr == "" && len(ev.Identifiers) > 0 {
		d.addr = ev.Identifiers[0]
	}
	dg.inferChallenge()
	d.Challenge, d.WebRoot = dg.ev.Challenge, ev.WebRoot
	d.CA, d.CARoot, d.Responder = ev.CA, ev.CARoot, ev.Responder
	if d.Step == acmeflow.StepChallenge || d.Step == acmeflow.StepResponder {
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
		*p = untrusted.Text(*p)
	}
	for i := range d.Args {
		d.Args[i] = untrusted.Text(d.Args[i])
	}
	for i := range d.Evidence {
		d.Evidence[i] = untrusted.Text(d.Evidence[i])
	}
	if d.Validators != nil {
		vs := make([]acmeflow.ValidatorRequest, len(d.Validators))
		for i, v := range d.Validators {
			vs[i] = v.Printable()
		}
		d.Validators = vs
	}
	if d.Problem != nil {
		p := printableProblem(*d.Problem)
		d.Problem = &p
	}
}

// printableProblem is a copy of the problem with its texts escaped.
func printableProblem(p acmeflow.Problem) acmeflow.Problem {
	p.Type, p.Detail, p.Identifier = untrusted.Text(p.Type), untrusted.Text(p.Detail), untrusted.Text(p.Identifier)
	if len(p.Subproblems) > 0 {
		subs := make([]acmeflow.Subproblem, len(p.Subproblems))
		for i, s := range p.Subproblems {
			subs[i] = acmeflow.Subproblem{Type: untrusted.Text(s.Type), Detail: untrusted.Text(s.Detail), Identifier: untrusted.Text(s.Identifier)}
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
		Code: d.Code, Title: d.Title, Command: d.Command, CommandArgs: d.Args, RetryAt: d.RetryAt,
		Challenge: d.Challenge, WebRoot: d.WebRoot, Port: d.Port,
		CA: d.CA, CARoot: d.CARoot, Responder: d.Responder,
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
func storedValidator(v acmeflow.ValidatorRequest) string {
	if v.Answered {
		return untrusted.Text(v.Remote)
	}
	why := untrusted.Text(v.Note)
	if why == "" {
		why = fmt.Sprintf("status %d", v.Status)
	}
	return untrusted.Text(v.Remote) + " (not answered: " + why + ")"
}

// ValidatorsFromFailure rebuilds the validator requests kept in a stored
// failure (Failure.Validators), enough for Diagnose to reason from.
func ValidatorsFromFailure(f store.Failure) []acmeflow.ValidatorRequest {
	out := []acmeflow.ValidatorRequest{}
	for _, s := range f.Validators {
		remote, note, unanswered := strings.Cut(s, " (not answered: ")
		out = append(out, acmeflow.ValidatorRequest{Challenge: f.Challenge, Remote: remote, Answered: !unanswered, Note: strings.TrimSuffix(note, ")")})
	}
	return out
}

// ErrorFromFailure rebuilds an engine error from a stored failure, so a
// later Diagnose (doctor, with fresh evidence) reasons from the same facts.
func ErrorFromFailure(f store.Failure) *acmeflow.Error {
	e := &acmeflow.Error{Step: acmeflow.Step(f.Step)}
	if f.Problem != "" {
		short := strings.TrimPrefix(f.Problem, acmeflow.ProblemNS)
		detail := strings.TrimPrefix(f.Detail, short+": ")
		e.Problem = &acmeflow.Problem{Type: f.Problem, Detail: detail}
	} else {
		e.Err = errors.New(f.Detail)
	}
	return e
}

// Stored turns the record kept in renewal.json back into the diagnosis
// that was printed at the time.
func Stored(f store.Failure) Diagnosis {
	d := Diagnosis{
		Code: f.Code, Title: f.Title, Step: acmeflow.Step(f.Step), Cause: f.Cause, Fix: f.Fix, Command: f.Command, Args: f.CommandArgs,
		Retryable: f.Retryable, Evidence: f.Evidence, RetryAt: f.RetryAt,
		Challenge: f.Challenge, WebRoot: f.WebRoot, Port: f.Port,
		CA: f.CA, CARoot: f.CARoot, Responder: f.Responder,
	}
	switch {
	case !f.RetryAt.IsZero():
		d.Retry = "not before " + f.RetryAt.UTC().Format("2006-01-02 15:04:05 UTC")
	case f.Retryable:
		d.Retry = "the cause looked transient"
	default:
		d.Retry = "after the fix"
	}
	if e := ErrorFromFailure(f); e.Problem != nil {
		d.Problem = e.Problem
	} else {
		d.Error = f.Detail
	}
	return d
}
