package localca

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/acme/api"
)

// pollEvery and pollFor bound every wait: no fixed sleep longer than 50 ms.
const (
	pollEvery = 20 * time.Millisecond
	pollFor   = 20 * time.Second
)

func startCA(t *testing.T, opts Options) *Server {
	t.Helper()
	srv, err := Start(opts)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return srv
}

type directory struct {
	NewNonce    string `json:"newNonce"`
	NewOrder    string `json:"newOrder"`
	RenewalInfo string `json:"renewalInfo"`
	Meta        struct {
		Profiles map[string]string `json:"profiles"`
	} `json:"meta"`
}

func getDirectory(t *testing.T, srv *Server) directory {
	t.Helper()
	resp, err := srv.HTTPClient().Get(srv.DirectoryURL())
	if err != nil {
		t.Fatalf("GET directory: %v", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET directory: status %d", resp.StatusCode)
	}
	var d directory
	if err := json.NewDecoder(resp.Body).Decode(&d); err != nil {
		t.Fatalf("decode directory: %v", err)
	}
	return d
}

func TestDirectoryProfilesAndNonce(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		without    bool
		wantShort  bool
		wantPrefix string
	}{
		{name: "default", wantShort: true},
		{name: "WithoutShortlived", without: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := startCA(t, Options{WithoutShortlived: tc.without})
			u, err := url.Parse(srv.DirectoryURL())
			if err != nil || u.Scheme != "https" || u.Path != "/dir" || !strings.HasPrefix(u.Host, "127.0.0.1:") {
				t.Fatalf("DirectoryURL %q: want https://127.0.0.1:PORT/dir (%v)", srv.DirectoryURL(), err)
			}
			d := getDirectory(t, srv)
			if _, ok := d.Meta.Profiles[ProfileShortlived]; ok != tc.wantShort {
				t.Errorf("meta.profiles = %v: shortlived present = %t, want %t", d.Meta.Profiles, ok, tc.wantShort)
			}
			if _, ok := d.Meta.Profiles[ProfileClassic]; !ok {
				t.Errorf("meta.profiles = %v: classic missing", d.Meta.Profiles)
			}
			if d.RenewalInfo == "" {
				t.Error("directory has no renewalInfo (ARI) URL")
			}

			resp, err := srv.HTTPClient().Head(d.NewNonce)
			if err != nil {
				t.Fatalf("HEAD newNonce: %v", err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Header.Get("Replay-Nonce") == "" {
				t.Errorf("HEAD newNonce: status %d, Replay-Nonce %q", resp.StatusCode, resp.Header.Get("Replay-Nonce"))
			}
		})
	}
}

// The pool trusts only this server's listener: another local CA's client
// must not accept it, and the root that signs issued certificates is a
// different certificate.
func TestTwoServersAtOnce(t *testing.T) {
	t.Parallel()
	a := startCA(t, Options{})
	b := startCA(t, Options{})
	if a.DirectoryURL() == b.DirectoryURL() {
		t.Fatalf("both servers at %s", a.DirectoryURL())
	}
	getDirectory(t, a)
	getDirectory(t, b)
	if string(a.IssuerRootPEM()) == string(b.IssuerRootPEM()) {
		t.Error("two CAs share an issuer root")
	}
	if resp, err := a.HTTPClient().Get(b.DirectoryURL()); err == nil {
		resp.Body.Close()
		t.Error("server a's client trusted server b's listener")
	}
	block, _ := pem.Decode(a.IssuerRootPEM())
	if block == nil || block.Type != "CERTIFICATE" {
		t.Fatalf("IssuerRootPEM is not a PEM certificate")
	}
	root, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	if !root.IsCA || !strings.HasPrefix(root.Subject.CommonName, "Pebble Root CA") {
		t.Errorf("issuer root %q (IsCA %t): want Pebble's root", root.Subject, root.IsCA)
	}
}

func TestStartManyInParallel(t *testing.T) {
	t.Parallel()
	for i := range 4 {
		t.Run(fmt.Sprint(i), func(t *testing.T) {
			t.Parallel()
			srv := startCA(t, Options{NonceRejectPercent: i, AuthzReusePercent: i})
			getDirectory(t, srv)
		})
	}
}

func TestCloseFreesPortAndIsIdempotent(t *testing.T) {
	t.Parallel()
	srv, err := Start(Options{})
	if err != nil {
		t.Fatal(err)
	}
	getDirectory(t, srv)
	u, _ := url.Parse(srv.DirectoryURL())
	began := time.Now()
	if err := srv.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	// HTTP/2's GOAWAY grace once made every Close take a second.
	if took := time.Since(began); took > 500*time.Millisecond {
		t.Errorf("Close took %s with an idle client connection", took)
	}
	if err := srv.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if resp, err := srv.HTTPClient().Get(srv.DirectoryURL()); err == nil {
		resp.Body.Close()
		t.Fatal("directory still answers after Close")
	}
	// The port is free: a new CA can take exactly that address.
	again := startCA(t, Options{ListenAddr: u.Host})
	if again.DirectoryURL() != srv.DirectoryURL() {
		t.Errorf("restarted at %s, want %s", again.DirectoryURL(), srv.DirectoryURL())
	}
	getDirectory(t, again)
}

func TestOptionsRejected(t *testing.T) {
	t.Parallel()
	for name, o := range map[string]Options{
		"public listen address":   {ListenAddr: "0.0.0.0:0"},
		"no port":                 {ListenAddr: "127.0.0.1"},
		"nonce percent":           {NonceRejectPercent: 101},
		"authz percent":           {AuthzReusePercent: -1},
		"http port":               {HTTPPort: 70000},
		"fractional validity":     {Validity: 1500 * time.Millisecond},
		"negative validity":       {Validity: -time.Hour},
		"negative retry-after":    {RetryAfterOrder: -1},
		"hostname not loopback":   {ListenAddr: "example.org:0"},
		"ipv6 unspecified listen": {ListenAddr: "[::]:0"},
	} {
		if srv, err := Start(o); err == nil {
			srv.Close()
			t.Errorf("%s: Start(%+v) succeeded", name, o)
		}
	}
}

// http01Responder answers http-01 like our engine's standalone responder and
// records what the validator sent.
type http01Responder struct {
	mu      sync.Mutex
	keyAuth map[string]string // token -> key authorization
	hosts   []string
	remotes []string
	port    int
}

func startHTTP01(t *testing.T, network, addr string) *http01Responder {
	t.Helper()
	r := &http01Responder{keyAuth: map[string]string{}}
	ln, err := net.Listen(network, addr)
	if err != nil {
		t.Skipf("cannot listen on %s: %v", addr, err)
	}
	r.port = ln.Addr().(*net.TCPAddr).Port
	ts := httptest.NewUnstartedServer(r)
	ts.Listener.Close()
	ts.Listener = ln
	ts.Start()
	t.Cleanup(ts.Close)
	return r
}

func (r *http01Responder) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	token, ok := strings.CutPrefix(req.URL.Path, "/.well-known/acme-challenge/")
	r.mu.Lock()
	r.hosts = append(r.hosts, req.Host)
	host, _, _ := net.SplitHostPort(req.RemoteAddr)
	r.remotes = append(r.remotes, host)
	ka, known := r.keyAuth[token]
	r.mu.Unlock()
	if !ok || !known {
		http.NotFound(w, req)
		return
	}
	_, _ = io.WriteString(w, ka)
}

