package acmeflow

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	jose "github.com/go-jose/go-jose/v4"

	"github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/acme/api"

	"github.com/ipcert/ipcert/internal/store"
)

// AccountInfo is the stored account of a CA and what the CA says of it.
type AccountInfo struct {
	CA      string    `json:"ca"`
	URI     string    `json:"uri"`
	Created time.Time `json:"created"`
	Status  string    `json:"status"`  // the CA's: valid, deactivated, revoked
	Contact []string  `json:"contact"` // the CA's
	KeptAs  string    `json:"kept_as,omitempty"`
}

// ErrNoAccount is returned when this state directory has no account with
// the CA.
var ErrNoAccount = errors.New("no account with this CA in the state directory yet (issue registers one)")

// Account shows, updates (a new contact e-mail, "" removes it) or
// deactivates the stored account of req's CA. op is "show", "update" or
// "deactivate". A deactivated account's files are kept aside, so the next
// issuance registers a new one.
func (e *Engine) Account(ctx context.Context, req Request, op, email string) (*AccountInfo, error) {
	s, err := e.storedAccount(ctx, req)
	if err != nil {
		return nil, err
	}
	core, acct, keyPEM, caKey := s.core, s.acct, s.keyPEM, s.caKey
	info := &AccountInfo{CA: req.Directory, URI: acct.URI, Created: acct.Created}
	switch op {
	case "update":
		msg := acme.Account{Contact: []string{}}
		if email != "" {
			msg.Contact = []string{"mailto:" + email}
		}
		got, err := core.Accounts.Update(acct.URI, msg)
		if err != nil {
			return nil, e.wrapCtx(ctx, stepErr(StepAccount, "", err))
		}
		acct.Email = email
		if err := e.Store.SaveAccount(caKey, "default", acct, keyPEM); err != nil {
			return nil, err
		}
		info.Status, info.Contact = got.Status, got.Contact
	case "deactivate":
		if err := core.Accounts.Deactivate(acct.URI); err != nil {
			return nil, e.wrapCtx(ctx, stepErr(StepAccount, "", err))
		}
		info.Status = acme.StatusDeactivated
		kept, err := e.Store.QuarantineAccount(caKey, "default", e.now())
		if err != nil {
			return info, fmt.Errorf("deactivated at the CA, but its files could not be moved aside: %w", err)
		}
		info.KeptAs = kept
	default:
		got, err := core.Accounts.Get(acct.URI)
		if err != nil {
			return nil, e.wrapCtx(ctx, stepErr(StepAccount, "", err))
		}
		info.Status, info.Contact = got.Status, got.Contact
	}
	return info, nil
}

