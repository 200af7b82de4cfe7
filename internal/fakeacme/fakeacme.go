// Package fakeacme is a small ACME server on loopback for tests of the
// failures Pebble cannot produce: it answers the directory, nonces and
// accounts like a CA, then returns a configured problem document (Let's
// Encrypt's exact documents live in testdata/problems/) at the step where
// Let's Encrypt would: newAccount, newOrder, the challenge, or finalize. It
// does not verify signatures; it is a test helper, never a CA.
package fakeacme

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"time"
)

// Step is where the fake answers with the problem.
type Step string

const (
	AtAccount   Step = "account"
	AtOrder     Step = "order"
	AtChallenge Step = "challenge" // the authorization ends invalid with the problem as the challenge's error
	AtFinalize  Step = "finalize"
)

// Options configure the fake.
type Options struct {
	// Problem is the problem document (JSON) to answer with; its "status"
	// is the HTTP status. Nil means every step succeeds up to finalize,
	// which then fails with serverInternal (the fake issues nothing).
	Problem []byte
	At      Step
	// RetryAfter is sent as the Retry-After header with the problem.
	RetryAfter string
	// Profiles is the directory's meta.profiles; default shortlived and
	// classic, like Let's Encrypt.
	Profiles map[string]string
	// ValidateHTTPPort, with At == AtChallenge, makes the fake fetch the
	// http-01 answer from 127.0.0.1:PORT once, as Let's Encrypt's primary
	// validator would, before failing the challenge: the responder then
	// sees the primary but not the secondaries.
	ValidateHTTPPort int
}

// Server is a running fake CA.
type Server struct {
	srv  *httptest.Server
	opts Options

	mu         sync.Mutex
	fetched    []string
	nonce      int
	order      []map[string]string
	challenged bool
}

// Start serves the fake on 127.0.0.1 over HTTPS (lego insists on HTTPS,
// RFC 8555 section 6.1).
func Start(o Options) *Server {
	if o.Profiles == nil {
		o.Profiles = map[string]string{"shortlived": "160 hours, IP addresses allowed", "classic": "90 days"}
	}
	s := &Server{opts: o}
	s.srv = httptest.NewUnstartedServer(http.HandlerFunc(s.serve))
	s.srv.Listener.Close()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("fakeacme: listen: %v", err))
	}
	s.srv.Listener = l
	s.srv.StartTLS()
	return s
}

// DirectoryURL is the ACME directory.
func (s *Server) DirectoryURL() string { return s.srv.URL + "/dir" }

// Client trusts the fake's certificate.
func (s *Server) Client() *http.Client { return s.srv.Client() }

// Close stops the fake.
func (s *Server) Close() { s.srv.Close() }

// Fetched lists what the fake's primary validator got back.
func (s *Server) Fetched() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.fetched...)
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.nonce++
	w.Header().Set("Replay-Nonce", fmt.Sprintf("fake-nonce-%d-%d", time.Now().UnixNano(), s.nonce))
	s.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	base := s.srv.URL
	payload := jwsPayload(r)
	switch r.URL.Path {
	case "/dir":
		writeJSON(w, http.StatusOK, map[string]any{
			"newNonce": base + "/nonce", "newAccount": base + "/new-account", "newOrder": base + "/new-order",
			"revokeCert": base + "/revoke", "keyChange": base + "/key-change",
			"meta": map[string]any{"termsOfService": base + "/terms", "profiles": s.opts.Profiles},
		})
	case "/nonce":
		w.WriteHeader(http.StatusOK)
	case "/new-account":
		if s.problemAt(w, AtAccount) {
			return
		}
		w.Header().Set("Location", base+"/acct/1")
		writeJSON(w, http.StatusCreated, map[string]any{"status": "valid", "orders": base + "/acct/1/orders"})
	case "/new-order":
		if s.problemAt(w, AtOrder) {
			return
		}
		var req struct {
			Identifiers []map[string]string `json:"identifiers"`
		}
		_ = json.Unmarshal(payload, &req)
		s.mu.Lock()
		s.order = req.Identifiers
		s.mu.Unlock()
		w.Header().Set("Location", base+"/order/1")
		writeJSON(w, http.StatusCreated, s.orderJSON())
	case "/order/1":
		writeJSON(w, http.StatusOK, s.orderJSON())
	case "/authz/1":
		writeJSON(w, http.StatusOK, s.authzJSON())
	case "/chall/1":
		s.mu.Lock()
		if s.opts.At == AtChallenge && !s.challenged {
			s.challenged = true
			s.mu.Unlock()
			s.primaryValidation()
			s.mu.Lock()
		}
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, s.challJSON())
	case "/finalize/1":
		if s.problemAt(w, AtFinalize) {
			return
		}
		writeProblem(w, []byte(`{"type":"urn:ietf:params:acme:error:serverInternal","detail":"fakeacme issues no certificates","status":500}`), "")
	default:
		http.NotFound(w, r)
	}
}

