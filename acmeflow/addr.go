package acmeflow

import (
	"bytes"
	_ "embed"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"regexp"
	"sort"
	"strings"
)

// AddrClass says what kind of address an IP is, in the words a person
// understands. Preflight uses the same table to describe local interfaces,
// so the policy and the interface report can never disagree.
type AddrClass string

const (
	ClassPublic        AddrClass = "public"
	ClassPrivate       AddrClass = "private"       // RFC 1918
	ClassCGNAT         AddrClass = "cgnat"         // RFC 6598 shared address space
	ClassLoopback      AddrClass = "loopback"      // 127/8, ::1
	ClassLinkLocal     AddrClass = "link-local"    // 169.254/16, fe80::/10
	ClassULA           AddrClass = "ula"           // fc00::/7
	ClassDocumentation AddrClass = "documentation" // TEST-NET-1/2/3, 2001:db8::/32, 3fff::/20
	ClassBenchmark     AddrClass = "benchmarking"  // 198.18/15, 2001:2::/48
	ClassMulticast     AddrClass = "multicast"
	ClassUnspecified   AddrClass = "unspecified" // 0.0.0.0, ::
	ClassTranslation   AddrClass = "translation" // NAT64, 6to4, Teredo, IPv4-mapped
	ClassReserved      AddrClass = "reserved"    // other IANA special-purpose blocks
)

// Block is one row of the special-purpose table.
type Block struct {
	Prefix netip.Prefix
	Class  AddrClass
	Name   string
}

// specialBlocks names, in a person's words, the special-purpose ranges
// people meet (private, CGNAT, loopback, documentation...). What Let's
// Encrypt refuses is not this list but the IANA registries
// (registryBlocks): every row here except multicast lies inside a
// registry block (TestSpecialBlocksInRegistries). More specific rows come
// first so that Classify reports the most precise name.
var specialBlocks = func() []Block {
	rows := []struct{ p, class, name string }{
		// IPv4
		{"0.0.0.0/32", string(ClassUnspecified), "the unspecified address"},
		{"0.0.0.0/8", string(ClassReserved), "\"this network\" (RFC 791)"},
		{"10.0.0.0/8", string(ClassPrivate), "private network 10/8 (RFC 1918)"},
		{"100.64.0.0/10", string(ClassCGNAT), "carrier-grade NAT space 100.64/10 (RFC 6598)"},
		{"127.0.0.0/8", string(ClassLoopback), "loopback 127/8"},
		{"169.254.0.0/16", string(ClassLinkLocal), "link-local 169.254/16"},
		{"172.16.0.0/12", string(ClassPrivate), "private network 172.16/12 (RFC 1918)"},
		{"192.0.0.0/24", string(ClassReserved), "IETF protocol assignments 192.0.0/24"},
		{"192.0.2.0/24", string(ClassDocumentation), "documentation range TEST-NET-1 192.0.2/24"},
		{"192.88.99.0/24", string(ClassTranslation), "6to4 relay anycast 192.88.99/24"},
		{"192.168.0.0/16", string(ClassPrivate), "private network 192.168/16 (RFC 1918)"},
		{"198.18.0.0/15", string(ClassBenchmark), "benchmarking range 198.18/15"},
		{"198.51.100.0/24", string(ClassDocumentation), "documentation range TEST-NET-2 198.51.100/24"},
		{"203.0.113.0/24", string(ClassDocumentation), "documentation range TEST-NET-3 203.0.113/24"},
		{"224.0.0.0/4", string(ClassMulticast), "multicast 224/4"},
		{"255.255.255.255/32", string(ClassReserved), "the limited broadcast address"},
		{"240.0.0.0/4", string(ClassReserved), "reserved range 240/4"},
		// IPv6
		{"::/128", string(ClassUnspecified), "the unspecified address ::"},
		{"::1/128", string(ClassLoopback), "loopback ::1"},
		{"::ffff:0:0/96", string(ClassTranslation), "IPv4-mapped addresses ::ffff:0:0/96"},
		{"64:ff9b::/96", string(ClassTranslation), "NAT64 well-known prefix 64:ff9b::/96"},
		{"64:ff9b:1::/48", string(ClassTranslation), "local-use NAT64 64:ff9b:1::/48"},
		{"100::/64", string(ClassReserved), "discard-only range 100::/64"},
		{"2001::/32", string(ClassTranslation), "Teredo 2001::/32"},
		{"2001:2::/48", string(ClassBenchmark), "benchmarking range 2001:2::/48"},
		{"2001::/23", string(ClassReserved), "IETF protocol assignments 2001::/23"},
		{"2001:db8::/32", string(ClassDocumentation), "documentation range 2001:db8::/32"},
		{"2002::/16", string(ClassTranslation), "6to4 2002::/16"},
		{"3fff::/20", string(ClassDocumentation), "documentation range 3fff::/20"},
		{"5f00::/16", string(ClassReserved), "segment routing SIDs 5f00::/16"},
		{"fc00::/7", string(ClassULA), "unique local addresses fc00::/7"},
		{"fe80::/10", string(ClassLinkLocal), "link-local fe80::/10"},
		{"ff00::/8", string(ClassMulticast), "multicast ff00::/8"},
	}
	out := make([]Block, len(rows))
	for i, r := range rows {
		out[i] = Block{Prefix: netip.MustParsePrefix(r.p), Class: AddrClass(r.class), Name: r.name}
	}
	return out
}()

