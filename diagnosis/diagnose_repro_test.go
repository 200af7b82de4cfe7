package diagnosis

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/fakeacme"
	"github.com/ipcert/ipcert/internal/localca"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/testkit"
)

// The failures below are produced for real: Pebble's validator meets a
// closed port, a foreign web server, a redirect, a TLS server that is not
// ours. Each test asserts the diagnosis, not only that an error happened.

// diagCA starts Pebble with its validator pointed at httpPort / tlsPort
// (which may be ports where our responder is NOT listening).
func diagCA(t *testing.T, httpPort, tlsPort int) *localca.Server {
	t.Helper()
	srv, err := localca.Start(localca.Options{HTTPPort: httpPort, TLSPort: tlsPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	return srv
}

func diagRequest(ca *localca.Server, challenge spec.Challenge, listenPort int) acmeflow.Request {
	lp := net.JoinHostPort("127.0.0.1", strconv.Itoa(listenPort))
	return acmeflow.Request{
		Identifiers: mustAddrs("127.0.0.1"), Directory: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(), CAKey: "local",
		Challenge: challenge, HTTPListen: lp, TLSListen: lp, AgreeTOS: true,
	}
}

// serveOn runs h on 127.0.0.1:port for the test.
func serveOn(t *testing.T, port int, h http.Handler) {
	t.Helper()
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

// serveTLSOn runs a TLS server with cert on port; alpn lists the protocols
// it negotiates.
func serveTLSOn(t *testing.T, port int, cert tls.Certificate, alpn []string) {
	t.Helper()
	l, err := tls.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: alpn})
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("a TLS web server")) }),
		ReadHeaderTimeout: 5 * time.Second, ErrorLog: log.New(io.Discard, "", 0)}
	go srv.Serve(l)
	t.Cleanup(func() { srv.Close() })
}

func selfSigned(t *testing.T, ip string) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "not the challenge"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IPAddresses: []net.IP{net.ParseIP(ip)}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

func obtainFails(t *testing.T, req acmeflow.Request) *acmeflow.Error {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	_, err := newEngine(t).Obtain(ctx, req)
	if err == nil {
		t.Fatal("issuance succeeded; the test wanted a failure")
	}
	ae, ok := err.(*acmeflow.Error)
	if !ok {
		t.Fatalf("not an *acmeflow.Error: %T %v", err, err)
	}
	return ae
}

func TestReproRefusedWebrootNothingServing(t *testing.T) {
	closed := testkit.FreePort(t)
	ca := diagCA(t, closed, 0)
	req := diagRequest(ca, acmeflow.ChallengeHTTP01, testkit.FreePort(t))
	req.WebRoot = t.TempDir()
	err := obtainFails(t, req)
	d := Diagnose(err, Evidence{Challenge: acmeflow.ChallengeHTTP01, WebRoot: req.WebRoot, HTTPPort: closed})
	checkDiag(t, d, diagWant{code: DiagConnectRefused, cause: []string{fmt.Sprintf("nothing listens on port %d", closed)}, fix: []string{"web server runs", "ss -ltnp"}})
}

func TestReproRefusedStandaloneNeverReached(t *testing.T) {
	// Our responder listens on one port; the validator knocks on another
	// where nothing listens (a port forward to the wrong port).
	closed := testkit.FreePort(t)
	ca := diagCA(t, closed, 0)
	err := obtainFails(t, diagRequest(ca, acmeflow.ChallengeHTTP01, testkit.FreePort(t)))
	d := Diagnose(err, Evidence{Challenge: acmeflow.ChallengeHTTP01, HTTPPort: closed})
	checkDiag(t, d, diagWant{code: DiagConnectRefused, fix: []string{"0.0.0.0"}, evidence: []string{"no validator request reached our responder"}})
}

func TestReproRouterPageAnswers(t *testing.T) {
	router := testkit.FreePort(t)
	serveOn(t, router, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("<!DOCTYPE html><html><head><title>FRITZ!Box Router Login</title></head></html>"))
	}))
	ca := diagCA(t, router, 0)
	err := obtainFails(t, diagRequest(ca, acmeflow.ChallengeHTTP01, testkit.FreePort(t)))
	if len(err.Seen) != 0 {
		t.Fatalf("our responder saw %v", err.Seen)
	}
	d := Diagnose(err, Evidence{Challenge: acmeflow.ChallengeHTTP01, HTTPPort: router})
	checkDiag(t, d, diagWant{code: DiagForeignServer, cause: []string{"router", "none of its requests reached our responder"}, fix: []string{"forward tcp"}, evidence: []string{"Router Login"}})
}

