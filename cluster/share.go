package cluster

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/internal/untrusted"
)

// lockTTL is how long a certificate's lock outlives a holder that stopped
// answering: longer than an order takes to be validated.
const lockTTL = 2 * time.Minute

// Issuance is one machine's order of a cluster's certificate, under the
// certificate's lock (Share).
type Issuance struct {
	s    *Store
	lock *Lock
	name string
	// Done is set when another machine renewed the certificate while this
	// one waited for the lock: it is installed here already, and nothing
	// is to be ordered.
	Done *store.Renewal
}

// Share takes the lock of the certificate name and prepares req so that
// every machine's agent answers the validators: the answers are published
// to the store and no responder starts here. If the cluster's version is
// newer than the one that was due here (notAfter), another machine renewed
// it meanwhile: it is installed locally instead and Issuance.Done says so.
// Release the issuance when done.
func (s *Store) Share(ctx context.Context, local *store.Store, name string, notAfter time.Time, req *acmeflow.Request) (*Issuance, error) {
	if _, err := s.CheckKey(ctx); err != nil {
		return nil, err
	}
	lock, err := s.Lock(ctx, name, lockTTL)
	if err != nil {
		return nil, err
	}
	in := &Issuance{s: s, lock: lock, name: name}
	if c, ok, err := s.Certificate(ctx, name); err != nil {
		in.Release()
		return nil, err
	} else if ok && !notAfter.IsZero() && c.NotAfter.After(notAfter) {
		r, _, err := InstallLocal(local, c)
		if err != nil {
			in.Release()
			return nil, err
		}
		in.Done = r
		return in, nil
	}
	if req.Challenge == acmeflow.ChallengeHTTP01 {
		if _, err := s.ProbeMachines(ctx); err != nil {
			in.Release()
			return nil, err
		}
	}
	req.PublishOnly = true
	req.Publish = func(ctx context.Context, challenge spec.Challenge, ident netip.Addr, token, keyAuth string) (func(), error) {
		id := token
		if challenge == acmeflow.ChallengeTLSALPN01 {
			id = ident.String()
		}
		// An answer lives no longer than an order's run (a shortlived
		// authorization lives 7 hours; nobody needs it after the run).
		release, err := s.PutChallenge(ctx, string(challenge), id, keyAuth, time.Hour)
		if err != nil {
			return nil, err
		}
		return func() { _ = release(context.Background()) }, nil
	}
	return in, nil
}

// Publish writes the new certificate for every machine, fenced by the
// lock: it returns the cluster's version number.
func (in *Issuance) Publish(ctx context.Context, iss *acmeflow.Issued) (int, error) {
	prev, _, err := in.s.Certificate(ctx, in.name)
	if err != nil {
		return 0, err
	}
	key, err := os.ReadFile(filepath.Join(iss.Version.Dir, store.KeyFile))
	if err != nil {
		return 0, err
	}
	settings := *iss.Renewal
	settings.DeployHooks, settings.Reload, settings.VerifyAddr = nil, "", ""
	settings.LastError, settings.ARI = nil, nil
	c := Certificate{Name: in.name, Version: prev.Version + 1, Identifiers: iss.Renewal.Identifiers,
		NotAfter: iss.Cert.Leaf.NotAfter, FullChain: iss.Cert.FullChainPEM, Key: key, Settings: &settings}
	if _, err := in.s.PutCertificate(ctx, in.lock, c); err != nil {
		return 0, err
	}
	return c.Version, nil
}

// Release gives the lock back.
func (in *Issuance) Release() { _ = in.lock.Unlock(context.Background()) }

