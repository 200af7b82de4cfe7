package acmeflow

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

func TestParseIP(t *testing.T) {
	good := map[string]string{
		"203.0.113.7": "203.0.113.7",
		" 8.8.8.8 ":   "8.8.8.8",
		"2001:db8::1": "2001:db8::1",
		"::1":         "::1",
	}
	for in, want := range good {
		a, err := ParseIP(in)
		if err != nil || a.String() != want {
			t.Errorf("ParseIP(%q) = %v, %v", in, a, err)
		}
	}
	bad := map[string]string{
		"":                      "empty",
		"1.2.3.4/32":            "CIDR",
		"1.2.3.4:443":           "port",
		"[2001:db8::1]:443":     "port",
		"[2001:db8::1]":         "brackets",
		"fe80::1%eth0":          "zone",
		"::ffff:1.2.3.4":        "IPv4-mapped",
		"2001:DB8::1":           "canonical",
		"2001:db8:0:0::1":       "canonical",
		"2001:0db8::1":          "canonical",
		"010.1.2.3":             "leading zero",
		"example.com":           "host name",
		"1.2.3":                 "not an IP",
		strings.Repeat("1", 70): "too long",
	}
	for in, want := range bad {
		_, err := ParseIP(in)
		if err == nil || !strings.Contains(err.Error(), want) || !errors.Is(err, ErrBadAddress) {
			t.Errorf("ParseIP(%q) = %v, want error mentioning %q", in, err, want)
		}
	}
}

func TestCheckAddrPolicy(t *testing.T) {
	refused := []string{
		"0.1.2.3", "10.1.2.3", "100.64.0.1", "100.127.255.254", "127.0.0.1", "169.254.1.1", "172.16.0.1", "172.31.255.255",
		"192.0.0.8", "192.0.2.1", "192.88.99.1", "192.168.1.1", "198.18.0.1", "198.19.255.1", "198.51.100.1",
		"203.0.113.1", "224.0.0.1", "240.0.0.1", "255.255.255.255",
		"::1", "::", "64:ff9b::1.2.3.4", "64:ff9b:1::1", "100::1", "2001::1", "2001:db8::1", "2002::1",
		"3fff::1", "5f00::1", "fc00::1", "fd12:3456::1", "fe80::1", "ff02::1",
	}
	for _, s := range refused {
		a := netip.MustParseAddr(s)
		err := CheckAddr(a, true)
		if err == nil || !strings.Contains(err.Error(), "rejectedIdentifier") {
			t.Errorf("%s: want refusal, got %v", s, err)
		}
	}
	allowed := []string{"1.1.1.1", "8.8.8.8", "100.63.255.255", "100.128.0.0", "172.32.0.1", "192.169.0.1", "2606:4700::1111", "2a01:4f8::1"}
	for _, s := range allowed {
		if err := CheckAddr(netip.MustParseAddr(s), true); err != nil {
			t.Errorf("%s: %v", s, err)
		}
	}
	// The local test CA validates over loopback: loopback and private
	// ranges must stay allowed there.
	for _, s := range []string{"127.0.0.1", "::1", "10.0.0.1"} {
		if err := CheckAddr(netip.MustParseAddr(s), false); err != nil {
			t.Errorf("local CA %s: %v", s, err)
		}
	}
	if err := CheckAddr(netip.MustParseAddr("100.64.1.1"), true); !strings.Contains(err.Error(), "IPv6") {
		t.Errorf("CGNAT fix should suggest IPv6: %v", err)
	}
}

func TestClassify(t *testing.T) {
	for s, want := range map[string]AddrClass{
		"10.0.0.1": ClassPrivate, "100.64.0.1": ClassCGNAT, "127.0.0.53": ClassLoopback, "fe80::1": ClassLinkLocal,
		"fd00::1": ClassULA, "192.0.2.5": ClassDocumentation, "2001:db8::5": ClassDocumentation, "1.1.1.1": ClassPublic,
		"0.0.0.0": ClassUnspecified, "2001:0:1::1": ClassTranslation, "2001:2::1": ClassBenchmark,
	} {
		if got, _ := Classify(netip.MustParseAddr(s)); got != want {
			t.Errorf("Classify(%s) = %s, want %s", s, got, want)
		}
	}
}

func TestReverseName(t *testing.T) {
	if got := ReverseName(netip.MustParseAddr("203.0.113.7")); got != "7.113.0.203.in-addr.arpa" {
		t.Error(got)
	}
	want := "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa"
	if got := ReverseName(netip.MustParseAddr("2001:db8::1")); got != want {
		t.Error(got)
	}
}

