package diagnosis

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/acme"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
)

// leProblem loads one of Let's Encrypt's problem documents from
// testdata/problems as lego returns it.
func leProblem(t *testing.T, name string) *acme.ProblemDetails {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "problems", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var pd acme.ProblemDetails
	if err := json.Unmarshal(b, &pd); err != nil {
		t.Fatal(err)
	}
	return &pd
}

func problemDoc(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "testdata", "problems", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type diagWant struct {
	code      string
	cause     []string // substrings of Cause
	fix       []string // substrings of Fix or Command
	evidence  []string // substrings of some evidence line
	retryable bool
}

func checkDiag(t *testing.T, d Diagnosis, w diagWant) {
	t.Helper()
	if d.Code != w.code {
		t.Errorf("code = %q, want %q\n  cause: %s\n  problem: %v\n  error: %s", d.Code, w.code, d.Cause, d.Problem, d.Error)
	}
	for _, s := range w.cause {
		if !strings.Contains(strings.ToLower(d.Cause), strings.ToLower(s)) {
			t.Errorf("cause %q lacks %q", d.Cause, s)
		}
	}
	for _, s := range w.fix {
		if !strings.Contains(strings.ToLower(d.Fix+" "+d.Command), strings.ToLower(s)) {
			t.Errorf("fix %q / command %q lacks %q", d.Fix, d.Command, s)
		}
	}
	for _, s := range w.evidence {
		found := false
		for _, e := range d.Evidence {
			found = found || strings.Contains(strings.ToLower(e), strings.ToLower(s))
		}
		if !found {
			t.Errorf("evidence %q lacks %q", d.Evidence, s)
		}
	}
	if d.Retryable != w.retryable {
		t.Errorf("retryable = %v, want %v", d.Retryable, w.retryable)
	}
	if d.Title == "" || d.Fix == "" || d.Retry == "" {
		t.Errorf("incomplete diagnosis: %+v", d)
	}
}

func seenReq(remote string, answered bool) acmeflow.ValidatorRequest {
	return acmeflow.ValidatorRequest{Time: time.Date(2026, 11, 28, 20, 0, 0, 0, time.UTC), Challenge: acmeflow.ChallengeHTTP01, Remote: remote, Local: "203.0.113.7:80",
		Path: "/.well-known/acme-challenge/YG8", Status: 200, Answered: answered}
}

// TestDiagnoseLetsEncryptProblems runs every Let's Encrypt problem document
// of testdata/problems through the catalogue, at the step the engine meets
// it, with the local evidence that decides between causes.
func TestDiagnoseLetsEncryptProblems(t *testing.T) {
	now := time.Date(2026, 11, 28, 20, 42, 10, 0, time.UTC)
	chal := func(doc string) error {
		pd := leProblem(t, doc)
		return &acmeflow.Error{Step: acmeflow.StepChallenge, Identifier: "203.0.113.7", Problem: acmeflow.ProblemOf(pd)}
	}
	at := func(step acmeflow.Step, err error) error { return stepErr(step, "", err) }
	seenNone := Evidence{Challenge: acmeflow.ChallengeHTTP01, SeenKnown: true}
	tlsNone := Evidence{Challenge: acmeflow.ChallengeTLSALPN01, SeenKnown: true}
	cases := []struct {
		name string
		err  error
		ev   Evidence
		want diagWant
	}{
		{"timeout, nothing arrived, firewall", chal("connection-timeout"), Evidence{Challenge: acmeflow.ChallengeHTTP01, SeenKnown: true, Firewall: []string{"ufw ipv4 port 80: DENY IN Anywhere"}, NAT: "cloud-1to1", Cloud: "aws"},
			diagWant{code: DiagFirewall, cause: []string{"port 80", "firewall (ufw) drops", "DENY IN Anywhere"}, fix: []string{"allow tcp port 80 in ufw", "sudo ufw allow 80/tcp"}, evidence: []string{"no validator request reached our responder", "firewall: ufw", "NAT: cloud-1to1 (aws)"}}},
		{"timeout behind CGNAT", chal("connection-timeout"), Evidence{Challenge: acmeflow.ChallengeHTTP01, SeenKnown: true, NAT: "cgnat"},
			diagWant{code: DiagCGNAT, cause: []string{"carrier-grade NAT", "no port forward of yours"}, fix: []string{"IPv6", "public IPv4"}}},
		{"refused", chal("connection-refused"), seenNone,
			diagWant{code: DiagConnectRefused, cause: []string{"nothing listens on port 80"}, fix: []string{"0.0.0.0:80", "[::]:80"}}},
		{"reset", chal("connection-reset"), seenNone,
			diagWant{code: DiagConnectReset, cause: []string{"reset"}, fix: []string{"port 80"}}},
		{"secondary validation, primary seen", chal("secondary-timeout"), Evidence{Challenge: acmeflow.ChallengeHTTP01, SeenKnown: true, Seen: []acmeflow.ValidatorRequest{seenReq("23.178.112.10:41234", true)}},
			diagWant{code: DiagSecondary, cause: []string{"primary validator reached", "geo-blocking", "fail2ban", "WAF"}, fix: []string{"whole internet"}, evidence: []string{"answered 1 of 1 validator requests, from 23.178.112.10"}}},
		{"404 with a web root", chal("unauthorized-404"), Evidence{Challenge: acmeflow.ChallengeHTTP01, WebRoot: "/var/www/html", SeenKnown: true},
			diagWant{code: DiagWebRootNotServed, cause: []string{"/var/www/html", "404", "default server"}, fix: []string{"--webroot"}, evidence: []string{"cannot see the validator's requests"}}},
		{"404 standalone, validator never reached us", chal("unauthorized-404"), seenNone,
			diagWant{code: DiagForeignServer, cause: []string{"404", "none of its requests reached our responder"}, fix: []string{"forward tcp 80"}}},
		{"router page", chal("unauthorized-wrong-content"), seenNone,
			diagWant{code: DiagForeignServer, cause: []string{"router"}, fix: []string{"forward tcp 80"}, evidence: []string{"Router Login"}}},
		{"wrong content via web root", chal("unauthorized-wrong-content"), Evidence{Challenge: acmeflow.ChallengeHTTP01, WebRoot: "/srv/www", SeenKnown: true},
			diagWant{code: DiagWrongContent, cause: []string{"/srv/www", "rewrite"}, fix: []string{"default server"}}},
		{"redirect to port 8443", chal("redirect-port"), seenNone,
			diagWant{code: DiagRedirectPort, cause: []string{"ports 80 and 443"}, fix: []string{"exempt /.well-known/acme-challenge/"}}},
		{"too many redirects", chal("too-many-redirects"), seenNone,
			diagWant{code: DiagTooManyRedirects, cause: []string{"again and again"}, fix: []string{"exempt /.well-known/acme-challenge/"}}},
		{"HTTP on the TLS port", chal("tls-http-on-tls-port"), tlsNone,
			diagWant{code: DiagHTTPOnTLSPort, cause: []string{"plain HTTP", "port 443"}, fix: []string{"--challenge http-01"}, evidence: []string{"another server answered on port 443"}}},
		{"no ALPN", chal("tls-no-alpn"), tlsNone,
			diagWant{code: DiagNoALPN, cause: []string{"acme-tls/1", "proxy"}, fix: []string{"--challenge http-01"}, evidence: []string{"another server answered"}}},
		{"wrong validation certificate", chal("tls-wrong-certificate"), tlsNone,
			diagWant{code: DiagWrongCert, cause: []string{"7.113.0.203.in-addr.arpa"}, fix: []string{"--challenge http-01"}}},
		{"rate limited, exact set", at(acmeflow.StepOrder, &acme.RateLimitedError{ProblemDetails: leProblem(t, "rateLimited-exact-set"), RetryAfter: "45000"}), Evidence{Now: now},
			diagWant{code: DiagRateLimited, cause: []string{"5 certificates per exact set"}, fix: []string{"renewals"}, evidence: []string{"Retry-After: 12h30m0s"}, retryable: true}},
		{"rate limited, failed authorizations", at(acmeflow.StepOrder, &acme.RateLimitedError{ProblemDetails: leProblem(t, "rateLimited-failed-authorizations")}), Evidence{Now: now},
			diagWant{code: DiagRateLimited, cause: []string{"5 failed validations per identifier"}, fix: []string{"staging"}, retryable: true}},
		{"rate limited, new orders", at(acmeflow.StepOrder, &acme.RateLimitedError{ProblemDetails: leProblem(t, "rateLimited-new-orders")}), Evidence{Now: now},
			diagWant{code: DiagRateLimited, cause: []string{"300 new orders"}, fix: []string{"loop"}, retryable: true}},
		{"rate limited, new accounts", at(acmeflow.StepAccount, &acme.RateLimitedError{ProblemDetails: leProblem(t, "rateLimited-new-registrations")}), Evidence{Now: now},
			diagWant{code: DiagRateLimited, cause: []string{"10 new accounts"}, fix: []string{"--state-dir"}, retryable: true}},
		{"reserved address", at(acmeflow.StepOrder, leProblem(t, "rejectedIdentifier-reserved")), Evidence{},
			diagWant{code: DiagRejectedReserved, cause: []string{"special-purpose", "RFC1918"}, fix: []string{"public address"}}},
		{"profile without IPs", at(acmeflow.StepOrder, leProblem(t, "rejectedIdentifier-profile")), Evidence{},
			diagWant{code: DiagRejectedProfile, cause: []string{"shortlived"}, fix: []string{"shortlived"}}},
		{"non-canonical address", at(acmeflow.StepOrder, leProblem(t, "rejectedIdentifier-noncanonical")), Evidence{},
			diagWant{code: DiagRejectedCanonical, cause: []string{"RFC 5952"}, fix: []string{"as ipcert prints it"}}},
		{"IP in the CN", at(acmeflow.StepFinalize, leProblem(t, "badCSR-ip-in-cn")), Evidence{},
			diagWant{code: DiagBadCSRCommonName, cause: []string{"empty subject"}, fix: []string{"upgrade"}}},
		{"invalid profile", at(acmeflow.StepOrder, leProblem(t, "invalidProfile")), Evidence{},
			diagWant{code: DiagInvalidProfile, cause: []string{"shortlived-beta", "shortlived"}, fix: []string{"shortlived"}}},
		{"server internal", at(acmeflow.StepOrder, leProblem(t, "serverInternal")), Evidence{},
			diagWant{code: DiagServerInternal, cause: []string{"nothing on this machine"}, fix: []string{"letsencrypt.status.io"}, retryable: true}},
		{"bad nonce", at(acmeflow.StepOrder, &acme.NonceError{ProblemDetails: leProblem(t, "badNonce")}), Evidence{},
			diagWant{code: DiagBadNonce, cause: []string{"proxy"}, fix: []string{"NO_PROXY"}, retryable: true}},
		{"invalid contact", at(acmeflow.StepAccount, leProblem(t, "invalidContact")), Evidence{},
			diagWant{code: DiagAccount, cause: []string{"contact"}, fix: []string{"--email"}}},
		{"new terms", at(acmeflow.StepAccount, leProblem(t, "userActionRequired")), Evidence{},
			diagWant{code: DiagAccount, cause: []string{"terms"}, fix: []string{"--agree-tos"}}},
		{"port busy", &acmeflow.Error{Step: acmeflow.StepResponder, Err: bindHint(&net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}, ":80")}, Evidence{PortOwner: "nginx (pid 812) on 0.0.0.0:80"},
			diagWant{code: DiagPortBusy, cause: []string{"nginx (pid 812)"}, fix: []string{"--webroot"}, evidence: []string{"port owner: nginx"}}},
		{"port forbidden", &acmeflow.Error{Step: acmeflow.StepResponder, Err: bindHint(&net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EACCES)}, ":80")}, Evidence{},
			diagWant{code: DiagPortForbidden, cause: []string{"CAP_NET_BIND_SERVICE"}, fix: []string{"setcap"}}},
		{"CA DNS", &acmeflow.Error{Step: acmeflow.StepDirectory, Err: fmt.Errorf("get directory at 'https://acme-v02.api.letsencrypt.org/directory': %w", &net.DNSError{Err: "no such host", Name: "acme-v02.api.letsencrypt.org", IsNotFound: true})}, Evidence{},
			diagWant{code: DiagCADNS, cause: []string{"acme-v02.api.letsencrypt.org"}, fix: []string{"resolv.conf"}, retryable: true}},
		{"interrupted", &acmeflow.Error{Step: acmeflow.StepChallenge, Err: fmt.Errorf("%w (poll)", context.Canceled)}, Evidence{},
			diagWant{code: DiagInterrupted, cause: []string{"stopped"}, fix: []string{"run the command again"}, retryable: true}},
		{"locked", &acmeflow.Error{Step: acmeflow.StepStore, Err: store.ErrLocked}, Evidence{},
			diagWant{code: DiagLocked, cause: []string{"two runs"}, fix: []string{"wait"}, retryable: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Diagnose(c.err, c.ev)
			checkDiag(t, d, c.want)
		})
	}
}

