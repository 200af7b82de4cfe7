package deploy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ipcert/ipcert/internal/untrusted"
)

// Outcome is what Verify concluded.
type Outcome string

// Outcomes. The command maps them to exit codes.
const (
	// Match: the address serves exactly the expected certificate.
	Match Outcome = "match"
	// Mismatch: it serves another certificate.
	Mismatch Outcome = "mismatch"
	// Unreachable: no TLS handshake (nothing listening, refused, timeout,
	// not TLS).
	Unreachable Outcome = "unreachable"
	// Unchecked: it served a certificate, but there was nothing to compare
	// it with (VerifyOptions.Expected was nil).
	Unchecked Outcome = "unchecked"
)

// VerifyOptions tunes Verify.
type VerifyOptions struct {
	// Roots decides what "a browser would accept" means: nil is the
	// system's roots, like a browser; a pool (a test CA's root) replaces
	// them.
	Roots *x509.CertPool
	// Expected is the certificate that should be served (the stored
	// current). Nil only reports what is served.
	Expected *x509.Certificate
	// Timeout bounds connect plus handshake; default 10 s.
	Timeout time.Duration
	// Now is the clock for validity; default time.Now.
	Now func() time.Time
	// Dial replaces the network dial (tests).
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
}

// ServedCert describes one certificate of the served chain.
type ServedCert struct {
	Subject   string       `json:"subject"`
	Issuer    string       `json:"issuer"`
	Serial    string       `json:"serial"` // lowercase hex, as renewal.json keeps it
	NotBefore time.Time    `json:"not_before"`
	NotAfter  time.Time    `json:"not_after"`
	IPs       []netip.Addr `json:"ip_sans,omitempty"`
	DNSNames  []string     `json:"dns_sans,omitempty"`
}

// VerifyResult is what Verify saw and concluded.
type VerifyResult struct {
	Addr    string  `json:"address"` // IP:PORT dialled
	Outcome Outcome `json:"outcome"`
	// Reason explains the outcome in one sentence.
	Reason string `json:"reason"`
	// The handshake.
	TLSVersion  string `json:"tls_version,omitempty"`
	CipherSuite string `json:"cipher_suite,omitempty"`
	// Chain is what the server sent, leaf first.
	Chain []ServedCert `json:"chain,omitempty"`
	// Leaf is the served leaf (nil when unreachable).
	Leaf *x509.Certificate `json:"-"`
	// ValidFor is how long the served leaf has left (negative: expired).
	ValidFor time.Duration `json:"valid_for_ns"`
	// CoversAddr says the leaf has the dialled IP among its IP SANs.
	CoversAddr bool `json:"covers_address"`
	// Accepted says a browser trusting Roots would accept the connection:
	// the chain verifies to a root, the IP is in the SANs, it is within
	// its validity. Rejection says why not.
	Accepted  bool   `json:"browser_accepts"`
	Rejection string `json:"rejection,omitempty"`
	// ChainSent is false when the server sent only the leaf (a config
	// naming cert.pem instead of fullchain.pem): browsers that have not
	// cached the intermediate fail.
	ChainSent bool `json:"chain_sent"`
	// Expected facts, when compared.
	ExpectedSerial string `json:"expected_serial,omitempty"`
}

// ParseTarget turns ADDR, ADDR:PORT, [V6]:PORT or a bare IPv6 address into
// IP:PORT; the port defaults to defaultPort. Only IP literals are accepted:
// certificates from ipcert name addresses, and a name would need a resolver.
func ParseTarget(s string, defaultPort int) (netip.AddrPort, error) {
	if a, err := netip.ParseAddr(s); err == nil {
		if a.Zone() != "" {
			return netip.AddrPort{}, fmt.Errorf("%q: an address with a zone cannot be in a certificate", s)
		}
		return netip.AddrPortFrom(a.Unmap(), uint16(defaultPort)), nil
	}
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("%q is not ADDR or ADDR:PORT (IPv6 with a port as [ADDR]:PORT)", s)
	}
	a, err := netip.ParseAddr(host)
	if err != nil || a.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("%q is not an IP address; ipcert verifies IP addresses", host)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 1 || p > 65535 {
		return netip.AddrPort{}, fmt.Errorf("%q is not a port number", port)
	}
	return netip.AddrPortFrom(a.Unmap(), uint16(p)), nil
}

