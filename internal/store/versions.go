package store

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// File names inside a version directory.
const (
	CertFile      = "cert.pem"      // the leaf
	ChainFile     = "chain.pem"     // intermediates
	FullChainFile = "fullchain.pem" // leaf + intermediates: what web servers serve
	KeyFile       = "privkey.pem"   // the leaf's private key, 0600
	RootFile      = "root.pem"      // the issuing root, kept for test CAs only
	CombinedFile  = "combined.pem"  // fullchain + key in one file (HAProxy), 0600
)

// CertFiles is one issued certificate as PEM.
type CertFiles struct {
	Cert      []byte
	Chain     []byte
	FullChain []byte
	PrivKey   []byte
	Root      []byte // optional: the local test CA's root, to check the chain
	Combined  bool   // also write combined.pem (fullchain + key)
}

// Version is one stored certificate version.
type Version struct {
	N    int
	Dir  string
	Leaf *x509.Certificate
}

// ErrNoCurrent is returned when a certificate has no current version yet.
var ErrNoCurrent = errors.New("no current certificate")

// SaveVersion writes files as the next version of name and returns its
// number. It does not touch current: Activate does, once the caller is sure.
// The version is written under a temporary name and renamed, so an
// interrupted run leaves at most a ".tmp-" directory that later runs remove.
func (s *Store) SaveVersion(name string, files CertFiles) (int, error) {
	if err := ValidName(name); err != nil {
		return 0, err
	}
	if err := checkKeyMatches(files.Cert, files.PrivKey); err != nil {
		return 0, fmt.Errorf("refusing to store certificate %s: %w", name, err)
	}
	vdir := filepath.Join(s.certDir(name), "versions")
	if err := mkdirPrivate(s.certDir(name)); err != nil {
		return 0, err
	}
	if err := mkdirPrivate(vdir); err != nil {
		return 0, err
	}
	s.removeTemps(vdir)
	ns, err := s.versionNumbers(name)
	if err != nil {
		return 0, err
	}
	next := 1
	if len(ns) > 0 {
		next = ns[len(ns)-1] + 1
	}
	tmp, err := os.MkdirTemp(vdir, ".tmp-")
	if err != nil {
		return 0, err
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, dirMode); err != nil {
		return 0, err
	}
	writes := []struct {
		name string
		data []byte
		mode os.FileMode
	}{
		{CertFile, files.Cert, certMode},
		{ChainFile, files.Chain, certMode},
		{FullChainFile, files.FullChain, certMode},
		{KeyFile, files.PrivKey, fileMode},
	}
	if len(files.Root) > 0 {
		writes = append(writes, struct {
			name string
			data []byte
			mode os.FileMode
		}{RootFile, files.Root, certMode})
	}
	if files.Combined {
		combined := append(append([]byte{}, files.FullChain...), files.PrivKey...)
		writes = append(writes, struct {
			name string
			data []byte
			mode os.FileMode
		}{CombinedFile, combined, fileMode})
	}
	for _, w := range writes {
		if err := writeNew(filepath.Join(tmp, w.name), w.data, w.mode); err != nil {
			return 0, fmt.Errorf("write %s: %w", w.name, err)
		}
	}
	if err := syncDir(tmp); err != nil {
		return 0, err
	}
	final := filepath.Join(vdir, strconv.Itoa(next))
	if err := os.Rename(tmp, final); err != nil {
		return 0, err
	}
	ok = true
	if err := syncDir(vdir); err != nil {
		return 0, err
	}
	return next, nil
}

// Activate points current at version n with a single rename(2) of a new
// symlink over the old one: readers see the old or the new version whole.
func (s *Store) Activate(name string, n int) error {
	target := filepath.Join("versions", strconv.Itoa(n))
	if _, err := s.LoadVersion(name, n); err != nil {
		return fmt.Errorf("refusing to activate version %d of %s: %w", n, name, err)
	}
	dir := s.certDir(name)
	tmp := filepath.Join(dir, ".current.tmp-"+strconv.Itoa(os.Getpid()))
	os.Remove(tmp)
	if err := os.Symlink(target, tmp); err != nil {
		return err
	}
	if err := os.Rename(tmp, filepath.Join(dir, "current")); err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(dir)
}