func (r *http01Responder) set(token, keyAuth string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keyAuth[token] = keyAuth
}

func (r *http01Responder) seen() (hosts, remotes []string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.hosts...), append([]string(nil), r.remotes...)
}

// tlsALPNResponder answers tls-alpn-01 (RFC 8737/8738) and records the SNI
// and ALPN protocols the validator offered.
type tlsALPNResponder struct {
	mu    sync.Mutex
	certs map[string]*tls.Certificate // SNI -> challenge certificate
	snis  []string
	alpns [][]string
	port  int
}

// idPeAcmeIdentifier is RFC 8737's acmeIdentifier extension.
var idPeAcmeIdentifier = asn1.ObjectIdentifier{1, 3, 6, 1, 5, 5, 7, 1, 31}

func startTLSALPN(t *testing.T) *tlsALPNResponder {
	t.Helper()
	r := &tlsALPNResponder{certs: map[string]*tls.Certificate{}}
	cfg := &tls.Config{
		NextProtos: []string{"acme-tls/1"},
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(hello *tls.ClientHelloInfo) (*tls.Certificate, error) {
			r.mu.Lock()
			defer r.mu.Unlock()
			r.snis = append(r.snis, hello.ServerName)
			r.alpns = append(r.alpns, hello.SupportedProtos)
			if c, ok := r.certs[hello.ServerName]; ok {
				return c, nil
			}
			return nil, fmt.Errorf("no challenge certificate for SNI %q", hello.ServerName)
		},
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.port = ln.Addr().(*net.TCPAddr).Port
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_ = c.SetDeadline(time.Now().Add(5 * time.Second))
				_ = c.(*tls.Conn).Handshake()
			}()
		}
	}()
	return r
}

