package cli

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
	"unicode/utf8"

	"github.com/ipcert/ipcert/internal/untrusted"
)

// hostileText is what a peer may put in anything ipcert prints: terminal
// escape sequences (set the title, clear the screen), BEL, a C1 CSI, a
// forged log line, bidi overrides and isolates, invisible characters, and
// a very long string.
var hostileText = []string{
	"\x1b]0;owned\x07",
	"\x1b[2J\x1b[H",
	"csi \u009b31m",
	"x\nipcert: renewed OK",
	"rtl \u202eexe.txt \u2066iso\u2069",
	"zw\u200b\ufeff",
	strings.Repeat("L", 20000),
}

// assertSafeOutput fails when out holds anything a terminal acts on or
// that hides text: every rune but line breaks and tabs must be one
// untrusted.Safe prints as itself, and no line may be unbounded.
func assertSafeOutput(t *testing.T, what, out string) {
	t.Helper()
	if !utf8.ValidString(out) {
		t.Errorf("%s: invalid UTF-8 in the output", what)
	}
	for _, r := range out {
		if r != '\n' && r != '\t' && !untrusted.Safe(r) {
			t.Errorf("%s: %U printed raw in:\n%.2000q", what, r, out)
			return
		}
	}
	if strings.Contains(out, "\nipcert: renewed OK") {
		t.Errorf("%s: a peer's line break forged a line of output", what)
	}
	for line := range strings.SplitSeq(out, "\n") {
		if len(line) > 8*untrusted.MaxText {
			t.Errorf("%s: a line of %d bytes", what, len(line))
		}
	}
}

// hostileServer serves, on 127.0.0.1, a self-signed certificate whose
// names and issuer carry the hostile corpus.
func hostileServer(t *testing.T) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	name := pkix.Name{
		CommonName:         hostileText[0] + hostileText[3],
		Organization:       []string{hostileText[1], hostileText[4], hostileText[6]},
		OrganizationalUnit: []string{hostileText[2], hostileText[5]},
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(7), Subject: name, Issuer: name,
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		// A dNSName is IA5: ESC, BEL and line breaks fit.
		DNSNames:    []string{"\x1b]0;dns\x07", "a\nipcert: renewed OK"},
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
	t.Cleanup(func() { l.Close(); wg.Wait() })
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
	return l.Addr().String()
}

// ipcert verify ADDR against a server whose certificate is hostile: the
// names, the issuer and the chain are shown escaped, in text and JSON.
func TestVerifyHostileCertificateEscaped(t *testing.T) {
	addr := hostileServer(t)
	for _, args := range [][]string{
		{"verify", "--state-dir", t.TempDir(), addr},
		{"verify", "--state-dir", t.TempDir(), "--json", addr},
	} {
		_, out, errs := verifyRun(t, args...)
		if !strings.Contains(out, `\x1b]0;`) {
			t.Errorf("%v: the certificate's names are not shown (escaped):\n%.3000s", args, out)
		}
		assertSafeOutput(t, strings.Join(args, " ")+" stdout", out)
		assertSafeOutput(t, strings.Join(args, " ")+" stderr", errs)
	}
}

// Issue 22: IPCERT_DEPLOY_HOOK in root's environment becomes a stored
// root hook; ipcert says so on stderr, naming the variable, the file and
// how to remove it. A hook typed as --deploy-hook is not warned about.
func TestIssueWarnsHookFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	env := func(k string) string {
		if k == "IPCERT_DEPLOY_HOOK" {
			return "systemctl reload nginx"
		}
		return ""
	}
	var out, errb strings.Builder
	code := run(t.Context(), []string{"issue", "--ca", "local", "--state-dir", dir, "--agree-tos", "--quiet", "--ip", "127.0.0.1"}, stdio{In: strings.NewReader(""), Out: &out, Err: &errb, Env: env})
	if code != exitOK {
		t.Fatalf("issue: exit %d: %s", code, errb.String())
	}
	rj := dir + "/certs/127.0.0.1/renewal.json"
	for _, want := range []string{"WARNING", "IPCERT_DEPLOY_HOOK", `"systemctl reload nginx"`, "stored in " + rj, `delete it from "deploy_hooks" in ` + rj, "unset IPCERT_DEPLOY_HOOK"} {
		if !strings.Contains(errb.String(), want) {
			t.Errorf("stderr lacks %q:\n%s", want, errb.String())
		}
	}
	errb.Reset()
	code = run(t.Context(), []string{"issue", "--ca", "local", "--state-dir", dir, "--agree-tos", "--quiet", "--ip", "127.0.0.1", "--deploy-hook", "true"}, stdio{In: strings.NewReader(""), Out: &out, Err: &errb, Env: env})
	if code != exitOK || strings.Contains(errb.String(), "WARNING") {
		t.Errorf("--deploy-hook on the command line: exit %d, %s", code, errb.String())
	}
}