// The IANA special-purpose address registries, as IANA exports them
// (acmeflow/iana/README.md). Let's Encrypt's CA refuses an identifier in
// any row of either, whatever the row's other columns say (Boulder
// policy/pa.go ValidIP -> iana.IsReservedAddr).
var (
	//go:embed iana/ipv4-special-registry.csv
	ipv4Registry []byte
	//go:embed iana/ipv6-special-registry.csv
	ipv6Registry []byte
)

// registryBlocks are the registries' rows, most specific first.
var registryBlocks = func() []Block {
	var out []Block
	for _, reg := range [][]byte{ipv4Registry, ipv6Registry} {
		rows, err := parseRegistry(reg)
		if err != nil {
			panic("acmeflow: the embedded IANA registry does not parse: " + err.Error())
		}
		out = append(out, rows...)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Prefix.Bits() > out[j].Prefix.Bits() })
	return out
}()

var (
	footnote = regexp.MustCompile(`\s*\[\d+\]\s*$`)
	spaces   = regexp.MustCompile(`\s+`)
)

// parseRegistry reads one IANA special-purpose registry CSV: the header
// starts "Address Block,Name,RFC"; a block cell may hold several prefixes
// separated by commas and end in a footnote mark ("2002::/16 [3]").
func parseRegistry(data []byte) ([]Block, error) {
	r := csv.NewReader(bytes.NewReader(data))
	head, err := r.Read()
	if err != nil {
		return nil, err
	}
	if len(head) < 3 || head[0] != "Address Block" || head[1] != "Name" || head[2] != "RFC" {
		return nil, fmt.Errorf("header %q is not IANA's", head)
	}
	var out []Block
	for {
		row, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, err
		}
		if len(row) < 3 {
			return nil, fmt.Errorf("short row %q", row)
		}
		name := strings.TrimSpace(spaces.ReplaceAllString(row[1], " "))
		rfc := strings.TrimSpace(spaces.ReplaceAllString(row[2], " "))
		for _, cell := range strings.Split(footnote.ReplaceAllString(row[0], ""), ",") {
			p, err := netip.ParsePrefix(strings.TrimSpace(cell))
			if err != nil {
				return nil, fmt.Errorf("block %q: %v", cell, err)
			}
			out = append(out, Block{Prefix: p, Class: ClassReserved, Name: fmt.Sprintf("%s %s (IANA special-purpose registry, %s)", name, p, rfc)})
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no rows")
	}
	return out, nil
}

// Classify names the kind of address a is and, for special-purpose
// addresses, the block it falls in: the words of specialBlocks where one
// of its rows holds a, else the IANA registry's row. Public addresses
// return a zero Block.
func Classify(a netip.Addr) (AddrClass, Block) {
	a = a.WithZone("")
	for _, b := range specialBlocks {
		if b.Prefix.Contains(a) {
			return b.Class, b
		}
	}
	for _, b := range registryBlocks {
		if b.Prefix.Contains(a) {
			return b.Class, b
		}
	}
	return ClassPublic, Block{}
}

// OwnCAHint ends the fix of a private address Let's Encrypt refuses: the
// refusal is Let's Encrypt's policy, and an organisation's own ACME CA
// certifies exactly such addresses.
const OwnCAHint = "an internal service can get one from its own ACME CA instead: ipcert issue --ca URL --ca-root FILE"

// AddrError explains why an address cannot be used, and what to do instead.
type AddrError struct {
	Input  string
	Reason string
	Fix    string
}

func (e *AddrError) Error() string {
	msg := fmt.Sprintf("address %q: %s", e.Input, e.Reason)
	if e.Fix != "" {
		msg += "; " + e.Fix
	}
	return msg
}

// ErrBadAddress is matched by every *AddrError through errors.Is.
var ErrBadAddress = errors.New("unusable IP address")

func (e *AddrError) Is(target error) bool { return target == ErrBadAddress }

