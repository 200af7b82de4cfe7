package acmeflow

import (
	"context"
	"fmt"
	"time"

	"github.com/ipcert/ipcert/internal/store"
)

// KeepVersions is how many certificate versions the store keeps per name:
// enough to roll back by hand after a bad renewal, few enough to stay small
// with a new version every ~80 hours.
const KeepVersions = 5

// IssueOptions says where and how to keep an obtained certificate.
type IssueOptions struct {
	Name string // certificate name; default store.NameFor(identifiers)
	// Renewal is the template for renewal.json (CA choice, hooks...);
	// identifiers, challenge settings and the new certificate's facts are
	// filled in by Issue. Nil starts from an empty record.
	Renewal *store.Renewal
	// RootPEM is the issuing root to keep beside the version (test CAs).
	RootPEM []byte
	// HaveLock says the caller already holds the store lock (renew works
	// on many certificates under one lock).
	HaveLock bool
	// LockWait bounds the wait for another run's lock; 0 fails at once
	// with a *store.LockedError.
	LockWait time.Duration
}

// Issued is a stored certificate.
type Issued struct {
	Name    string
	Version store.Version
	Cert    *Certificate
	Renewal *store.Renewal
}

// Issue obtains a certificate and stores it as the new current version of
// its name. Nothing in certs/<name> changes unless the whole certificate,
// its key and chain were written: a failed or interrupted run leaves the
// previous current untouched.
func (e *Engine) Issue(ctx context.Context, req Request, opts IssueOptions) (*Issued, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	name := opts.Name
	if name == "" {
		name = store.NameFor(AddrStrings(req.Identifiers))
	}
	if err := store.ValidName(name); err != nil {
		return nil, &Error{Step: StepStore, Err: err}
	}
	if !opts.HaveLock {
		lctx, cancel := ctx, context.CancelFunc(func() {})
		if opts.LockWait > 0 {
			lctx, cancel = context.WithTimeout(ctx, opts.LockWait)
		}
		unlock, err := e.Store.Lock(lctx, opts.LockWait > 0)
		cancel()
		if err != nil {
			return nil, &Error{Step: StepStore, Err: err}
		}
		defer unlock()
	}
	cert, err := e.Obtain(ctx, req)
	if err != nil {
		return nil, err
	}
	em := &emitter{fn: req.Events, now: e.now}
	em.step(StepStore, "Storing the certificate as %s", name)

	// The CA's work is done; a cancellation now would only waste the
	// certificate, so finish writing it.
	if ctx.Err() != nil {
		em.emit(Event{Kind: EventWarning, Step: StepStore, Message: "interrupted after the certificate was issued; storing it before stopping"})
	}
	combined := opts.Renewal != nil && opts.Renewal.Combined
	n, err := e.Store.SaveVersion(name, store.CertFiles{
		Cert: cert.CertPEM, Chain: cert.ChainPEM, FullChain: cert.FullChainPEM, PrivKey: cert.KeyPEM,
		Root: opts.RootPEM, Combined: combined,
	})
	if err != nil {
		return nil, &Error{Step: StepStore, Err: e.Store.Explain(fmt.Errorf("write the new version: %w", err))}
	}
	r := &store.Renewal{}
	if opts.Renewal != nil {
		c := *opts.Renewal
		r = &c
	}
	r.Schema = store.RenewalSchema
	r.Name = name
	r.Identifiers = AddrStrings(req.Identifiers)
	r.Directory = req.Directory
	r.Profile = req.Profile
	if r.Profile == "" {
		r.Profile = ProfileShortlived
	}
	r.Challenge = req.Challenge
	r.WebRoot = req.WebRoot
	r.HTTPListen = req.HTTPListen
	r.TLSListen = req.TLSListen
	r.KeyType, _ = GenerateKeyCheck(req.KeyType)
	r.Email = req.Email
	r.Current = n
	r.Serial = fmt.Sprintf("%x", cert.Leaf.SerialNumber)
	r.NotBefore = cert.Leaf.NotBefore.UTC()
	r.NotAfter = cert.Leaf.NotAfter.UTC()
	r.CertID = cert.CertID
	now := e.now().UTC()
	if pin := SPKIPin(cert.Leaf); pin != r.SPKIPin {
		if r.SPKIPin != "" {
			// Said where it is asked for (status: "since"), not as a
			// warning at every renewal of every certificate.
			em.info(StepStore, "", "the key's pin is now pin-sha256 %s (was %s)", pin, r.SPKIPin)
		}
		r.SPKIPin, r.PinSince = pin, now
	}
	r.LastAttempt = now
	r.LastSuccess = now
	r.Failures = 0
	r.NextAttempt = time.Time{}
	r.LastError = nil
	r.ARI = nil
	r.RenewAt = time.Time{}
	// current first, then renewal.json: if we die between the two, current
	// names the new pair and renewal.json still describes the older one,
	// which only makes the next renewal come early, never late.
	if err := e.Store.Activate(name, n); err != nil {
		return nil, &Error{Step: StepStore, Err: e.Store.Explain(fmt.Errorf("make version %d current: %w", n, err))}
	}
	if err := e.Store.SaveRenewal(r); err != nil {
		return nil, &Error{Step: StepStore, Err: e.Store.Explain(fmt.Errorf("write renewal.json: %w", err))}
	}
	if err := e.Store.ClearFirstFailure(name); err != nil {
		em.emit(Event{Kind: EventWarning, Step: StepStore, Message: "could not remove the record of an earlier failure: " + err.Error()})
	}
	if err := e.Store.Prune(name, KeepVersions); err != nil {
		em.emit(Event{Kind: EventWarning, Step: StepStore, Message: "could not remove old versions: " + err.Error()})
	}
	v, err := e.Store.CurrentVersion(name)
	if err != nil {
		return nil, &Error{Step: StepStore, Err: err}
	}
	em.emit(Event{Kind: EventDone, Step: StepStore, Message: fmt.Sprintf("Certificate %s version %d is current, valid until %s", name, n, r.NotAfter.Format(time.RFC3339))})
	return &Issued{Name: name, Version: v, Cert: cert, Renewal: r}, nil
}

// RecordFailure keeps a failed attempt in renewal.json when the name is
// managed, else (a first issuance) in the store's failures/ under the name
// it would have had, so that status and doctor can explain it later. It
// never touches the certificate versions.
func (e *Engine) RecordFailure(name string, f store.Failure) error {
	if !e.Store.Exists(name) {
		return e.Store.SaveFirstFailure(name, f)
	}
	return e.Store.UpdateRenewal(context.Background(), name, func(r *store.Renewal) (bool, error) {
		r.LastAttempt = f.Time
		r.LastError = &f
		return true, nil
	})
}
