package store

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/spec"
)

func testPair(t *testing.T, serial int64) CertFiles {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		NotBefore:    time.Now(),
		NotAfter:     time.Now().Add(160 * time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	return CertFiles{Cert: cert, FullChain: cert, PrivKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})}
}

func TestVersionsAndCurrent(t *testing.T) {
	old := syscall.Umask(0)
	defer syscall.Umask(old)
	// Under umask 0 t.TempDir() is 0777, which root rightly refuses above
	// a state directory (issue 12): make it root's alone.
	parent := t.TempDir()
	os.Chmod(parent, 0o700)
	s, err := Open(filepath.Join(parent, "state"))
	if err != nil {
		t.Fatal(err)
	}
	name := NameFor([]string{"127.0.0.1", "::1"})
	if name != "127.0.0.1_0--1" || NameFor([]string{"::1"}) != "0--1" {
		t.Fatalf("NameFor = %q", name)
	}
	if _, err := s.CurrentVersion(name); !errors.Is(err, ErrNoCurrent) {
		t.Fatalf("want ErrNoCurrent, got %v", err)
	}

	for i := int64(1); i <= 5; i++ {
		f := testPair(t, 100+i)
		f.Combined = true
		n, err := s.SaveVersion(name, f)
		if err != nil {
			t.Fatal(err)
		}
		if n != int(i) {
			t.Fatalf("version %d, want %d", n, i)
		}
		if err := s.Activate(name, n); err != nil {
			t.Fatal(err)
		}

	}
	v, err := s.CurrentVersion(name)
	if err != nil || v.N != 5 || v.Leaf.SerialNumber.Int64() != 105 {
		t.Fatalf("current = %+v, %v", v, err)
	}
	for _, c := range []struct {
		path string
		mode os.FileMode
	}{
		{s.Root(), 0o700},
		{s.CertDir(name), 0o700},
		{filepath.Join(v.Dir), 0o700},
		{filepath.Join(v.Dir, KeyFile), 0o600},
		{filepath.Join(v.Dir, CombinedFile), 0o600},
		{filepath.Join(v.Dir, CertFile), 0o644},
	} {
		st, err := os.Stat(c.path)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != c.mode {
			t.Errorf("%s: mode %o, want %o", c.path, st.Mode().Perm(), c.mode)
		}
	}
	if err := s.Prune(name, 3); err != nil {
		t.Fatal(err)
	}
	ns, _ := s.Versions(name)
	if len(ns) != 3 || ns[0] != 3 {
		t.Fatalf("after prune: %v", ns)
	}
	// A pair that does not match is refused and current stays.
	a, b := testPair(t, 1), testPair(t, 2)
	a.PrivKey = b.PrivKey
	if _, err := s.SaveVersion(name, a); err == nil || !strings.Contains(err.Error(), "does not match") {
		t.Fatalf("mismatched pair: %v", err)
	}
	if v2, _ := s.CurrentVersion(name); v2.N != 5 {
		t.Fatalf("current moved to %d", v2.N)
	}
	// Leftovers of an interrupted run are cleaned by the next save.
	os.MkdirAll(filepath.Join(s.CertDir(name), "versions", ".tmp-dead"), 0o700)
	if _, err := s.SaveVersion(name, testPair(t, 9)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.CertDir(name), "versions", ".tmp-dead")); !os.IsNotExist(err) {
		t.Fatalf("temp dir left: %v", err)
	}
}

func TestLock(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := s.Lock(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	// flock locks belong to open file descriptions, so a second open in the
	// same process contends like another process would.
	if _, err := s.Lock(context.Background(), false); !errors.Is(err, ErrLocked) || !strings.Contains(err.Error(), "pid") {
		t.Fatalf("second lock: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := s.Lock(ctx, true); !errors.Is(err, ErrLocked) {
		t.Fatalf("waiting lock: %v", err)
	}
	unlock()
	u2, err := s.Lock(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	u2()
}

func TestRenewalRoundTripAndErrors(t *testing.T) {
	s, _ := Open(t.TempDir())
	r := &Renewal{Issuance: spec.Issuance{Identifiers: []string{"127.0.0.1"}, Challenge: "http-01", KeyType: "ec256"}, Name: "127.0.0.1", Directory: "https://x/dir", Profile: "shortlived"}
	if err := s.SaveRenewal(r); err != nil {
		t.Fatal(err)
	}
	got, err := s.LoadRenewal("127.0.0.1")
	if err != nil || got.Identifiers[0] != "127.0.0.1" || got.Schema != RenewalSchema {
		t.Fatalf("%+v %v", got, err)
	}
	names, _ := s.Names()
	if len(names) != 1 {
		t.Fatalf("names %v", names)
	}
	for doc, want := range map[string]string{
		`{"schema":1,"name":"a"`: "not valid JSON",
		`{"schema":99,"name":"a","identifiers":["1.2.3.4"],"directory":"x","challenge":"http-01"}`: "newer ipcert",
		`{"name":"a"}`: "schema",
		`{"schema":1,"name":"a/../b","identifiers":["1.2.3.4"],"directory":"x","challenge":"http-01"}`: "name",
		`{"schema":1,"name":"a","identifiers":[],"directory":"x","challenge":"http-01"}`:               "identifiers",
		`{"schema":1,"name":"a","identifiers":["1.2.3.4"],"directory":"x","challenge":"dns-01"}`:       "challenge",
	} {
		if _, err := ParseRenewal([]byte(doc)); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", doc, err, want)
		}
	}
}

func TestValidName(t *testing.T) {
	for _, bad := range []string{"", ".x", "-x", "a/b", "a b", "a*", "a;b", "a\nb", strings.Repeat("a", 101), "é"} {
		if ValidName(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	for _, good := range []string{"127.0.0.1", "2001-db8--1", "my_cert-1"} {
		if err := ValidName(good); err != nil {
			t.Errorf("%q: %v", good, err)
		}
	}
}

// FuzzParseRenewal: hand-edited or corrupted renewal.json never panics,
// and what is accepted is safe to act on.
func FuzzParseRenewal(f *testing.F) {
	f.Add([]byte(`{"schema":1,"name":"a","identifiers":["1.2.3.4"],"directory":"https://x/dir","challenge":"http-01"}`))
	f.Add([]byte(`{"schema":1,"name":"a","identifiers":["::1","1.2.3.4"],"directory":"x","challenge":"tls-alpn-01","ari":{"window_start":"2026-01-01T00:00:00Z"}}`))
	f.Add([]byte(`null`))
	f.Add([]byte(`{"schema":2}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		r, err := ParseRenewal(data)
		if err != nil {
			if err.Error() == "" {
				t.Fatal("empty error")
			}
			return
		}
		if ValidName(r.Name) != nil || len(r.Identifiers) == 0 || r.Failures < 0 {
			t.Fatalf("accepted unsafe record %+v", r)
		}
	})
}