func (s *Server) problemAt(w http.ResponseWriter, at Step) bool {
	if s.opts.Problem == nil || s.opts.At != at {
		return false
	}
	writeProblem(w, s.opts.Problem, s.opts.RetryAfter)
	return true
}

func (s *Server) ident() map[string]string {
	s.mu.Lock()
	defer s.mu.Unlock()
	if len(s.order) > 0 {
		return s.order[0]
	}
	return map[string]string{"type": "ip", "value": "127.0.0.1"}
}

func (s *Server) orderJSON() map[string]any {
	status := "ready"
	if s.opts.At == AtChallenge {
		status = "pending"
		if s.challengeDone() {
			status = "invalid"
		}
	}
	return map[string]any{
		"status": status, "expires": time.Now().Add(8 * time.Hour).UTC().Format(time.RFC3339),
		"identifiers": []map[string]string{s.ident()}, "profile": "shortlived",
		"authorizations": []string{s.srv.URL + "/authz/1"}, "finalize": s.srv.URL + "/finalize/1",
	}
}

func (s *Server) challengeDone() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.challenged
}

const token = "fakeacme-token-0123456789abcdefghijklmnopq"

func (s *Server) challJSON() map[string]any {
	c := map[string]any{"type": "http-01", "url": s.srv.URL + "/chall/1", "token": token, "status": "pending"}
	if s.challengeDone() {
		c["status"] = "invalid"
		var prob map[string]any
		_ = json.Unmarshal(s.opts.Problem, &prob)
		c["error"] = prob
	}
	return c
}

func (s *Server) authzJSON() map[string]any {
	if s.opts.At != AtChallenge {
		return map[string]any{"status": "valid", "identifier": s.ident(), "challenges": []any{}}
	}
	status := "pending"
	if s.challengeDone() {
		status = "invalid"
	}
	tls := map[string]any{"type": "tls-alpn-01", "url": s.srv.URL + "/chall/2", "token": token, "status": "pending"}
	return map[string]any{"status": status, "identifier": s.ident(), "challenges": []any{s.challJSON(), tls}}
}

// primaryValidation fetches the http-01 answer once from loopback, as the
// primary validator would.
func (s *Server) primaryValidation() {
	if s.opts.ValidateHTTPPort == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	u := fmt.Sprintf("http://127.0.0.1:%d/.well-known/acme-challenge/%s", s.opts.ValidateHTTPPort, token)
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	req.Header.Set("User-Agent", "fakeacme primary validator")
	resp, err := http.DefaultTransport.RoundTrip(req)
	line := ""
	if err != nil {
		line = "error: " + err.Error()
	} else {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
		resp.Body.Close()
		line = fmt.Sprintf("%d %s", resp.StatusCode, strings.TrimSpace(string(b)))
	}
	s.mu.Lock()
	s.fetched = append(s.fetched, line)
	s.mu.Unlock()
}

// jwsPayload decodes the payload of a flattened JWS body; the fake does
// not check the signature.
func jwsPayload(r *http.Request) []byte {
	if r.Method != http.MethodPost {
		return nil
	}
	var jws struct {
		Payload string `json:"payload"`
	}
	body, _ := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if json.Unmarshal(body, &jws) != nil || jws.Payload == "" {
		return nil
	}
	b, err := base64.RawURLEncoding.DecodeString(jws.Payload)
	if err != nil {
		return nil
	}
	return b
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeProblem(w http.ResponseWriter, doc []byte, retryAfter string) {
	var p struct {
		Status int `json:"status"`
	}
	_ = json.Unmarshal(doc, &p)
	if p.Status == 0 {
		p.Status = http.StatusBadRequest
	}
	if retryAfter != "" {
		w.Header().Set("Retry-After", retryAfter)
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(p.Status)
	_, _ = w.Write(doc)
}
