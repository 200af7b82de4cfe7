package acmeflow

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"

	"github.com/ipcert/ipcert/internal/spec"
)

// KeyTypes lists the certificate key types ipcert offers.
var KeyTypes = spec.KeyTypes

// GenerateKey makes a private key of the named type.
func GenerateKey(keyType string) (crypto.Signer, error) {
	switch keyType {
	case "", "ec256":
		return ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case "ec384":
		return ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	case "rsa2048":
		return rsa.GenerateKey(rand.Reader, 2048)
	case "rsa3072":
		return rsa.GenerateKey(rand.Reader, 3072)
	case "rsa4096":
		return rsa.GenerateKey(rand.Reader, 4096)
	}
	return nil, fmt.Errorf("unknown key type %q; use one of ec256, ec384, rsa2048, rsa3072, rsa4096", keyType)
}

// EncodeKey is the PKCS#8 PEM form of a private key.
func EncodeKey(k crypto.Signer) ([]byte, error) {
	der, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// makeCSR builds the CSR for IP identifiers with an EMPTY subject: Let's
// Encrypt rejects an IP in the Common Name with badCSR "CSR contains IP
// address in Common Name" (boulder csr/csr.go; docs/letsencrypt.md), which is the trap
// lego's own CSR falls into.
func makeCSR(key crypto.Signer, idents []netip.Addr) ([]byte, error) {
	ips := make([]net.IP, len(idents))
	for i, a := range idents {
		ips[i] = a.AsSlice()
	}
	return x509.CreateCertificateRequest(rand.Reader, &x509.CertificateRequest{IPAddresses: ips}, key)
}

// SPKIPin is a certificate's key pin: base64 of the SHA-256 of its
// SubjectPublicKeyInfo (RFC 7469 section 2.4; RFC 7858 section 4.2 pins
// DNS-over-TLS servers this way).
func SPKIPin(c *x509.Certificate) string {
	sum := sha256.Sum256(c.RawSubjectPublicKeyInfo)
	return base64.StdEncoding.EncodeToString(sum[:])
}