func TestDiagnoseRetryAfter(t *testing.T) {
	now := time.Date(2026, 11, 28, 20, 42, 10, 0, time.UTC)
	// Only the detail's time: the wait is counted from now.
	d := Diagnose(stepErr(acmeflow.StepOrder, "", &acme.RateLimitedError{ProblemDetails: leProblem(t, "rateLimited-failed-authorizations")}), Evidence{Now: now})
	if d.RetryAfter != time.Hour || !d.RetryAt.Equal(now.Add(time.Hour)) || !strings.Contains(d.Retry, "2026-11-28 21:42:10 UTC") {
		t.Errorf("retry after %v at %v (%s)", d.RetryAfter, d.RetryAt, d.Retry)
	}
	// The header wins for the wait; the JSON carries seconds.
	d = Diagnose(stepErr(acmeflow.StepOrder, "", &acme.RateLimitedError{ProblemDetails: leProblem(t, "rateLimited-new-orders"), RetryAfter: "90"}), Evidence{Now: now})
	b, _ := json.Marshal(d)
	if d.RetryAfter != 90*time.Second || !strings.Contains(string(b), `"retry_after_seconds":90`) || !strings.Contains(string(b), `"rate_limit":"300 new orders per account per 3 hours"`) {
		t.Errorf("retry after %v, json %s", d.RetryAfter, b)
	}
	f := d.Failure(now)
	if f.Code != DiagRateLimited || !f.Retryable || f.RetryAt.IsZero() || f.Problem != acmeflow.ProblemRateLimited || f.Fix == "" {
		t.Errorf("failure record %+v", f)
	}
}

