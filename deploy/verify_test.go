package deploy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
)

type testPKI struct {
	root, inter       *x509.Certificate
	rootKey, interKey *ecdsa.PrivateKey
	roots             *x509.CertPool
}

func newPKI(t *testing.T) *testPKI {
	t.Helper()
	p := &testPKI{}
	p.rootKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	p.interKey, _ = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now()
	rt := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, rt, rt, &p.rootKey.PublicKey, p.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	p.root, _ = x509.ParseCertificate(der)
	it := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "test intermediate"}, NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err = x509.CreateCertificate(rand.Reader, it, p.root, &p.interKey.PublicKey, p.rootKey)
	if err != nil {
		t.Fatal(err)
	}
	p.inter, _ = x509.ParseCertificate(der)
	p.roots = x509.NewCertPool()
	p.roots.AddCert(p.root)
	return p
}

// leaf issues a certificate for ips; withChain adds the intermediate.
func (p *testPKI) leaf(t *testing.T, serial int64, withChain bool, ips ...string) tls.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	lt := &x509.Certificate{SerialNumber: big.NewInt(serial), NotBefore: time.Now().Add(-time.Minute), NotAfter: time.Now().Add(160 * time.Hour), ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	for _, ip := range ips {
		lt.IPAddresses = append(lt.IPAddresses, net.ParseIP(ip))
	}
	der, err := x509.CreateCertificate(rand.Reader, lt, p.inter, &key.PublicKey, p.interKey)
	if err != nil {
		t.Fatal(err)
	}
	c := tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	if withChain {
		c.Certificate = append(c.Certificate, p.inter.Raw)
	}
	c.Leaf, _ = x509.ParseCertificate(der)
	return c
}

// serveTLS serves cert on 127.0.0.1 and records the SNI of each hello.
func serveTLS(t *testing.T, cert tls.Certificate) (string, *[]string) {
	t.Helper()
	var mu sync.Mutex
	var snis []string
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{cert},
		GetConfigForClient: func(h *tls.ClientHelloInfo) (*tls.Config, error) {
			mu.Lock()
			snis = append(snis, h.ServerName)
			mu.Unlock()
			return nil, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				c.(*tls.Conn).Handshake()
				c.Close()
			}()
		}
	}()
	return l.Addr().String(), &snis
}

func TestVerifyOutcomes(t *testing.T) {
	p := newPKI(t)
	ctx := context.Background()
	good := p.leaf(t, 100, true, "127.0.0.1", "::1")
	addr, snis := serveTLS(t, good)

	res, err := Verify(ctx, addr, VerifyOptions{Roots: p.roots, Expected: good.Leaf})
	if err != nil {
		t.Fatal(err)
	}
	if res.Outcome != Match || !res.Accepted || !res.CoversAddr || !res.ChainSent || len(res.Chain) != 2 || res.Chain[0].Serial != "64" {
		t.Errorf("match: %+v", res)
	}
	if len(*snis) == 0 || (*snis)[0] != "" {
		t.Errorf("SNI sent: %q; browsers send none for IP addresses", *snis)
	}
	if res.ValidFor < 159*time.Hour {
		t.Errorf("valid for %v", res.ValidFor)
	}

	other := p.leaf(t, 200, true, "127.0.0.1")
	res, _ = Verify(ctx, addr, VerifyOptions{Roots: p.roots, Expected: other.Leaf})
	if res.Outcome != Mismatch || !strings.Contains(res.Reason, "serves serial 64, not the stored current c8") || !strings.Contains(res.Reason, "reload") {
		t.Errorf("mismatch: %s %s", res.Outcome, res.Reason)
	}

	res, _ = Verify(ctx, addr, VerifyOptions{})
	if res.Outcome != Unchecked || res.Accepted || !strings.Contains(res.Rejection, "not trusted by this system") {
		t.Errorf("system roots: %s accepted=%v %q", res.Outcome, res.Accepted, res.Rejection)
	}
	res, _ = Verify(ctx, addr, VerifyOptions{Roots: p.roots, Now: func() time.Time { return time.Now().Add(200 * time.Hour) }})
	if res.Accepted || !strings.Contains(res.Rejection, "expired") || res.ValidFor > 0 {
		t.Errorf("expired: %+v", res)
	}

	wrong := p.leaf(t, 300, true, "127.0.0.2")
	waddr, _ := serveTLS(t, wrong)
	res, _ = Verify(ctx, waddr, VerifyOptions{Roots: p.roots, Expected: wrong.Leaf})
	if res.Outcome != Match || res.Accepted || res.CoversAddr || !strings.Contains(res.Rejection, "not for 127.0.0.1 (it names 127.0.0.2)") {
		t.Errorf("wrong address: %+v", res)
	}

	bare := p.leaf(t, 400, false, "127.0.0.1")
	baddr, _ := serveTLS(t, bare)
	res, _ = Verify(ctx, baddr, VerifyOptions{Roots: p.roots, Expected: bare.Leaf})
	if res.ChainSent || res.Accepted || !strings.Contains(res.Rejection, "fullchain.pem") {
		t.Errorf("leaf only: %+v", res)
	}

	// Nothing listening.
	closedPort, err := acmeflow.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	closed := net.JoinHostPort("127.0.0.1", strconv.Itoa(closedPort))
	res, _ = Verify(ctx, closed, VerifyOptions{})
	if res.Outcome != Unreachable || !strings.Contains(res.Reason, "connection refused") {
		t.Errorf("closed: %s %s", res.Outcome, res.Reason)
	}
	// Not TLS.
	pl, _ := net.Listen("tcp", "127.0.0.1:0")
	defer pl.Close()
	go func() {
		for {
			c, err := pl.Accept()
			if err != nil {
				return
			}
			c.Write([]byte("HTTP/1.1 400 Bad Request\r\n\r\n"))
			c.Close()
		}
	}()
	res, _ = Verify(ctx, pl.Addr().String(), VerifyOptions{Timeout: 2 * time.Second})
	if res.Outcome != Unreachable || !strings.Contains(res.Reason, "TLS handshake") {
		t.Errorf("plain: %s %s", res.Outcome, res.Reason)
	}
	if _, err := Verify(ctx, "localhost:443", VerifyOptions{}); err == nil {
		t.Error("a host name was accepted")
	}
}

func TestParseTarget(t *testing.T) {
	for in, want := range map[string]string{
		"192.0.2.1":        "192.0.2.1:443",
		"192.0.2.1:8443":   "192.0.2.1:8443",
		"2001:db8::1":      "[2001:db8::1]:443",
		"[2001:db8::1]:80": "[2001:db8::1]:80",
		"::ffff:192.0.2.1": "192.0.2.1:443",
	} {
		got, err := ParseTarget(in, 443)
		if err != nil || got.String() != want {
			t.Errorf("%s: %v %v", in, got, err)
		}
	}
	for _, bad := range []string{"example.com", "example.com:443", "192.0.2.1:0", "192.0.2.1:99999", "fe80::1%eth0", "[::1]", ""} {
		if _, err := ParseTarget(bad, 443); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}
