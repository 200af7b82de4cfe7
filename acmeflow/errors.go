package acmeflow

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/acme/api"
)

// ACME problem types (RFC 8555 section 6.7) that the engine and the
// diagnosis catalogue act on.
const (
	ProblemNS                    = "urn:ietf:params:acme:error:"
	ProblemBadNonce              = ProblemNS + "badNonce"
	ProblemRateLimited           = ProblemNS + "rateLimited"
	ProblemRejectedIdentifier    = ProblemNS + "rejectedIdentifier"
	ProblemUnauthorized          = ProblemNS + "unauthorized"
	ProblemConnection            = ProblemNS + "connection"
	ProblemTLS                   = ProblemNS + "tls"
	ProblemBadCSR                = ProblemNS + "badCSR"
	ProblemInvalidProfile        = ProblemNS + "invalidProfile"
	ProblemServerInternal        = ProblemNS + "serverInternal"
	ProblemAccountDoesNotExist   = ProblemNS + "accountDoesNotExist"
	ProblemMalformed             = ProblemNS + "malformed"
	ProblemUnsupportedIdentifier = ProblemNS + "unsupportedIdentifier"
)

// Problem is an ACME problem document (RFC 7807 / RFC 8555 section 6.7).
type Problem struct {
	Type        string       `json:"type"`
	Detail      string       `json:"detail"`
	Status      int          `json:"status,omitempty"`
	Identifier  string       `json:"identifier,omitempty"`
	Subproblems []Subproblem `json:"subproblems,omitempty"`
	// RetryAfter is from the response's Retry-After header, when it had one.
	RetryAfter time.Duration `json:"retry_after,omitempty"`
}

// Subproblem is one identifier's part of a compound problem.
type Subproblem struct {
	Type       string `json:"type"`
	Detail     string `json:"detail"`
	Identifier string `json:"identifier,omitempty"`
}

// ShortType is the problem type without the ACME namespace: "unauthorized".
func (p *Problem) ShortType() string {
	if p == nil {
		return ""
	}
	return strings.TrimPrefix(p.Type, ProblemNS)
}

func (p *Problem) String() string {
	if p == nil {
		return ""
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s", p.ShortType(), p.Detail)
	for _, s := range p.Subproblems {
		fmt.Fprintf(&b, "; %s: %s", strings.TrimPrefix(s.Type, ProblemNS), s.Detail)
		if s.Identifier != "" {
			fmt.Fprintf(&b, " (%s)", s.Identifier)
		}
	}
	// The CA's words (which may quote what a validator got): printed,
	// logged and stored, never raw (issue 12).
	return Printable(b.String())
}

// Error is every failure of an issuance: the step, the ACME problem when
// the CA sent one, the underlying error, and what our responders saw, so the
// diagnosis can reason from local evidence and not only from the CA's text.
type Error struct {
	Step       Step
	Identifier string
	Problem    *Problem
	Err        error
	// Seen lists the validator requests that reached our responder during
	// this run, in order: the bounded record of responder_limits.go.
	Seen []ValidatorRequest
	// SeenDropped counts the requests past that record; SeenRefused the
	// connections the responder's limits refused or closed.
	SeenDropped, SeenRefused int
}

func (e *Error) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s", e.Step)
	if e.Identifier != "" {
		fmt.Fprintf(&b, " (%s)", e.Identifier)
	}
	b.WriteString(": ")
	switch {
	case e.Problem != nil:
		b.WriteString(e.Problem.String())
	case e.Err != nil:
		b.WriteString(e.Err.Error())
	default:
		b.WriteString("failed")
	}
	return Printable(b.String())
}

func (e *Error) Unwrap() error { return e.Err }

// ProblemOf returns the ACME problem inside err, if any.
func ProblemOf(err error) *Problem {
	var e *Error
	if errors.As(err, &e) && e.Problem != nil {
		return e.Problem
	}
	var pd *acme.ProblemDetails
	if errors.As(err, &pd) {
		return fromLego(pd)
	}
	return nil
}

func fromLego(pd *acme.ProblemDetails) *Problem {
	if pd == nil {
		return nil
	}
	p := &Problem{Type: pd.Type, Detail: pd.Detail, Status: pd.HTTPStatus}
	for _, s := range pd.SubProblems {
		p.Subproblems = append(p.Subproblems, Subproblem{Type: s.Type, Detail: s.Detail, Identifier: s.Identifier.Value})
	}
	return p
}

// stepErr wraps err as an *Error of step, lifting an ACME problem out of
// lego's error types when there is one.
func stepErr(step Step, ident string, err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	out := &Error{Step: step, Identifier: ident, Err: err}
	var pd *acme.ProblemDetails
	if errors.As(err, &pd) {
		out.Problem = fromLego(pd)
	}
	var rl *acme.RateLimitedError
	if errors.As(err, &rl) && out.Problem != nil {
		if d, perr := api.ParseRetryAfter(rl.RetryAfter); perr == nil {
			out.Problem.RetryAfter = d
		}
	}
	return out
}

// ErrNoShortlived is returned when the CA's directory does not offer the
// shortlived profile, the only one under which Let's Encrypt issues for IP
// addresses (docs/letsencrypt.md).
var ErrNoShortlived = errors.New("the CA does not offer the shortlived profile")
