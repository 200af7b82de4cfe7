package spec

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestCA(t *testing.T) {
	for _, c := range []struct {
		in   string
		kind CAKind
		err  string
	}{
		{"staging", CALetsEncrypt, ""},
		{"production", CALetsEncrypt, ""},
		{"local", CALocalTest, ""},
		{"https://ca.internal:9000/acme/acme/directory", CAOwn, ""},
		{"http://127.0.0.1:4001/directory", CAOwn, ""}, // a development CA on loopback
		{"http://[::1]:4001/directory", CAOwn, ""},     // the same on IPv6
		{"http://localhost:14000/dir", CAOwn, ""},      // and by name
		{"http://ca.internal/acme/directory", 0, "does not start with https://"},
		{"https:///acme/directory", 0, "names no host"},
		{"ftp://x", 0, "is not staging, production, local"},
		{"stagin", 0, "is not staging, production, local"},
		{"", 0, "no CA chosen"},
	} {
		kind, err := CA(c.in)
		if c.err == "" && (err != nil || kind != c.kind) || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("CA(%q) = %v, %v; want %v, %q", c.in, kind, err, c.kind, c.err)
		}
	}
}

func TestCARoot(t *testing.T) {
	dir := t.TempDir()
	key := filepath.Join(dir, "key.pem")
	if err := os.WriteFile(key, []byte("-----BEGIN EC PRIVATE KEY-----\nMHc=\n-----END EC PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ in, err string }{
		{"", ""},
		{filepath.Join(dir, "missing.pem"), "missing.pem: no such file"},
		{dir, "cannot be read"},
		{key, "holds no PEM certificate"},
	} {
		err := CARoot(c.in)
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("CARoot(%q) = %v, want %q", c.in, err, c.err)
		}
	}
}

func TestEmail(t *testing.T) {
	for _, ok := range []string{"", "admin@example.org", "a.b+c@sub.example.co.uk"} {
		if err := Email(ok); err != nil {
			t.Errorf("Email(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"a@b", "admin", "@example.org", "admin@", "Admin <admin@example.org>", "a b@example.org", "a@example.org\n", strings.Repeat("a", 250) + "@example.org"} {
		if err := Email(bad); err == nil {
			t.Errorf("Email(%q) accepted", bad)
		}
	}
}

func TestListen(t *testing.T) {
	for _, ok := range []string{":80", "0.0.0.0:80", "[::]:443", "127.0.0.1:0"} {
		if err := Listen(ok); err != nil {
			t.Errorf("Listen(%q) = %v", ok, err)
		}
	}
	for _, bad := range []string{"80", "host:80", ":http", ":70000", "[fe80::1%eth0]:80"} {
		if err := Listen(bad); err == nil {
			t.Errorf("Listen(%q) accepted", bad)
		}
	}
}