// TestDiagnoseFromStoredFailure: doctor re-diagnoses a failure kept in
// renewal.json and reaches the same conclusion.
func TestDiagnoseFromStoredFailure(t *testing.T) {
	err := &acmeflow.Error{Step: acmeflow.StepChallenge, Identifier: "203.0.113.7", Problem: acmeflow.ProblemOf(leProblem(t, "secondary-timeout")), Seen: []acmeflow.ValidatorRequest{seenReq("23.178.112.10:4000", true)}}
	first := Diagnose(err, Evidence{Challenge: acmeflow.ChallengeHTTP01})
	f := first.Failure(time.Now())
	again := Diagnose(ErrorFromFailure(f), Evidence{Challenge: acmeflow.ChallengeHTTP01, SeenKnown: true, Seen: ValidatorsFromFailure(f)})
	if first.Code != DiagSecondary || again.Code != first.Code || again.Cause != first.Cause {
		t.Errorf("first %s / again %s: %s", first.Code, again.Code, again.Cause)
	}
}

// TestProblemCarriesRetryAfter: the engine's error keeps the Retry-After
// header of a rateLimited answer, so renew can honour it.
func TestProblemCarriesRetryAfter(t *testing.T) {
	err := stepErr(acmeflow.StepOrder, "", &acme.RateLimitedError{ProblemDetails: leProblem(t, "rateLimited-new-orders"), RetryAfter: "120"})
	if p := acmeflow.ProblemOf(err); p == nil || p.RetryAfter != 2*time.Minute {
		t.Fatalf("problem %+v", p)
	}
}

