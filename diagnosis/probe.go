package diagnosis

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/spec"
)

// ProbeKind is what a local connection to a validation port found.
type ProbeKind string

const (
	ProbeRefused      ProbeKind = "refused"       // nothing listens
	ProbeTimeout      ProbeKind = "timeout"       // no answer at all
	ProbeHTTP         ProbeKind = "plain-http"    // a plain HTTP server on the TLS port
	ProbeTLSNoALPN    ProbeKind = "tls-no-alpn"   // TLS, but acme-tls/1 not negotiated
	ProbeTLSACME      ProbeKind = "tls-acme"      // TLS with acme-tls/1
	ProbeHTTPStatus   ProbeKind = "http-status"   // http-01: the status the challenge path gave
	ProbeHTTPRedirect ProbeKind = "http-redirect" // http-01: the challenge path redirects
	ProbeError        ProbeKind = "error"         // anything else
)

// Probe is the result of ProbeValidationPort.
type Probe struct {
	Target   string    `json:"target"`
	Kind     ProbeKind `json:"kind"`
	Status   int       `json:"status,omitempty"`
	Location string    `json:"location,omitempty"`
	// CertIPs are the IP SANs of the certificate a TLS server presented.
	CertIPs []string `json:"cert_ips,omitempty"`
	Detail  string   `json:"detail"`
}

// ProbeValidationPort connects to addr:port the way the challenge's
// validator would and says what answers there. From inside the machine
// this proves less than a real validation (hairpin NAT, docs/letsencrypt.md): it
// tells apart what is listening, not whether the internet gets through.
func ProbeValidationPort(ctx context.Context, addr netip.Addr, port int, challenge spec.Challenge) Probe {
	target := net.JoinHostPort(addr.String(), strconv.Itoa(port))
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", target)
	if err != nil {
		return dialProbe(target, err)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if challenge == acmeflow.ChallengeTLSALPN01 {
		return tlsProbe(target, addr, conn)
	}
	return httpProbe(ctx, target, addr, port, conn)
}

func dialProbe(target string, err error) Probe {
	p := Probe{Target: target, Kind: ProbeError, Detail: err.Error()}
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		p.Kind, p.Detail = ProbeRefused, "connection refused: nothing listens there"
	case isTimeout(err):
		p.Kind, p.Detail = ProbeTimeout, "no answer within 3s: packets are dropped"
	}
	return p
}

func tlsProbe(target string, addr netip.Addr, conn net.Conn) Probe {
	p := Probe{Target: target}
	// Peek at what the server sends back to a ClientHello: a plain HTTP
	// server answers "HTTP/1.x 400" to the binary hello.
	rec := &recordingConn{Conn: conn}
	tc := tls.Client(rec, &tls.Config{
		ServerName: acmeflow.ReverseName(addr), NextProtos: []string{"acme-tls/1"},
		// The challenge certificate is self-signed by design (RFC 8737).
		InsecureSkipVerify: true,
		MinVersion:         tls.VersionTLS12,
	})
	err := tc.Handshake()
	var rh tls.RecordHeaderError
	switch {
	case err != nil && (errors.As(err, &rh) && bytes.HasPrefix(rh.RecordHeader[:], []byte("HTTP/")) || bytes.HasPrefix(rec.first, []byte("HTTP/"))):
		p.Kind, p.Detail = ProbeHTTP, "a plain HTTP server answers on this TLS port"
	case err != nil && strings.Contains(err.Error(), "no application protocol"):
		p.Kind, p.Detail = ProbeTLSNoALPN, "a TLS server answers but refuses ALPN acme-tls/1"
	case err != nil:
		if d := dialProbe(target, err); d.Kind != ProbeError {
			return d
		}
		p.Kind, p.Detail = ProbeError, "TLS handshake failed: "+err.Error()
	default:
		cs := tc.ConnectionState()
		for _, c := range cs.PeerCertificates[:min(1, len(cs.PeerCertificates))] {
			for _, ip := range c.IPAddresses {
				p.CertIPs = append(p.CertIPs, ip.String())
			}
		}
		if cs.NegotiatedProtocol != "acme-tls/1" {
			p.Kind, p.Detail = ProbeTLSNoALPN, "a TLS server answers without negotiating acme-tls/1 (a web server or TLS proxy)"
		} else {
			p.Kind, p.Detail = ProbeTLSACME, fmt.Sprintf("a TLS server negotiates acme-tls/1, certificate for %v", p.CertIPs)
		}
	}
	return p
}

type recordingConn struct {
	net.Conn
	first []byte
}

func (c *recordingConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if len(c.first) < 8 && n > 0 {
		c.first = append(c.first, b[:min(n, 8-len(c.first))]...)
	}
	return n, err
}

func httpProbe(ctx context.Context, target string, addr netip.Addr, port int, conn net.Conn) Probe {
	p := Probe{Target: target}
	used := false
	tr := &http.Transport{
		DialContext: func(context.Context, string, string) (net.Conn, error) {
			if used {
				return nil, errors.New("one connection only")
			}
			used = true
			return conn, nil
		},
		DisableKeepAlives: true,
		// Whatever holds the port answers: its headers are capped (Go's
		// default is 10 MB), the body is never read (issue 22).
		MaxResponseHeaderBytes: 64 << 10,
	}
	hc := &http.Client{Transport: tr, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	host := addr.String()
	if addr.Is6() {
		host = "[" + host + "]"
	}
	if port != 80 {
		host = target
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+host+"/.well-known/acme-challenge/ipcert-probe", nil)
	resp, err := hc.Do(req)
	if err != nil {
		if d := dialProbe(target, err); d.Kind != ProbeError {
			return d
		}
		p.Kind, p.Detail = ProbeError, "HTTP request failed: "+err.Error()
		return p
	}
	resp.Body.Close()
	p.Status = resp.StatusCode
	// A Location or Server of up to 64 KB would be kept in the diagnosis:
	// 300 bytes say all there is to say.
	if loc := capHeader(resp.Header.Get("Location")); resp.StatusCode >= 300 && resp.StatusCode < 400 && loc != "" {
		p.Kind, p.Location = ProbeHTTPRedirect, loc
		p.Detail = fmt.Sprintf("the challenge path answers %d, redirecting to %s", resp.StatusCode, loc)
		return p
	}
	p.Kind = ProbeHTTPStatus
	p.Detail = fmt.Sprintf("the challenge path answers HTTP %d (server %q)", resp.StatusCode, capHeader(resp.Header.Get("Server")))
	return p
}

// capHeader cuts a header value from the probed server to 300 bytes.
func capHeader(v string) string {
	if len(v) <= 300 {
		return v
	}
	cut := 297
	for cut > 0 && !utf8.RuneStart(v[cut]) {
		cut--
	}
	return v[:cut] + "..."
}
