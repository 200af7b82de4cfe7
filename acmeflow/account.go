package acmeflow

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"time"

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
	caKey := store.CAKey(req.Directory, req.CAKey)
	acct, keyPEM, err := e.Store.LoadAccount(caKey, "default")
	if errors.Is(err, os.ErrNotExist) {
		return nil, ErrNoAccount
	}
	if err != nil {
		return nil, err
	}
	key, err := store.ParseKey(keyPEM)
	if err != nil {
		return nil, err
	}
	base := http.DefaultTransport
	if req.HTTPClient != nil && req.HTTPClient.Transport != nil {
		base = req.HTTPClient.Transport
	}
	hc := &http.Client{Transport: &ctxTransport{ctx: ctx, base: base}, Timeout: 30 * time.Second}
	ua := e.UserAgent
	if ua == "" {
		ua = "ipcert"
	}
	core, err := api.New(hc, ua, req.Directory, acct.URI, key)
	if err != nil {
		return nil, e.wrapCtx(ctx, stepErr(StepDirectory, "", err))
	}
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