func (r *tlsALPNResponder) set(t *testing.T, sni string, ip net.IP, keyAuth string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256([]byte(keyAuth))
	val, err := asn1.Marshal(sum[:])
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:    big.NewInt(1),
		NotBefore:       time.Now().Add(-time.Hour),
		NotAfter:        time.Now().Add(time.Hour),
		IPAddresses:     []net.IP{ip},
		ExtraExtensions: []pkix.Extension{{Id: idPeAcmeIdentifier, Critical: true, Value: val}},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.certs[sni] = &tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func (r *tlsALPNResponder) seen() (snis []string, alpns [][]string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.snis...), append([][]string(nil), r.alpns...)
}

// waitFor polls get until done says so, failing the test at the deadline.
func waitFor[T any](t *testing.T, what string, get func() (T, error), done func(T) bool) T {
	t.Helper()
	deadline := time.Now().Add(pollFor)
	for {
		v, err := get()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if done(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not done after %s: %+v", what, pollFor, v)
		}
		time.Sleep(pollEvery)
	}
}

func newAccount(t *testing.T, srv *Server) *api.Core {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	core, err := api.New(srv.HTTPClient(), "ipcert-test", srv.DirectoryURL(), "", key)
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	if _, err := core.Accounts.New(acme.Account{TermsOfServiceAgreed: true}); err != nil {
		t.Fatalf("new account: %v", err)
	}
	return core
}

// solver fulfils one challenge of its type for an authorization.
type solver struct {
	typ     string
	prepare func(t *testing.T, authz acme.Authorization, keyAuth string)
}

func http01Solver(r *http01Responder) solver {
	return solver{typ: "http-01", prepare: func(t *testing.T, authz acme.Authorization, keyAuth string) {
		token, _, _ := strings.Cut(keyAuth, ".")
		r.set(token, keyAuth)
	}}
}

// authorize solves every authorization of the order and returns the final
// state of each.
func authorize(t *testing.T, core *api.Core, order acme.ExtendedOrder, s solver) []acme.Authorization {
	t.Helper()
	var out []acme.Authorization
	for _, authzURL := range order.Authorizations {
		authz, err := core.Authorizations.Get(authzURL)
		if err != nil {
			t.Fatalf("get authz: %v", err)
		}
		var chal *acme.Challenge
		for i := range authz.Challenges {
			if authz.Challenges[i].Type == s.typ {
				chal = &authz.Challenges[i]
			}
		}
		if chal == nil {
			t.Fatalf("authz for %v offers no %s: %+v", authz.Identifier, s.typ, authz.Challenges)
		}
		keyAuth, err := core.GetKeyAuthorization(chal.Token)
		if err != nil {
			t.Fatal(err)
		}
		s.prepare(t, authz, keyAuth)
		if _, err := core.Challenges.New(chal.URL); err != nil {
			t.Fatalf("accept challenge: %v", err)
		}
		out = append(out, waitFor(t, "authorization "+authz.Identifier.Value,
			func() (acme.Authorization, error) { return core.Authorizations.Get(authzURL) },
			func(a acme.Authorization) bool { return a.Status != acme.StatusPending }))
	}
	return out
}