// CurrentVersion returns the version current points at, checked: the
// certificate parses and the key matches it.
func (s *Store) CurrentVersion(name string) (Version, error) {
	n, err := s.currentN(name)
	if err != nil {
		return Version{}, err
	}
	return s.LoadVersion(name, n)
}

// LoadVersion reads and checks version n of name.
func (s *Store) LoadVersion(name string, n int) (Version, error) {
	dir := filepath.Join(s.certDir(name), "versions", strconv.Itoa(n))
	certPEM, err := os.ReadFile(filepath.Join(dir, CertFile))
	if err != nil {
		return Version{}, err
	}
	keyPEM, err := os.ReadFile(filepath.Join(dir, KeyFile))
	if err != nil {
		return Version{}, err
	}
	if err := checkKeyMatches(certPEM, keyPEM); err != nil {
		return Version{}, fmt.Errorf("version %d of %s: %w", n, name, err)
	}
	leaf, err := ParseLeaf(certPEM)
	if err != nil {
		return Version{}, err
	}
	return Version{N: n, Dir: dir, Leaf: leaf}, nil
}

// Versions lists the stored version numbers of name, oldest first.
func (s *Store) Versions(name string) ([]int, error) { return s.versionNumbers(name) }

// Prune removes old versions, keeping the newest keep ones and always the
// current one.
func (s *Store) Prune(name string, keep int) error {
	if keep < 1 {
		keep = 1
	}
	ns, err := s.versionNumbers(name)
	if err != nil {
		return err
	}
	cur := -1
	if v, err := s.CurrentVersion(name); err == nil {
		cur = v.N
	}
	if len(ns) <= keep {
		return nil
	}
	for _, n := range ns[:len(ns)-keep] {
		if n == cur {
			continue
		}
		if err := os.RemoveAll(filepath.Join(s.certDir(name), "versions", strconv.Itoa(n))); err != nil {
			return err
		}
	}
	return nil
}

func (s *Store) removeTemps(dir string) {
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), ".tmp-") {
			os.RemoveAll(filepath.Join(dir, e.Name()))
		}
	}
}

// ParseLeaf returns the first certificate in PEM data.
func ParseLeaf(certPEM []byte) (*x509.Certificate, error) {
	for rest := certPEM; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return nil, errors.New("no certificate in PEM data")
		}
		if b.Type == "CERTIFICATE" {
			return x509.ParseCertificate(b.Bytes)
		}
	}
}

// ParseKey reads a PEM private key (PKCS#8, EC or PKCS#1).
func ParseKey(keyPEM []byte) (crypto.Signer, error) {
	b, _ := pem.Decode(keyPEM)
	if b == nil {
		return nil, errors.New("no PEM block in key file")
	}
	if k, err := x509.ParsePKCS8PrivateKey(b.Bytes); err == nil {
		if s, ok := k.(crypto.Signer); ok {
			return s, nil
		}
		return nil, errors.New("key is not a signing key")
	}
	if k, err := x509.ParseECPrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	if k, err := x509.ParsePKCS1PrivateKey(b.Bytes); err == nil {
		return k, nil
	}
	return nil, fmt.Errorf("cannot parse %s private key", b.Type)
}

// checkKeyMatches makes sure a certificate and key belong together, so the
// store can never hold (or activate) a pair a web server would refuse.
func checkKeyMatches(certPEM, keyPEM []byte) error {
	leaf, err := ParseLeaf(certPEM)
	if err != nil {
		return fmt.Errorf("certificate: %w", err)
	}
	key, err := ParseKey(keyPEM)
	if err != nil {
		return fmt.Errorf("private key: %w", err)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	pub, ok := key.Public().(equaler)
	if !ok {
		return errors.New("unsupported key type")
	}
	switch leaf.PublicKey.(type) {
	case *ecdsa.PublicKey, *rsa.PublicKey, ed25519.PublicKey:
	default:
		return errors.New("unsupported certificate key type")
	}
	if !pub.Equal(leaf.PublicKey) {
		return errors.New("the private key does not match the certificate")
	}
	return nil
}
