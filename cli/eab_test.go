package cli

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ipcert/ipcert/internal/localca"
)

// TestExternalAccountBinding: a CA that requires EAB (Pebble with EAB keys,
// as a step-ca provisioner or a commercial CA) refuses a plain
// registration, with the flags to give; a key file others can read is
// refused before anything is sent; a wrong MAC key is refused by the CA
// and nothing is stored; the right one registers, renewal.json keeps the
// key ID and the file's path but never the key, nothing printed shows the
// key, and a renewal that must register again uses the stored file.
func TestExternalAccountBinding(t *testing.T) {
	key := base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef0123456789abcdef"))
	ca, port := localca.StartForTest(t, localca.Options{EABKeys: map[string]string{"kid-7": key}})
	dir := t.TempDir()
	root := filepath.Join(dir, "ca-root.pem")
	if err := os.WriteFile(root, ca.ListenerRootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	state := filepath.Join(dir, "state")
	base := []string{"issue", "--ip", "127.0.0.1", "--ca", ca.DirectoryURL(), "--ca-root", root, "--http-listen", "127.0.0.1:" + strconv.Itoa(port), "--agree-tos", "--state-dir", state}

	code, out, errs := runCmd(t, base, nil)
	if code != exitFailure || !strings.Contains(errs+out, "--eab-kid KID --eab-hmac-file FILE") {
		t.Errorf("without EAB: exit %d, want 1 naming the flags\n%s%s", code, errs, out)
	}

	keyFile := filepath.Join(dir, "eab.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, _, errs = runCmd(t, append(base, "--eab-kid", "kid-7", "--eab-hmac-file", keyFile), nil)
	if code != exitUsage || !strings.Contains(errs, "chmod 600") {
		t.Errorf("a key file others can read: exit %d\n%s", code, errs)
	}
	if err := os.Chmod(keyFile, 0o600); err != nil {
		t.Fatal(err)
	}
	wrong := filepath.Join(dir, "wrong.key")
	if err := os.WriteFile(wrong, []byte(base64.RawURLEncoding.EncodeToString([]byte("not the key at all, not the key!"))), 0o600); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runCmd(t, append(base, "--eab-kid", "kid-7", "--eab-hmac-file", wrong), nil)
	if code != exitFailure {
		t.Errorf("a wrong MAC key: exit %d, want 1\n%s%s", code, errs, out)
	}
	if _, err := os.Stat(filepath.Join(state, "certs", "127.0.0.1", "renewal.json")); err == nil {
		t.Error("a refused registration left a renewal.json")
	}

	code, out, errs = runCmd(t, append(base, "--eab-kid", "kid-7", "--eab-hmac-file", keyFile), nil)
	if code != 0 {
		t.Fatalf("with EAB: exit %d\n%s%s", code, errs, out)
	}
	r, err := os.ReadFile(filepath.Join(state, "certs", "127.0.0.1", "renewal.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(r), `"eab_kid": "kid-7"`) || !strings.Contains(string(r), `"eab_hmac_file": "`+keyFile+`"`) {
		t.Errorf("renewal.json does not keep the key ID and file:\n%s", r)
	}
	for what, text := range map[string]string{"renewal.json": string(r), "output": out + errs} {
		if strings.Contains(text, key) {
			t.Errorf("the MAC key is in the %s", what)
		}
	}
	// The CA forgets nothing here, so make the renewal register again: the
	// stored account goes, and the stored key file binds the new one.
	if err := os.RemoveAll(filepath.Join(state, "accounts")); err != nil {
		t.Fatal(err)
	}
	code, out, errs = runCmd(t, []string{"renew", "--force", "--state-dir", state}, nil)
	if code != exitRenewRenewed {
		t.Errorf("renew --force registering again with the stored EAB: exit %d\n%s%s", code, errs, out)
	}
	if strings.Contains(out+errs, key) {
		t.Error("the MAC key is in renew's output")
	}
}