// RolloverAccountKey replaces the stored account's key with a new one at
// the CA (RFC 8555 section 7.3.5: an inner JWS signed by the new key, inside
// one signed by the old), then stores the new key. lego v4 has no key
// change, so the two signatures are made here.
func (e *Engine) RolloverAccountKey(ctx context.Context, req Request) (*AccountInfo, error) {
	s, err := e.storedAccount(ctx, req)
	if err != nil {
		return nil, err
	}
	core, acct, caKey, oldKey, hc, ua := s.core, s.acct, s.caKey, s.key, s.hc, s.ua
	dir := core.GetDirectory()
	if dir.KeyChangeURL == "" {
		return nil, &Error{Step: StepAccount, Err: errors.New("the CA's directory offers no keyChange")}
	}
	newKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	oldJWK := jose.JSONWebKey{Key: oldKey.Public()}
	inner, err := json.Marshal(struct {
		Account string          `json:"account"`
		OldKey  jose.JSONWebKey `json:"oldKey"`
	}{acct.URI, oldJWK})
	if err != nil {
		return nil, err
	}
	innerSigner, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: newKey},
		(&jose.SignerOptions{EmbedJWK: true}).WithHeader("url", dir.KeyChangeURL))
	if err != nil {
		return nil, err
	}
	innerJWS, err := innerSigner.Sign(inner)
	if err != nil {
		return nil, err
	}
	nonce, err := newNonce(ctx, hc, ua, dir.NewNonceURL)
	if err != nil {
		return nil, e.wrapCtx(ctx, stepErr(StepAccount, "", err))
	}
	alg, err := jwsAlgorithm(oldKey)
	if err != nil {
		return nil, err
	}
	outerSigner, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: oldKey},
		(&jose.SignerOptions{}).WithHeader("kid", acct.URI).WithHeader("nonce", nonce).WithHeader("url", dir.KeyChangeURL))
	if err != nil {
		return nil, err
	}
	outer, err := outerSigner.Sign([]byte(innerJWS.FullSerialize()))
	if err != nil {
		return nil, err
	}
	hreq, err := http.NewRequestWithContext(ctx, http.MethodPost, dir.KeyChangeURL, strings.NewReader(outer.FullSerialize()))
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("Content-Type", "application/jose+json")
	hreq.Header.Set("User-Agent", ua)
	resp, err := hc.Do(hreq)
	if err != nil {
		return nil, e.wrapCtx(ctx, stepErr(StepAccount, "", err))
	}
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var p struct{ Type, Detail string }
		_ = json.Unmarshal(body, &p)
		return nil, &Error{Step: StepAccount, Problem: &Problem{Type: p.Type, Detail: p.Detail, Status: resp.StatusCode}}
	}
	newPEM, err := EncodeKey(newKey)
	if err != nil {
		return nil, err
	}
	if err := e.Store.SaveAccount(caKey, "default", acct, newPEM); err != nil {
		return nil, fmt.Errorf("the CA took the new key, but it could not be stored (%w): the old key no longer works for this account", err)
	}
	return &AccountInfo{CA: req.Directory, URI: acct.URI, Created: acct.Created, Status: "valid"}, nil
}

// newNonce asks the CA for a fresh anti-replay nonce (RFC 8555 section
// 7.2).
func newNonce(ctx context.Context, hc *http.Client, ua, url string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, url, nil)
	if err != nil {
		return "", err
	}
	req.Header.Set("User-Agent", ua)
	resp, err := hc.Do(req)
	if err != nil {
		return "", err
	}
	resp.Body.Close()
	n := resp.Header.Get("Replay-Nonce")
	if n == "" {
		return "", fmt.Errorf("the CA's newNonce (%s) gave no nonce (status %d)", url, resp.StatusCode)
	}
	return n, nil
}

// jwsAlgorithm is the JWS algorithm of an account key.
func jwsAlgorithm(k crypto.Signer) (jose.SignatureAlgorithm, error) {
	switch pk := k.Public().(type) {
	case *ecdsa.PublicKey:
		switch pk.Curve.Params().BitSize {
		case 256:
			return jose.ES256, nil
		case 384:
			return jose.ES384, nil
		}
	case *rsa.PublicKey:
		return jose.RS256, nil
	}
	return "", errors.New("the account key is of a type ipcert does not sign with")
}

// storedAccount is the stored account of req's CA with a client signing
// as it: what Account and RolloverAccountKey start from.
type storedAccount struct {
	core   *api.Core
	acct   *store.Account
	keyPEM []byte
	key    crypto.Signer
	caKey  string
	hc     *http.Client
	ua     string
}

func (e *Engine) storedAccount(ctx context.Context, req Request) (*storedAccount, error) {
	s := &storedAccount{caKey: store.CAKey(req.Directory, req.CAKey)}
	var err error
	s.acct, s.keyPEM, err = e.Store.LoadAccount(s.caKey, "default")
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoAccount
	}
	if err != nil {
		return nil, err
	}
	if s.key, err = store.ParseKey(s.keyPEM); err != nil {
		return nil, err
	}
	base := http.DefaultTransport
	if req.HTTPClient != nil && req.HTTPClient.Transport != nil {
		base = req.HTTPClient.Transport
	}
	s.hc = &http.Client{Transport: &ctxTransport{ctx: ctx, base: base}, Timeout: 30 * time.Second}
	s.ua = e.UserAgent
	if s.ua == "" {
		s.ua = "ipcert"
	}
	if s.core, err = api.New(s.hc, s.ua, req.Directory, s.acct.URI, s.key); err != nil {
		return nil, e.wrapCtx(ctx, stepErr(StepDirectory, "", err))
	}
	return s, nil
}
