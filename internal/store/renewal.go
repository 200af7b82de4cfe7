package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/untrusted"
)

const renewalFile = "renewal.json"

// RenewalSchema is the version of renewal.json this build writes. A file
// from a newer ipcert is refused rather than half-understood and rewritten.
const RenewalSchema = 1

// Renewal is certs/<name>/renewal.json: everything a later `ipcert renew`
// needs to repeat the issuance without asking anything, plus the renewal
// state (ARI, backoff, last result) that status and doctor show.
type Renewal struct {
	Schema int    `json:"schema"`
	Name   string `json:"name"`

	// What to issue and how (issue's flags, the wizard's answers): the
	// one description of an issuance, its JSON names inline.
	spec.Issuance

	// What the CA choice resolved to when it was issued.
	Directory string `json:"directory"` // the ACME directory URL used
	Profile   string `json:"profile"`   // shortlived

	// Revoked is set by ipcert revoke: the certificate of that serial was
	// revoked, and while it is the current one the next renew replaces it.
	Revoked *Revocation `json:"revoked,omitempty"`

	// The current certificate.
	Current   int       `json:"current_version,omitempty"`
	Serial    string    `json:"serial,omitempty"`
	NotBefore time.Time `json:"not_before,omitzero"`
	NotAfter  time.Time `json:"not_after,omitzero"`
	CertID    string    `json:"ari_cert_id,omitempty"` // RFC 9773 unique identifier, for ARI and replaces
	// SPKIPin is the current key's pin (base64 SHA-256 of its
	// SubjectPublicKeyInfo, RFC 7469 / RFC 7858's pin-sha256), and
	// PinSince when it became this one.
	SPKIPin  string    `json:"spki_pin,omitempty"`
	PinSince time.Time `json:"pin_since,omitzero"`

	// Renewal state.
	ARI         *ARIState `json:"ari,omitempty"`
	RenewAt     time.Time `json:"renew_at,omitzero"` // the chosen moment to renew
	LastAttempt time.Time `json:"last_attempt,omitzero"`
	LastSuccess time.Time `json:"last_success,omitzero"`
	Failures    int       `json:"consecutive_failures,omitempty"`
	NextAttempt time.Time `json:"next_attempt,omitzero"` // backoff after failures
	// NextAttemptReason says why NextAttempt is when it is (the backoff,
	// the CA's Retry-After, the cap before expiry), for status and doctor.
	NextAttemptReason string   `json:"next_attempt_reason,omitempty"`
	LastError         *Failure `json:"last_error,omitempty"`
}

