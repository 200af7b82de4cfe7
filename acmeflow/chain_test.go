package acmeflow

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"strings"
	"testing"

	"github.com/ipcert/ipcert/internal/localca"
)

// TestPreferredChain: Pebble offers its default chain and an alternate one
// to another root (Link rel="alternate", as Let's Encrypt does for its
// newer roots). A preferred chain naming the alternate root takes that
// chain; one the CA does not offer keeps the default and says so.
func TestPreferredChain(t *testing.T) {
	ca := startCA(t, localca.Options{AlternateRoots: 1})
	var roots []*x509.Certificate
	for rest := ca.IssuerRootPEM(); ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			t.Fatal(err)
		}
		roots = append(roots, c)
	}
	if len(roots) != 2 || roots[0].Subject.CommonName == roots[1].Subject.CommonName {
		t.Fatalf("Pebble's roots: %d", len(roots))
	}
	topIssuer := func(c *Certificate) string {
		var last *x509.Certificate
		for rest := c.ChainPEM; ; {
			var b *pem.Block
			if b, rest = pem.Decode(rest); b == nil {
				break
			}
			last, _ = x509.ParseCertificate(b.Bytes)
		}
		if last == nil {
			t.Fatal("no chain")
		}
		return last.Issuer.CommonName
	}
	for _, c := range []struct {
		prefer, want, warn string
	}{
		{"", roots[0].Subject.CommonName, ""},
		{roots[1].Subject.CommonName, roots[1].Subject.CommonName, ""},
		{"ISRG Root X9", roots[0].Subject.CommonName, "none of the 2 chains the CA offers leads to"},
	} {
		req := ca.request(mustAddrs("127.0.0.1"), ChallengeHTTP01)
		req.PreferredChain = c.prefer
		var warnings []string
		req.Events = func(ev Event) {
			if ev.Kind == EventWarning {
				warnings = append(warnings, ev.Message)
			}
		}
		cert, err := newEngine(t).Obtain(t.Context(), req)
		if err != nil {
			t.Fatal(err)
		}
		if got := topIssuer(cert); got != c.want {
			t.Errorf("preferred %q: the chain leads to %q, want %q", c.prefer, got, c.want)
		}
		if said := strings.Join(warnings, "\n"); c.warn != "" && !strings.Contains(said, c.warn) || c.warn == "" && said != "" {
			t.Errorf("preferred %q: warnings %q, want %q", c.prefer, said, c.warn)
		}
	}
}

// TestAroundValidationOnlyWhenValidating: the --pre-hook/--post-hook pair
// runs once for an order the CA validates, and not at all for one whose
// authorization the CA reused (nothing is validated then).
func TestAroundValidationOnlyWhenValidating(t *testing.T) {
	ca := startCA(t, localca.Options{AuthzReusePercent: 100})
	e := newEngine(t)
	pre, post := 0, 0
	for range 2 {
		req := ca.request(mustAddrs("127.0.0.1"), ChallengeHTTP01)
		req.AroundValidation = func(context.Context) (func(), error) {
			pre++
			return func() { post++ }, nil
		}
		if _, err := e.Obtain(t.Context(), req); err != nil {
			t.Fatal(err)
		}
	}
	if pre != 1 || post != 1 {
		t.Errorf("hooks ran %d (pre) and %d (post) times for one validation and one reused authorization, want 1 and 1", pre, post)
	}
}