// InstallLocal makes c the machine's current version of its name unless it
// already is (changed false), and keeps renewal.json in step: the machine's
// own hooks, reload and verify address stay; a machine that had no record
// takes the cluster's settings, which carry none.
func InstallLocal(local *store.Store, c Certificate) (*store.Renewal, bool, error) {
	if err := store.ValidName(c.Name); err != nil {
		return nil, false, fmt.Errorf("%q from the cluster is not a certificate name: %w", c.Name, err)
	}
	r, rerr := local.LoadRenewal(c.Name)
	if v, err := local.CurrentVersion(c.Name); err == nil {
		if cur, err := os.ReadFile(filepath.Join(v.Dir, store.FullChainFile)); err == nil && bytes.Equal(cur, c.FullChain) && rerr == nil {
			return r, false, nil
		}
	}
	leaf, chain := splitChain(c.FullChain)
	n, err := local.SaveVersion(c.Name, store.CertFiles{Cert: leaf, Chain: chain, FullChain: c.FullChain, PrivKey: c.Key})
	if err != nil {
		return nil, false, fmt.Errorf("%s: could not store the cluster's version %d: %w", c.Name, c.Version, err)
	}
	if err := local.Activate(c.Name, n); err != nil {
		return nil, false, fmt.Errorf("%s: could not make it current: %w", c.Name, err)
	}
	if rerr != nil || r == nil {
		if c.Settings == nil {
			return nil, true, fmt.Errorf("%s: installed, but the cluster holds no settings to renew it with", c.Name)
		}
		cp := *c.Settings
		r = &cp
		r.DeployHooks, r.Reload, r.VerifyAddr = nil, "", ""
	} else if c.Settings != nil {
		r.Serial, r.NotBefore, r.NotAfter, r.CertID = c.Settings.Serial, c.Settings.NotBefore, c.Settings.NotAfter, c.Settings.CertID
		r.Identifiers = c.Settings.Identifiers
	}
	r.Schema, r.Name, r.Cluster, r.Current = store.RenewalSchema, c.Name, true, n
	r.LastSuccess = time.Now().UTC()
	r.Failures, r.NextAttempt, r.NextAttemptReason, r.LastError = 0, time.Time{}, "", nil
	r.ARI, r.RenewAt = nil, time.Time{}
	if err := local.SaveRenewal(r); err != nil {
		return nil, true, fmt.Errorf("%s: could not write renewal.json: %w", c.Name, err)
	}
	return r, true, nil
}

// ProbeMachines checks, before an order, that every registered machine
// answers an http-01 request through its own address (ipcert agent
// --address): a machine that would fail the validators makes the order
// fail too, and Let's Encrypt allows only 5 failed validations an hour.
// Machines that registered no address are not probed (said in the
// returned notes).
func (s *Store) ProbeMachines(ctx context.Context) (notes []string, err error) {
	ms, err := s.Machines(ctx)
	if err != nil {
		return nil, err
	}
	tok := make([]byte, 24)
	if _, err := rand.Read(tok); err != nil {
		return nil, err
	}
	token := "ipcert-probe-" + base64.RawURLEncoding.EncodeToString(tok)
	want := token + ".probe"
	release, err := s.PutChallenge(ctx, "http-01", token, want, time.Minute)
	if err != nil {
		return nil, err
	}
	defer func() { _ = release(context.Background()) }()
	client := &http.Client{Timeout: 5 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	var bad []string
	for _, m := range ms {
		if len(m.Addresses) == 0 {
			notes = append(notes, fmt.Sprintf("machine %s registered no address of its own (ipcert agent --address): not probed", untrusted.Text(m.ID)))
			continue
		}
		for _, a := range m.Addresses {
			host := a
			if ip, err := netip.ParseAddr(a); err == nil {
				host = netip.AddrPortFrom(ip, 80).String()
			}
			resp, err := client.Get("http://" + host + acmePath + token)
			if err != nil {
				bad = append(bad, fmt.Sprintf("%s at %s: %v", untrusted.Text(m.ID), untrusted.Text(a), err))
				continue
			}
			body, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || strings.TrimSpace(string(body)) != want {
				bad = append(bad, fmt.Sprintf("%s at %s: status %d, not the published answer", untrusted.Text(m.ID), untrusted.Text(a), resp.StatusCode))
			}
		}
	}
	if len(bad) > 0 {
		return notes, fmt.Errorf("not every machine answers the validators, so the order would fail (Let's Encrypt allows 5 failed validations an hour): %s; start ipcert agent there, or take the machine out of the address", strings.Join(bad, "; "))
	}
	return notes, nil
}
