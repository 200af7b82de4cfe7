// Package localca runs Pebble, Let's Encrypt's test CA, inside this process
// on loopback, so the engine tests and `ipcert demo` / `ipcert issue --ca
// local` go through the real ACME protocol with no internet and no root.
//
// API:
//
//	func Start(opts Options) (*Server, error)
//	func (s *Server) DirectoryURL() string         // https://127.0.0.1:PORT/dir
//	func (s *Server) HTTPClient() *http.Client     // trusts only the listener's cert
//	func (s *Server) IssuerRootPEM() []byte        // Pebble's root that signs issued certs
//	func (s *Server) Close() error                 // idempotent
//
// The CA offers two profiles, mirroring Let's Encrypt: "shortlived"
// (Options.Validity, 160 h by default, no Common Name) and "classic" (90 days,
// first name promoted to the Common Name). Both roots and keys are ECDSA P-256
// and exist only in memory: every Start is a brand-new CA.
//
// What Pebble v2.10.3 does for IP identifiers (each point is proven by a test
// in localca_test.go). Where it differs from Let's Encrypt (docs/letsencrypt.md), the
// engine must enforce the Let's Encrypt rule itself, because this CA will not
// catch the mistake:
//
//   - http-01: the validator GETs
//     http://IP:HTTPPort/.well-known/acme-challenge/TOKEN, so the Host header
//     is "IP:HTTPPort" ("[::1]:PORT" for IPv6), not the bare IP that Let's
//     Encrypt sends on port 80. It makes three requests per challenge
//     (Pebble's concurrentValidations), from the loopback address.
//   - tls-alpn-01: it dials IP:TLSPort with ALPN acme-tls/1 and SNI set to
//     the RFC 8738 reverse name ("1.0.0.127.in-addr.arpa", nibble form under
//     ip6.arpa). Pebble builds the name with a trailing dot; Go's TLS client
//     strips it, so the responder sees the name without the dot. The
//     answering certificate must carry exactly one iPAddress SAN equal to the
//     IP.
//   - The CSR's subject is ignored: a CSR with the IP as Common Name is NOT
//     refused (Let's Encrypt answers badCSR) and the shortlived certificate
//     comes out without a Common Name anyway.
//   - IP identifiers are accepted under every profile, and loopback or private
//     addresses are accepted (Let's Encrypt answers rejectedIdentifier).
//   - An order without a profile gets a RANDOM one of the offered profiles
//     ("in true Pebble chaos fashion", wfe.NewOrder); the directory names no
//     default. The engine must always send `profile`.
//   - ARI: the directory's renewalInfo URL answers GET /renewalInfo/CERTID
//     with a window centred on notAfter - validity/3, +-24 h, clamped to the
//     validity (for 160 h: notBefore+82h40m to +130h40m, each minus 1 s), not
//     Let's Encrypt's midpoint +-1 %, and Retry-After: 21600. So renewal
//     timing tests must not assume Let's Encrypt's window. A newOrder with
//     `replaces` is accepted when the old certificate belongs to the same
//     account and shares an identifier, and the order echoes `replaces`.
//     (lego's Orders.NewWithOptions silently retries without `replaces` when
//     the CA answers alreadyReplaced.)
//   - Issued certificates live validity-1s (notAfter = notBefore + V - 1 s).
package localca

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// Profile names, as Let's Encrypt spells them (letsencrypt.org/docs/profiles).
const (
	ProfileShortlived = "shortlived"
	ProfileClassic    = "classic"
)

const (
	// DefaultValidity is Let's Encrypt's shortlived profile (docs/letsencrypt.md).
	DefaultValidity = 160 * time.Hour
	// ClassicValidity is Let's Encrypt's classic profile.
	ClassicValidity = 90 * 24 * time.Hour

	defaultListenAddr = "127.0.0.1:0"
	shutdownTimeout   = 2 * time.Second
)

