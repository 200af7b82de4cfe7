package acmeflow

import (
	"fmt"
	"strings"
	"time"

	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/untrusted"
)

// Step names a stage of an issuance. Errors and events carry it so that a
// UI can say where things stopped.
type Step string

const (
	StepAddress   Step = "address"   // checking the identifiers against the CA's policy
	StepDirectory Step = "directory" // fetching the ACME directory
	StepAccount   Step = "account"   // registering or reusing the account
	StepOrder     Step = "order"     // newOrder
	StepResponder Step = "responder" // starting our challenge responder
	StepChallenge Step = "challenge" // accepting the challenge, waiting for validation
	StepFinalize  Step = "finalize"  // sending the CSR, waiting for issuance
	StepDownload  Step = "download"  // fetching the certificate chain
	StepStore     Step = "store"     // writing the new version
)

// EventKind says what an Event reports.
type EventKind string

const (
	EventStep      EventKind = "step"      // a step started (Message says what)
	EventInfo      EventKind = "info"      // a step made progress
	EventValidator EventKind = "validator" // a validator reached our responder
	EventPoll      EventKind = "poll"      // a poll of an authorization or order
	EventWarning   EventKind = "warning"
	EventDone      EventKind = "done" // the certificate is stored
)

// Event is one item of the progress stream.
type Event struct {
	Time       time.Time `json:"time"`
	Kind       EventKind `json:"kind"`
	Step       Step      `json:"step"`
	Identifier string    `json:"identifier,omitempty"`
	Message    string    `json:"message"`
	// Validator requests: who asked, for what, and what we answered.
	Validator *ValidatorRequest `json:"validator,omitempty"`
}

func (e Event) String() string {
	if e.Validator != nil {
		return e.Validator.String()
	}
	return fmt.Sprintf("[%s] %s", e.Step, Printable(e.Message))
}

// ValidatorRequest is one request that reached our challenge responder.
// What arrived, and from where, is the best evidence there is when a
// validation fails (docs/letsencrypt.md: none at all means the packets never arrived).
type ValidatorRequest struct {
	Time      time.Time      `json:"time"`
	Challenge spec.Challenge `json:"challenge"`
	Remote    string         `json:"remote"` // the validator's address:port
	Local     string         `json:"local"`  // where it arrived
	Host      string         `json:"host,omitempty"`
	Path      string         `json:"path,omitempty"` // http-01
	SNI       string         `json:"sni,omitempty"`  // tls-alpn-01
	ALPN      []string       `json:"alpn,omitempty"` // tls-alpn-01
	UserAgent string         `json:"user_agent,omitempty"`
	Status    int            `json:"status,omitempty"` // the HTTP status we answered
	Answered  bool           `json:"answered"`         // we had the right answer for it
	Note      string         `json:"note,omitempty"`
}

func (v ValidatorRequest) String() string {
	// Everything here but the status came from the network: a request
	// path like /%1b]0;owned%07 must not retitle or clear the terminal
	// of whoever reads the log, now or when doctor replays it (issue 12).
	switch v.Challenge {
	case ChallengeTLSALPN01:
		ok := "answered"
		if !v.Answered {
			ok = "not answered: " + Printable(v.Note)
		}
		alpn := make([]string, len(v.ALPN))
		for i, p := range v.ALPN {
			alpn[i] = fmt.Sprintf("%q", p)
		}
		return fmt.Sprintf("validator %s -> %s: TLS SNI %q ALPN [%s], %s", Printable(v.Remote), Printable(v.Local), v.SNI, strings.Join(alpn, " "), ok)
	default:
		return fmt.Sprintf("validator %s -> %s: GET %s (Host %s) -> %d", Printable(v.Remote), Printable(v.Local), Printable(v.Path), Printable(v.Host), v.Status)
	}
}

// Printable is untrusted.Text: text from the network or a file made safe
// to print (controls, line breaks, bidi and invisible characters, invalid
// UTF-8 escaped; cut at untrusted.MaxText). The one implementation lives
// in internal/untrusted; this name stays for the engine's callers.
func Printable(s string) string {
	return untrusted.Text(s)
}

// PrintableLines is untrusted.Lines: Printable keeping line breaks and
// tabs, nothing cut, for whole blocks of text a command prints.
func PrintableLines(s string) string {
	return untrusted.Lines(s)
}