type issued struct {
	leaf  *x509.Certificate
	chain []*x509.Certificate // leaf first, as the CA sent it
	order acme.ExtendedOrder
}

// issue runs one full ACME order for ips and returns the certificate.
func issue(t *testing.T, core *api.Core, ips []string, opts *api.OrderOptions, s solver, subject pkix.Name) issued {
	t.Helper()
	order, err := core.Orders.NewWithOptions(ips, opts)
	if err != nil {
		t.Fatalf("new order: %v", err)
	}
	for _, a := range authorize(t, core, order, s) {
		if a.Status != acme.StatusValid {
			t.Fatalf("authorization %s is %s: %+v", a.Identifier.Value, a.Status, a.Challenges)
		}
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.CertificateRequest{Subject: subject}
	for _, ip := range ips {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
	}
	csr, err := x509.CreateCertificateRequest(rand.Reader, tmpl, crypto.Signer(key))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.Orders.UpdateForCSR(order.Finalize, csr); err != nil {
		t.Fatalf("finalize: %v", err)
	}
	done := waitFor(t, "order",
		func() (acme.ExtendedOrder, error) { return core.Orders.Get(order.Location) },
		func(o acme.ExtendedOrder) bool {
			return o.Status == acme.StatusValid || o.Status == acme.StatusInvalid
		})
	if done.Status != acme.StatusValid {
		t.Fatalf("order ended %s: %+v", done.Status, done.Error)
	}
	bundle, _, err := core.Certificates.Get(done.Certificate, true)
	if err != nil {
		t.Fatalf("download: %v", err)
	}
	var chain []*x509.Certificate
	for rest := bundle; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		c, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		t.Fatal("no certificate in the download")
	}
	return issued{leaf: chain[0], chain: chain, order: done}
}

// verifyToRoot checks the chain against the CA's issuer root only.
func verifyToRoot(t *testing.T, srv *Server, got issued) {
	t.Helper()
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(srv.IssuerRootPEM()) {
		t.Fatal("IssuerRootPEM holds no certificate")
	}
	inter := x509.NewCertPool()
	for _, c := range got.chain[1:] {
		inter.AddCert(c)
	}
	if _, err := got.leaf.Verify(x509.VerifyOptions{
		Roots:         roots,
		Intermediates: inter,
		KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}); err != nil {
		t.Errorf("leaf does not chain to IssuerRootPEM: %v", err)
	}
}

// ariCertID is RFC 9773 section 4.1: base64url(AKI) "." base64url(serial
// DER content octets).
func ariCertID(t *testing.T, c *x509.Certificate) string {
	t.Helper()
	der, err := asn1.Marshal(c.SerialNumber)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(c.AuthorityKeyId) + "." + base64.RawURLEncoding.EncodeToString(der[2:])
}

