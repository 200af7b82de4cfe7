package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipcert/ipcert/internal/store"
)

// issueRun runs ipcert in-process with the given environment.
func issueRun(t *testing.T, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, stdio{
		In: strings.NewReader(""), Out: &out, Err: &errb,
		Env: func(k string) string { return env[k] },
	})
	return code, out.String(), errb.String()
}

func TestIssueLocalJSON(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := issueRun(t, nil, "issue", "--ip", "127.0.0.1", "--ca", "local", "--state-dir", dir, "--agree-tos", "--json")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	var got issuedOut
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("stdout is not JSON: %v\n%s", err, out)
	}
	if got.Name != "127.0.0.1" || got.Version != 1 || got.Files.Root == "" {
		t.Fatalf("%+v", got)
	}
	for _, p := range []string{got.Files.FullChain, got.Files.Key, got.Files.Root} {
		if _, err := os.Stat(p); err != nil {
			t.Error(err)
		}
	}
	if !strings.Contains(errs, "validator") {
		t.Errorf("progress on stderr should show validator requests:\n%s", errs)
	}
}

func TestIssueFromEnvironment(t *testing.T) {
	dir := t.TempDir()
	env := map[string]string{"IPCERT_IP": "127.0.0.1,::1", "IPCERT_CA": "local", "IPCERT_STATE_DIR": dir, "IPCERT_AGREE_TOS": "true", "IPCERT_QUIET": "1"}
	code, out, errs := issueRun(t, env, "issue")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if errs != "" {
		t.Errorf("--quiet via IPCERT_QUIET still printed: %s", errs)
	}
	if !strings.Contains(out, "127.0.0.1, ::1") || !strings.Contains(out, "openssl verify") {
		t.Errorf("human output:\n%s", out)
	}
	s, _ := store.Open(dir)
	if _, err := s.CurrentVersion("127.0.0.1_0--1"); err != nil {
		t.Fatalf("no current: %v", err)
	}
}

func TestIssueUsageErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"issue", "--ca", "local"}, "--ip is required"},
		{[]string{"issue", "--ip", "127.0.0.1"}, "--ca is required"},
		{[]string{"issue", "--ip", "192.168.1.10", "--ca", "production"}, "Let's Encrypt refuses"},
		{[]string{"issue", "--ip", "100.64.0.7", "--ca", "staging"}, "IPv6"},
		{[]string{"issue", "--ip", "1.2.3.4/24", "--ca", "production"}, "CIDR"},
		{[]string{"issue", "--ip", "2001:DB8::1", "--ca", "production"}, "write it as 2001:db8::1"},
		{[]string{"issue", "--ip", "8.8.8.8", "--ca", "ftp://x"}, "not staging, production, local"},
		{[]string{"issue", "--ip", "8.8.8.8", "--ca", "production", "--challenge", "dns-01"}, "dns-01 cannot validate an IP"},
		{[]string{"issue", "--ip", "8.8.8.8", "--ca", "production", "--key-type", "dsa"}, "unknown key type"},
		{[]string{"issue", "--ip", "8.8.8.8", "--ca", "production", "--name", "../etc"}, "--name"},
		{[]string{"issue", "--bogus"}, "unknown flag --bogus"},
		{[]string{"issue", "8.8.8.8"}, "addresses go in --ip"},
	}
	for _, c := range cases {
		code, _, errs := issueRun(t, map[string]string{"IPCERT_STATE_DIR": dir}, c.args...)
		if code != exitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want exit 2 mentioning %q", c.args, code, errs, c.want)
		}
	}
	// Nothing was stored for the refused requests.
	if names, _ := filepath.Glob(filepath.Join(dir, "certs", "*")); len(names) != 0 {
		t.Errorf("refused requests left %v", names)
	}
}

func TestIssueLocked(t *testing.T) {
	dir := t.TempDir()
	s, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	unlock, err := s.Lock(context.Background(), false)
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	code, _, errs := issueRun(t, nil, "issue", "--ip", "127.0.0.1", "--ca", "local", "--state-dir", dir, "--agree-tos", "--wait", "0")
	if code != exitLocked || !strings.Contains(errs, "another ipcert run") {
		t.Fatalf("exit %d: %s", code, errs)
	}
	code, _, errs = issueRun(t, nil, "issue", "--ip", "127.0.0.1", "--ca", "local", "--state-dir", dir, "--agree-tos", "--wait", "300ms")
	if code != exitLocked || !strings.Contains(errs, "gave up waiting") {
		t.Fatalf("--wait 300ms on a held lock: exit %d: %s", code, errs)
	}
}

func TestVersionAndHelp(t *testing.T) {
	if code, out, _ := issueRun(t, nil, "--version"); code != 0 || !strings.HasPrefix(out, "ipcert ") {
		t.Errorf("--version: %d %q", code, out)
	}
	// Help goes to stdout for every command (it is what was asked for).
	code, out, errs := issueRun(t, nil, "issue", "--help")
	if code != 0 || !strings.Contains(out, "Examples:") || !strings.Contains(out, "IPCERT_") || errs != "" {
		t.Errorf("issue --help: %d %q %q", code, out, errs)
	}
	if code, out, errs := issueRun(t, nil, "issue", "--no-such-flag"); code != exitUsage || out != "" || !strings.Contains(errs, "--help") || strings.Contains(errs, "Examples:") {
		t.Errorf("a bad flag: %d %q %q", code, out, errs)
	}
	if code, _, _ := issueRun(t, nil, "nonsense"); code != exitUsage {
		t.Errorf("unknown command: exit %d", code)
	}
}

func TestIssueAgainKeepsDeploySettings(t *testing.T) {
	dir := t.TempDir()
	args := []string{"issue", "--ip", "127.0.0.1", "--ca", "local", "--state-dir", dir, "--agree-tos", "--quiet"}
	if code, _, errs := issueRun(t, nil, append(args, "--deploy-hook", "true", "--reload", "nginx")...); code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	s, _ := store.Open(dir)
	r, err := s.LoadRenewal("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	r.Combined, r.VerifyAddr = true, "127.0.0.1:8443"
	if err := s.SaveRenewal(r); err != nil {
		t.Fatal(err)
	}
	if code, _, errs := issueRun(t, nil, args...); code != exitOK {
		t.Fatalf("again: exit %d: %s", code, errs)
	}
	r, _ = s.LoadRenewal("127.0.0.1")
	if !r.Combined || r.VerifyAddr != "127.0.0.1:8443" || r.Reload != "nginx" || len(r.DeployHooks) != 1 {
		t.Fatalf("settings lost: %+v", r)
	}
	if _, err := os.Stat(filepath.Join(s.CurrentDir("127.0.0.1"), store.CombinedFile)); err != nil {
		t.Fatalf("combined.pem not written for the new version: %v", err)
	}
}