// ParseIP reads one IP address as a person typed it and insists on the form
// ACME identifiers must have: RFC 5952 canonical text, no zone, no prefix
// length, no port (RFC 8738 section 3; docs/letsencrypt.md). It does not judge whether a
// CA will accept the address: that is CheckAddr's job, because it depends on
// the CA.
func ParseIP(s string) (netip.Addr, error) {
	in := s
	s = strings.TrimSpace(s)
	bad := func(reason, fix string) (netip.Addr, error) {
		return netip.Addr{}, &AddrError{Input: in, Reason: reason, Fix: fix}
	}
	switch {
	case s == "":
		return bad("empty address", "give an IPv4 address such as 203.0.113.7 or an IPv6 address such as 2001:db8::7")
	case len(s) > 64:
		return bad("too long to be an IP address", "give a single IPv4 or IPv6 address")
	case strings.Contains(s, "/"):
		if p, err := netip.ParsePrefix(s); err == nil {
			return bad("a network range (CIDR), not a single address", "certificates name single addresses: use "+p.Addr().String())
		}
		return bad("contains '/'", "give a single address without a prefix length")
	case strings.HasPrefix(s, "[") || strings.Count(s, ":") == 1:
		if ap, err := netip.ParseAddrPort(s); err == nil {
			return bad("includes a port", "give the address alone: "+ap.Addr().WithZone("").String())
		}
		if strings.HasPrefix(s, "[") && strings.HasSuffix(s, "]") {
			return bad("is in brackets", "give the address without brackets: "+strings.Trim(s, "[]"))
		}
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		if looksLikeLeadingZeros(s) {
			return bad("an IPv4 part has a leading zero, which some tools read as octal", "write each part without leading zeros")
		}
		if strings.ContainsAny(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ") && !strings.Contains(s, ":") {
			return bad("is a host name, not an IP address", "give the IP address itself (ipcert preflight --ip auto finds this machine's public address)")
		}
		return bad("is not an IP address", "give an IPv4 address such as 203.0.113.7 or an IPv6 address such as 2001:db8::7")
	}
	if a.Zone() != "" {
		return bad("has a zone ("+a.Zone()+"), which only means something on this machine", "drop the %"+a.Zone()+" part; link-local addresses cannot get public certificates anyway")
	}
	if a.Is4In6() {
		return bad("is an IPv4-mapped IPv6 address", "use the IPv4 address itself: "+a.Unmap().String())
	}
	if canon := a.String(); canon != s {
		return bad("is not in canonical form (RFC 5952)", "write it as "+canon)
	}
	return a, nil
}

func looksLikeLeadingZeros(s string) bool {
	parts := strings.Split(s, ".")
	if len(parts) != 4 {
		return false
	}
	for _, p := range parts {
		if len(p) > 1 && p[0] == '0' {
			return true
		}
	}
	return false
}

// CheckAddr says whether a CA that follows Let's Encrypt's policy will issue
// for a. publicCA is true for Let's Encrypt (staging and production) and any
// other CA on the internet; false for the built-in local test CA, which
// validates over loopback. The rule belongs to the CA choice, not the parser.
func CheckAddr(a netip.Addr, publicCA bool) error {
	if !a.IsValid() {
		return &AddrError{Input: "", Reason: "no address given", Fix: "give an IP address with --ip"}
	}
	class, block := Classify(a)
	if !publicCA {
		// Pebble validates by connecting to the address: only what this
		// machine can reach makes sense, but no range is refused by policy.
		if class == ClassUnspecified || class == ClassMulticast {
			return &AddrError{Input: a.String(), Reason: "is " + block.Name + ", which nothing can connect to", Fix: "use 127.0.0.1 or ::1 with the local test CA"}
		}
		return nil
	}
	if class == ClassPublic {
		return nil
	}
	fix := "use this machine's public address (ipcert preflight --ip auto finds it)"
	switch class {
	case ClassLoopback:
		fix = "to try ipcert locally use --ca local (or ipcert demo); for a real certificate use the public address"
	case ClassCGNAT:
		fix = "your provider shares one public IPv4 among many customers, so nothing from the internet can reach this address: use IPv6, ask for a public IPv4, or use a VPS"
	case ClassPrivate, ClassULA, ClassLinkLocal:
		fix = "this address is only reachable inside your network: use the public address of your router (and forward ports 80/443) or of the server; " + OwnCAHint
	case ClassDocumentation:
		fix = "this range is reserved for examples in documentation: use your real public address"
	}
	return &AddrError{
		Input:  a.String(),
		Reason: "is in " + block.Name + "; Let's Encrypt refuses it (rejectedIdentifier)",
		Fix:    fix,
	}
}

// AddrStrings is each address in its canonical text form: the identifiers
// of an order, and the input of store.NameFor.
func AddrStrings(as []netip.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.String()
	}
	return out
}

// JoinAddrs is the addresses for people: "192.0.2.1, 2001:db8::1".
func JoinAddrs(as []netip.Addr) string { return strings.Join(AddrStrings(as), ", ") }

// SpecialPrefixes is every block the policy knows: the IANA registries'
// and the named ones (multicast among them), for tests that hold the
// policy against a CA's.
func SpecialPrefixes() []netip.Prefix {
	var out []netip.Prefix
	for _, b := range registryBlocks {
		out = append(out, b.Prefix)
	}
	for _, b := range specialBlocks {
		out = append(out, b.Prefix)
	}
	return out
}