// The main path of the whole project, against the local CA: a shortlived
// certificate for 127.0.0.1 via http-01, then ARI and a replacement order.
func TestIssueShortlivedIPv4HTTP01(t *testing.T) {
	t.Parallel()
	resp := startHTTP01(t, "tcp", "127.0.0.1:0")
	srv := startCA(t, Options{HTTPPort: resp.port})
	core := newAccount(t, srv)

	got := issue(t, core, []string{"127.0.0.1"}, &api.OrderOptions{Profile: ProfileShortlived}, http01Solver(resp), pkix.Name{})

	if got.order.Profile != ProfileShortlived {
		t.Errorf("order profile %q", got.order.Profile)
	}
	// Pebble: notAfter = notBefore + validity - 1 s (ca.newCertificate).
	if life := got.leaf.NotAfter.Sub(got.leaf.NotBefore); life != DefaultValidity-time.Second {
		t.Errorf("validity %s, want %s", life, DefaultValidity-time.Second)
	}
	if len(got.leaf.IPAddresses) != 1 || !got.leaf.IPAddresses[0].Equal(net.IPv4(127, 0, 0, 1)) || len(got.leaf.DNSNames) != 0 {
		t.Errorf("SANs: IPs %v DNS %v, want only 127.0.0.1", got.leaf.IPAddresses, got.leaf.DNSNames)
	}
	if got.leaf.Subject.CommonName != "" {
		t.Errorf("Common Name %q, want empty", got.leaf.Subject.CommonName)
	}
	verifyToRoot(t, srv, got)

	// The validator asks for IP:HTTPPort, so Host carries the port, and it
	// asks three times (Pebble's concurrentValidations), from loopback.
	hosts, remotes := resp.seen()
	wantHost := fmt.Sprintf("127.0.0.1:%d", resp.port)
	if len(hosts) != 3 {
		t.Errorf("validator made %d requests, want 3: %v", len(hosts), hosts)
	}
	for i := range hosts {
		if hosts[i] != wantHost || remotes[i] != "127.0.0.1" {
			t.Errorf("request %d: Host %q from %s, want Host %q from 127.0.0.1", i, hosts[i], remotes[i], wantHost)
		}
	}

	// ARI: Pebble's window is notAfter - validity/3 +- 24 h, with
	// Retry-After 6 h (core.RenewalInfoSimple).
	r, err := core.Certificates.GetRenewalInfo(ariCertID(t, got.leaf))
	if err != nil {
		t.Fatalf("renewalInfo: %v", err)
	}
	defer r.Body.Close()
	var ri acme.RenewalInfoResponse
	if err := json.NewDecoder(r.Body).Decode(&ri); err != nil || r.StatusCode != http.StatusOK {
		t.Fatalf("renewalInfo: status %d, %v", r.StatusCode, err)
	}
	ideal := got.leaf.NotAfter.Add(time.Second).Add(-DefaultValidity / 3)
	wantStart, wantEnd := ideal.Add(-24*time.Hour), ideal.Add(24*time.Hour)
	if !ri.SuggestedWindow.Start.Equal(wantStart.Add(-time.Second)) || !ri.SuggestedWindow.End.Equal(wantEnd.Add(-time.Second)) {
		t.Errorf("ARI window %s .. %s, want %s .. %s (minus 1 s)", ri.SuggestedWindow.Start, ri.SuggestedWindow.End, wantStart, wantEnd)
	}
	if ra := r.Header.Get("Retry-After"); ra != "21600" {
		t.Errorf("ARI Retry-After %q, want 21600", ra)
	}

	// `replaces` is accepted and echoed for the same account and identifier.
	repl, err := core.Orders.NewWithOptions([]string{"127.0.0.1"}, &api.OrderOptions{
		Profile:        ProfileShortlived,
		ReplacesCertID: ariCertID(t, got.leaf),
	})
	if err != nil {
		t.Fatalf("replacement order: %v", err)
	}
	if repl.Replaces != ariCertID(t, got.leaf) {
		t.Errorf("replacement order replaces %q, want %q", repl.Replaces, ariCertID(t, got.leaf))
	}
}