// Revocation is a revoked certificate of this name.
type Revocation struct {
	Serial string    `json:"serial"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// RevokedCurrent says the current certificate is the one revoked.
func (r *Renewal) RevokedCurrent() bool {
	return r.Revoked != nil && r.Serial != "" && r.Revoked.Serial == r.Serial
}

// ARIState is what the CA's renewalInfo said (RFC 9773).
type ARIState struct {
	WindowStart    time.Time `json:"window_start"`
	WindowEnd      time.Time `json:"window_end"`
	ExplanationURL string    `json:"explanation_url,omitempty"`
	CheckedAt      time.Time `json:"checked_at"`
	NextCheck      time.Time `json:"next_check"` // from Retry-After
	// Error is why the last check failed (then the window is the previous
	// answer, or zero, and renewal falls back to half the lifetime).
	Error string `json:"error,omitempty"`
}

// Failure is the stored form of a failed issuance or renewal: enough for
// `status` and `doctor` to explain it later.
type Failure struct {
	Time      time.Time `json:"time"`
	Step      string    `json:"step"`
	Problem   string    `json:"problem,omitempty"` // ACME problem type, e.g. urn:ietf:params:acme:error:connection
	Detail    string    `json:"detail"`
	Cause     string    `json:"cause,omitempty"`
	Fix       string    `json:"fix,omitempty"`
	Retryable bool      `json:"retryable"`
	// Evidence is what the responder and the checks saw, one line each.
	Evidence []string `json:"evidence,omitempty"`
	// Set from the diagnosis (diagnosis.Diagnosis.Failure): a stable code,
	// a one-line title, the command of the fix, when a retry is allowed, and
	// the remote address of each validator request our responder saw (so
	// doctor can reason from them later; empty in webroot mode).
	Code    string `json:"code,omitempty"`
	Title   string `json:"title,omitempty"`
	Command string `json:"command,omitempty"`
	// CommandArgs are the words of Command (diagnosis.Cmd).
	CommandArgs []string  `json:"command_args,omitempty"`
	RetryAt     time.Time `json:"retry_at,omitzero"`
	Validators  []string  `json:"validators,omitempty"`
	// The attempt's own challenge settings: they may differ from the
	// certificate's (an issue with --webroot that failed).
	Challenge spec.Challenge `json:"challenge,omitempty"`
	WebRoot   string         `json:"webroot,omitempty"`
	Port      int            `json:"port,omitempty"` // where the validator knocked
	// The attempt's CA (staging, production, local or a URL), the root
	// trusted for a URL CA, and the responder's listen address: what a
	// first issuance that failed, with no renewal.json, was asked with.
	CA        spec.CAChoice `json:"ca,omitempty"`
	CARoot    string        `json:"ca_root,omitempty"`
	Responder string        `json:"responder,omitempty"`
}

// Attempted is the issuance the failed attempt was asked for, as far as
// the record keeps it (the challenge, the web root, the CA and its root,
// the responder's address), for the addresses idents: what doctor
// re-checks when a first issuance failed and there is no renewal.json.
func (f *Failure) Attempted(idents []string) spec.Issuance {
	is := spec.Issuance{Identifiers: idents, CA: f.CA, CARoot: f.CARoot, Challenge: f.Challenge, WebRoot: f.WebRoot}
	if f.Challenge == spec.TLSALPN01 {
		is.TLSListen = f.Responder
	} else {
		is.HTTPListen = f.Responder
	}
	return is
}

// Escape makes the record's texts safe to print (untrusted.Text): they
// quote the CA and the validators, and a record written by an older
// version, or by hand, may hold them raw. Idempotent: escaped text stays
// as it is.
func (f *Failure) Escape() {
	if f == nil {
		return
	}
	for _, p := range []*string{&f.Step, &f.Problem, &f.Detail, &f.Cause, &f.Fix, &f.Code, &f.Title, &f.Command, &f.WebRoot, &f.CARoot, &f.Responder} {
		*p = untrusted.Text(*p)
	}
	f.Challenge = spec.Challenge(untrusted.Text(string(f.Challenge)))
	f.CA = spec.CAChoice(untrusted.Text(string(f.CA)))
	for _, ss := range []*[]string{&f.Evidence, &f.Validators} {
		if *ss != nil {
			*ss = untrusted.Strings(*ss)
		}
	}
}

// RenewalError says renewal.json cannot be used, and why.
type RenewalError struct {
	Path string
	Err  error
}

func (e *RenewalError) Error() string {
	return fmt.Sprintf("%s: %v", e.Path, e.Err)
}
func (e *RenewalError) Unwrap() error { return e.Err }

// LoadRenewal reads and checks certs/<name>/renewal.json.
func (s *Store) LoadRenewal(name string) (*Renewal, error) {
	if err := ValidName(name); err != nil {
		return nil, err
	}
	path := filepath.Join(s.certDir(name), renewalFile)
	data, err := s.readTrusted(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no certificate named %q in %s (ipcert status lists them)", name, s.root)
		}
		return nil, err
	}
	r, err := ParseRenewal(data)
	if err != nil {
		return nil, &RenewalError{Path: path, Err: err}
	}
	if r.Name != name {
		return nil, &RenewalError{Path: path, Err: fmt.Errorf("it names certificate %q, but lives in %q; fix the \"name\" field or move the folder", r.Name, name)}
	}
	return r, nil
}

// ParseRenewal decodes and validates a renewal.json document.
func ParseRenewal(data []byte) (*Renewal, error) {
	var r Renewal
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("not valid JSON (%v); restore it from a backup, or issue again with ipcert issue", err)
	}
	switch {
	case r.Schema > RenewalSchema:
		return nil, fmt.Errorf("written by a newer ipcert (schema %d, this one reads %d); upgrade ipcert", r.Schema, RenewalSchema)
	case r.Schema < 1:
		return nil, errors.New(`has no "schema" field; it was not written by ipcert, or was edited by hand`)
	case ValidName(r.Name) != nil:
		return nil, fmt.Errorf(`bad "name": %v`, ValidName(r.Name))
	case len(r.Identifiers) == 0:
		return nil, errors.New(`"identifiers" is empty; it must list the certificate's IP addresses`)
	case r.Directory == "":
		return nil, errors.New(`"directory" (the ACME directory URL) is empty`)
	case r.Challenge.Check() != nil:
		return nil, fmt.Errorf(`"challenge" is %q; it must be http-01 or tls-alpn-01`, r.Challenge)
	case r.Profile != "" && r.Profile != "shortlived":
		return nil, fmt.Errorf(`"profile" is %q; certificates for IP addresses exist only under "shortlived"`, r.Profile)
	case r.Failures < 0:
		return nil, fmt.Errorf(`"consecutive_failures" is %d; it cannot be negative (set it to 0)`, r.Failures)
	}
	if r.CA != "" {
		// internal/spec's rule, the one issue's flags and the wizard go by.
		if _, err := r.CA.Kind(); err != nil {
			return nil, fmt.Errorf(`"ca" is %q; it must be staging, production, local or an https:// ACME directory URL (%v)`, r.CA, err)
		}
	}
	// What came from outside is printed by status, doctor and renew.
	r.LastError.Escape()
	r.NextAttemptReason = untrusted.Text(r.NextAttemptReason)
	if r.ARI != nil {
		r.ARI.Error, r.ARI.ExplanationURL = untrusted.Text(r.ARI.Error), untrusted.Text(r.ARI.ExplanationURL)
	}
	for _, id := range r.Identifiers {
		// The identifiers go straight into an ACME order: only canonical
		// IP literals (RFC 8738), as ipcert wrote them.
		a, err := netip.ParseAddr(id)
		if err != nil || a.Zone() != "" || a.Is4In6() || a.String() != id {
			return nil, fmt.Errorf(`"identifiers" has %q, which is not a canonical IP address`, id)
		}
	}
	if spec.KeyType(r.KeyType) != nil {
		return nil, fmt.Errorf(`"key_type" is %q; use %s`, r.KeyType, strings.Join(spec.KeyTypes, ", "))
	}
	return &r, nil
}

