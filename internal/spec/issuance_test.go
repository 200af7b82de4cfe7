package spec

import (
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestIssuanceCheck: the one validation of an issuance names the flag and
// the problem, for every face (issue's flags, the wizard's presets).
func TestIssuanceCheck(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	ok := Issuance{CA: "production", Challenge: HTTP01}
	for _, c := range []struct {
		name string
		edit func(*Issuance)
		err  string // "" is valid
	}{
		{"minimal", func(*Issuance) {}, ""},
		{"every setting", func(is *Issuance) {
			*is = Issuance{CA: "https://ca.internal/acme/acme/directory", Challenge: HTTP01, WebRoot: dir, HTTPListen: "127.0.0.1:5002", TLSListen: "[::1]:5003",
				KeyType: "rsa3072", Email: "you@example.org", EABKid: "kid", EABHMACFile: file, ReuseKey: true, PreferredChain: "ISRG Root X2"}
		}, ""},
		{"no CA", func(is *Issuance) { is.CA = "" }, "--ca is required"},
		{"bad CA", func(is *Issuance) { is.CA = "http://ca.internal/dir" }, "--ca: "},
		{"no challenge", func(is *Issuance) { is.Challenge = "" }, "--challenge is required"},
		{"dns-01", func(is *Issuance) { is.Challenge = "dns-01" }, "dns-01 cannot validate an IP address"},
		{"web root with tls-alpn-01", func(is *Issuance) { is.Challenge, is.WebRoot = TLSALPN01, dir }, "--webroot works only with --challenge http-01"},
		{"web root missing", func(is *Issuance) { is.WebRoot = filepath.Join(dir, "none") }, "give the directory your web server serves"},
		{"web root a file", func(is *Issuance) { is.WebRoot = file }, "is not a directory"},
		{"web root port", func(is *Issuance) { is.WebRootPort = 70000 }, "--webroot-port 70000 is not a port number"},
		{"listen", func(is *Issuance) { is.HTTPListen = "80" }, "--http-listen: "},
		{"tls listen zone", func(is *Issuance) { is.TLSListen = "[fe80::1%eth0]:443" }, "--tls-listen: "},
		{"key type", func(is *Issuance) { is.KeyType = "ed25519" }, "--key-type: unknown key type \"ed25519\""},
		{"e-mail", func(is *Issuance) { is.Email = "root@localhost" }, "--email: "},
		{"CA root", func(is *Issuance) { is.CARoot = file }, "--ca-root " + file + " holds no PEM certificate"},
		{"EAB half", func(is *Issuance) { is.EABKid = "kid" }, "--eab-kid and --eab-hmac-file go together"},
		{"cluster with a web root", func(is *Issuance) { is.Cluster, is.WebRoot = true, dir }, "--cluster answers through every machine's agent"},
		{"cluster with map-ports", func(is *Issuance) { is.Cluster, is.MapPorts = true, true }, "--cluster answers through every machine's agent"},
	} {
		is := ok
		c.edit(&is)
		err := is.Check()
		if c.err == "" && err != nil || c.err != "" && (err == nil || !strings.Contains(err.Error(), c.err)) {
			t.Errorf("%s: Check() = %v; want %q", c.name, err, c.err)
		}
	}
}

// TestIssuanceCheckGiven: a partial issuance (the wizard's presets)
// requires nothing and checks what is given with the same rules.
func TestIssuanceCheckGiven(t *testing.T) {
	if err := (&Issuance{}).CheckGiven(); err != nil {
		t.Errorf("empty issuance: %v", err)
	}
	for _, c := range []struct {
		is  Issuance
		err string
	}{
		{Issuance{Challenge: "dns-01"}, "--challenge: dns-01 cannot validate"},
		{Issuance{Email: "a@b"}, "--email: "},
		{Issuance{KeyType: "ec521"}, "--key-type: "},
		{Issuance{WebRoot: "/nonexistent/ipcert"}, "--webroot /nonexistent/ipcert: "},
		{Issuance{CA: "stagin"}, "--ca: "},
	} {
		if err := c.is.CheckGiven(); err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("CheckGiven(%+v) = %v; want %q", c.is, err, c.err)
		}
	}
}

func TestCAChoicePublic(t *testing.T) {
	for c, want := range map[CAChoice]bool{
		"staging": true, "production": true, "local": false, "": false, "stagin": false,
		"https://acme-v02.api.letsencrypt.org/directory": true,
		"https://ca.internal/acme/acme/directory":        false,
		"http://127.0.0.1:14000/dir":                     false,
	} {
		if got := c.Public(); got != want {
			t.Errorf("CAChoice(%q).Public() = %v; want %v", c, got, want)
		}
	}
	u, _ := url.Parse("https://evil-letsencrypt.org.example/dir")
	if IsLetsEncrypt(u) {
		t.Errorf("%s is not Let's Encrypt's", u)
	}
}

func TestChallenge(t *testing.T) {
	if HTTP01.Port() != 80 || TLSALPN01.Port() != 443 {
		t.Errorf("ports: http-01 %d, tls-alpn-01 %d", HTTP01.Port(), TLSALPN01.Port())
	}
	for _, c := range []Challenge{HTTP01, TLSALPN01} {
		if err := c.Check(); err != nil {
			t.Errorf("%s: %v", c, err)
		}
	}
	if err := Challenge("http01").Check(); err == nil || !strings.Contains(err.Error(), `unknown challenge "http01"`) {
		t.Errorf("http01: %v", err)
	}
}

func TestIssuanceAbsolute(t *testing.T) {
	is := Issuance{WebRoot: "www", CARoot: "root.pem"}
	if err := is.Absolute(); err != nil {
		t.Fatal(err)
	}
	wd, _ := os.Getwd()
	if is.WebRoot != filepath.Join(wd, "www") || is.CARoot != filepath.Join(wd, "root.pem") || is.EABHMACFile != "" {
		t.Errorf("Absolute: %+v", is)
	}
}
