package store

import (
	"crypto/x509"
	"fmt"
	"net/netip"
	"strings"
)

// Query asks for "the certificate for this name or address": the one
// lookup that verify, snippet, doctor and status share, so that they never
// disagree about which stored certificate a command is about.
type Query struct {
	// Arg is what the user typed: a certificate name or an IP address
	// (ADDR, ADDR:PORT or [V6]:PORT). A name wins over an address that
	// reads the same (names derived from IPv4 addresses are the address).
	// Empty: the only certificate, when there is exactly one.
	Arg string
	// Port is the port the address is used on (verify), for matching
	// renewal.json's verify_addr; 0 is 443, or the port in Arg.
	Port int
	// Served, when known, is the certificate the address serves: among
	// several certificates for the address, the one whose current version
	// it is wins (it is what the user deployed there).
	Served *x509.Certificate
}

// Found is the answer of Find.
type Found struct {
	// Name is the certificate chosen; empty when none is stored for the
	// address (Addr is then set).
	Name string
	// By says how it was chosen, for messages: "name", "verify address",
	// "served certificate", "earlier version" (the address serves an older
	// version of it), "address", "only certificate".
	By string
	// Addr is the address asked about (invalid when Arg was a name).
	Addr netip.AddrPort
	// Candidates are every certificate covering Addr, sorted; more than one
	// means the choice was made by By, or (By "address") is a guess the
	// caller should explain.
	Candidates []string
}

// Ambiguous says several certificates cover the address and nothing
// decided between them (no verify address, no served certificate).
func (f Found) Ambiguous() bool { return f.By == "address" && len(f.Candidates) > 1 }

// Find answers q. A name that is not stored, or an argument that is
// neither a stored name nor an IP address, is an error naming the fix.
// Certificates whose renewal.json cannot be read are skipped for address
// matching (status shows them with their problem).
func (s *Store) Find(q Query) (Found, error) {
	names, err := s.Names()
	if err != nil {
		return Found{}, explainFS(s.root, err)
	}
	if q.Arg == "" {
		switch len(names) {
		case 0:
			return Found{}, fmt.Errorf("no certificates in %s yet; get one with ipcert issue (or pass --state-dir)", s.root)
		case 1:
			return Found{Name: names[0], By: "only certificate"}, nil
		}
		return Found{}, fmt.Errorf("%d certificates are managed (%s); say which one (a name or an address)", len(names), strings.Join(names, ", "))
	}
	for _, n := range names {
		if n == q.Arg {
			return Found{Name: n, By: "name"}, nil
		}
	}
	ap, ok := parseTarget(q.Arg, q.Port)
	if !ok {
		if ValidName(q.Arg) == nil {
			return Found{}, fmt.Errorf("no certificate named %q in %s, and it is not an IP address; ipcert status lists them", q.Arg, s.root)
		}
		return Found{}, fmt.Errorf("%q is neither a certificate name in %s nor an IP address; ipcert status lists them", q.Arg, s.root)
	}
	f := Found{Addr: ap}
	var verifyHits []string
	for _, n := range names {
		r, err := s.LoadRenewal(n)
		if err != nil {
			continue
		}
		covers := false
		for _, id := range r.Identifiers {
			if id == ap.Addr().String() {
				covers = true
			}
		}
		if !covers {
			continue
		}
		f.Candidates = append(f.Candidates, n)
		if va, ok := parseTarget(r.VerifyAddr, 443); ok && va == ap {
			verifyHits = append(verifyHits, n)
		}
	}
	// The served certificate itself is the strongest evidence: it is what
	// the web server was pointed at. Then the address the user told ipcert
	// to verify for a certificate (issue --verify).
	if q.Served != nil {
		for _, n := range names {
			if v, err := s.CurrentVersion(n); err == nil && v.Leaf.Equal(q.Served) {
				f.Name, f.By = n, "served certificate"
				return f, nil
			}
		}
		// An earlier version of one: the server was not reloaded since.
		for _, n := range f.Candidates {
			vs, _ := s.Versions(n)
			for _, vn := range vs {
				if v, err := s.LoadVersion(n, vn); err == nil && v.Leaf.Equal(q.Served) {
					f.Name, f.By = n, "earlier version"
					return f, nil
				}
			}
		}
	}
	switch {
	case len(verifyHits) > 0:
		f.Name, f.By = verifyHits[0], "verify address"
	case len(f.Candidates) > 0:
		f.Name, f.By = f.Candidates[0], "address"
	}
	return f, nil
}

// parseTarget reads ADDR, ADDR:PORT or [V6]:PORT; port is the default
// (0 means 443).
func parseTarget(s string, port int) (netip.AddrPort, bool) {
	if port == 0 {
		port = 443
	}
	if s == "" {
		return netip.AddrPort{}, false
	}
	if a, err := netip.ParseAddr(s); err == nil && a.Zone() == "" {
		return netip.AddrPortFrom(a.Unmap(), uint16(port)), true
	}
	ap, err := netip.ParseAddrPort(s)
	if err != nil || ap.Addr().Zone() != "" {
		return netip.AddrPort{}, false
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()), true
}