// Options configures one local CA. The zero value is usable; set HTTPPort
// or TLSPort to the port of the challenge responder you will run.
type Options struct {
	// ListenAddr is the ACME HTTPS listener. It must be a loopback address
	// or "localhost"; default "127.0.0.1:0" (a free port chosen at run time).
	ListenAddr string
	// HTTPPort is where Pebble's validator connects for http-01, on the
	// identifier's IP. 0 means no http-01 responder: such a validation fails
	// with a connection error.
	HTTPPort int
	// TLSPort is the same for tls-alpn-01.
	TLSPort int
	// Validity of the "shortlived" profile; default 160 h. Pebble counts in
	// whole seconds, so it must be a whole number of seconds.
	Validity time.Duration
	// WithoutShortlived omits the shortlived profile, to test the "CA does not
	// offer shortlived" path.
	WithoutShortlived bool
	// NonceRejectPercent is the share of good nonces Pebble rejects as
	// badNonce (PEBBLE_WFE_NONCEREJECT); 0..100, default 0 (Pebble's own
	// default would be 5).
	NonceRejectPercent int
	// AuthzReusePercent is how often Pebble reuses a valid authorization for
	// a new order (PEBBLE_AUTHZREUSE); 0..100, default 0 (Pebble's own
	// default would be 50).
	AuthzReusePercent int
	// VASleep keeps Pebble's random 0-5 s sleep before each validation. Off by
	// default (PEBBLE_VA_NOSLEEP=1) so issuance takes milliseconds.
	VASleep bool
	// RetryAfterAuthz and RetryAfterOrder are Retry-After seconds Pebble
	// sends on authorization and order responses; 0 sends none (like Boulder).
	RetryAfterAuthz, RetryAfterOrder int
	// Log receives Pebble's log; default io.Discard, never the terminal (the
	// wizard draws there).
	Log io.Writer
}

// Server is a running local CA. Its methods are safe for concurrent use.
type Server struct {
	dirURL    string
	client    *http.Client
	transport *http.Transport
	issuerPEM []byte
	listenPEM []byte

	srv       *http.Server
	served    chan struct{} // closed when Serve returns
	closeOnce sync.Once
	closeErr  error
}

// Start builds a fresh Pebble (CA, validator, web front end) and serves it on
// opts.ListenAddr until Close.
//
// Pebble's validator starts a task goroutine (va.New -> processTasks) that
// has no stop method: each Start leaks that goroutine and the in-memory CA
// for the life of the process. That is a few kilobytes per test; do not
// start servers in a loop that runs forever.
func Start(opts Options) (*Server, error) {
	validity, err := opts.check()
	if err != nil {
		return nil, err
	}
	logw := opts.Log
	if logw == nil {
		logw = io.Discard
	}
	logger := log.New(logw, "pebble ", log.LstdFlags|log.Lmicroseconds)

	profiles := map[string]ca.Profile{
		ProfileClassic: {
			Description:       "90 days, DNS names, first name as Common Name (like Let's Encrypt classic)",
			PromoteCommonName: true,
			ValidityPeriod:    uint64(ClassicValidity / time.Second),
		},
	}
	if !opts.WithoutShortlived {
		profiles[ProfileShortlived] = ca.Profile{
			Description:    fmt.Sprintf("%s, IP addresses allowed, no Common Name (like Let's Encrypt shortlived)", validity),
			ValidityPeriod: uint64(validity / time.Second),
		}
	}

	listenAddr := opts.ListenAddr
	if listenAddr == "" {
		listenAddr = defaultListenAddr
	}
	ln, err := net.Listen("tcp", listenAddr)
	if err != nil {
		return nil, fmt.Errorf("local CA: listen on %s: %w", listenAddr, err)
	}
	tlsCert, roots, err := selfSignedListenerCert()
	if err != nil {
		_ = ln.Close()
		return nil, fmt.Errorf("local CA: listener certificate: %w", err)
	}

	handler, issuerPEM := buildPebble(logger, opts, profiles)

	s := &Server{
		dirURL:    "https://" + ln.Addr().String() + wfe.DirectoryPath,
		issuerPEM: issuerPEM,
		served:    make(chan struct{}),
		listenPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: tlsCert.Certificate[0]}),
	}
	s.transport = &http.Transport{
		// Never through HTTP(S)_PROXY: the CA is on loopback.
		Proxy:               nil,
		TLSClientConfig:     &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout: 5 * time.Second,
		IdleConnTimeout:     30 * time.Second,
	}
	s.client = &http.Client{Transport: s.transport, Timeout: 30 * time.Second}
	s.srv = &http.Server{
		Handler:           handler,
		TLSConfig:         &tls.Config{Certificates: []tls.Certificate{tlsCert}, MinVersion: tls.VersionTLS12},
		ReadHeaderTimeout: 10 * time.Second,
		// HTTP/1.1 only: on Shutdown an HTTP/2 connection gets a GOAWAY and
		// is held open for a fixed second, which made every Close (every
		// test) a second slower. ACME needs nothing from HTTP/2.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		// Without it, net/http writes TLS handshake errors to the standard
		// logger, that is to the terminal the wizard draws on.
		ErrorLog: logger,
	}
	go func() {
		defer close(s.served)
		// ErrServerClosed after Close; any other error is logged by
		// Pebble's logger, and the next request fails with a clear error.
		if err := s.srv.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			logger.Printf("local CA stopped serving: %v", err)
		}
	}()
	return s, nil
}

