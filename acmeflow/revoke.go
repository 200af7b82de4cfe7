package acmeflow

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/acme/api"

	"github.com/ipcert/ipcert/internal/store"
)

// Revocation reasons a subscriber may give (RFC 5280 section 5.3.1, as
// Let's Encrypt accepts them from subscribers).
var RevocationReasons = map[string]uint{
	"unspecified":          0,
	"keyCompromise":        1,
	"affiliationChanged":   3,
	"superseded":           4,
	"cessationOfOperation": 5,
}

// ReasonNames lists RevocationReasons for a message.
func ReasonNames() string {
	return "unspecified, keyCompromise, affiliationChanged, superseded or cessationOfOperation"
}

// Revoke asks the CA of req to revoke certPEM (its first certificate) for
// reason. It signs with the stored account of that CA, or with the
// certificate's own key when keyPEM is given (RFC 8555 section 7.6: the
// way to revoke for keyCompromise, or without the account).
func (e *Engine) Revoke(ctx context.Context, req Request, certPEM, keyPEM []byte, reason string) error {
	code, ok := RevocationReasons[reason]
	if !ok {
		return &Error{Step: StepOrder, Err: fmt.Errorf("unknown revocation reason %q; use %s", reason, ReasonNames())}
	}
	blk, _ := pem.Decode(certPEM)
	if blk == nil || blk.Type != "CERTIFICATE" {
		return &Error{Step: StepOrder, Err: errors.New("the certificate file holds no PEM certificate")}
	}
	if _, err := x509.ParseCertificate(blk.Bytes); err != nil {
		return &Error{Step: StepOrder, Err: fmt.Errorf("the certificate does not parse: %w", err)}
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
	em := &emitter{fn: req.Events, now: e.now}
	var core *api.Core
	if len(keyPEM) > 0 {
		key, err := store.ParseKey(keyPEM)
		if err != nil {
			return &Error{Step: StepAccount, Err: fmt.Errorf("the certificate's key: %w", err)}
		}
		em.step(StepDirectory, "Fetching the ACME directory %s", req.Directory)
		if core, err = api.New(hc, ua, req.Directory, "", key); err != nil {
			return e.wrapCtx(ctx, stepErr(StepDirectory, "", err))
		}
	} else {
		em.step(StepDirectory, "Fetching the ACME directory %s", req.Directory)
		var err error
		if core, _, _, err = e.account(ctx, hc, ua, req, em); err != nil {
			return err
		}
	}
	if core.GetDirectory().RevokeCertURL == "" {
		return &Error{Step: StepOrder, Err: errors.New("the CA's directory offers no revokeCert")}
	}
	em.step(StepOrder, "Asking the CA to revoke the certificate (reason %s)", reason)
	msg := acme.RevokeCertMessage{Certificate: base64.RawURLEncoding.EncodeToString(blk.Bytes), Reason: &code}
	if err := core.Certificates.Revoke(msg); err != nil {
		var pd *acme.ProblemDetails
		if errors.As(err, &pd) && strings.HasSuffix(pd.Type, ":alreadyRevoked") {
			em.info(StepOrder, "", "The CA had revoked it already")
			return nil
		}
		return e.wrapCtx(ctx, stepErr(StepOrder, "", err))
	}
	return nil
}
