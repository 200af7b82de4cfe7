// Command renewfixture fills a state directory with managed certificates
// that are not due, as they are right after a renewal whose ARI check
// (RFC 9773) succeeded: a 160-hour certificate issued an hour ago, the
// CA's window around its midpoint (Let's Encrypt: +-1 %, docs/letsencrypt.md), the
// next ARI check in 6 hours, the renewal moment chosen inside the window.
// bench/renew.sh times `ipcert renew` on this state: a run with nothing due.
//
// The certificates come from a throwaway CA made here; renew does not read
// them on its no-op path, but `ipcert status` and the store checks do, so
// they are real, matching key pairs.
package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"flag"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"os"
	"time"

	"github.com/go-acme/lego/v4/certificate"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
)

func main() {
	dir := flag.String("state", "", "state directory to fill (created)")
	n := flag.Int("n", 50, "number of certificates")
	due := flag.Int("due", 0, "of which this many are due now, for 127.1.0.x, renewed from -ca with http-01 on port -http-port")
	caURL := flag.String("ca", "", "ACME directory URL of the due certificates' CA (a Pebble on loopback)")
	caRoot := flag.String("ca-root", "", "PEM file of that CA's HTTPS root")
	httpPort := flag.Int("http-port", 0, "the port the CA validates http-01 on")
	flag.Parse()
	if *due > 0 && (*caURL == "" || *httpPort == 0 || *due > *n || *due > 60000) {
		fmt.Fprintln(os.Stderr, "renewfixture: -due needs -ca, -http-port and at most -n (and 60000) certificates")
		os.Exit(2)
	}
	if err := fill(*dir, *n, dueSpec{*due, *caURL, *caRoot, *httpPort}); err != nil {
		fmt.Fprintln(os.Stderr, "renewfixture:", err)
		os.Exit(1)
	}
}

// dueSpec describes the certificates that are due: renewed for real
// against a CA on loopback, each with its own responder address.
type dueSpec struct {
	n        int
	ca, root string
	port     int
}

func fill(dir string, n int, due dueSpec) error {
	if dir == "" || n < 1 || n > 100000 {
		return fmt.Errorf("need -state DIR and 1 <= -n <= 100000")
	}
	st, err := store.Open(dir)
	if err != nil {
		return err
	}
	// One lock for the whole fill: the renewal index is written once.
	unlock, err := st.Lock(context.Background(), false)
	if err != nil {
		return err
	}
	defer unlock()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return err
	}
	now := time.Now().UTC().Truncate(time.Second)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "renewfixture throwaway CA"},
		NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(365 * 24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		return err
	}
	ca, _ := x509.ParseCertificate(caDER)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	for i := 0; i < n; i++ {
		// TEST-NET-3 addresses (documentation only) for the first 250,
		// then 198.18.0.0/15 (RFC 2544, benchmarking): never contacted.
		ip := net.IPv4(203, 0, 113, byte(i+1))
		if i >= 250 {
			j := i - 250
			ip = net.IPv4(198, 18+byte(j>>16), byte(j>>8), byte(j))
		}
		isDue := i < due.n
		if isDue {
			// Loopback: the CA's validator connects to it.
			ip = net.IPv4(127, 1, byte((i+1)>>8), byte(i+1))
		}
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			return err
		}
		nb := now.Add(-time.Hour)
		if isDue {
			nb = now.Add(-100 * time.Hour) // past half of 160 hours
		}
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(1000 + i)), NotBefore: nb, NotAfter: nb.Add(160*time.Hour - time.Second), IPAddresses: []net.IP{ip},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			return err
		}
		leaf, _ := x509.ParseCertificate(der)
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM, err := acmeflow.EncodeKey(key)
		if err != nil {
			return err
		}
		name := store.NameFor([]string{ip.String()})
		v, err := st.SaveVersion(name, store.CertFiles{Cert: certPEM, Chain: caPEM, FullChain: append(append([]byte{}, certPEM...), caPEM...), PrivKey: keyPEM})
		if err != nil {
			return err
		}
		if err := st.Activate(name, v); err != nil {
			return err
		}
		certID, err := certificate.MakeARICertID(leaf)
		if err != nil {
			return err
		}
		life := leaf.NotAfter.Sub(leaf.NotBefore)
		mid := leaf.NotBefore.Add(life / 2)
		ws, we := mid.Add(-life/100), mid.Add(life/100)
		r := &store.Renewal{Issuance: spec.Issuance{Identifiers: []string{ip.String()}, CA: "production", Challenge: acmeflow.ChallengeHTTP01, KeyType: "ec256", DeployHooks: []string{"systemctl reload nginx"}}, Name: name, Directory: acmeflow.LEProduction, Profile: acmeflow.ProfileShortlived, Current: v, Serial: fmt.Sprintf("%x", leaf.SerialNumber), NotBefore: leaf.NotBefore.UTC(), NotAfter: leaf.NotAfter.UTC(), CertID: certID, ARI: &store.ARIState{WindowStart: ws, WindowEnd: we, CheckedAt: now, NextCheck: now.Add(6 * time.Hour)}, RenewAt: ws.Add(time.Duration(mrand.Int64N(int64(we.Sub(ws))))), LastAttempt: now, LastSuccess: now}
		if isDue {
			// No ARI identifier (the CA never issued this one): half-life.
			r.CA, r.Directory, r.CARoot = spec.CAChoice(due.ca), due.ca, due.root
			r.HTTPListen = net.JoinHostPort(ip.String(), fmt.Sprint(due.port))
			r.CertID, r.ARI, r.RenewAt, r.DeployHooks = "", nil, time.Time{}, nil
		}
		if err := st.SaveRenewal(r); err != nil {
			return err
		}
	}
	return nil
}