// FuzzParseIP: never panics; what it accepts is canonical, zone-free and
// round-trips; every refusal is an *AddrError with a fix.
func FuzzParseIP(f *testing.F) {
	for _, s := range []string{"1.2.3.4", "::1", "2001:db8::1", "fe80::1%eth0", "1.2.3.4/24", "[::1]:80", "010.0.0.1", "::ffff:1.2.3.4", "", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseIP(s)
		if err != nil {
			var ae *AddrError
			if !errors.As(err, &ae) || ae.Reason == "" {
				t.Fatalf("ParseIP(%q): error without reason: %v", s, err)
			}
			return
		}
		if a.Zone() != "" || a.Is4In6() || a.String() != strings.TrimSpace(s) {
			t.Fatalf("ParseIP(%q) accepted %v", s, a)
		}
		_ = CheckAddr(a, true)
	})
}

// TestPrivateRefusalNamesOwnCA: Let's Encrypt's refusal of a private
// address says where such an address can get a certificate (its own ACME
// CA), and the addresses no own CA would help with do not.
func TestPrivateRefusalNamesOwnCA(t *testing.T) {
	for _, tc := range []struct {
		addr string
		want bool
	}{{"10.0.0.5", true}, {"fd00::5", true}, {"fe80::1", true}, {"127.0.0.1", false}, {"100.64.0.9", false}, {"192.0.2.1", false}} {
		err := CheckAddr(netip.MustParseAddr(tc.addr), true)
		if err == nil {
			t.Fatalf("%s accepted for Let's Encrypt", tc.addr)
		}
		if got := strings.Contains(err.Error(), "--ca URL --ca-root FILE"); got != tc.want {
			t.Errorf("%s: names the own CA %v, want %v: %v", tc.addr, got, tc.want, err)
		}
	}
}

// TestSpecialBlocksInRegistries: the named rows only put words on what
// the IANA registries already refuse; none widens the policy, except
// multicast, which is in neither registry and refused on purpose (no
// validator connects to it).
func TestSpecialBlocksInRegistries(t *testing.T) {
	for _, b := range specialBlocks {
		if b.Class == ClassMulticast {
			continue
		}
		inside := false
		for _, r := range registryBlocks {
			if r.Prefix.Bits() <= b.Prefix.Bits() && r.Prefix.Contains(b.Prefix.Addr()) {
				inside = true
			}
		}
		if !inside {
			t.Errorf("%s (%s) is in no IANA special-purpose registry block", b.Prefix, b.Name)
		}
	}
	if len(registryBlocks) < 50 {
		t.Errorf("%d registry blocks parsed, want the 50+ of IANA's two registries", len(registryBlocks))
	}
}

// TestRegistryBlocksRefused: the blocks Boulder refused and a hand-written
// table once let through, and each registry block's first and last
// address, are refused for Let's Encrypt; the address just outside a block
// is judged by the registries alone.
func TestRegistryBlocksRefused(t *testing.T) {
	for _, s := range []string{"192.31.196.1", "192.52.193.255", "192.175.48.0", "2620:4f:8000::1", "100:0:0:1::5", "192.0.0.9", "2001:1::2"} {
		a := netip.MustParseAddr(s)
		if err := CheckAddr(a, true); err == nil {
			t.Errorf("%s: accepted for Let's Encrypt; it is in an IANA special-purpose block", s)
		} else if !strings.Contains(err.Error(), "rejectedIdentifier") {
			t.Errorf("%s: %v, want Let's Encrypt's refusal named", s, err)
		}
	}
	inRegistry := func(a netip.Addr) bool {
		for _, r := range registryBlocks {
			if r.Prefix.Contains(a) {
				return true
			}
		}
		return a.IsMulticast()
	}
	for _, r := range registryBlocks {
		first := r.Prefix.Masked().Addr()
		last := lastAddr(r.Prefix)
		for _, a := range []netip.Addr{first, last, first.Prev(), last.Next()} {
			if !a.IsValid() {
				continue
			}
			if got, want := CheckAddr(a, true) != nil, inRegistry(a); got != want {
				t.Errorf("%s (edge of %s): refused=%v, the registries say %v", a, r.Prefix, got, want)
			}
		}
	}
}

func lastAddr(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().AsSlice()
	for i := p.Bits(); i < len(b)*8; i++ {
		b[i/8] |= 1 << (7 - i%8)
	}
	a, _ := netip.AddrFromSlice(b)
	return a
}

func TestAddrFromReverseName(t *testing.T) {
	for _, s := range []string{"192.0.2.1", "64.112.117.10", "2001:db8::7", "2602:80a:6000:ff::c", "::1"} {
		a := netip.MustParseAddr(s)
		got, ok := AddrFromReverseName(ReverseName(a))
		if !ok || got != a {
			t.Errorf("%s -> %s -> %s %v", a, ReverseName(a), got, ok)
		}
	}
	for _, bad := range []string{"", "in-addr.arpa", "1.2.3.in-addr.arpa", "01.2.3.4.in-addr.arpa", "256.1.1.1.in-addr.arpa", "x.ip6.arpa", "example.com"} {
		if a, ok := AddrFromReverseName(bad); ok {
			t.Errorf("%q -> %s", bad, a)
		}
	}
}
