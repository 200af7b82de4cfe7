package store

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestEnsureCombined(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.EnsureCombined("none"); err == nil {
		t.Fatal("no current: want an error")
	}
	f := testPair(t, 7)
	n, err := s.SaveVersion("c", f)
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Activate("c", n); err != nil {
		t.Fatal(err)
	}
	path, created, err := s.EnsureCombined("c")
	if err != nil || !created {
		t.Fatalf("first: %v created=%v", err, created)
	}
	data, _ := os.ReadFile(path)
	if !bytes.Equal(data, append(append([]byte{}, f.FullChain...), f.PrivKey...)) {
		t.Errorf("combined.pem is not fullchain + key")
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o600 {
		t.Errorf("mode %o, want 600", st.Mode().Perm())
	}
	if filepath.Dir(path) != filepath.Join(s.CertDir("c"), "versions", "1") {
		t.Errorf("written to %s", path)
	}
	if _, created, err := s.EnsureCombined("c"); err != nil || created {
		t.Fatalf("second: %v created=%v", err, created)
	}
}
