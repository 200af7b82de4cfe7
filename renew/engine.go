package renew

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
)

// CAs is how the real Issuer, Rehearsal and ARI reach a CA: the stored
// choice (Renewal.CA) goes through cachoice.Open, which for "local" starts
// a fresh Pebble (it forgets accounts; the engine registers again).
type CAs struct {
	Store     *store.Store
	UserAgent string
	Now       func() time.Time
	Log       io.Writer // the local CA's log; nil discards
	// Events receives the engine's progress for the named certificate.
	Events func(name string, ev acmeflow.Event)

	// ValidationHooks makes the --pre-hook / --post-hook runner of r (deploy
	// runs the commands; renew does not import it).
	ValidationHooks func(r *store.Renewal) func(ctx context.Context) (func(), error)

	// Shared, when set, renews a certificate of a cluster (r.Cluster):
	// called before ordering with the request to complete (the answers go
	// to every machine), it returns the issuance to use instead when
	// another machine renewed meanwhile (non-nil), the step after a
	// successful order (publishing it to the other machines), and the
	// release of the cluster's lock.
	Shared func(ctx context.Context, r *store.Renewal, req *acmeflow.Request) (SharedRun, error)

	// clients: one HTTP client per CA root for the whole run.
	clients cachoice.Clients
}

// SharedRun is one renewal of a cluster's certificate (CAs.Shared).
type SharedRun struct {
	// Done is the renewal record when another machine renewed the
	// certificate while this one waited for the lock (installed here
	// already): nothing is ordered.
	Done *store.Renewal
	// Publish hands the new certificate to the other machines, fenced by
	// the cluster's lock.
	Publish func(ctx context.Context, iss *acmeflow.Issued) error
	Release func()
}

// Close closes the idle connections of the run's HTTP clients.
func (c *CAs) Close() { c.clients.Close() }

func (c *CAs) engine(st *store.Store) *acmeflow.Engine {
	return &acmeflow.Engine{Store: st, UserAgent: c.UserAgent, Now: c.Now}
}

// open resolves r's CA. The local CA is given the stored responder host
// with a fresh port: the old port may be taken by now.
func (c *CAs) open(choice spec.CAChoice, r *store.Renewal) (*cachoice.CA, error) {
	o := cachoice.OptionsFor(&r.Issuance)
	o.Log, o.Clients = c.Log, &c.clients
	if choice != r.CA {
		o.RootFile = "" // the rehearsal's CA: Let's Encrypt's roots are the system's
	}
	if choice == cachoice.Local {
		o.HTTPListen, o.TLSListen = anyPort(r.HTTPListen), anyPort(r.TLSListen)
	}
	ca, err := cachoice.Open(choice, o)
	if err != nil {
		return nil, fmt.Errorf("CA %q from renewal.json: %w", choice, err)
	}
	return ca, nil
}

func anyPort(listen string) string {
	host, _, err := net.SplitHostPort(listen)
	if err != nil || host == "" {
		return ""
	}
	return net.JoinHostPort(host, "0")
}

// request repeats the stored issuance: same challenge, responder, web
// root, key type and profile. AgreeTOS is true because the user agreed
// when the certificate was first issued, and a test CA may ask again.
func (c *CAs) request(r *store.Renewal, idents []netip.Addr, ca *cachoice.CA) acmeflow.Request {
	req := acmeflow.RequestFor(&r.Issuance, idents)
	req.AgreeTOS, req.Profile = true, r.Profile
	ca.Apply(&req)
	if len(r.PreHooks)+len(r.PostHooks) > 0 && c.ValidationHooks != nil {
		req.AroundValidation = c.ValidationHooks(r)
	}
	if r.EABKid != "" {
		// Needed only if the account must be registered again; a file
		// that cannot be read then makes registration fail with its own
		// message (the stored account is used otherwise).
		if k, err := readEABKey(r.EABHMACFile); err == nil {
			req.EABKid, req.EABHMAC = r.EABKid, k
		}
	}
	if r.ReuseKey && !(r.RevokedCurrent() && r.Revoked.Reason == "keyCompromise") {
		// The key clients pin stays (--reuse-key); without a readable one
		// the renewal makes a new key rather than none, and a key revoked
		// as compromised is never certified again (the CA refuses it).
		if v, err := c.Store.CurrentVersion(r.Name); err == nil {
			if k, err := os.ReadFile(filepath.Join(v.Dir, store.KeyFile)); err == nil {
				req.ReuseKey = k
			}
		}
	}
	if c.Events != nil {
		name := r.Name
		req.Events = func(ev acmeflow.Event) { c.Events(name, ev) }
	}
	return req
}

// NewIssuer returns the Issuer that renews for real.
func NewIssuer(c *CAs) Issuer { return engineIssuer{c} }

type engineIssuer struct{ c *CAs }

