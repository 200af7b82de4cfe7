package acmeflow

import (
	"crypto/tls"
	"net/netip"
)

// TLSALPNCertificate is the self-signed certificate that answers a
// tls-alpn-01 challenge for ident (RFC 8737 section 3, RFC 8738): what any
// machine serving the address presents when it holds the key
// authorization (cluster mode's agents build it from the shared answer).
func TLSALPNCertificate(ident netip.Addr, keyAuth string) (*tls.Certificate, error) {
	return tlsALPNCert(ident, keyAuth)
}

// AddrFromReverseName is ReverseName backwards: the address whose
// reverse-DNS name the validator sent as SNI, or false.
func AddrFromReverseName(name string) (netip.Addr, bool) {
	const v4, v6 = ".in-addr.arpa", ".ip6.arpa"
	switch {
	case len(name) > len(v4) && name[len(name)-len(v4):] == v4:
		parts := splitDots(name[:len(name)-len(v4)])
		if len(parts) != 4 {
			return netip.Addr{}, false
		}
		s := parts[3] + "." + parts[2] + "." + parts[1] + "." + parts[0]
		a, err := netip.ParseAddr(s)
		return a, err == nil && a.Is4() && ReverseName(a) == name
	case len(name) > len(v6) && name[len(name)-len(v6):] == v6:
		parts := splitDots(name[:len(name)-len(v6)])
		if len(parts) != 32 {
			return netip.Addr{}, false
		}
		var b [16]byte
		for i, p := range parts {
			if len(p) != 1 {
				return netip.Addr{}, false
			}
			n := hexNibble(p[0])
			if n < 0 {
				return netip.Addr{}, false
			}
			// parts[0] is the last nibble of the address.
			pos := 31 - i
			if pos%2 == 0 {
				b[pos/2] |= byte(n) << 4
			} else {
				b[pos/2] |= byte(n)
			}
		}
		a := netip.AddrFrom16(b)
		return a, ReverseName(a) == name
	}
	return netip.Addr{}, false
}

func splitDots(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '.' {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

func hexNibble(c byte) int {
	switch {
	case c >= '0' && c <= '9':
		return int(c - '0')
	case c >= 'a' && c <= 'f':
		return int(c-'a') + 10
	}
	return -1
}
