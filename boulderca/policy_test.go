package boulderca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"errors"
	mrand "math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/acme/api"

	"github.com/ipcert/ipcert/acmeflow"
)

// TestBoulderAddressPolicy asks Boulder itself, with a new order each,
// about the first and last address of every IANA special-purpose block,
// the address just outside each, and random public addresses, and holds
// ipcert's own verdict for Let's Encrypt (acmeflow.CheckAddr, which refuses
// before any order) against Boulder's. Multicast is in no registry:
// Boulder refuses it through its policy file (AdminBlockedPrefixes in
// test/ident-policy.yaml), ipcert because no validator can connect to it;
// should a Boulder configuration let it through, the test says so and
// passes, since ipcert refusing it is on purpose.
//
// It also shows why ipcert always names the profile: Boulder's default
// profile refuses IP identifiers.
func TestBoulderAddressPolicy(t *testing.T) {
	s := boulderStack(t)
	hc, err := s.HTTPClient()
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	core, err := api.New(hc, "ipcert-test", s.Directory, "", key)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := core.Accounts.New(acme.Account{TermsOfServiceAgreed: true}); err != nil {
		t.Fatal(err)
	}
	// Boulder's verdict: refused with rejectedIdentifier, or an order.
	boulderRefuses := func(a netip.Addr, profile string) (bool, string) {
		_, err := core.Orders.NewWithOptions([]string{a.String()}, &api.OrderOptions{Profile: profile})
		if err == nil {
			return false, ""
		}
		var p *acme.ProblemDetails
		if !errors.As(err, &p) {
			t.Fatalf("order for %s: %v (not a problem document)", a, err)
		}
		return true, p.Type + ": " + p.Detail
	}

	// The default profile refuses IP identifiers outright.
	public, _ := fresh(t, s)
	if refused, why := boulderRefuses(public, ""); !refused || !strings.Contains(why, "profile") {
		t.Errorf("an order without a profile for %s: refused=%v %q; want Boulder's refusal of IP identifiers in its default profile", public, refused, why)
	}

	var addrs []netip.Addr
	for _, b := range registryEdges() {
		addrs = append(addrs, b...)
	}
	rng := mrand.New(mrand.NewPCG(25, 2026))
	for len(addrs) < 400 {
		var a netip.Addr
		if rng.IntN(2) == 0 {
			a = netip.AddrFrom4([4]byte{byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256)), byte(rng.IntN(256))})
		} else {
			var b [16]byte
			b[0] = 0x20 | byte(rng.IntN(16)) // 2000::/4, the global unicast space
			for i := 1; i < 16; i++ {
				b[i] = byte(rng.IntN(256))
			}
			a = netip.AddrFrom16(b)
		}
		addrs = append(addrs, a)
	}
	agree, multicast := 0, 0
	for _, a := range addrs {
		ours := acmeflow.CheckAddr(a, true) != nil
		theirs, why := boulderRefuses(a, "shortlived")
		switch {
		case ours == theirs:
			agree++
			if theirs && !strings.Contains(why, "rejectedIdentifier") {
				t.Errorf("%s: Boulder refused it otherwise than with rejectedIdentifier: %s", a, why)
			}
		case a.IsMulticast() && ours && !theirs:
			multicast++
		default:
			t.Errorf("%s: ipcert refuses=%v, Boulder refuses=%v (%s)", a, ours, theirs, why)
		}
	}
	t.Logf("%d addresses: %d verdicts agree, %d multicast addresses refused by ipcert alone", len(addrs), agree, multicast)
}

// registryEdges is, for each special-purpose block ipcert knows, its first
// and last address and the addresses just outside it.
func registryEdges() [][]netip.Addr {
	var out [][]netip.Addr
	for _, p := range acmeflow.SpecialPrefixes() {
		first := p.Masked().Addr()
		b := first.AsSlice()
		for i := p.Bits(); i < len(b)*8; i++ {
			b[i/8] |= 1 << (7 - i%8)
		}
		last, _ := netip.AddrFromSlice(b)
		var edge []netip.Addr
		for _, a := range []netip.Addr{first, last, first.Prev(), last.Next()} {
			if a.IsValid() && !a.Is4In6() {
				edge = append(edge, a)
			}
		}
		out = append(out, edge)
	}
	return out
}