func TestReproWrongContentFromWebroot(t *testing.T) {
	port := testkit.FreePort(t)
	serveOn(t, port, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("index of a single-page app")) }))
	ca := diagCA(t, port, 0)
	req := diagRequest(ca, acmeflow.ChallengeHTTP01, testkit.FreePort(t))
	req.WebRoot = t.TempDir()
	d := Diagnose(obtainFails(t, req), Evidence{Challenge: acmeflow.ChallengeHTTP01, WebRoot: req.WebRoot, HTTPPort: port})
	checkDiag(t, d, diagWant{code: DiagWrongContent, cause: []string{req.WebRoot, "rewrite"}, fix: []string{"--webroot"}, evidence: []string{"index of a single-page app"}})
}

func TestReproWebrootNotServed(t *testing.T) {
	port := testkit.FreePort(t)
	// The web server serves another directory than the one given.
	serveOn(t, port, http.FileServer(http.Dir(t.TempDir())))
	ca := diagCA(t, port, 0)
	req := diagRequest(ca, acmeflow.ChallengeHTTP01, testkit.FreePort(t))
	req.WebRoot = t.TempDir()
	d := Diagnose(obtainFails(t, req), Evidence{Challenge: acmeflow.ChallengeHTTP01, WebRoot: req.WebRoot, HTTPPort: port})
	checkDiag(t, d, diagWant{code: DiagWebRootNotServed, cause: []string{"404", req.WebRoot}, fix: []string{"document root of the default server"}})
}

func TestReproRedirectToOtherPort(t *testing.T) {
	port, other := testkit.FreePort(t), testkit.FreePort(t)
	serveOn(t, port, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, fmt.Sprintf("http://127.0.0.1:%d%s", other, r.URL.Path), http.StatusFound)
	}))
	ca := diagCA(t, port, 0)
	req := diagRequest(ca, acmeflow.ChallengeHTTP01, testkit.FreePort(t))
	req.WebRoot = t.TempDir()
	err := obtainFails(t, req)
	probe := ProbeValidationPort(context.Background(), netip.MustParseAddr("127.0.0.1"), port, acmeflow.ChallengeHTTP01)
	if probe.Kind != ProbeHTTPRedirect || !strings.Contains(probe.Location, strconv.Itoa(other)) {
		t.Errorf("probe: %+v", probe)
	}
	d := Diagnose(err, Evidence{Challenge: acmeflow.ChallengeHTTP01, WebRoot: req.WebRoot, HTTPPort: port, Probe: &probe})
	checkDiag(t, d, diagWant{code: DiagRedirectPort, cause: []string{"redirect", "ports 80 and 443"}, fix: []string{"exempt /.well-known/acme-challenge/"},
		evidence: []string{fmt.Sprintf("127.0.0.1:%d, not on port %d", other, port), "redirecting to"}})
}

func TestReproTooManyRedirects(t *testing.T) {
	port := testkit.FreePort(t)
	var n atomic.Int64
	serveOn(t, port, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, fmt.Sprintf("/.well-known/acme-challenge/loop%d", n.Add(1)), http.StatusMovedPermanently)
	}))
	ca := diagCA(t, port, 0)
	req := diagRequest(ca, acmeflow.ChallengeHTTP01, testkit.FreePort(t))
	req.WebRoot = t.TempDir()
	d := Diagnose(obtainFails(t, req), Evidence{Challenge: acmeflow.ChallengeHTTP01, WebRoot: req.WebRoot, HTTPPort: port})
	checkDiag(t, d, diagWant{code: DiagTooManyRedirects, cause: []string{"again and again"}, fix: []string{"exempt"}})
}

