package acmeflow

import (
	"context"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/localca"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
)

// testCA is the local CA, its validator knocking on port (for both
// challenges, the responders listen there); tests never use 80/443.
type testCA struct {
	*localca.Server
	port int
}

func startCA(t *testing.T, opts localca.Options) *testCA {
	t.Helper()
	srv, port := localca.StartForTest(t, opts)
	return &testCA{Server: srv, port: port}
}

func (c *testCA) request(idents []netip.Addr, challenge spec.Challenge) Request {
	lp := net.JoinHostPort(idents[0].String(), strconv.Itoa(c.port))
	return Request{
		Identifiers: idents, Directory: c.DirectoryURL(), HTTPClient: c.HTTPClient(), CAKey: "local",
		Challenge: challenge, HTTPListen: lp, TLSListen: lp, AgreeTOS: true,
	}
}

func newEngine(t *testing.T) *Engine {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	return &Engine{Store: s}
}

// serveWebroot stands in for the user's web server: it serves dir on the
// port the CA validates, on every identifier's address.
func serveWebroot(t *testing.T, dir string, idents []netip.Addr, port int) {
	t.Helper()
	for _, a := range idents {
		l, err := net.Listen("tcp", net.JoinHostPort(a.String(), strconv.Itoa(port)))
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{Handler: http.FileServer(http.Dir(dir))}
		go srv.Serve(l)
		t.Cleanup(func() { srv.Close() })
	}
}

func mustAddrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

func TestIssueMatrix(t *testing.T) {
	families := map[string][]netip.Addr{
		"v4":   mustAddrs("127.0.0.1"),
		"v6":   mustAddrs("::1"),
		"dual": mustAddrs("127.0.0.1", "::1"),
	}
	for fam, idents := range families {
		for _, mode := range []string{"http-01", "webroot", "tls-alpn-01"} {
			t.Run(fam+"/"+mode, func(t *testing.T) {
				ca := startCA(t, localca.Options{})
				e := newEngine(t)
				challenge := spec.Challenge(mode)
				if mode == "webroot" {
					challenge = ChallengeHTTP01
				}
				req := ca.request(idents, challenge)
				if mode == "webroot" {
					root := t.TempDir()
					serveWebroot(t, root, idents, ca.port)
					req.WebRoot = root
				}
				var mu sync.Mutex
				var validators int
				req.Events = func(ev Event) {
					mu.Lock()
					defer mu.Unlock()
					if ev.Kind == EventValidator && ev.Validator.Answered {
						validators++
					}
				}
				iss, err := e.Issue(context.Background(), req, IssueOptions{RootPEM: ca.IssuerRootPEM()})
				if err != nil {
					t.Fatal(err)
				}
				checkIssuedCert(t, e, iss, idents, ca.IssuerRootPEM())
				if mode != "webroot" && validators < len(idents) {
					t.Errorf("saw %d answered validator requests, want at least %d", validators, len(idents))
				}
				if mode == "webroot" {
					left, _ := os.ReadDir(filepath.Join(req.WebRoot))
					if len(left) != 0 {
						t.Errorf("web root not cleaned: %v", left)
					}
				}
			})
		}
	}
}

func checkIssuedCert(t *testing.T, e *Engine, iss *Issued, idents []netip.Addr, rootPEM []byte) {
	t.Helper()
	leaf := iss.Version.Leaf
	if leaf.Subject.CommonName != "" {
		t.Errorf("CN = %q, want empty", leaf.Subject.CommonName)
	}
	if len(leaf.DNSNames) != 0 || len(leaf.IPAddresses) != len(idents) {
		t.Errorf("SANs: dns %v ip %v", leaf.DNSNames, leaf.IPAddresses)
	}
	if d := leaf.NotAfter.Sub(leaf.NotBefore); d < 160*time.Hour-time.Minute || d > 160*time.Hour {
		t.Errorf("validity %v, want 160h", d)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(rootPEM)
	chain, _ := os.ReadFile(filepath.Join(iss.Version.Dir, store.ChainFile))
	inter := x509.NewCertPool()
	inter.AppendCertsFromPEM(chain)
	for _, a := range idents {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: a.String()}); err != nil {
			t.Errorf("verify for %s: %v", a, err)
		}
	}
	for file, mode := range map[string]os.FileMode{store.KeyFile: 0o600, store.CertFile: 0o644, store.FullChainFile: 0o644} {
		st, err := os.Stat(filepath.Join(e.Store.CurrentDir(iss.Name), file))
		if err != nil || st.Mode().Perm() != mode {
			t.Errorf("%s: %v %v", file, st, err)
		}
	}
	r, err := e.Store.LoadRenewal(iss.Name)
	if err != nil || r.Current != iss.Version.N || r.Profile != ProfileShortlived || r.CertID == "" {
		t.Errorf("renewal.json: %+v %v", r, err)
	}
}

