package reliability

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/untrusted"
)

// The local attacks of issue 22 (items 4-9), each against the built
// binary with root as the victim and nobody as the attacker. The network
// half (floods, size caps) has its own tests.

// attackerDir is a folder nobody owns, in a place root may be asked to
// write (a shared /var/tmp folder, like a home directory).
func attackerDir(t *testing.T) string {
	t.Helper()
	return attackerHome(t)
}

// plantLink makes a symbolic link owned by nobody.
func plantLink(t *testing.T, target, link string) {
	t.Helper()
	if err := os.Symlink(target, link); err != nil {
		t.Fatal(err)
	}
	if err := os.Lchown(link, nobodyUID, nobodyGID); err != nil {
		t.Fatal(err)
	}
}

// TestAttackDebugLogLink: --debug FILE (and IPCERT_DEBUG) where FILE is a
// link another user planted to a root-only file. Before the fix root
// appended its debug log to the link's target.
func TestAttackDebugLogLink(t *testing.T) {
	needRootCI(t)
	home := attackerDir(t)
	secret := secretFile(t)
	link := filepath.Join(home, "debug.log")
	plantLink(t, secret, link)
	theirs := filepath.Join(home, "theirs.log")
	os.WriteFile(theirs, nil, 0o666)
	os.Chown(theirs, nobodyUID, nobodyGID)
	state := filepath.Join(t.TempDir(), "state")
	for _, c := range []struct {
		what string
		env  []string
		args []string
	}{
		{"--debug LINK", nil, []string{"--debug", link}},
		{"IPCERT_DEBUG=LINK", []string{"IPCERT_DEBUG=" + link}, nil},
		{"--debug another user's file", nil, []string{"--debug", theirs}},
	} {
		r := ipcert(t, c.env, append([]string{"issue", "--ip", "127.0.0.1", "--ca", "local", "--agree-tos", "--quiet", "--state-dir", state}, c.args...)...)
		checkSecret(t, secret, c.what)
		if !strings.Contains(r.stderr, "cannot open debug log") || !strings.Contains(r.stderr, "user nobody") || !strings.Contains(r.stderr, "rm ") {
			t.Errorf("%s: the refusal does not name the owner and the fix (exit %d):\n%s", c.what, r.code, r.stderr)
		}
	}
	if b, _ := os.ReadFile(theirs); len(b) > 0 {
		t.Errorf("root appended %d bytes to another user's file", len(b))
	}
	if t.Failed() {
		return
	}
	figure(t, "attack-debug-link", "--debug / IPCERT_DEBUG through a link nobody planted, and into nobody's file: refused naming the owner and the rm to run; the root-only file unchanged")
}