func TestReproHTTPOnTLSPort(t *testing.T) {
	port := testkit.FreePort(t)
	serveOn(t, port, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("plain http")) }))
	ca := diagCA(t, 0, port)
	err := obtainFails(t, diagRequest(ca, acmeflow.ChallengeTLSALPN01, testkit.FreePort(t)))
	// Pebble says only "Failed to connect"; without a probe the diagnosis
	// still says the validator never reached us.
	d := Diagnose(err, Evidence{Challenge: acmeflow.ChallengeTLSALPN01, TLSPort: port})
	checkDiag(t, d, diagWant{code: DiagTLSConnect, cause: []string{"none of its connections reached our responder", "plain HTTP"}, fix: []string{"ipcert doctor"}})
	probe := ProbeValidationPort(context.Background(), netip.MustParseAddr("127.0.0.1"), port, acmeflow.ChallengeTLSALPN01)
	if probe.Kind != ProbeHTTP {
		t.Fatalf("probe: %+v", probe)
	}
	d = Diagnose(err, Evidence{Challenge: acmeflow.ChallengeTLSALPN01, TLSPort: port, Probe: &probe})
	checkDiag(t, d, diagWant{code: DiagHTTPOnTLSPort, cause: []string{"plain HTTP", fmt.Sprintf("port %d", port)}, fix: []string{"--challenge http-01"},
		evidence: []string{"another server answered", "local probe"}})
}

func TestReproTLSWithoutACMEALPN(t *testing.T) {
	// A web server that ignores ALPN (nginx does): the handshake succeeds
	// without acme-tls/1 and Pebble names the problem.
	port := testkit.FreePort(t)
	serveTLSOn(t, port, selfSigned(t, "127.0.0.1"), nil)
	ca := diagCA(t, 0, port)
	d := Diagnose(obtainFails(t, diagRequest(ca, acmeflow.ChallengeTLSALPN01, testkit.FreePort(t))), Evidence{Challenge: acmeflow.ChallengeTLSALPN01, TLSPort: port})
	checkDiag(t, d, diagWant{code: DiagNoALPN, cause: []string{"acme-tls/1"}, fix: []string{"--challenge http-01"}, evidence: []string{"another server answered"}})
	probe := ProbeValidationPort(context.Background(), netip.MustParseAddr("127.0.0.1"), port, acmeflow.ChallengeTLSALPN01)
	if probe.Kind != ProbeTLSNoALPN {
		t.Errorf("probe: %+v", probe)
	}

	// A server that refuses unknown ALPN (Go, Caddy): the handshake fails,
	// Pebble says only "Failed to connect", the local probe tells.
	strict := testkit.FreePort(t)
	serveTLSOn(t, strict, selfSigned(t, "127.0.0.1"), []string{"h2", "http/1.1"})
	ca = diagCA(t, 0, strict)
	err := obtainFails(t, diagRequest(ca, acmeflow.ChallengeTLSALPN01, testkit.FreePort(t)))
	probe = ProbeValidationPort(context.Background(), netip.MustParseAddr("127.0.0.1"), strict, acmeflow.ChallengeTLSALPN01)
	if probe.Kind != ProbeTLSNoALPN {
		t.Errorf("probe: %+v", probe)
	}
	d = Diagnose(err, Evidence{Challenge: acmeflow.ChallengeTLSALPN01, TLSPort: strict, Probe: &probe})
	checkDiag(t, d, diagWant{code: DiagNoALPN, cause: []string{"acme-tls/1"}, fix: []string{"--challenge http-01"}, evidence: []string{"another server answered", "refuses ALPN acme-tls/1"}})
}

func TestReproWrongValidationCertificate(t *testing.T) {
	port := testkit.FreePort(t)
	// Offers acme-tls/1 but with a certificate for another address.
	serveTLSOn(t, port, selfSigned(t, "127.0.0.2"), []string{"acme-tls/1"})
	ca := diagCA(t, 0, port)
	d := Diagnose(obtainFails(t, diagRequest(ca, acmeflow.ChallengeTLSALPN01, testkit.FreePort(t))), Evidence{Challenge: acmeflow.ChallengeTLSALPN01, TLSPort: port})
	checkDiag(t, d, diagWant{code: DiagWrongCert, cause: []string{"1.0.0.127.in-addr.arpa"}, fix: []string{"http-01"}})
}