// TestDiagnoseTimeoutsTellApart: the run's own deadline is an
// interruption; an HTTP client timeout towards the CA is the CA's.
func TestDiagnoseTimeoutsTellApart(t *testing.T) {
	run := Diagnose(&acmeflow.Error{Step: acmeflow.StepChallenge, Err: fmt.Errorf("%w (poll)", context.DeadlineExceeded)}, Evidence{})
	if run.Code != DiagInterrupted {
		t.Errorf("run deadline: %s", run.Code)
	}
	hc := &http.Client{Timeout: time.Millisecond, Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		<-r.Context().Done()
		return nil, r.Context().Err()
	})}
	_, err := hc.Get("https://127.0.0.1:1/dir")
	ca := Diagnose(&acmeflow.Error{Step: acmeflow.StepOrder, Err: err}, Evidence{})
	if ca.Code != DiagCATimeout {
		t.Errorf("client timeout %v: %s", err, ca.Code)
	}
}

// TestDiagnoseSeenPerIdentifier: in a dual-stack order, the IPv4 address's
// validated requests say nothing about the IPv6 address that timed out.
func TestDiagnoseSeenPerIdentifier(t *testing.T) {
	v4 := seenReq("23.178.112.10:41234", true)
	v4.Host = "203.0.113.7"
	err := &acmeflow.Error{Step: acmeflow.StepChallenge, Identifier: "2001:db8::7", Problem: acmeflow.ProblemOf(leProblem(t, "connection-timeout")), Seen: []acmeflow.ValidatorRequest{v4}}
	d := Diagnose(err, Evidence{Challenge: acmeflow.ChallengeHTTP01})
	checkDiag(t, d, diagWant{code: DiagConnectTimeout, evidence: []string{"no validator request reached our responder"}})
	if len(d.Validators) != 1 {
		t.Errorf("the record keeps every request: %v", d.Validators)
	}
	// The same request for the failing address itself: the primary got in.
	err.Identifier = "203.0.113.7"
	d = Diagnose(err, Evidence{Challenge: acmeflow.ChallengeHTTP01})
	checkDiag(t, d, diagWant{code: DiagSecondary})
}