func TestIssueIPv6HTTP01CustomValidity(t *testing.T) {
	t.Parallel()
	resp := startHTTP01(t, "tcp6", "[::1]:0")
	srv := startCA(t, Options{HTTPPort: resp.port, Validity: time.Hour})
	core := newAccount(t, srv)

	got := issue(t, core, []string{"::1"}, &api.OrderOptions{Profile: ProfileShortlived}, http01Solver(resp), pkix.Name{})

	if life := got.leaf.NotAfter.Sub(got.leaf.NotBefore); life != time.Hour-time.Second {
		t.Errorf("validity %s, want 59m59s", life)
	}
	if len(got.leaf.IPAddresses) != 1 || !got.leaf.IPAddresses[0].Equal(net.IPv6loopback) {
		t.Errorf("IP SANs %v, want ::1", got.leaf.IPAddresses)
	}
	verifyToRoot(t, srv, got)
	hosts, _ := resp.seen()
	want := fmt.Sprintf("[::1]:%d", resp.port)
	for _, h := range hosts {
		if h != want {
			t.Errorf("Host %q, want %q", h, want)
		}
	}
}

// Pebble sends the RFC 8738 reverse name as SNI; it writes it with a
// trailing dot (va.reverseaddr) but Go's TLS client drops the dot.
func TestTLSALPN01ReverseNameSNI(t *testing.T) {
	t.Parallel()
	resp := startTLSALPN(t)
	srv := startCA(t, Options{TLSPort: resp.port})
	core := newAccount(t, srv)
	const sni = "1.0.0.127.in-addr.arpa"
	s := solver{typ: "tls-alpn-01", prepare: func(t *testing.T, _ acme.Authorization, keyAuth string) {
		resp.set(t, sni, net.IPv4(127, 0, 0, 1), keyAuth)
	}}

	got := issue(t, core, []string{"127.0.0.1"}, &api.OrderOptions{Profile: ProfileShortlived}, s, pkix.Name{})
	verifyToRoot(t, srv, got)

	snis, alpns := resp.seen()
	if len(snis) == 0 {
		t.Fatal("validator never connected")
	}
	for i := range snis {
		if snis[i] != sni || len(alpns[i]) != 1 || alpns[i][0] != "acme-tls/1" {
			t.Errorf("handshake %d: SNI %q ALPN %v, want %q [acme-tls/1]", i, snis[i], alpns[i], sni)
		}
	}
}

// Let's Encrypt refuses an IP in the CSR's Common Name (badCSR); Pebble
// ignores the subject, so the engine cannot rely on the local CA to catch it.
func TestCSRCommonNameIgnored(t *testing.T) {
	t.Parallel()
	resp := startHTTP01(t, "tcp", "127.0.0.1:0")
	srv := startCA(t, Options{HTTPPort: resp.port})
	core := newAccount(t, srv)

	got := issue(t, core, []string{"127.0.0.1"}, &api.OrderOptions{Profile: ProfileShortlived}, http01Solver(resp), pkix.Name{CommonName: "127.0.0.1"})
	if got.leaf.Subject.CommonName != "" {
		t.Errorf("Common Name %q, want empty", got.leaf.Subject.CommonName)
	}
}

// Let's Encrypt allows IPs only under shortlived (rejectedIdentifier
// otherwise); Pebble issues them under classic too, with the IP promoted to
// the Common Name and 90 days.
func TestClassicAcceptsIP(t *testing.T) {
	t.Parallel()
	resp := startHTTP01(t, "tcp", "127.0.0.1:0")
	srv := startCA(t, Options{HTTPPort: resp.port})
	core := newAccount(t, srv)

	got := issue(t, core, []string{"127.0.0.1"}, &api.OrderOptions{Profile: ProfileClassic}, http01Solver(resp), pkix.Name{})
	if life := got.leaf.NotAfter.Sub(got.leaf.NotBefore); life != ClassicValidity-time.Second {
		t.Errorf("validity %s, want %s", life, ClassicValidity-time.Second)
	}
	if got.leaf.Subject.CommonName != "127.0.0.1" {
		t.Errorf("Common Name %q, want the promoted IP", got.leaf.Subject.CommonName)
	}
}