func TestReproPortBusy(t *testing.T) {
	port := testkit.FreePort(t)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	ca := diagCA(t, port, 0)
	ae := obtainFails(t, diagRequest(ca, acmeflow.ChallengeHTTP01, port))
	d := Diagnose(ae, Evidence{Challenge: acmeflow.ChallengeHTTP01, PortOwner: "nginx (pid 812) on 127.0.0.1:" + strconv.Itoa(port)})
	checkDiag(t, d, diagWant{code: DiagPortBusy, cause: []string{"nginx (pid 812)"}, fix: []string{"--webroot"}})
}

func TestReproWebrootNotWritable(t *testing.T) {
	root := filepath.Join(t.TempDir(), "ro")
	if err := os.Mkdir(root, 0o555); err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() == 0 {
		// Permission bits do not stop root; procfs refuses new entries to
		// everyone.
		root = "/proc/self"
	}
	ca := diagCA(t, testkit.FreePort(t), 0)
	req := diagRequest(ca, acmeflow.ChallengeHTTP01, testkit.FreePort(t))
	req.WebRoot = root
	d := Diagnose(obtainFails(t, req), Evidence{Challenge: acmeflow.ChallengeHTTP01, WebRoot: root})
	checkDiag(t, d, diagWant{code: DiagWebRootNotWritable, fix: []string{"standalone"}})
}

// CA-side problems Pebble cannot produce come from the fake ACME server
// with Let's Encrypt's documents.
func TestReproCAProblems(t *testing.T) {
	cases := []struct {
		name, doc   string
		at          fakeacme.Step
		retryAfter  string
		step        acmeflow.Step
		want        diagWant
		retryAfterD time.Duration
	}{
		{"rate limited with Retry-After", "rateLimited-exact-set", fakeacme.AtOrder, "3600", acmeflow.StepOrder,
			diagWant{code: DiagRateLimited, cause: []string{"5 certificates per exact set"}, fix: []string{"renew"}, evidence: []string{"Retry-After: 1h0m0s"}, retryable: true}, time.Hour},
		{"reserved address", "rejectedIdentifier-reserved", fakeacme.AtOrder, "", acmeflow.StepOrder,
			diagWant{code: DiagRejectedReserved, cause: []string{"RFC1918"}, fix: []string{"public address"}}, 0},
		{"profile without IPs", "rejectedIdentifier-profile", fakeacme.AtOrder, "", acmeflow.StepOrder,
			diagWant{code: DiagRejectedProfile, fix: []string{"shortlived"}}, 0},
		{"invalid profile", "invalidProfile", fakeacme.AtOrder, "", acmeflow.StepOrder,
			diagWant{code: DiagInvalidProfile, fix: []string{"shortlived"}}, 0},
		{"server internal", "serverInternal", fakeacme.AtOrder, "", acmeflow.StepOrder,
			diagWant{code: DiagServerInternal, fix: []string{"status.io"}, retryable: true}, 0},
		{"IP in the CN", "badCSR-ip-in-cn", fakeacme.AtFinalize, "", acmeflow.StepFinalize,
			diagWant{code: DiagBadCSRCommonName, cause: []string{"Common Name"}}, 0},
		{"new terms", "userActionRequired", fakeacme.AtAccount, "", acmeflow.StepAccount,
			diagWant{code: DiagAccount, fix: []string{"--agree-tos"}}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fake := fakeacme.Start(fakeacme.Options{Problem: problemDoc(t, c.doc), At: c.at, RetryAfter: c.retryAfter})
			defer fake.Close()
			req := acmeflow.Request{Identifiers: mustAddrs("127.0.0.1"), Directory: fake.DirectoryURL(), HTTPClient: fake.Client(), CAKey: "fake",
				Challenge: acmeflow.ChallengeHTTP01, HTTPListen: net.JoinHostPort("127.0.0.1", strconv.Itoa(testkit.FreePort(t))), AgreeTOS: true}
			ae := obtainFails(t, req)
			if ae.Step != c.step {
				t.Errorf("step %s, want %s (%v)", ae.Step, c.step, ae)
			}
			d := Diagnose(ae, Evidence{Challenge: acmeflow.ChallengeHTTP01})
			checkDiag(t, d, c.want)
			if d.RetryAfter != c.retryAfterD {
				t.Errorf("RetryAfter %v, want %v", d.RetryAfter, c.retryAfterD)
			}
		})
	}
}

