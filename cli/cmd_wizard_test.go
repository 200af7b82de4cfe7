package cli

import (
	"fmt"

	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"

	"github.com/ipcert/ipcert/internal/store"
)

func wizardRunCmd(t *testing.T, in string, env map[string]string, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, stdio{
		In: strings.NewReader(in), Out: &out, Err: &errb,
		Env: func(k string) string { return env[k] },
	})
	return code, out.String(), errb.String()
}

// TestWizardWithoutTerminal: ipcert with no arguments and no terminal
// names the subcommands and exits 2 at once, never waiting for input.
func TestWizardWithoutTerminal(t *testing.T) {
	for _, args := range [][]string{nil, {"wizard"}} {
		start := time.Now()
		code, out, errs := wizardRunCmd(t, "", nil, args...)
		if code != exitUsage {
			t.Errorf("ipcert %v without a terminal: exit %d, want %d", args, code, exitUsage)
		}
		for _, want := range []string{"no terminal", "ipcert issue --ip ADDR --ca staging", "ipcert preflight", "--accessible"} {
			if !strings.Contains(errs, want) {
				t.Errorf("ipcert %v: message lacks %q:\n%s", args, want, errs)
			}
		}
		if out != "" {
			t.Errorf("ipcert %v printed on stdout: %q", args, out)
		}
		if d := time.Since(start); d > 2*time.Second {
			t.Errorf("ipcert %v took %v without a terminal", args, d)
		}
	}
}

// TestDemoWithoutTerminal: in a script or CI the demo cannot draw, but it
// needs no answers, so it still ends with a certificate on disk.
func TestDemoWithoutTerminal(t *testing.T) {
	dir := t.TempDir()
	code, out, errs := wizardRunCmd(t, "", nil, "demo", "--state-dir", dir)
	if code != exitOK {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	if !strings.Contains(errs, "no terminal") || !strings.Contains(out, "openssl verify") || !strings.Contains(out, "Demo state: "+dir) {
		t.Errorf("stdout:\n%s\nstderr:\n%s", out, errs)
	}
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.CurrentVersion("127.0.0.1"); err != nil {
		t.Fatalf("no certificate on disk: %v", err)
	}
}

// TestDemoAccessible runs `ipcert demo --accessible` in-process with the
// answers on stdin: the result and the openssl commands go to stdout, the
// files stay in the state directory.
func TestDemoAccessible(t *testing.T) {
	dir := t.TempDir()
	// address, preflight, CA, challenge, key, e-mail, terms; install:
	// continue; renewal: dry run, continue; verify: check, continue.
	in := "1\n1\n1\n1\n\n\ny\n2\n1\n2\n1\n2\n"
	logFile := filepath.Join(t.TempDir(), "debug.log")
	code, out, errs := wizardRunCmd(t, in, map[string]string{"ACCESSIBLE": "1"}, "demo", "--state-dir", dir, "--debug", logFile)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, errs)
	}
	for _, want := range []string{"Issued a certificate for 127.0.0.1", "openssl verify -CAfile " + filepath.Join(dir, "certs/127.0.0.1/current/root.pem"), "Demo state: " + dir} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	for _, want := range []string{"Step 5 of 9, Issue", "dry renewal worked", "serves the stored current certificate"} {
		if !strings.Contains(errs, want) {
			t.Errorf("stderr (questions and progress) lacks %q:\n%s", want, errs)
		}
	}
	// --debug: the wizard's, lego's and Pebble's logs go to the file, not
	// to the terminal.
	logged, err := os.ReadFile(logFile)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"wizard: issued 127.0.0.1", "pebble"} {
		if !strings.Contains(string(logged), want) {
			t.Errorf("debug log lacks %q", want)
		}
		if strings.Contains(errs, want) {
			t.Errorf("%q leaked onto stderr", want)
		}
	}
	for _, f := range []string{"cert.pem", "chain.pem", "fullchain.pem", "privkey.pem", "root.pem"} {
		if _, err := os.Stat(filepath.Join(dir, "certs/127.0.0.1/current", f)); err != nil {
			t.Error(err)
		}
	}
}

// TestWizardFlagErrors: bad presets are usage errors with the reason.
func TestWizardFlagErrors(t *testing.T) {
	for _, c := range []struct {
		args []string
		want string
	}{
		{[]string{"wizard", "--challenge", "dns-01"}, "dns-01 cannot validate an IP address"},
		{[]string{"wizard", "--ip", "10.0.0.1/8"}, "--ip"},
		{[]string{"wizard", "--ca", "http://example.org/dir"}, "the https:// directory URL of your own ACME CA"},
		{[]string{"wizard", "--ca", "example"}, "the wizard offers rehearse, staging, production or the https:// directory URL"},
		{[]string{"wizard", "--ca", "local"}, "ipcert demo"},
		{[]string{"wizard", "--ca-root", "/etc/hostname"}, "--ca-root goes with --ca URL"},
		{[]string{"wizard", "--ca", "https://ca.internal/acme/acme/directory", "--ca-root", "/nonexistent/root.pem"}, "--ca-root /nonexistent/root.pem: no such file"},
		{[]string{"wizard", "--ca", "https://ca.internal/acme/acme/directory", "--ca-root", "/etc/hostname"}, "--ca-root /etc/hostname holds no PEM certificate"},
		{[]string{"wizard", "--http-listen", "80"}, "--http-listen"},
		{[]string{"demo", "--key-type", "dsa"}, "--key-type"},
	} {
		code, _, errs := wizardRunCmd(t, "", nil, c.args...)
		if code != exitUsage || !strings.Contains(errs, c.want) {
			t.Errorf("%v: exit %d, stderr %q; want %d and %q", c.args, code, errs, exitUsage, c.want)
		}
	}
}

