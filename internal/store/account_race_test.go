package store

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"path/filepath"
	"sync"
	"testing"
)

// TestAccountLoadSeesOnePair: an account is two files (account.json,
// key.pem); parallel renewals that registered again (a CA that forgot the
// account) saved them while others loaded them, and a load could pair one
// account's URL with another's key: the CA refused every request of that
// renewal ("JWS verification error", seen in bench/scale.sh with
// --parallel 4). A load sees one saved account, whole.
func TestAccountLoadSeesOnePair(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	keyPEM := func() []byte {
		k, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.MarshalPKCS8PrivateKey(k)
		return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	}
	accts := []*Account{{URI: "https://ca.test/acct/a", Directory: "https://ca.test/dir"}, {URI: "https://ca.test/acct/b", Directory: "https://ca.test/dir"}}
	keys := [][]byte{keyPEM(), keyPEM()}
	if err := s.SaveAccount("ca.test", "default", accts[0], keys[0]); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := range 60 {
			if err := s.SaveAccount("ca.test", "default", accts[i%2], keys[i%2]); err != nil {
				t.Error(err)
				return
			}
		}
	}()
	mixed := 0
	for loads := 0; ; loads++ {
		select {
		case <-done:
			wg.Wait()
			if mixed > 0 {
				t.Fatalf("%d of %d loads paired one account's URL with the other's key", mixed, loads)
			}
			return
		default:
		}
		a, key, err := s.LoadAccount("ca.test", "default")
		if err != nil {
			t.Fatal(err)
		}
		if i := map[string]int{accts[0].URI: 0, accts[1].URI: 1}[a.URI]; !bytes.Equal(key, keys[i]) {
			mixed++
		}
	}
}