// TestAttackManDirLink: "ipcert man DIR" where DIR, or a page's name in
// it, is a link another user planted. Before the fix root followed the
// link and overwrote root's files.
func TestAttackManDirLink(t *testing.T) {
	needRootCI(t)
	home := attackerDir(t)
	rootDir := t.TempDir()
	secret := filepath.Join(rootDir, "ipcert.1")
	if err := os.WriteFile(secret, []byte("root:secret:20000::::::\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The folder itself is a link to root's folder.
	dirLink := filepath.Join(home, "man1")
	plantLink(t, rootDir, dirLink)
	r := ipcert(t, nil, "man", dirLink)
	checkSecret(t, secret, "man DIR-link")
	if r.code == 0 || !strings.Contains(r.stderr, "user nobody") || !strings.Contains(r.stderr, "rm "+dirLink) {
		t.Errorf("man through a planted folder link: exit %d\n%s", r.code, r.stderr)
	}
	// A page's name in the attacker's folder is a link to the root file:
	// the page replaces the link, the root file stays.
	pages := filepath.Join(home, "pages")
	mkdirOwned(t, pages, nobodyUID, nobodyGID, 0o755)
	plantLink(t, secret, filepath.Join(pages, "ipcert.1"))
	r = ipcert(t, nil, "man", pages)
	checkSecret(t, secret, "man with a planted page link")
	if fi, err := os.Lstat(filepath.Join(pages, "ipcert.1")); r.code != 0 || err != nil || !fi.Mode().IsRegular() {
		t.Errorf("man into a folder with a planted page link: exit %d, %v %v\n%s", r.code, fi, err, r.stderr)
	}
	if t.Failed() {
		return
	}
	figure(t, "attack-man-link", "ipcert man through a folder link nobody planted: refused naming the owner; a planted page link is replaced, not followed; the root file unchanged")
}

// TestAttackTextfileFolderSwap: the owner of the textfile folder's parent
// swaps the folder for a link to a root folder. Before the fix root wrote
// the .prom file (and its temporary file) there.
func TestAttackTextfileFolderSwap(t *testing.T) {
	needRootCI(t)
	state := filepath.Join(t.TempDir(), "state")
	if r := ipcert(t, nil, "issue", "--ip", "127.0.0.1", "--ca", "local", "--agree-tos", "--quiet", "--state-dir", state); r.code != 0 {
		t.Fatalf("issue: %s", r.stderr)
	}
	parent := attackerDir(t) // node_exporter's, say
	folder := filepath.Join(parent, "textfile")
	mkdirOwned(t, folder, nobodyUID, nobodyGID, 0o755)
	prom := filepath.Join(folder, "ipcert.prom")
	if r := ipcert(t, nil, "status", "--state-dir", state, "--prometheus", prom); r.code != 0 {
		t.Fatalf("the textfile in a folder node_exporter owns: exit %d\n%s", r.code, r.stderr)
	}
	// The swap: the folder becomes a link to a root-only folder.
	rootDir := t.TempDir()
	os.Rename(folder, folder+".old")
	plantLink(t, rootDir, folder)
	r := ipcert(t, nil, "status", "--state-dir", state, "--prometheus", prom)
	if ents, _ := os.ReadDir(rootDir); len(ents) > 0 {
		t.Errorf("root wrote into its own folder through the swapped link: %v", ents)
	}
	if r.code == 0 || !strings.Contains(r.stderr, "user nobody") || !strings.Contains(r.stderr, "rm "+folder) {
		t.Errorf("the swapped folder: exit %d\n%s", r.code, r.stderr)
	}
	if t.Failed() {
		return
	}
	figure(t, "attack-textfile-swap", "--prometheus after the textfile folder was swapped for a link by its parent's owner: refused naming the owner; nothing written through the link")
}

// TestAttackHookWrittenOtherWays: a deploy hook that runs another user's
// script as root, written as the shell allows. Before the fix only the
// bare path was checked. Refused at issue (exit 2), and at renew when
// renewal.json already names it (the script does not run).
func TestAttackHookWrittenOtherWays(t *testing.T) {
	needRootCI(t)
	home := attackerDir(t)
	marker := filepath.Join(t.TempDir(), "ran-as-root")
	script := filepath.Join(home, "deploy.sh")
	if err := os.WriteFile(script, []byte("#!/bin/sh\nid -u >> "+marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(script, nobodyUID, nobodyGID)
	forms := []string{
		"/bin/sh " + script,
		"sh " + script,
		`"` + script + `"`,
		"X=1 " + script,
		"true && " + script,
		"true; " + script,
		"echo | " + script,
		"cd " + home + " && ./deploy.sh",
	}
	state := filepath.Join(t.TempDir(), "state")
	for _, f := range forms {
		r := ipcert(t, nil, "issue", "--ip", "127.0.0.1", "--ca", "local", "--agree-tos", "--quiet", "--state-dir", state, "--deploy-hook", f)
		if r.code != 2 || !strings.Contains(r.stderr, "user nobody") {
			t.Errorf("--deploy-hook %q: exit %d\n%s", f, r.code, r.stderr)
		}
	}
	// renewal.json written by hand (or before the fix) with every form.
	if r := ipcert(t, nil, "issue", "--ip", "127.0.0.1", "--ca", "local", "--agree-tos", "--quiet", "--state-dir", state, "--name", "h"); r.code != 0 {
		t.Fatalf("issue: %s", r.stderr)
	}
	rjPath := filepath.Join(state, "certs", "h", "renewal.json")
	data, _ := os.ReadFile(rjPath)
	var rj map[string]any
	if err := json.Unmarshal(data, &rj); err != nil {
		t.Fatal(err)
	}
	rj["deploy_hooks"] = forms
	data, _ = json.MarshalIndent(rj, "", "  ")
	os.WriteFile(rjPath, data, 0o600)
	r := ipcert(t, nil, "renew", "--force", "--state-dir", state, "h")
	if b, err := os.ReadFile(marker); err == nil {
		t.Errorf("another user's script ran as root at renew: %q", b)
	}
	if n := strings.Count(r.stdout+r.stderr, "not run"); n < len(forms) {
		t.Errorf("renew: %d hooks said \"not run\", want %d (exit %d)\n%s\n%s", n, len(forms), r.code, r.stdout, r.stderr)
	}
	if t.Failed() {
		return
	}
	figure(t, "attack-hook-forms", "%d ways of writing a hook that runs nobody's script (/bin/sh FILE, \"FILE\", X=1 FILE, true && FILE, ...): all refused at issue (exit 2, owner named) and not run at renew", len(forms))
}

// TestAttackHookFromEnvironment: IPCERT_DEPLOY_HOOK in root's environment
// becomes a permanent root hook. Before the fix nothing said so.
func TestAttackHookFromEnvironment(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	r := ipcert(t, []string{"IPCERT_DEPLOY_HOOK=touch /tmp/ipcert-env-hook"}, "issue", "--ip", "127.0.0.1", "--ca", "local", "--agree-tos", "--quiet", "--state-dir", state)
	if r.code != 0 {
		t.Fatalf("issue: %s", r.stderr)
	}
	rj := filepath.Join(state, "certs", "127.0.0.1", "renewal.json")
	for _, want := range []string{"WARNING", "IPCERT_DEPLOY_HOOK", "touch /tmp/ipcert-env-hook", "stored in " + rj, "unset IPCERT_DEPLOY_HOOK"} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("stderr does not say %q:\n%s", want, r.stderr)
		}
	}
	if t.Failed() {
		return
	}
	figure(t, "attack-env-hook", "a deploy hook from IPCERT_DEPLOY_HOOK: stored, and stderr names the variable, the renewal.json it is in and how to remove it")
}

// TestAttackRawTextFromPeers: ipcert verify ADDR against a server whose
// certificate's names and issuer carry terminal escapes, a forged line,
// C1 controls, bidi overrides and a very long name. Before the fix they
// reached root's terminal raw.
func TestAttackRawTextFromPeers(t *testing.T) {
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	name := pkix.Name{
		CommonName:   "\x1b]0;owned\x07\x1b[2J",
		Organization: []string{"x\nMATCH: forged", "csi \u009b31m rtl \u202eexe.txt", strings.Repeat("L", 20000)},
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(22), Subject: name, Issuer: name,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:    []string{"\x1b]0;dns\x07"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der, der}, PrivateKey: key}}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	defer func() { l.Close(); wg.Wait() }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	for _, args := range [][]string{{"verify", l.Addr().String()}, {"verify", "--json", l.Addr().String()}} {
		r := ipcert(t, nil, append(args, "--state-dir", filepath.Join(t.TempDir(), "s"))...)
		out := r.stdout + r.stderr
		if !strings.Contains(out, "owned") || !strings.Contains(out, `x07`) {
			t.Errorf("%v: the served names are not shown (escaped):\n%.2000s", args, out)
		}
		for _, c := range out {
			if c != '\n' && c != '\t' && !untrusted.Safe(c) {
				t.Errorf("%v: %U printed raw:\n%.2000q", args, c, out)
				break
			}
		}
		if strings.Contains(out, "\nMATCH: forged") {
			t.Errorf("%v: a forged line", args)
		}
		if len(out) > 16<<10 {
			t.Errorf("%v: %d bytes of output for one certificate", args, len(out))
		}
	}
	if t.Failed() {
		return
	}
	figure(t, "attack-raw-peer-text", "ipcert verify (text and --json) against a certificate whose names and issuer hold ESC, BEL, C1, U+202E, a line break and 20,000 bytes: all escaped, long text cut, no forged line")
}