func (e engineIssuer) Issue(ctx context.Context, r *store.Renewal, idents []netip.Addr, replaces string) (*store.Renewal, error) {
	ca, err := e.c.open(r.CA, r)
	if err != nil {
		return nil, err
	}
	defer ca.Close()
	req := e.c.request(r, idents, ca)
	req.Replaces = replaces
	var shared SharedRun
	if r.Cluster {
		if e.c.Shared == nil {
			return nil, errors.New("this certificate is a cluster's (issue --cluster) but this machine is in no cluster: run ipcert cluster join, or issue it again without --cluster")
		}
		if shared, err = e.c.Shared(ctx, r, &req); err != nil {
			return nil, fmt.Errorf("cluster: %w", err)
		}
		defer shared.Release()
		if shared.Done != nil {
			return shared.Done, nil
		}
	}
	var root []byte
	if ca.Local {
		root = ca.RootPEM
	}
	eng := e.c.engine(e.c.Store)
	opts := acmeflow.IssueOptions{Name: r.Name, Renewal: r, RootPEM: root, HaveLock: true}
	iss, err := eng.Issue(ctx, req, opts)
	if err != nil && replaces != "" && orderRefused(err) && ctx.Err() == nil {
		// A CA may refuse `replaces` for a certificate it cannot match to
		// this account (the account was registered again, or the CA lost
		// track); a renewal without it still beats no renewal.
		if req.Events != nil {
			req.Events(acmeflow.Event{Time: time.Now(), Kind: acmeflow.EventWarning, Step: acmeflow.StepOrder,
				Message: fmt.Sprintf("the CA refused the order as a replacement of %s (%v); ordering again without replaces (no rate-limit exemption)", replaces, err)})
		}
		req.Replaces = ""
		iss, err = eng.Issue(ctx, req, opts)
	}
	if err != nil {
		return nil, err
	}
	if shared.Publish != nil {
		if err := shared.Publish(ctx, iss); err != nil {
			return nil, fmt.Errorf("renewed here, but not shared with the other machines: %w", err)
		}
	}
	return iss.Renewal, nil
}

// orderRefused is a newOrder refusal that is not about rate limits or the
// identifiers themselves.
func orderRefused(err error) bool {
	var ae *acmeflow.Error
	if !errors.As(err, &ae) || ae.Step != acmeflow.StepOrder || ae.Problem == nil {
		return false
	}
	switch ae.Problem.Type {
	case acmeflow.ProblemRateLimited, acmeflow.ProblemRejectedIdentifier, acmeflow.ProblemUnsupportedIdentifier:
		return false
	}
	return true
}

// NewRehearsal returns the Issuer of --dry-run: production certificates
// rehearse against Let's Encrypt staging, local ones against a fresh local
// CA, others against their own CA. The account and everything else go to
// a temporary store that is removed afterwards; the real store is only
// read (to reuse a stored account of the rehearsal CA).
func NewRehearsal(c *CAs) Issuer { return rehearsal{c} }

type rehearsal struct{ c *CAs }

// RehearsalCA is the CA a --dry-run of a certificate from choice uses.
func RehearsalCA(choice spec.CAChoice) spec.CAChoice {
	if choice == cachoice.Production {
		return cachoice.Staging
	}
	return choice
}

func (h rehearsal) Issue(ctx context.Context, r *store.Renewal, idents []netip.Addr, _ string) (*store.Renewal, error) {
	choice := RehearsalCA(r.CA)
	ca, err := h.c.open(choice, r)
	if err != nil {
		return nil, err
	}
	defer ca.Close()
	tmp, err := os.MkdirTemp("", "ipcert-dry-run-")
	if err != nil {
		return nil, fmt.Errorf("temporary store for the rehearsal: %w", err)
	}
	defer os.RemoveAll(tmp)
	ts, err := store.Open(tmp)
	if err != nil {
		return nil, err
	}
	caKey := store.CAKey(ca.Directory, ca.CAKey)
	if a, key, err := h.c.Store.LoadAccount(caKey, "default"); err == nil && a.Directory == ca.Directory {
		_ = ts.SaveAccount(caKey, "default", a, key)
	}
	req := h.c.request(r, idents, ca)
	cert, err := h.c.engine(ts).Obtain(ctx, req)
	if err != nil {
		return nil, err
	}
	out := *r
	out.CA = choice
	out.Directory = ca.Directory
	out.Identifiers = canonical(idents)
	out.Serial = fmt.Sprintf("%x", cert.Leaf.SerialNumber)
	out.NotBefore, out.NotAfter = cert.Leaf.NotBefore.UTC(), cert.Leaf.NotAfter.UTC()
	out.CertID = cert.CertID
	out.Current = 0
	return &out, nil
}

// NewARI returns the ARISource that asks r's CA (cachoice.Open, no local CA).
func NewARI(c *CAs) ARISource { return engineARI{c} }

type engineARI struct{ c *CAs }

func (a engineARI) RenewalInfo(ctx context.Context, r *store.Renewal) (*acmeflow.RenewalInfo, error) {
	if r.CA == cachoice.Local {
		return nil, errors.New("the local test CA of an earlier run is gone; it cannot be asked")
	}
	ca, err := a.c.open(r.CA, r)
	if err != nil {
		return nil, err
	}
	defer ca.Close()
	req := acmeflow.Request{Directory: r.Directory}
	ca.Apply(&req)
	// The stored directory is what the certificate came from; the choice
	// resolves to the same URL unless Let's Encrypt moved it.
	if r.Directory != "" {
		req.Directory = r.Directory
	}
	return a.c.engine(a.c.Store).RenewalInfo(ctx, req, r.CertID)
}

// readEABKey reads an EAB MAC key file: one line of base64url.
func readEABKey(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimSpace(string(b)), nil
}