func TestStoredValidators(t *testing.T) {
	seen := []acmeflow.ValidatorRequest{seenReq("23.178.112.10:4000", true), {Challenge: acmeflow.ChallengeTLSALPN01, Remote: "198.51.100.9:5000", Note: "client did not offer ALPN acme-tls/1"}}
	f := Diagnosis{Validators: seen, Challenge: acmeflow.ChallengeTLSALPN01}.Failure(time.Now())
	back := ValidatorsFromFailure(f)
	if len(back) != 2 || !back[0].Answered || back[0].Remote != "23.178.112.10:4000" || back[1].Answered || back[1].Remote != "198.51.100.9:5000" || back[1].Note != "client did not offer ALPN acme-tls/1" {
		t.Fatalf("%q -> %+v", f.Validators, back)
	}
}

func TestEvidenceForRenewal(t *testing.T) {
	now := time.Now()
	le := RenewalAttempt(&store.Renewal{Issuance: spec.Issuance{CA: "production", Challenge: acmeflow.ChallengeTLSALPN01, TLSListen: ":443"}}).Evidence(now)
	if le.HTTPPort != 80 || le.TLSPort != 443 || le.Challenge != acmeflow.ChallengeTLSALPN01 || le.CA != "production" {
		t.Errorf("%+v", le)
	}
	local := RenewalAttempt(&store.Renewal{Issuance: spec.Issuance{CA: "local", Challenge: acmeflow.ChallengeHTTP01, HTTPListen: "127.0.0.1:5002"}}).Evidence(now)
	if local.HTTPPort != 5002 {
		t.Errorf("%+v", local)
	}
	// A renewal that fails the same way as the first issuance is
	// diagnosed with the certificate's own settings.
	err := &acmeflow.Error{Step: acmeflow.StepChallenge, Identifier: "203.0.113.7", Problem: acmeflow.ProblemOf(leProblem(t, "unauthorized-404"))}
	d := Diagnose(err, RenewalAttempt(&store.Renewal{Issuance: spec.Issuance{CA: "production", Challenge: acmeflow.ChallengeHTTP01, WebRoot: "/var/www/html"}}).Evidence(now))
	if d.Code != DiagWebRootNotServed || d.Failure(now).WebRoot != "/var/www/html" {
		t.Errorf("%s %+v", d.Code, d.Failure(now))
	}
}

// TestDiagnoseStepCAConnection: step-ca words a failed validation "The
// server could not connect to validation target"; it was diagnosed
// [unknown] ("Validation failed").
func TestDiagnoseStepCAConnection(t *testing.T) {
	err := &acmeflow.Error{Step: acmeflow.StepChallenge, Identifier: "10.77.0.2", Problem: &acmeflow.Problem{
		Type: acmeflow.ProblemConnection, Detail: "The server could not connect to validation target", Identifier: "10.77.0.2"}}
	d := Diagnose(err, Evidence{Challenge: acmeflow.ChallengeHTTP01, CA: "https://ca.internal:9000/acme/acme/directory", HTTPPort: 80})
	if d.Code != DiagConnectRefused || !strings.Contains(d.Fix, "port 80") {
		t.Fatalf("step-ca's connection failure: %s %q %q", d.Code, d.Cause, d.Fix)
	}
}
