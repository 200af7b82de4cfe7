package diagnosis

import (
	"errors"
	"fmt"
	"io"
	stdlog "log"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/acme/api"
	legolog "github.com/go-acme/lego/v4/log"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/localca"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
)

func TestMain(m *testing.M) {
	// lego logs nonce retries through a global logger; keep test output
	// readable.
	legolog.Logger = stdlog.New(io.Discard, "", 0)
	os.Exit(m.Run())
}

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

func (c *testCA) request(idents []netip.Addr, challenge spec.Challenge) acmeflow.Request {
	lp := net.JoinHostPort(idents[0].String(), strconv.Itoa(c.port))
	return acmeflow.Request{
		Identifiers: idents, Directory: c.DirectoryURL(), HTTPClient: c.HTTPClient(), CAKey: "local",
		Challenge: challenge, HTTPListen: lp, TLSListen: lp, AgreeTOS: true,
	}
}

func newEngine(t *testing.T) *acmeflow.Engine {
	t.Helper()
	s, err := store.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	return &acmeflow.Engine{Store: s}
}

func mustAddrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// stepErr is the engine's error for step as the engine makes it
// (acmeflow's stepErr): the ACME problem lifted out of lego's error, with
// a rate limit's Retry-After.
func stepErr(step acmeflow.Step, ident string, err error) *acmeflow.Error {
	var e *acmeflow.Error
	if errors.As(err, &e) {
		return e
	}
	out := &acmeflow.Error{Step: step, Identifier: ident, Err: err, Problem: acmeflow.ProblemOf(err)}
	var rl *acme.RateLimitedError
	if errors.As(err, &rl) && out.Problem != nil {
		if d, perr := api.ParseRetryAfter(rl.RetryAfter); perr == nil {
			out.Problem.RetryAfter = d
		}
	}
	return out
}

// bindHint is the error the engine's responder returns when it cannot
// listen (acmeflow/engine.go bindHint: "cannot listen on ADDR: ERR" and a
// hint), for the cases that cannot be made for real here (root may bind
// every port).
func bindHint(err error, listen string) error {
	switch {
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("cannot listen on %s: %w; ports below 1024 need root or CAP_NET_BIND_SERVICE (run with sudo)", listen, err)
	case strings.Contains(err.Error(), "address already in use"):
		return fmt.Errorf("cannot listen on %s: %w; another program (often nginx or apache) holds the port: use --webroot with its document root, or stop it during issuance (ipcert preflight shows which process)", listen, err)
	}
	return fmt.Errorf("cannot listen on %s: %w", listen, err)
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }
