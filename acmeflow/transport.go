package acmeflow

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v4/acme/api"
	"github.com/ipcert/ipcert/internal/netlimit"
)

// ctxTransport binds every request lego makes to the run's context (lego's
// API layer has no context parameter, so without this Ctrl-C could not stop
// a request in flight), and remembers the last Retry-After the CA sent,
// which lego's Get methods for orders and authorizations do not return.
type ctxTransport struct {
	ctx  context.Context
	base http.RoundTripper

	mu         sync.Mutex
	retryAfter time.Duration
}

func (t *ctxTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req.WithContext(t.ctx))
	if err != nil {
		return nil, err
	}
	if v := resp.Header.Get("Retry-After"); v != "" {
		if d, perr := api.ParseRetryAfter(v); perr == nil {
			t.mu.Lock()
			t.retryAfter = d
			t.mu.Unlock()
		}
	}
	if resp.StatusCode >= 400 && !isProblemJSON(resp.Header.Get("Content-Type")) {
		problemize(resp)
		return resp, nil
	}
	peer := "the CA at " + req.URL.Host
	if resp.ContentLength > MaxCAResponse {
		resp.Body.Close()
		return nil, &netlimit.TooLargeError{Peer: peer, What: "response", Limit: MaxCAResponse}
	}
	resp.Body = netlimit.Body(resp.Body, MaxCAResponse, peer, "response")
	return resp, nil
}

// MaxCAResponse caps every body an ACME CA sends (issue 22: a CA that never
// stops talking took 13.5 GB before the timeout). The largest real ones are
// far below it: a directory, an order, an account or a problem document is
// a few KB; an order of 25 identifiers about 5 KB; a certificate chain with
// its alternates tens of KB. 1 MiB is generous for any of them and still
// bounds what one request can cost.
const MaxCAResponse = 1 << 20

func isProblemJSON(ct string) bool {
	ct = strings.ToLower(ct)
	return strings.HasPrefix(ct, "application/problem+json") || strings.HasPrefix(ct, "application/json")
}

// problemize replaces an error body that is not an ACME problem document (a
// proxy's or load balancer's HTML page, an empty 503) with one, so the
// failure keeps its HTTP status and a readable detail instead of a JSON
// parse error from deep inside lego.
func problemize(resp *http.Response) {
	raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	resp.Body.Close()
	snippet := strings.Join(strings.Fields(string(raw)), " ")
	if len(snippet) > 160 {
		snippet = snippet[:160] + "..."
	}
	typ := ProblemNS + "serverInternal"
	if resp.StatusCode < 500 {
		typ = ProblemMalformed
	}
	detail := fmt.Sprintf("the CA answered HTTP %s without an ACME problem document", resp.Status)
	if snippet != "" {
		detail += fmt.Sprintf(" (body: %q)", snippet)
	}
	body, _ := json.Marshal(map[string]any{"type": typ, "detail": detail, "status": resp.StatusCode})
	resp.Body = io.NopCloser(bytes.NewReader(body))
	resp.ContentLength = int64(len(body))
	resp.Header.Set("Content-Type", "application/problem+json")
	resp.Header.Del("Content-Length")
}

// peekRetryAfter returns the last Retry-After seen without clearing it.
func (t *ctxTransport) peekRetryAfter() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.retryAfter
}

// takeRetryAfter returns and clears the last Retry-After seen.
func (t *ctxTransport) takeRetryAfter() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.retryAfter
	t.retryAfter = 0
	return d
}

// poller paces the polls of a pending authorization or order. The first
// poll comes 10 ms after the request (Pebble and a quick CA are often done
// by then; lego's fixed 5 s wait is most of its issuance time), then the
// gap doubles up to pollMaxGap, so a finished validation is noticed about
// 100 ms later on average whatever the CA's speed. A Retry-After from the
// CA wins (capped at MaxRetryAfterSleep). Our own responder tells us more:
// each validator request arrives on wake, and the CA decides right after
// the last one, so the next poll is moved to pollAfterWake after the
// requests stop.
type poller struct {
	next, max time.Duration
	wake      <-chan struct{}
}

// pollMaxGap bounds the gap between two polls. It is polite because an
// order is polled as one request whatever the number of addresses (the
// order's status is pending until every authorization is valid), so a CA
// sees at most five polls a second per order, about fifteen for a
// validation that takes it three seconds.
const pollMaxGap = 200 * time.Millisecond

// pollAfterWake is the quiet time after a validator's request before the
// next poll: the CA records the result once the response reached it,
// which takes it a millisecond or two (Pebble, Boulder); a poll that
// comes too early costs one request, and the next follows the schedule.
const pollAfterWake = 10 * time.Millisecond

func newPoller() *poller { return &poller{next: 10 * time.Millisecond, max: pollMaxGap} }

// finalizeFirstPoll is the first wait after a finalize answered
// "processing": a CA that signs in the background (Pebble) is done within
// a few milliseconds; Let's Encrypt mostly answers "valid" at once.
const finalizeFirstPoll = 5 * time.Millisecond

// MaxRetryAfterSleep caps one wait on a poll's Retry-After. A CA that asks
// for an hour on a pending authorization (seen: 3600) would otherwise hold
// the run, and the store lock, for that hour; polling again after this
// long costs the CA one request, and the run's --timeout bounds the total.
const MaxRetryAfterSleep = 30 * time.Second

// delay is the next wait: the CA's Retry-After (capped), else the schedule.
func (p *poller) delay(retryAfter time.Duration) time.Duration {
	d := p.next
	if retryAfter > 0 {
		d = min(retryAfter, MaxRetryAfterSleep)
	}
	p.next = min(p.next*2, p.max)
	return d
}

func (p *poller) wait(ctx context.Context, retryAfter time.Duration) error {
	t := time.NewTimer(p.delay(retryAfter))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
			return nil
		case <-p.wake:
			if retryAfter == 0 {
				t.Reset(pollAfterWake)
				p.next = 2 * pollAfterWake
			}
		}
	}
}