// Verify makes a TLS handshake to addr (IP:PORT) the way a browser does for
// an IP URL, with no SNI (RFC 6066 section 3 allows only host names in
// SNI), then reports what it served, whether a browser would accept it and
// whether it is the expected certificate. The returned error is only for
// bad arguments; an unreachable address is an Outcome.
func Verify(ctx context.Context, addr string, opts VerifyOptions) (VerifyResult, error) {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return VerifyResult{}, fmt.Errorf("verify: %q is not IP:PORT", addr)
	}
	res := VerifyResult{Addr: ap.String()}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	now := time.Now
	if opts.Now != nil {
		now = opts.Now
	}
	if opts.Expected != nil {
		res.ExpectedSerial = fmt.Sprintf("%x", opts.Expected.SerialNumber)
	}
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	dial := opts.Dial
	if dial == nil {
		var d net.Dialer
		dial = d.DialContext
	}
	raw, err := dial(ctx, "tcp", ap.String())
	if err != nil {
		res.Outcome = Unreachable
		res.Reason = fmt.Sprintf("cannot connect to %s: %v; is the web server running and listening on this address and port?", ap, untrusted.Text(rootCause(err).Error()))
		return res, nil
	}
	defer raw.Close()
	// The chain is checked below, by hand, so that a failed check still
	// shows what was served instead of ending the handshake.
	conn := tls.Client(raw, &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS12})
	if err := conn.HandshakeContext(ctx); err != nil {
		res.Outcome = Unreachable
		res.Reason = fmt.Sprintf("TLS handshake with %s failed: %v; is the server on this port speaking TLS with a certificate for this address?", ap, untrusted.Text(rootCause(err).Error()))
		return res, nil
	}
	st := conn.ConnectionState()
	res.TLSVersion = tls.VersionName(st.Version)
	res.CipherSuite = tls.CipherSuiteName(st.CipherSuite)
	if len(st.PeerCertificates) == 0 {
		res.Outcome = Unreachable
		res.Reason = "the server sent no certificate"
		return res, nil
	}
	leaf := st.PeerCertificates[0]
	res.Leaf = leaf
	res.ChainSent = len(st.PeerCertificates) > 1
	for _, c := range st.PeerCertificates {
		res.Chain = append(res.Chain, describeCert(c))
	}
	t := now()
	res.ValidFor = leaf.NotAfter.Sub(t)
	for _, ip := range leaf.IPAddresses {
		if a, ok := netip.AddrFromSlice(ip); ok && a.Unmap() == ap.Addr() {
			res.CoversAddr = true
		}
	}
	res.Accepted, res.Rejection = browserAccepts(leaf, st.PeerCertificates[1:], ap.Addr(), opts.Roots, t)

	Judge(&res, opts.Expected)
	return res, nil
}

// describeCert is what verify shows of a served certificate. The names
// and the issuer are whatever the server's certificate says (anyone's
// server, anyone's certificate): escaped here, so the terminal, the JSON
// and the wizard get safe text.
func describeCert(c *x509.Certificate) ServedCert {
	s := ServedCert{
		Subject: untrusted.Text(c.Subject.String()), Issuer: untrusted.Text(c.Issuer.String()),
		Serial:    fmt.Sprintf("%x", c.SerialNumber),
		NotBefore: c.NotBefore, NotAfter: c.NotAfter, DNSNames: untrusted.Strings(c.DNSNames),
	}
	for _, ip := range c.IPAddresses {
		if a, ok := netip.AddrFromSlice(ip); ok {
			s.IPs = append(s.IPs, a.Unmap())
		}
	}
	return s
}

// browserAccepts is the browser's verdict: a chain from the served
// intermediates to a trusted root, for the IP (checked against IP SANs,
// RFC 6125 / RFC 5280 section 4.2.1.6; a Common Name never counts), at
// time t.
func browserAccepts(leaf *x509.Certificate, rest []*x509.Certificate, ip netip.Addr, roots *x509.CertPool, t time.Time) (bool, string) {
	inter := x509.NewCertPool()
	for _, c := range rest {
		inter.AddCert(c)
	}
	_, err := leaf.Verify(x509.VerifyOptions{
		Roots: roots, Intermediates: inter, DNSName: ip.String(), CurrentTime: t,
		KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	if err == nil {
		return true, ""
	}
	var hn x509.HostnameError
	var ua x509.UnknownAuthorityError
	var ci x509.CertificateInvalidError
	switch {
	case errors.As(err, &hn):
		return false, fmt.Sprintf("the certificate is not for %s (it names %s)", ip, sansOf(leaf))
	case errors.As(err, &ci) && ci.Reason == x509.Expired:
		if t.After(leaf.NotAfter) {
			return false, fmt.Sprintf("the certificate expired on %s", leaf.NotAfter.UTC().Format(time.RFC3339))
		}
		return false, fmt.Sprintf("the certificate is not valid yet (from %s); check the clock", leaf.NotBefore.UTC().Format(time.RFC3339))
	case errors.As(err, &ua):
		if len(rest) == 0 {
			return false, "the server sends only its own certificate, no chain, and its issuer is not trusted; point the config at fullchain.pem"
		}
		if roots == nil {
			return false, "the issuer is not trusted by this system (a staging or test CA?); pass --root FILE to check against a test CA's root"
		}
		return false, "the chain does not lead to the given root"
	}
	return false, untrusted.Text(err.Error())
}

func sansOf(c *x509.Certificate) string {
	var parts []string
	for _, ip := range c.IPAddresses {
		parts = append(parts, ip.String())
	}
	parts = append(parts, c.DNSNames...)
	if len(parts) == 0 {
		return "no addresses"
	}
	return untrusted.Text(strings.Join(parts, ", "))
}

// rootCause drops the wrapping of net errors ("dial tcp 1.2.3.4:443:
// connect: connection refused" becomes "connection refused").
func rootCause(err error) error {
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		return oe.Err
	}
	return err
}
