package acmeflow

import (
	"errors"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ipcert/ipcert/acmeflow/localca"
)

// pathRecorder records the path of every request sent to the CA, in the
// order they were sent.
type pathRecorder struct {
	base  http.RoundTripper
	mu    sync.Mutex
	paths []string
}

func (r *pathRecorder) RoundTrip(req *http.Request) (*http.Response, error) {
	r.mu.Lock()
	r.paths = append(r.paths, req.URL.Path)
	r.mu.Unlock()
	return r.base.RoundTrip(req)
}

// TestChallengesAcceptedWhileAuthorizationsAreFetched: in an order of
// many addresses, each challenge is accepted as soon as its authorization
// is in, while the others are still being fetched (all authorizations
// were fetched first, and the CA sat idle meanwhile: a quarter of the time
// of a 25-address order).
func TestChallengesAcceptedWhileAuthorizationsAreFetched(t *testing.T) {
	ca := startCA(t, localca.Options{})
	var ips []string
	for i := 1; i <= 12; i++ {
		ips = append(ips, "127.0.0."+strconv.Itoa(i))
	}
	req := ca.request(mustAddrs(ips...), ChallengeHTTP01)
	req.HTTPListen = "0.0.0.0:" + strconv.Itoa(ca.port)
	rec := &pathRecorder{base: ca.HTTPClient().Transport}
	req.HTTPClient = &http.Client{Transport: rec}
	if _, err := newEngine(t).Issue(t.Context(), req, IssueOptions{}); err != nil {
		t.Fatal(err)
	}
	firstChal := slices.IndexFunc(rec.paths, func(p string) bool { return strings.HasPrefix(p, "/chalZ/") })
	authz := 0
	lastAuthz := -1
	for i, p := range rec.paths {
		if strings.HasPrefix(p, "/authZ/") && authz < len(ips) {
			authz++
			lastAuthz = i
		}
	}
	if firstChal < 0 || authz != len(ips) || firstChal > lastAuthz {
		t.Fatalf("the first challenge was accepted after every authorization was fetched (first challenge at %d, %d-th authorization at %d):\n%s",
			firstChal, len(ips), lastAuthz, strings.Join(rec.paths, "\n"))
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