// envMu serialises Pebble construction: va.New and wfe.New read their knobs
// only from the process environment (there is no other API), so Start sets
// the variables it wants, constructs, and restores the environment while
// holding this lock. It is the package's only mutable state.
var envMu sync.Mutex

// buildPebble wires the parts the way cmd/pebble/main.go does.
func buildPebble(logger *log.Logger, opts Options, profiles map[string]ca.Profile) (http.Handler, []byte) {
	noSleep := "1"
	if opts.VASleep {
		noSleep = ""
	}
	// Every variable Pebble's constructors read, set on purpose so a value
	// left in the developer's shell (say PEBBLE_VA_ALWAYS_VALID=1) cannot make
	// a test pass that should fail. "" means unset, i.e. Pebble's default.
	// PEBBLE_CHAIN_LENGTH and PEBBLE_ALTERNATE_ROOTS are read only by
	// cmd/pebble's main; we pass those values to ca.New directly.
	env := map[string]string{
		"PEBBLE_VA_NOSLEEP":          noSleep,
		"PEBBLE_VA_SLEEPTIME":        "",
		"PEBBLE_VA_ALWAYS_VALID":     "",
		"PEBBLE_WFE_NONCEREJECT":     strconv.Itoa(opts.NonceRejectPercent),
		"PEBBLE_AUTHZREUSE":          strconv.Itoa(opts.AuthzReusePercent),
		"PEBBLE_WFE_ORDERS_PER_PAGE": "",
	}

	envMu.Lock()
	defer envMu.Unlock()
	restore := setEnv(env)
	defer restore()

	store := db.NewMemoryStore()
	// ECDSA like Let's Encrypt's current intermediates, and fast: RSA keys
	// would cost ~100 ms per Start under -race. One intermediate, no
	// alternate roots: the chain a caller verifies is leaf -> intermediate ->
	// IssuerRootPEM.
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, profiles)
	// The resolver is empty: the validator dials IP identifiers as given
	// and never needs DNS for them.
	validator := va.New(logger, opts.HTTPPort, opts.TLSPort, false, "", store)
	front := wfe.New(logger, store, validator, authority,
		[]string{"pebble.letsencrypt.org"}, false, false,
		opts.RetryAfterAuthz, opts.RetryAfterOrder)

	root := authority.GetRootCert(0)
	issuerPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: root.DER})
	return front.Handler(), issuerPEM
}

