package reliability

import (
	"bufio"
	"bytes"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
)

func testdata(parts ...string) string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(append([]string{filepath.Dir(filepath.Dir(file)), "testdata", "badinput"}, parts...)...)
}

// noTraffic points any accidental HTTPS request at a closed loopback port:
// a bad address that slipped through must not reach Let's Encrypt.
var noTraffic = []string{"HTTPS_PROXY=http://127.0.0.1:1", "HTTP_PROXY=http://127.0.0.1:1", "NO_PROXY="}

func readCorpus(t *testing.T, name string) []string {
	t.Helper()
	f, err := os.Open(testdata(name))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "#") {
			continue
		}
		line = strings.NewReplacer(`\n`, "\n", `\t`, "\t", `\s`, " ").Replace(line)
		out = append(out, line)
	}
	return out
}

// TestBadAddresses feeds every address of the corpus to `issue` through
// the flag and through IPCERT_IP: each must be refused with exit 2 and a
// message about the address, before any traffic and without state.
func TestBadAddresses(t *testing.T) {
	corpus := readCorpus(t, "addresses.txt")
	dir := filepath.Join(t.TempDir(), "state")
	tried := 0
	for _, a := range corpus {
		for _, how := range []string{"flag", "env"} {
			var r result
			if how == "flag" {
				r = ipcert(t, noTraffic, "issue", "--ip", a, "--ca", "production", "--state-dir", dir, "--agree-tos")
			} else {
				if strings.ContainsAny(a, ", \n") {
					continue // the variable splits on these on purpose
				}
				r = ipcert(t, append([]string{"IPCERT_IP=" + a, "IPCERT_CA=production", "IPCERT_STATE_DIR=" + dir}, noTraffic...), "issue", "--agree-tos")
			}
			tried++
			if r.code != 2 || hasPanic(r.stderr) {
				t.Errorf("%s %q: exit %d\n%s", how, a, r.code, r.stderr)
				continue
			}
			low := strings.ToLower(r.stderr)
			if !strings.Contains(low, "address") && !strings.Contains(low, "--ip") {
				t.Errorf("%s %q: the message does not name the address problem: %s", how, a, r.stderr)
			}
			if strings.Count(r.stderr, "\n") > 3 {
				t.Errorf("%s %q: a long message for a bad address:\n%s", how, a, r.stderr)
			}
		}
	}
	if entries, _ := os.ReadDir(filepath.Join(dir, "certs")); len(entries) != 0 {
		t.Errorf("refused addresses left state: %v", entries)
	}
	figure(t, "bad-addresses", "%d refused (%d corpus entries, via --ip and IPCERT_IP): all exit 2 with a reason, 0 panics, 0 requests", tried, len(corpus))
}

// TestBadFlags: wrong flag values and combinations.
func TestBadFlags(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	cases := [][]string{
		{"issue"},
		{"issue", "--ip"},
		{"issue", "--ip", "8.8.8.8", "--ca", ""},
		{"issue", "--ip", "8.8.8.8", "--ca", "letsencrypt"},
		{"issue", "--ip", "8.8.8.8", "--ca", "http//x"},
		{"issue", "--ip", "8.8.8.8", "--ca", "production", "--challenge", "dns-01"},
		{"issue", "--ip", "8.8.8.8", "--ca", "production", "--challenge", "HTTP-01"},
		{"issue", "--ip", "8.8.8.8", "--ca", "production", "--challenge", "tls-alpn-01", "--webroot", "/var/www"},
		{"issue", "--ip", "8.8.8.8", "--ca", "production", "--key-type", "ed25519"},
		{"issue", "--ip", "8.8.8.8", "--ca", "production", "--timeout", "soon"},
		{"issue", "--ip", "8.8.8.8", "--ca", "production", "--agree-tos=maybe"},
		{"issue", "--ip", "8.8.8.8", "--ca", "production", "--name", "a/b"},
		{"issue", "--ip", "8.8.8.8", "--ca", "production", "--name", "-rf"},
		{"issue", "--ip", "8.8.8.8", "--ca", "production", "--name", strings.Repeat("n", 300)},
		{"issue", "--ip", "8.8.8.8", "--ip", "8.8.8.8", "--ca", "production"},
		{"issue", "--ip", "8.8.8.8", "--ca", "local", "--http-listen", "nonsense"},
		{"issue", "--ip", "8.8.8.8", "extra"},
		{"issue", "--no-such-flag"},
		{"no-such-command"},
	}
	// 26 addresses: a certificate may name at most 25.
	many := []string{"issue", "--ca", "production"}
	for i := 1; i <= 26; i++ {
		many = append(many, "--ip", "9.9.9."+strconv.Itoa(i))
	}
	cases = append(cases, many)
	tried := 0
	for _, args := range cases {
		full := append(append([]string{}, args...), "--state-dir", dir)
		if args[0] == "no-such-command" {
			full = args
		}
		r := ipcert(t, noTraffic, full...)
		tried++
		if r.code != 2 || hasPanic(r.stderr) || strings.TrimSpace(r.stderr) == "" {
			t.Errorf("%q: exit %d, want 2 with a message\n%s", args, r.code, r.stderr)
		}
	}
	// Bad values in variables are named by their variable.
	r := ipcert(t, append([]string{"IPCERT_TIMEOUT=later", "IPCERT_STATE_DIR=" + dir}, noTraffic...), "issue", "--ip", "8.8.8.8", "--ca", "production")
	if r.code != 2 || !strings.Contains(r.stderr, "IPCERT_TIMEOUT") {
		t.Errorf("IPCERT_TIMEOUT=later: exit %d %s", r.code, r.stderr)
	}
	figure(t, "bad-flags", "%d bad flag sets: all exit 2 with a message, 0 panics", tried+1)
}

