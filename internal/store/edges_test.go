package store

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
)

// A versions/9223372036854775807 directory (not ipcert's) made the next
// version number overflow, and every later renewal failed.
func TestVersionCounterIgnoresHugeNames(t *testing.T) {
	s, err := Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveVersion("o", testPair(t, 1)); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"9223372036854775807", strconv.Itoa(maxVersion + 1)} {
		os.MkdirAll(filepath.Join(s.CertDir("o"), "versions", n), 0o700)
	}
	for i := 2; i <= 3; i++ {
		n, err := s.SaveVersion("o", testPair(t, int64(i)))
		if err != nil {
			t.Fatalf("version %d: %v", i, err)
		}
		if n != i {
			t.Errorf("version number %d, want %d", n, i)
		}
		if err := s.Activate("o", n); err != nil {
			t.Fatal(err)
		}
	}
}
