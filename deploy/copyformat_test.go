package deploy

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"os/user"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"software.sslmate.com/src/go-pkcs12"
)

// testChain writes a key and a two-certificate chain (leaf with an empty
// subject and an IP SAN, as Let's Encrypt issues them, then its issuer)
// into dir and returns the paths.
func testChain(t *testing.T, dir string) CertPaths {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"}, IsCA: true, BasicConstraintsValid: true,
		NotBefore: time.Unix(1e9, 0), NotAfter: time.Unix(2e9, 0), KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	leafDER, err := x509.CreateCertificate(rand.Reader, &x509.Certificate{SerialNumber: big.NewInt(2), IPAddresses: []net.IP{net.ParseIP("192.0.2.7")},
		NotBefore: time.Unix(1e9, 0), NotAfter: time.Unix(2e9, 0)}, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalECPrivateKey(key)
	p := CertPathsIn("192.0.2.7", []string{"192.0.2.7"}, dir)
	os.WriteFile(p.Key, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder}), 0o600)
	chain := append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})...)
	os.WriteFile(p.FullChain, chain, 0o644)
	return p
}

// TestCopyFormats: every format of the copy hook writes the files its
// target reads, atomically, 0640 for the group: PKCS#12 with the whole
// chain and no password (Technitium, Jellyfin), one PEM with the key
// first (Pi-hole v6), Cockpit's NAME.cert and NAME.key.
func TestCopyFormats(t *testing.T) {
	g, err := user.LookupGroupId(itoa(os.Getegid()))
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	p := testChain(t, src)
	key, _ := os.ReadFile(p.Key)
	chain, _ := os.ReadFile(p.FullChain)
	for _, f := range CopyFormats {
		t.Run(string(f), func(t *testing.T) {
			dir := filepath.Join(t.TempDir(), "copy")
			hook := CopyHookAs(g.Name, dir, f)
			res := RunHooks(t.Context(), HookSpec{Commands: []string{hook}}, p)
			if len(res) != 1 || !res[0].OK() {
				t.Fatalf("%s: %+v", hook, res)
			}
			names := CopyFiles(f, p.Name)
			for _, n := range names {
				fi, err := os.Stat(filepath.Join(dir, n))
				if err != nil || fi.Mode().Perm() != 0o640 {
					t.Fatalf("%s: %v %v", n, fi, err)
				}
			}
			got, _ := os.ReadFile(filepath.Join(dir, names[0]))
			switch f {
			case CopyPKCS12:
				k, leaf, cas, err := pkcs12.DecodeChain(got, "")
				if err != nil || len(cas) != 1 || len(leaf.IPAddresses) != 1 || !k.(interface{ Equal(crypto.PrivateKey) bool }).Equal(mustKey(t, key)) {
					t.Errorf("p12: %v, %d CA certificates", err, len(cas))
				}
			case CopyKeyPEM:
				if !bytes.Equal(got, append(append([]byte{}, key...), chain...)) {
					t.Errorf("keypem is not the key, then the chain:\n%s", got)
				}
			case CopyCockpit:
				if names[1] != "ipcert-192.0.2.7.cert" || !bytes.Equal(got, key) {
					t.Errorf("cockpit: %v", names)
				}
			case CopyPEM:
				if names[1] != "fullchain.pem" || !bytes.Equal(got, key) {
					t.Errorf("pem: %v", names)
				}
			}
			if !strings.Contains(res[0].Output, names[0]) {
				t.Errorf("output does not name the file: %s", res[0].Output)
			}
		})
	}
	bad := RunHooks(t.Context(), HookSpec{Commands: []string{CopyHook(g.Name, t.TempDir()+"/x") + " der"}}, p)
	if bad[0].OK() || !strings.Contains(bad[0].Error, `unknown format "der"`) {
		t.Errorf("unknown format: %+v", bad)
	}
}

func mustKey(t *testing.T, pemKey []byte) any {
	b, _ := pem.Decode(pemKey)
	k, err := parseKey(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return k
}
