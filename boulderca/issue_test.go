package boulderca

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/ipcert/ipcert/internal/spec"
)

// TestBoulderIssue: IPv4 with http-01, IPv6 with tls-alpn-01, and both in
// one certificate, each in the exact shape Let's Encrypt issues, validated
// by the primary VA and the three remote perspectives.
func TestBoulderIssue(t *testing.T) {
	s := boulderStack(t)
	state := t.TempDir()
	a4, _ := fresh(t, s)
	_, b6 := fresh(t, s)
	c4, c6 := fresh(t, s)
	d4, d6 := fresh(t, s)
	for _, c := range []struct {
		name      string
		ips       []netip.Addr
		challenge spec.Challenge
	}{
		{"v4-http", []netip.Addr{a4}, "http-01"},
		{"v6-tls", []netip.Addr{b6}, "tls-alpn-01"},
		{"both-http", []netip.Addr{c4, c6}, "http-01"},
		{"both-tls", []netip.Addr{d4, d6}, "tls-alpn-01"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := []string{"--name", c.name, "--challenge", string(c.challenge)}
			for _, ip := range c.ips {
				args = append(args, "--ip", ip.String())
			}
			out := mustIssue(t, s, state, args...)
			checkShape(t, s, state, c.name, c.ips)
			for _, ip := range c.ips {
				// One primary and three remote perspectives. Here they all
				// come from one source address (the namespace's), and the
				// responder keeps at most 3 answered requests of one source
				// (the rest are counted, and ipcert says so).
				n := validators(out, ip)
				if n < 3 || n < 4 && !strings.Contains(out, "more requests reach the responder than ipcert keeps") {
					t.Errorf("%s: %d validator requests reported for %s, want the primary and 3 perspectives:\n%s", c.name, n, ip, out)
				}
			}
			if !strings.Contains(out, "Ordering a shortlived certificate") {
				t.Errorf("%s: the order did not ask for the shortlived profile:\n%s", c.name, out)
			}
		})
	}
}
