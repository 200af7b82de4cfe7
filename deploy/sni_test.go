package deploy

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/internal/testkit"
)

// otherCert writes a self-signed certificate for the DNS name host (the
// "other site" sharing a listener) as cert.pem, key.pem and both.pem.
func otherCert(t *testing.T, host string) (dir string, leaf *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), DNSNames: []string{host}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	leaf, _ = x509.ParseCertificate(der)
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	dir = t.TempDir()
	c := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	k := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})
	os.WriteFile(filepath.Join(dir, "cert.pem"), c, 0o644)
	os.WriteFile(filepath.Join(dir, "key.pem"), k, 0o600)
	os.WriteFile(filepath.Join(dir, "both.pem"), append(c, k...), 0o600)
	return dir, leaf
}

// servedWithSNI is the leaf addr serves to a client sending sni.
func servedWithSNI(t *testing.T, addr, sni string) *x509.Certificate {
	t.Helper()
	c, err := tls.Dial("tcp", addr, &tls.Config{ServerName: sni, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("%s with SNI %s: %v", addr, sni, err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0]
}

// TestSecondCertificateOnListener: another site with its own certificate
// shares the IP's HTTPS listener. Browsers send no SNI to an IP address,
// so an SNI-less handshake must get the IP certificate whatever order the
// configs load in, while SNI still reaches the other site (nginx: the
// snippet's listen is default_server; HAProxy: its crt comes first on the
// bind line and there is no strict-sni).
func TestSecondCertificateOnListener(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers: not in -short")
	}
	for _, kind := range []Kind{Nginx, HAProxy} {
		t.Run(string(kind), func(t *testing.T) {
			var s *realServer
			if kind == Nginx {
				s = nginxServer(t)
			} else {
				s = haproxyServer(t)
			}
			ti := newIssuer(t)
			idents := mustAddrs("127.0.0.1")
			name := store.NameFor([]string{"127.0.0.1"})
			iss := ti.issue(t, name, idents, kind == HAProxy)
			odir, oleaf := otherCert(t, "other.example")
			httpsPort, httpPort := testkit.FreePort(t), testkit.FreePort(t)
			p := SnippetParams{Name: name, Identifiers: []string{"127.0.0.1"}, CertDir: ti.eng.Store.CurrentDir(name), WebRoot: t.TempDir(), HTTPSPort: httpsPort, HTTPPort: httpPort}
			snip, err := Snippet(kind, p)
			if err != nil {
				t.Fatal(err)
			}
			for _, l := range strings.Split(string(snip), "\n") {
				if strings.Contains(l, "strict-sni") && !strings.HasPrefix(strings.TrimSpace(l), "#") {
					t.Fatalf("strict-sni refuses SNI-less handshakes, which is every browser connecting to an IP: %s", l)
				}
			}
			if kind == Nginx {
				// The other site loads first (conf.d/*.conf in order).
				other := fmt.Sprintf("server {\n    listen 127.0.0.1:%d ssl;\n    server_name other.example;\n    ssl_certificate %s;\n    ssl_certificate_key %s;\n}\n",
					httpsPort, filepath.Join(odir, "cert.pem"), filepath.Join(odir, "key.pem"))
				os.WriteFile(filepath.Join(filepath.Dir(s.snip), "aaa-other.conf"), []byte(other), 0o644)
			} else {
				// As the snippet's comment says: more certificates go
				// after ipcert's on the same bind line.
				crt := "crt " + filepath.Join(p.CertDir, store.CombinedFile)
				if !strings.Contains(string(snip), crt) {
					t.Fatalf("no %q in:\n%s", crt, snip)
				}
				snip = []byte(strings.Replace(string(snip), crt, crt+" crt "+filepath.Join(odir, "both.pem"), 1))
			}
			os.WriteFile(s.snip, snip, 0o644)
			if out, err := (ExecRunner{}).Run(context.Background(), s.test); err != nil {
				t.Fatalf("config test: %v\n%s\n%s", err, out, snip)
			}
			startServer(t, s.log, s.env, s.start[0], s.start[1:]...)
			addr := hostPort(idents[0], httpsPort)
			res := waitVerify(t, addr, VerifyOptions{Roots: ti.roots, Expected: iss.Version.Leaf}, func(r VerifyResult) bool { return r.Outcome != Unreachable }, s.log)
			if res.Outcome != Match || !res.Accepted {
				t.Fatalf("SNI-less handshake: %s (%s); browsers connecting to the IP would get the other site's certificate", res.Outcome, res.Reason)
			}
			if got := servedWithSNI(t, addr, "other.example"); !got.Equal(oleaf) {
				t.Errorf("SNI other.example got %v, want the other site's certificate", got.DNSNames)
			}
		})
	}
}