// TestCorruptState puts damaged renewal.json and account files into a
// state directory and runs every command that reads them: each must give
// a clear error or carry on, never panic, and never change the files.
func TestCorruptState(t *testing.T) {
	entries, err := os.ReadDir(testdata("renewal"))
	if err != nil {
		t.Fatal(err)
	}
	huge := append(append([]byte("{"), bytes.Repeat([]byte(" "), 2<<20)...), '}')
	files := map[string][]byte{"huge.json": huge}
	for _, e := range entries {
		data, err := os.ReadFile(testdata("renewal", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = data
	}
	commands := [][]string{{"status"}, {"status", "--json"}, {"renew"}, {"renew", "bad"}, {"doctor", "bad"}, {"snippet", "nginx", "bad"}}
	runs := 0
	for name, data := range files {
		dir := filepath.Join(t.TempDir(), "state")
		certDir := filepath.Join(dir, "certs", "bad")
		if err := os.MkdirAll(certDir, 0o700); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(certDir, "renewal.json")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		for _, c := range commands {
			args := append([]string{c[0], "--state-dir", dir}, c[1:]...)
			r := ipcert(t, noTraffic, args...)
			runs++
			if hasPanic(r.stderr) || hasPanic(r.stdout) {
				t.Errorf("%s: %v panicked:\n%s", name, c, r.stderr)
			}
			if r.code == 0 && c[0] == "renew" && len(c) > 1 {
				t.Errorf("%s: renew of a broken record succeeded", name)
			}
			if r.code != 0 && !strings.Contains(r.stderr, "renewal.json") && !strings.Contains(r.stderr, "unknown command") && !strings.Contains(r.stdout, "renewal.json") {
				t.Errorf("%s: %v: exit %d without naming renewal.json:\n%s", name, c, r.code, r.stderr)
			}
			after, _ := os.ReadFile(path)
			if !bytes.Equal(after, data) {
				t.Fatalf("%s: %v changed renewal.json", name, c)
			}
		}
	}
	// Damaged account files: issuance registers anew and keeps the old
	// files aside.
	accounts := 0
	for _, f := range []string{"truncated-account.json", "no-uri.json", "junk.json"} {
		dir := filepath.Join(t.TempDir(), "state")
		acct := filepath.Join(dir, "accounts", "local", "default")
		os.MkdirAll(acct, 0o700)
		data, _ := os.ReadFile(testdata("account", f))
		os.WriteFile(filepath.Join(acct, "account.json"), data, 0o600)
		key, _ := os.ReadFile(testdata("account", "bad-key.pem"))
		os.WriteFile(filepath.Join(acct, "key.pem"), key, 0o600)
		r := ipcert(t, nil, "issue", "--ip", "127.0.0.1", "--ca", "local", "--state-dir", dir, "--agree-tos")
		accounts++
		if r.code != 0 || hasPanic(r.stderr) {
			t.Errorf("%s: exit %d\n%s", f, r.code, r.stderr)
			continue
		}
		kept, _ := filepath.Glob(filepath.Join(dir, "accounts", "local", "default.broken-*", "account.json"))
		if f != "no-uri.json" && len(kept) != 1 {
			t.Errorf("%s: the damaged account was not kept aside (%v)\n%s", f, kept, r.stderr)
		}
	}
	figure(t, "corrupt-state", "%d damaged renewal.json files x %d commands = %d runs, %d damaged accounts: 0 panics, files never changed, damaged accounts kept aside", len(files), len(commands), runs, accounts)
}