// TestReproSecondaryValidation: the primary validator reaches our
// responder and gets the right answer, the remote perspectives fail.
func TestReproSecondaryValidation(t *testing.T) {
	port := testkit.FreePort(t)
	fake := fakeacme.Start(fakeacme.Options{Problem: problemDoc(t, "secondary-timeout"), At: fakeacme.AtChallenge, ValidateHTTPPort: port})
	defer fake.Close()
	req := acmeflow.Request{Identifiers: mustAddrs("127.0.0.1"), Directory: fake.DirectoryURL(), HTTPClient: fake.Client(), CAKey: "fake",
		Challenge: acmeflow.ChallengeHTTP01, HTTPListen: net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), AgreeTOS: true}
	ae := obtainFails(t, req)
	if len(ae.Seen) != 1 || !ae.Seen[0].Answered {
		t.Fatalf("seen %v; fake fetched %v", ae.Seen, fake.Fetched())
	}
	d := Diagnose(ae, Evidence{Challenge: acmeflow.ChallengeHTTP01})
	checkDiag(t, d, diagWant{code: DiagSecondary, cause: []string{"primary validator reached", "geo-blocking"}, fix: []string{"whole internet"},
		evidence: []string{"answered 1 of 1 validator requests, from 127.0.0.1"}})
}

func TestReproCAUnreachable(t *testing.T) {
	closed := testkit.FreePort(t)
	plain := testkit.FreePort(t)
	serveOn(t, plain, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("{}")) }))
	stall := testkit.FreePort(t)
	sl, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(stall)))
	if err != nil {
		t.Fatal(err)
	}
	defer sl.Close()
	go func() {
		for {
			c, err := sl.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	fake := fakeacme.Start(fakeacme.Options{})
	defer fake.Close()
	cases := []struct {
		name, dir string
		client    *http.Client
		want      diagWant
	}{
		{"refused", fmt.Sprintf("https://127.0.0.1:%d/dir", closed), nil, diagWant{code: DiagCARefused, fix: []string{"--ca"}, retryable: true}},
		{"plain HTTP behind an https URL", fmt.Sprintf("https://127.0.0.1:%d/dir", plain), nil, diagWant{code: DiagCATLS, cause: []string{"proxy"}, fix: []string{"--ca-root"}}},
		{"unknown root", fake.DirectoryURL(), &http.Client{}, diagWant{code: DiagCATLS, cause: []string{"certificate"}, fix: []string{"--ca-root"}}},
		{"timeout", fmt.Sprintf("https://127.0.0.1:%d/dir", stall), &http.Client{Timeout: 300 * time.Millisecond}, diagWant{code: DiagCATimeout, fix: []string{"status.io"}, retryable: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			req := acmeflow.Request{Identifiers: mustAddrs("127.0.0.1"), Directory: c.dir, HTTPClient: c.client, Challenge: acmeflow.ChallengeHTTP01, AgreeTOS: true}
			ae := obtainFails(t, req)
			if ae.Step != acmeflow.StepDirectory {
				t.Errorf("step %s: %v", ae.Step, ae)
			}
			checkDiag(t, Diagnose(ae, Evidence{}), c.want)
		})
	}
}

func TestReproConnectionReset(t *testing.T) {
	// A filter that accepts, reads the request and resets the connection
	// (SO_LINGER 0 makes the close send RST).
	port := testkit.FreePort(t)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			buf := make([]byte, 512)
			_, _ = c.Read(buf)
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}
	}()
	ca := diagCA(t, port, 0)
	req := diagRequest(ca, acmeflow.ChallengeHTTP01, testkit.FreePort(t))
	req.WebRoot = t.TempDir()
	d := Diagnose(obtainFails(t, req), Evidence{Challenge: acmeflow.ChallengeHTTP01, WebRoot: req.WebRoot, HTTPPort: port})
	checkDiag(t, d, diagWant{code: DiagConnectReset, cause: []string{"reset"}, fix: []string{fmt.Sprintf("port %d", port)}})
}
