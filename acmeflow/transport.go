package acmeflow

import (
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/go-acme/lego/v4/acme/api"
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
	return resp, nil
}

// takeRetryAfter returns and clears the last Retry-After seen.
func (t *ctxTransport) takeRetryAfter() time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	d := t.retryAfter
	t.retryAfter = 0
	return d
}

// poller spaces out polls: the first comes quickly (Pebble and Boulder send
// no Retry-After on pending objects, and lego's fixed 5 s wait is most of its
// issuance time), then the interval grows; a Retry-After from the CA wins.
type poller struct {
	next, max time.Duration
}

func newPoller() *poller { return &poller{next: 50 * time.Millisecond, max: 3 * time.Second} }

func (p *poller) wait(ctx context.Context, retryAfter time.Duration) error {
	d := p.next
	if retryAfter > 0 {
		d = retryAfter
	}
	p.next = min(p.next*3/2, p.max)
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