// SaveRenewal writes renewal.json atomically.
func (s *Store) SaveRenewal(r *Renewal) error {
	if err := ValidName(r.Name); err != nil {
		return err
	}
	if r.Schema == 0 {
		r.Schema = RenewalSchema
	}
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	if err := mkdirPrivate(s.certDir(r.Name)); err != nil {
		return err
	}
	// Every renewal.json write happens under the store lock and is noted
	// first (index.go), so that renew's index never lags behind it.
	if !s.holdsLock() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		unlock, err := s.Lock(ctx, true)
		cancel()
		if err != nil {
			return fmt.Errorf("save renewal.json: %w", err)
		}
		defer unlock()
	}
	if err := s.noteChange(r.Name); err != nil {
		return err
	}
	return writeFile(filepath.Join(s.certDir(r.Name), renewalFile), append(data, '\n'), fileMode)
}

// UpdateRenewal is the locked read-modify-write of renewal.json: it takes
// the store lock (waiting up to 30 s for a running renew), reads the
// file, lets change edit it, and writes it back when change reports a
// change. change runs under the lock, so it may touch the certificate's
// files too.
func (s *Store) UpdateRenewal(ctx context.Context, name string, change func(r *Renewal) (bool, error)) error {
	if !s.holdsLock() {
		lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		unlock, err := s.Lock(lctx, true)
		cancel()
		if err != nil {
			return err
		}
		defer unlock()
	}
	r, err := s.LoadRenewal(name)
	if err != nil {
		return err
	}
	changed, err := change(r)
	if err != nil || !changed {
		return err
	}
	return s.SaveRenewal(r)
}

// KeepSettings carries over into tmpl what an earlier issuance or `ipcert
// snippet` configured for the certificate name (deploy hooks, reload,
// HAProxy's combined file, the address to verify) where tmpl leaves them
// unset: issuing again must not silently undo the deployment. A
// renewal.json that cannot be read is copied aside first; then backup is
// its path and err why it could not be read.
func (s *Store) KeepSettings(name string, tmpl *Renewal) (backup string, err error) {
	if !s.Exists(name) {
		return "", nil
	}
	prev, err := s.LoadRenewal(name)
	if err != nil {
		rel := filepath.Join("certs", name, renewalFile)
		if data, rerr := os.ReadFile(filepath.Join(s.root, rel)); rerr == nil {
			b := fmt.Sprintf("%s.broken-%d", rel, time.Now().Unix())
			if werr := s.WriteFile(b, data, fileMode); werr == nil {
				backup = filepath.Join(s.root, b)
			}
		}
		return backup, err
	}
	if len(tmpl.DeployHooks) == 0 {
		tmpl.DeployHooks = prev.DeployHooks
	}
	if tmpl.Reload == "" {
		tmpl.Reload = prev.Reload
	}
	tmpl.Combined = tmpl.Combined || prev.Combined
	tmpl.MapPorts = tmpl.MapPorts || prev.MapPorts
	if tmpl.VerifyAddr == "" {
		tmpl.VerifyAddr = prev.VerifyAddr
	}
	return "", nil
}
