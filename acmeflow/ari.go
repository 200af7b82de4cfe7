package acmeflow

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/go-acme/lego/v4/acme/api"
	"github.com/ipcert/ipcert/internal/netlimit"
)

// StepRenewalInfo is the ARI query (RFC 9773) that renew makes before
// deciding when to renew.
const StepRenewalInfo Step = "renewal-info"

// RenewalInfo is a CA's answer to an ARI query (RFC 9773 section 4.2).
type RenewalInfo struct {
	WindowStart    time.Time
	WindowEnd      time.Time
	ExplanationURL string
	// RetryAfter is the CA's Retry-After header: when to ask again. Zero
	// when the CA sent none.
	RetryAfter time.Duration
}

// ErrNoARI says the CA's directory has no renewalInfo endpoint.
var ErrNoARI = errors.New("the CA does not offer ARI (its directory has no renewalInfo)")

// RenewalInfo asks the CA of req.Directory for the suggested renewal window
// of the certificate with ARI identifier certID. The request is an
// unauthenticated GET (RFC 9773 section 4.1): no account and no nonce are
// needed, so it costs two small requests (directory, renewalInfo).
func (e *Engine) RenewalInfo(ctx context.Context, req Request, certID string) (*RenewalInfo, error) {
	if certID == "" {
		return nil, &Error{Step: StepRenewalInfo, Err: errors.New("the certificate has no ARI identifier")}
	}
	hc := &http.Client{Timeout: 30 * time.Second}
	if req.HTTPClient != nil {
		c := *req.HTTPClient
		hc = &c
		if hc.Timeout == 0 {
			hc.Timeout = 30 * time.Second
		}
	}
	ua := e.UserAgent
	if ua == "" {
		ua = "ipcert"
	}
	var dir struct {
		RenewalInfo string `json:"renewalInfo"`
	}
	if _, err := e.getJSON(ctx, hc, ua, req.Directory, &dir); err != nil {
		return nil, &Error{Step: StepDirectory, Err: err}
	}
	if dir.RenewalInfo == "" {
		return nil, &Error{Step: StepRenewalInfo, Err: ErrNoARI}
	}
	var body struct {
		SuggestedWindow struct {
			Start time.Time `json:"start"`
			End   time.Time `json:"end"`
		} `json:"suggestedWindow"`
		ExplanationURL string `json:"explanationURL"`
	}
	u := strings.TrimSuffix(dir.RenewalInfo, "/") + "/" + certID
	resp, err := e.getJSON(ctx, hc, ua, u, &body)
	if err != nil {
		return nil, &Error{Step: StepRenewalInfo, Err: err}
	}
	w := body.SuggestedWindow
	// RFC 9773 section 4.2: a window whose end is not after its start is
	// invalid and must be ignored.
	if w.Start.IsZero() || !w.End.After(w.Start) {
		return nil, &Error{Step: StepRenewalInfo, Err: fmt.Errorf("the CA sent an invalid window (%s to %s)", w.Start.Format(time.RFC3339), w.End.Format(time.RFC3339))}
	}
	info := &RenewalInfo{WindowStart: w.Start.UTC(), WindowEnd: w.End.UTC(), ExplanationURL: body.ExplanationURL}
	if v := resp.Header.Get("Retry-After"); v != "" {
		if d, err := api.ParseRetryAfter(v); err == nil && d > 0 {
			info.RetryAfter = d
		}
	}
	return info, nil
}

func (e *Engine) getJSON(ctx context.Context, hc *http.Client, ua, u string, v any) (*http.Response, error) {
	hreq, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	hreq.Header.Set("User-Agent", ua)
	resp, err := hc.Do(hreq)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	// The directory and the ARI answer are a few hundred bytes to a few KB.
	data, err := netlimit.ReadAll(resp.Body, MaxCAResponse, "the CA at "+hreq.URL.Host, "renewal information")
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s: %.200s", u, resp.Status, strings.TrimSpace(string(data)))
	}
	if err := json.Unmarshal(data, v); err != nil {
		return nil, fmt.Errorf("GET %s: not JSON: %w", u, err)
	}
	return resp, nil
}
