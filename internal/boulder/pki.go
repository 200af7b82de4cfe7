package boulder

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// ipkiLeaf is one certificate of Boulder's internal PKI: the names its
// test/certs/generate.sh gives each service (minica's folder is named
// after the first name).
type ipkiLeaf struct {
	dns []string
	ips []string
}

func ipkiLeaves() []ipkiLeaf {
	leaves := []ipkiLeaf{
		{dns: []string{"localhost"}, ips: []string{"127.0.0.1"}},
		{ips: []string{"10.77.77.77", "10.88.88.88"}},
		// The WFE's own TLS server: clients reach it as https://boulder:4431.
		{dns: []string{"boulder"}, ips: []string{"10.77.77.77"}},
		{dns: []string{"redis"}, ips: []string{"10.77.77.4", "10.77.77.5"}},
	}
	for _, s := range []string{"admin", "consul", "wfe", "bad-key-revoker", "crl-updater", "crl-storer", "health-checker", "sfe", "email-exporter", "mtca"} {
		leaves = append(leaves, ipkiLeaf{dns: []string{s + ".boulder"}})
	}
	for _, s := range []string{"publisher", "nonce", "ra", "ca", "sa", "va", "rva"} {
		leaves = append(leaves, ipkiLeaf{dns: []string{s + ".boulder", s + "1.boulder", s + "2.boulder"}})
	}
	return leaves
}

// makeIPKI writes the internal PKI as minica lays it out: minica.pem and
// minica-key.pem, then NAME/cert.pem and NAME/key.pem, each leaf good for
// both ends of Boulder's mutual TLS.
func makeIPKI(_ context.Context, in Install, _ func(string)) error {
	dir := filepath.Join(in.certs(), "ipki")
	tmp := dir + ".tmp"
	_ = os.RemoveAll(tmp)
	if err := os.MkdirAll(tmp, 0o755); err != nil {
		return err
	}
	rootKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now()
	root := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "ipcert test minica root"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(20, 0, 0),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, root, root, &rootKey.PublicKey, rootKey)
	if err != nil {
		return err
	}
	rootCert, err := x509.ParseCertificate(rootDER)
	if err != nil {
		return err
	}
	if err := writePEM(filepath.Join(tmp, "minica.pem"), "CERTIFICATE", rootDER); err != nil {
		return err
	}
	if err := writeKey(filepath.Join(tmp, "minica-key.pem"), rootKey); err != nil {
		return err
	}
	for i, l := range ipkiLeaves() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		tmpl := &x509.Certificate{
			SerialNumber: big.NewInt(int64(i) + 2),
			NotBefore:    now.Add(-time.Hour),
			NotAfter:     now.AddDate(10, 0, 0),
			KeyUsage:     x509.KeyUsageDigitalSignature,
			ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
			DNSNames:     l.dns,
		}
		for _, ip := range l.ips {
			tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(ip))
		}
		name := ""
		if len(l.dns) > 0 {
			name = l.dns[0]
		} else {
			name = l.ips[0]
		}
		tmpl.Subject = pkix.Name{CommonName: name}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, rootCert, &key.PublicKey, rootKey)
		if err != nil {
			return err
		}
		leafDir := filepath.Join(tmp, name)
		if err := os.MkdirAll(leafDir, 0o755); err != nil {
			return err
		}
		if err := writePEM(filepath.Join(leafDir, "cert.pem"), "CERTIFICATE", der); err != nil {
			return err
		}
		if err := writeKey(filepath.Join(leafDir, "key.pem"), key); err != nil {
			return err
		}
	}
	_ = os.RemoveAll(dir)
	return os.Rename(tmp, dir)
}

func writePEM(path, typ string, der []byte) error {
	return os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o644)
}

// writeKey writes a test key readable by the unprivileged users the remote
// VAs run as (a test PKI in a cache folder, never a real key).
func writeKey(path string, key *ecdsa.PrivateKey) error {
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return err
	}
	return writePEM(path, "PRIVATE KEY", der)
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	sort.Strings(out)
	return out
}
