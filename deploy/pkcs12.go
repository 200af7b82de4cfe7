package deploy

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"

	"software.sslmate.com/src/go-pkcs12"
)

// PKCS12 bundles a PEM private key and a PEM chain (leaf first) into one
// PKCS#12 file without a password, with the whole chain, as Technitium
// DNS Server and Jellyfin take it. The standard library cannot write
// PKCS#12 (golang.org/x/crypto/pkcs12 only decodes, and is frozen);
// software.sslmate.com/src/go-pkcs12 is the maintained encoder.
// Passwordless: the file is protected like privkey.pem (0640 for the
// service's group, or 0600), and a password kept beside it would protect
// nothing.
func PKCS12(keyPEM, chainPEM []byte) ([]byte, error) {
	kb, _ := pem.Decode(keyPEM)
	if kb == nil {
		return nil, errors.New("pkcs12: the key file holds no PEM block")
	}
	key, err := parseKey(kb.Bytes)
	if err != nil {
		return nil, fmt.Errorf("pkcs12: %w", err)
	}
	var certs []*x509.Certificate
	for rest := chainPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			return nil, fmt.Errorf("pkcs12: %w", err)
		}
		certs = append(certs, c)
	}
	if len(certs) == 0 {
		return nil, errors.New("pkcs12: the chain file holds no certificate")
	}
	return pkcs12.Passwordless.Encode(key, certs[0], certs[1:], "")
}

func parseKey(der []byte) (any, error) {
	if k, err := x509.ParsePKCS8PrivateKey(der); err == nil {
		return k, nil
	}
	if k, err := x509.ParseECPrivateKey(der); err == nil {
		return k, nil
	}
	return x509.ParsePKCS1PrivateKey(der)
}