// setEnv applies want ("" = unset) and returns a function that puts back
// exactly what was there before. Callers hold envMu.
func setEnv(want map[string]string) (restore func()) {
	type prev struct {
		val string
		ok  bool
	}
	saved := make(map[string]prev, len(want))
	for k, v := range want {
		old, ok := os.LookupEnv(k)
		saved[k] = prev{old, ok}
		if v == "" {
			_ = os.Unsetenv(k)
		} else {
			_ = os.Setenv(k, v)
		}
	}
	return func() {
		for k, p := range saved {
			if p.ok {
				_ = os.Setenv(k, p.val)
			} else {
				_ = os.Unsetenv(k)
			}
		}
	}
}

// check validates opts and returns the shortlived validity to use.
func (o Options) check() (time.Duration, error) {
	if o.ListenAddr != "" {
		host, _, err := net.SplitHostPort(o.ListenAddr)
		if err != nil {
			return 0, fmt.Errorf("local CA: listen address %q: %w", o.ListenAddr, err)
		}
		// The test CA issues for anything to anyone: keep it off the network.
		if host != "localhost" {
			ip, err := netip.ParseAddr(host)
			if err != nil || !ip.IsLoopback() {
				return 0, fmt.Errorf("local CA: listen address %q is not loopback; the test CA must only listen on 127.0.0.1, ::1 or localhost", o.ListenAddr)
			}
		}
	}
	for name, p := range map[string]int{"HTTPPort": o.HTTPPort, "TLSPort": o.TLSPort} {
		if p < 0 || p > 65535 {
			return 0, fmt.Errorf("local CA: %s %d out of range 0-65535", name, p)
		}
	}
	for name, p := range map[string]int{"NonceRejectPercent": o.NonceRejectPercent, "AuthzReusePercent": o.AuthzReusePercent} {
		if p < 0 || p > 100 {
			return 0, fmt.Errorf("local CA: %s %d out of range 0-100", name, p)
		}
	}
	if o.RetryAfterAuthz < 0 || o.RetryAfterOrder < 0 {
		return 0, errors.New("local CA: Retry-After seconds must not be negative")
	}
	v := o.Validity
	if v == 0 {
		v = DefaultValidity
	}
	if v < time.Second || v%time.Second != 0 {
		return 0, fmt.Errorf("local CA: validity %s must be a positive whole number of seconds", o.Validity)
	}
	return v, nil
}

// selfSignedListenerCert makes the ACME listener's certificate. It is its own
// trust anchor: the pool holds exactly this certificate, so HTTPClient trusts
// this one server and nothing else.
func selfSignedListenerCert() (tls.Certificate, *x509.CertPool, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "ipcert local test CA (ACME listener)"},
		// Backdated against small clock differences; a year outlives any
		// demo or test process.
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(365 * 24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, pool, nil
}

// DirectoryURL is the ACME directory, https://127.0.0.1:PORT/dir.
func (s *Server) DirectoryURL() string { return s.dirURL }

// HTTPClient trusts the listener's certificate only and never uses a proxy.
// It is shared: do not change its fields.
func (s *Server) HTTPClient() *http.Client { return s.client }

// ListenerRootPEM is the PEM of the ACME listener's own certificate: what
// `ipcert --ca URL --ca-root FILE` must trust to talk to this server from
// another process (the tests of the built binary).
func (s *Server) ListenerRootPEM() []byte {
	return append([]byte(nil), s.listenPEM...)
}

// IssuerRootPEM is the PEM of Pebble's root (ca.GetRootCert(0)) that the
// issued chains lead to. It is not the listener's certificate.
func (s *Server) IssuerRootPEM() []byte {
	return append([]byte(nil), s.issuerPEM...)
}

// Close stops the listener and waits briefly for requests in flight. It is
// idempotent and returns the first call's result. Pebble's validator
// goroutine keeps running (see Start); it only holds memory.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := s.srv.Shutdown(ctx); err != nil {
			// A client kept a request open: cut it rather than hang.
			s.closeErr = s.srv.Close()
		}
		<-s.served
		s.transport.CloseIdleConnections()
	})
	return s.closeErr
}