// hostileFailure is a failure record as an older ipcert (or a hand edit)
// may have kept it: the CA's and the validators' words raw.
func hostileFailure() map[string]any {
	return map[string]any{
		"time": time.Now().UTC().Format(time.RFC3339Nano), "step": "validation",
		"problem":    "urn:ietf:params:acme:error:connection",
		"detail":     hostileText[0] + hostileText[3] + hostileText[6],
		"cause":      hostileText[1],
		"fix":        hostileText[4],
		"title":      hostileText[2],
		"evidence":   hostileText,
		"validators": []string{hostileText[0], hostileText[5]},
		"retryable":  true,
	}
}

// Every output path of status and doctor over a renewal.json and a
// first-failure record holding hostile text: text, --json, --check, the
// Prometheus textfile; nothing raw, nothing a JSON decoder turns back into
// a control character, no forged line, nothing unbounded.
func TestStoredHostileTextEscapedEverywhere(t *testing.T) {
	dir := t.TempDir()
	verifyIssue(t, dir, "127.0.0.1")
	rjPath := filepath.Join(dir, "certs", "127.0.0.1", "renewal.json")
	data, err := os.ReadFile(rjPath)
	if err != nil {
		t.Fatal(err)
	}
	var rj map[string]any
	if err := json.Unmarshal(data, &rj); err != nil {
		t.Fatal(err)
	}
	rj["last_error"] = hostileFailure()
	rj["consecutive_failures"] = 1
	rj["last_attempt"] = time.Now().UTC().Format(time.RFC3339Nano)
	rj["next_attempt_reason"] = hostileText[4]
	data, _ = json.MarshalIndent(rj, "", "  ")
	if err := os.WriteFile(rjPath, data, 0o600); err != nil {
		t.Fatal(err)
	}
	os.MkdirAll(filepath.Join(dir, "failures"), 0o700)
	ff, _ := json.Marshal(map[string]any{"name": "127.0.0.2", "identifiers": []string{"127.0.0.2"}, "last_error": hostileFailure()})
	if err := os.WriteFile(filepath.Join(dir, "failures", "127.0.0.2.json"), ff, 0o600); err != nil {
		t.Fatal(err)
	}
	prom := filepath.Join(t.TempDir(), "ipcert.prom")
	for _, args := range [][]string{
		{"status"},
		{"status", "127.0.0.1"},
		{"status", "--json"},
		{"status", "--check"},
		{"status", "--prometheus", prom},
		{"doctor", "127.0.0.1", "--offline"},
		{"doctor", "127.0.0.1", "--offline", "--json"},
		{"doctor", "127.0.0.2", "--offline"},
		{"doctor", "127.0.0.2", "--offline", "--json"},
		{"renew", "--dry-run", "127.0.0.1"},
	} {
		// Twice: the second status reads its own index.
		for range 2 {
			_, out, errs := verifyRun(t, append(args, "--state-dir", dir)...)
			what := strings.Join(args, " ")
			assertSafeOutput(t, what+" stdout", out)
			assertSafeOutput(t, what+" stderr", errs)
			if strings.Contains(out, `\u001b`) || strings.Contains(out, `\u0007`) {
				t.Errorf("%s: a JSON \\u001b or \\u0007, which decodes back to a control character", what)
			}
		}
	}
	if b, err := os.ReadFile(prom); err != nil {
		t.Error(err)
	} else {
		assertSafeOutput(t, "the textfile", string(b))
	}
}

// A character split between two writes (bufio's chunks of status --json)
// comes out whole, not as two escaped bytes; a control still does not.
func TestTermSafeSplitCharacter(t *testing.T) {
	var b strings.Builder
	w := termSafe(&b)
	s := "café 日本 \U0001f600\x1b[2J"
	for i := 0; i < len(s); i++ {
		w.Write([]byte{s[i]})
	}
	if got := b.String(); got != `café 日本 `+"\U0001f600"+`\x1b[2J` {
		t.Errorf("byte by byte: %q", got)
	}
}