// offlineEnv points every public-address source at a closed loopback port:
// the wizard finds no address, as on a machine with no internet, and no
// packet leaves the machine.
func offlineEnv(t *testing.T) map[string]string {
	t.Helper()
	port, err := acmeflow.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	d := fmt.Sprintf("127.0.0.1:%d", port)
	return map[string]string{
		"ACCESSIBLE":   "1",
		"IPCERT_ECHO4": "http://" + d, "IPCERT_DNS4": "myip.opendns.com/A@" + d, "IPCERT_STUN4": d,
		"IPCERT_ECHO6": "http://" + d, "IPCERT_DNS6": "myip.opendns.com/AAAA@" + d, "IPCERT_STUN6": d,
	}
}

// TestAccessibleBadAnswersExitCleanly: the crashes from the report, run
// through the command: no address found and no input; an out-of-range,
// zero or non-number answer followed by the end of the input. Each is
// asked again with the valid range, and the end of the input is exit 1.
func TestAccessibleBadAnswersExitCleanly(t *testing.T) {
	cases := []struct {
		in   string
		env  map[string]string
		args []string
	}{
		{"", offlineEnv(t), []string{"--state-dir", t.TempDir()}},
		{"1\n", offlineEnv(t), []string{"--state-dir", t.TempDir()}},
		{"4\n", map[string]string{"ACCESSIBLE": "1"}, []string{"demo", "--state-dir", t.TempDir()}},
		{"0\n", map[string]string{"ACCESSIBLE": "1"}, []string{"demo", "--state-dir", t.TempDir()}},
		{"abc\n", map[string]string{"ACCESSIBLE": "1"}, []string{"demo", "--state-dir", t.TempDir()}},
		{"1\n1\n1\n7\n", map[string]string{"ACCESSIBLE": "1"}, []string{"demo", "--state-dir", t.TempDir()}},
	}
	for _, c := range cases {
		code, _, errs := wizardRunCmd(t, c.in, c.env, c.args...)
		if code != exitFailure || !strings.Contains(errs, "the input ended") {
			t.Errorf("%v with input %q: exit %d, want %d and \"the input ended\"\n%s", c.args, c.in, code, exitFailure, errs)
		}
		if c.in != "" && c.in != "1\n" && !strings.Contains(errs, "between 1 and") {
			t.Errorf("%v with input %q: the valid range is not said\n%s", c.args, c.in, errs)
		}
	}
}

// TestFirstFailureReachesDoctor: a failed first issuance (no certificate
// of that name yet) is stored under the name it would have had, so that
// "ipcert doctor", which the wizard and issue point to, explains it; the
// record goes once the name is issued.
func TestFirstFailureReachesDoctor(t *testing.T) {
	dir := t.TempDir()
	if code, _, errs := wizardRunCmd(t, "", nil, "issue", "--ip", "127.0.0.1", "--ca", "local", "--state-dir", dir); code == exitOK {
		t.Fatalf("issue without --agree-tos succeeded:\n%s", errs)
	}
	code, out, errs := wizardRunCmd(t, "", nil, "doctor", "--state-dir", dir)
	if strings.Contains(out, "No failures stored") || !strings.Contains(out, "terms of service") || !strings.Contains(out, `"127.0.0.1"`) {
		t.Errorf("doctor after a failed first issuance (exit %d):\n%s\n%s", code, out, errs)
	}
	if code, _, errs := wizardRunCmd(t, "", nil, "issue", "--ip", "127.0.0.1", "--ca", "local", "--state-dir", dir, "--agree-tos"); code != exitOK {
		t.Fatalf("issue: exit %d\n%s", code, errs)
	}
	if _, out, _ := wizardRunCmd(t, "", nil, "doctor", "--state-dir", dir); !strings.Contains(out, "No failures stored") {
		t.Errorf("doctor after the issuance still reports the old failure:\n%s", out)
	}
}

// TestDemoLeavesNoFolderWhenNothingHappened: a demo ended before anything
// was issued or tried says "nothing was changed", and leaves no
// /tmp/ipcert-demo-* folder behind.
func TestDemoLeavesNoFolderWhenNothingHappened(t *testing.T) {
	tmp := t.TempDir()
	t.Setenv("TMPDIR", tmp)
	code, out, errs := wizardRunCmd(t, "", map[string]string{"ACCESSIBLE": "1"}, "demo")
	if code != exitFailure {
		t.Fatalf("exit %d\n%s", code, errs)
	}
	if left, _ := filepath.Glob(filepath.Join(tmp, "ipcert-demo-*")); len(left) > 0 {
		t.Errorf("the demo left %v behind\nstdout:\n%s", left, out)
	}
	if strings.Contains(out, "Demo state:") {
		t.Errorf("stdout names a folder that is gone:\n%s", out)
	}
}

// TestNoTerminalHelpAligned: the no-terminal help's commands line up and
// it says how to get a terminal over SSH.
func TestNoTerminalHelpAligned(t *testing.T) {
	_, _, errs := wizardRunCmd(t, "", nil)
	if !strings.Contains(errs, "ssh -t") {
		t.Errorf("no word about ssh -t:\n%s", errs)
	}
	col := -1
	for _, l := range strings.Split(errs, "\n") {
		if !strings.HasPrefix(l, "  ipcert ") {
			continue
		}
		i := strings.Index(l, "  ")
		j := strings.LastIndex(l, "  ") + 2
		if i < 0 || j <= 2 {
			continue
		}
		if col >= 0 && j != col {
			t.Errorf("column %d, want %d: %q\n%s", j, col, l, errs)
		}
		col = j
	}
}