func TestAccountReusedAndReregistered(t *testing.T) {
	ca := startCA(t, localca.Options{})
	e := newEngine(t)
	idents := mustAddrs("127.0.0.1")
	first, err := e.Issue(context.Background(), ca.request(idents, ChallengeHTTP01), IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := e.Issue(context.Background(), ca.request(idents, ChallengeHTTP01), IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if first.Cert.AccountURL != second.Cert.AccountURL {
		t.Errorf("account not reused: %s then %s", first.Cert.AccountURL, second.Cert.AccountURL)
	}
	if second.Version.N != 2 {
		t.Errorf("second version is %d", second.Version.N)
	}
	// A new CA (Pebble forgets everything) does not know the stored
	// account: the engine registers again by itself.
	ca2 := startCA(t, localca.Options{})
	third, err := e.Issue(context.Background(), ca2.request(idents, ChallengeHTTP01), IssueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if third.Cert.AccountURL == first.Cert.AccountURL && ca2.DirectoryURL() != ca.DirectoryURL() {
		t.Logf("same account URL on a new CA: %s", third.Cert.AccountURL)
	}
}

func TestWrongContentIsUnauthorized(t *testing.T) {
	ca := startCA(t, localca.Options{})
	e := newEngine(t)
	idents := mustAddrs("127.0.0.1")
	// A web server that answers every challenge path with the wrong body.
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(ca.port)))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello from the router")) })}
	go srv.Serve(l)
	defer srv.Close()
	req := ca.request(idents, ChallengeHTTP01)
	req.WebRoot = t.TempDir()
	_, err = e.Issue(context.Background(), req, IssueOptions{})
	var ae *Error
	if !errors.As(err, &ae) || ae.Problem == nil || ae.Problem.Type != ProblemUnauthorized || ae.Step != StepChallenge {
		t.Fatalf("want unauthorized at challenge, got %#v", err)
	}
	if _, err := e.Store.CurrentVersion(store.NameFor([]string{"127.0.0.1"})); !errors.Is(err, store.ErrNoCurrent) {
		t.Errorf("failed run left a current: %v", err)
	}
}

func TestPrivateAddressRefusedBeforeTraffic(t *testing.T) {
	var hits int
	var mu sync.Mutex
	hc := &http.Client{Transport: roundTripFunc(func(*http.Request) (*http.Response, error) {
		mu.Lock()
		hits++
		mu.Unlock()
		return nil, errors.New("no traffic allowed")
	})}
	e := newEngine(t)
	for _, ip := range []string{"192.168.1.10", "10.0.0.1", "100.64.1.1", "127.0.0.1", "fd00::1", "2001:db8::1"} {
		_, err := e.Issue(context.Background(), Request{
			Identifiers: mustAddrs(ip), Directory: LEProduction, PublicCA: true, HTTPClient: hc,
			Challenge: ChallengeHTTP01, AgreeTOS: true,
		}, IssueOptions{})
		if !errors.Is(err, ErrBadAddress) || !strings.Contains(err.Error(), "Let's Encrypt refuses") {
			t.Errorf("%s: %v", ip, err)
		}
	}
	if hits != 0 {
		t.Fatalf("%d requests reached the network", hits)
	}
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func TestNoShortlivedProfile(t *testing.T) {
	ca := startCA(t, localca.Options{WithoutShortlived: true})
	e := newEngine(t)
	_, err := e.Issue(context.Background(), ca.request(mustAddrs("127.0.0.1"), ChallengeHTTP01), IssueOptions{})
	if !errors.Is(err, ErrNoShortlived) || !strings.Contains(err.Error(), "it offers") {
		t.Fatalf("got %v", err)
	}
}

func TestCancelMidOrderLeavesNothing(t *testing.T) {
	ca := startCA(t, localca.Options{})
	e := newEngine(t)
	idents := mustAddrs("127.0.0.1")
	if _, err := e.Issue(context.Background(), ca.request(idents, ChallengeHTTP01), IssueOptions{}); err != nil {
		t.Fatal(err)
	}
	before, _ := e.Store.CurrentVersion("127.0.0.1")

	ctx, cancel := context.WithCancel(context.Background())
	req := ca.request(idents, ChallengeHTTP01)
	// Cancel as the challenge is accepted: the order exists and the
	// responder is up, nothing is validated yet. Done in the request path
	// itself (not from an event, which is delivered on its own goroutine
	// and could come after a quick CA finished the order).
	// If Pebble reuses the first run's authorization (it does one time in
	// a hundred even with reuse off), the finalization is the first
	// request after the order: cancelled there, still before issuance.
	req.HTTPClient = &http.Client{Transport: cancelAt{base: ca.HTTPClient().Transport, paths: []string{"/chalZ/", "/finalize-order/"}, cancel: cancel}}
	_, err := e.Issue(ctx, req, IssueOptions{})
	if err == nil || !errors.Is(err, context.Canceled) {
		t.Fatalf("want context.Canceled, got %v", err)
	}
	after, err := e.Store.CurrentVersion("127.0.0.1")
	if err != nil || after.N != before.N || after.Leaf.SerialNumber.Cmp(before.Leaf.SerialNumber) != 0 {
		t.Fatalf("current changed: %v -> %v (%v)", before.N, after.N, err)
	}
	// No listener is left on the responder's port.
	l, err := net.Listen("tcp", req.HTTPListen)
	if err != nil {
		t.Fatalf("responder port still held: %v", err)
	}
	l.Close()
}

func TestConcurrentRunStoppedByLock(t *testing.T) {
	ca := startCA(t, localca.Options{})
	e := newEngine(t)
	unlock, err := e.Store.Lock(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	_, err = e.Issue(context.Background(), ca.request(mustAddrs("127.0.0.1"), ChallengeHTTP01), IssueOptions{})
	if !errors.Is(err, store.ErrLocked) {
		t.Fatalf("want ErrLocked, got %v", err)
	}
}

func TestNonceRejection(t *testing.T) {
	ca := startCA(t, localca.Options{NonceRejectPercent: 50})
	e := newEngine(t)
	for i := 0; i < 2; i++ {
		if _, err := e.Issue(context.Background(), ca.request(mustAddrs("127.0.0.1"), ChallengeHTTP01), IssueOptions{}); err != nil {
			t.Fatal(err)
		}
	}
}

func TestNeedsAgreement(t *testing.T) {
	ca := startCA(t, localca.Options{})
	e := newEngine(t)
	req := ca.request(mustAddrs("127.0.0.1"), ChallengeHTTP01)
	req.AgreeTOS = false
	_, err := e.Issue(context.Background(), req, IssueOptions{})
	if err == nil || !strings.Contains(err.Error(), "--agree-tos") {
		t.Fatalf("got %v", err)
	}
}

// cancelAt cancels the run's context when a request to a path with one of
// the prefixes is about to be sent (the request then fails with it).
type cancelAt struct {
	base   http.RoundTripper
	paths  []string
	cancel context.CancelFunc
}

func (c cancelAt) RoundTrip(req *http.Request) (*http.Response, error) {
	for _, p := range c.paths {
		if strings.HasPrefix(req.URL.Path, p) {
			c.cancel()
			if err := req.Context().Err(); err != nil {
				return nil, err
			}
		}
	}
	return c.base.RoundTrip(req)
}