// Pebble has no default profile: an order without one gets a random offered
// profile, and an unknown one is invalidProfile.
func TestOrderProfileChoice(t *testing.T) {
	t.Parallel()
	srv := startCA(t, Options{})
	core := newAccount(t, srv)
	seen := map[string]bool{}
	for range 12 {
		o, err := core.Orders.New([]string{"127.0.0.1"})
		if err != nil {
			t.Fatal(err)
		}
		seen[o.Profile] = true
	}
	for p := range seen {
		if p != ProfileShortlived && p != ProfileClassic {
			t.Errorf("order got profile %q", p)
		}
	}
	_, err := core.Orders.NewWithOptions([]string{"127.0.0.1"}, &api.OrderOptions{Profile: "tlsserver"})
	var prob *acme.ProblemDetails
	if !errors.As(err, &prob) || prob.Type != "urn:ietf:params:acme:error:invalidProfile" {
		t.Errorf("unknown profile: %v, want invalidProfile", err)
	}

	only := startCA(t, Options{WithoutShortlived: true})
	oc := newAccount(t, only)
	o, err := oc.Orders.New([]string{"127.0.0.1"})
	if err != nil {
		t.Fatal(err)
	}
	if o.Profile != ProfileClassic {
		t.Errorf("without shortlived, order got %q", o.Profile)
	}
	if _, err := oc.Orders.NewWithOptions([]string{"127.0.0.1"}, &api.OrderOptions{Profile: ProfileShortlived}); !errors.As(err, &prob) || prob.Type != "urn:ietf:params:acme:error:invalidProfile" {
		t.Errorf("shortlived on a CA without it: %v, want invalidProfile", err)
	}
}

// A value left in the developer's shell must neither change the CA nor leak
// out of Start: PEBBLE_VA_ALWAYS_VALID would pass a wrong key authorization,
// PEBBLE_WFE_NONCEREJECT=100 would reject nearly every request.
func TestEnvironmentPinnedAndRestored(t *testing.T) {
	// t.Setenv forbids t.Parallel, which is also why Start needs envMu.
	t.Setenv("PEBBLE_VA_ALWAYS_VALID", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "100")
	_ = os.Unsetenv("PEBBLE_AUTHZREUSE")

	resp := startHTTP01(t, "tcp", "127.0.0.1:0")
	srv := startCA(t, Options{HTTPPort: resp.port})

	if v := os.Getenv("PEBBLE_VA_ALWAYS_VALID"); v != "1" {
		t.Errorf("PEBBLE_VA_ALWAYS_VALID = %q after Start, want the caller's 1", v)
	}
	if v := os.Getenv("PEBBLE_WFE_NONCEREJECT"); v != "100" {
		t.Errorf("PEBBLE_WFE_NONCEREJECT = %q after Start, want the caller's 100", v)
	}
	if v, ok := os.LookupEnv("PEBBLE_AUTHZREUSE"); ok {
		t.Errorf("PEBBLE_AUTHZREUSE = %q after Start, want unset", v)
	}

	core := newAccount(t, srv) // fails if nonces were rejected
	order, err := core.Orders.NewWithOptions([]string{"127.0.0.1"}, &api.OrderOptions{Profile: ProfileShortlived})
	if err != nil {
		t.Fatal(err)
	}
	wrong := solver{typ: "http-01", prepare: func(t *testing.T, _ acme.Authorization, keyAuth string) {
		token, _, _ := strings.Cut(keyAuth, ".")
		resp.set(token, "not-the-key-authorization")
	}}
	authz := authorize(t, core, order, wrong)
	if authz[0].Status != acme.StatusInvalid {
		t.Fatalf("wrong key authorization gave %s: the validator did not really validate", authz[0].Status)
	}
	var detail string
	for _, c := range authz[0].Challenges {
		if c.Error != nil {
			detail = c.Error.Type + " " + c.Error.Detail
		}
	}
	if !strings.Contains(detail, "unauthorized") {
		t.Errorf("challenge error %q, want unauthorized", detail)
	}
}
