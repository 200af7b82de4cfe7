package acmeflow

import (
	"errors"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/localca"
)

// gatedTransport holds the CA's answer to every authorization fetch after
// the first until a challenge has been accepted: an engine that accepts
// each challenge as soon as its authorization is in goes on; one that
// fetches every authorization first never accepts one while it waits, and
// the held fetch gives up with an error naming that. No timing decides:
// only the order of the engine's own requests.
type gatedTransport struct {
	base     http.RoundTripper
	mu       sync.Mutex
	authz    int
	accepted chan struct{}
	once     sync.Once
}

func (g *gatedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	switch {
	case strings.HasPrefix(req.URL.Path, "/chalZ/"):
		g.once.Do(func() { close(g.accepted) })
	case strings.HasPrefix(req.URL.Path, "/authZ/"):
		g.mu.Lock()
		g.authz++
		n := g.authz
		g.mu.Unlock()
		if n >= 2 {
			select {
			case <-g.accepted:
			default:
				select {
				case <-g.accepted:
				case <-req.Context().Done():
					return nil, req.Context().Err()
				case <-time.After(time.Minute):
					return nil, errors.New("no challenge was accepted while an authorization fetch was held: the engine fetches every authorization before accepting any")
				}
			}
		}
	}
	return g.base.RoundTrip(req)
}

// TestChallengesAcceptedWhileAuthorizationsAreFetched: in an order of
// many addresses, each challenge is accepted as soon as its authorization
// is in, while the others are still being fetched (all authorizations
// were fetched first, and the CA sat idle meanwhile: a quarter of the time
// of a 25-address order). The CA's answers to the later authorization
// fetches are held until a challenge is accepted (gatedTransport), so the
// issuance completes only if acceptance does not wait for fetching.
func TestChallengesAcceptedWhileAuthorizationsAreFetched(t *testing.T) {
	ca := startCA(t, localca.Options{})
	var ips []string
	for i := 1; i <= 12; i++ {
		ips = append(ips, "127.0.0."+strconv.Itoa(i))
	}
	req := ca.request(mustAddrs(ips...), ChallengeHTTP01)
	req.HTTPListen = "0.0.0.0:" + strconv.Itoa(ca.port)
	gate := &gatedTransport{base: ca.HTTPClient().Transport, accepted: make(chan struct{})}
	req.HTTPClient = &http.Client{Transport: gate}
	if _, err := newEngine(t).Issue(t.Context(), req, IssueOptions{}); err != nil {
		t.Fatal(err)
	}
	if gate.authz < len(ips) {
		t.Fatalf("%d authorizations fetched, want %d", gate.authz, len(ips))
	}
}

// TestParallelObtainsRegisterOneAccount: issuances from one store at the
// same time (renew --parallel) that find no account register one between
// them, not one each (Let's Encrypt allows 10 new accounts per address in
// 3 hours; bench/scale.sh registered four).
func TestParallelObtainsRegisterOneAccount(t *testing.T) {
	ca := startCA(t, localca.Options{})
	e := newEngine(t)
	var mu sync.Mutex
	registered := 0
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ip := "127.0.0." + strconv.Itoa(i+1)
			req := ca.request(mustAddrs(ip), ChallengeHTTP01)
			req.Events = func(ev Event) {
				if ev.Kind == EventStep && ev.Step == StepAccount && strings.HasPrefix(ev.Message, "Registering") {
					mu.Lock()
					registered++
					mu.Unlock()
				}
			}
			_, errs[i] = e.Obtain(t.Context(), req)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if registered != 1 {
		t.Fatalf("%d accounts registered by 4 parallel issuances, want 1", registered)
	}
}

// TestResponderThatCannotStartIsAnError: a responder that cannot start
// (a web root that is not there) ends the run with a responder error, not
// a panic (the responder is started by the first authorization that needs
// it, and a failed start left a nil responder to close).
func TestResponderThatCannotStartIsAnError(t *testing.T) {
	ca := startCA(t, localca.Options{})
	req := ca.request(mustAddrs("127.0.0.1"), ChallengeHTTP01)
	req.WebRoot = t.TempDir() + "/missing"
	_, err := newEngine(t).Obtain(t.Context(), req)
	var ae *Error
	if !errors.As(err, &ae) || ae.Step != StepResponder || !strings.Contains(err.Error(), "missing") {
		t.Fatalf("got %v", err)
	}
}
