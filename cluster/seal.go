// Package cluster keeps what several machines serving one address share in
// etcd: the answers to the CA's validators (any machine the validator
// reaches answers), a lock per certificate with fencing (one machine orders,
// a machine that lost its lock writes nothing), the certificates with their
// keys sealed, the account (sealed), and each machine's registration under
// a lease. One machine alone never uses it: cluster mode is off unless
// configured (docs/cluster.md).
//
// Why etcd (and no home-made store): leases make a crashed or frozen
// issuer's lock expire by itself, a write guarded by the lock's ownership
// is refused once the lock was lost (fencing), watches resume where they
// stopped, reads are linearizable (once the issuer's put returns, every
// machine's get sees the answer), and it speaks TLS with client
// certificates and per-prefix roles.
package cluster

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"strings"
)

// KeySize is the cluster key's length: AES-256.
const KeySize = 32

// Sealer seals private keys and the account before they leave the machine
// (AES-256-GCM). The etcd key a value is stored under is its associated
// data: a sealed value moved to another key does not open.
type Sealer struct {
	aead cipher.AEAD
}

// NewKey makes a new cluster key, as its file holds it (base64, one line).
func NewKey() ([]byte, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return []byte(base64.StdEncoding.EncodeToString(k) + "\n"), nil
}

// ParseKey reads a cluster key file's content. There is no default key:
// an empty or short key is refused.
func ParseKey(text []byte) (*Sealer, error) {
	s := strings.TrimSpace(string(text))
	if s == "" {
		return nil, errors.New("the cluster key is empty; make one with ipcert cluster init")
	}
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(k) != KeySize {
		return nil, fmt.Errorf("the cluster key is not %d bytes of base64 (ipcert cluster init writes one)", KeySize)
	}
	block, err := aes.NewCipher(k)
	if err != nil {
		return nil, err
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	return &Sealer{aead: aead}, nil
}

// LoadKey reads the cluster key from path, which must be a regular file
// only its owner reads (mode 0600 or stricter).
func LoadKey(path string) (*Sealer, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("cluster key: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("cluster key %s is not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("cluster key %s is readable by others (mode %04o); chmod 600 %s", path, st.Mode().Perm(), path)
	}
	b := make([]byte, 256)
	n, _ := f.Read(b)
	return ParseKey(b[:n])
}

// Seal encrypts plain for storage under key.
func (s *Sealer) Seal(key string, plain []byte) []byte {
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		panic("cluster: no randomness: " + err.Error())
	}
	return s.aead.Seal(nonce, nonce, plain, []byte(key))
}

// ErrSealed is returned for a value that does not open with this cluster
// key under this etcd key: another cluster's key, a moved value, or one
// that was tampered with.
var ErrSealed = errors.New("the sealed value does not open with this cluster key (another cluster's key, or a value moved or changed)")

// Open decrypts a value sealed under key.
func (s *Sealer) Open(key string, sealed []byte) ([]byte, error) {
	n := s.aead.NonceSize()
	if len(sealed) < n+s.aead.Overhead() {
		return nil, ErrSealed
	}
	plain, err := s.aead.Open(nil, sealed[:n], sealed[n:], []byte(key))
	if err != nil {
		return nil, ErrSealed
	}
	return plain, nil
}
