package privateca

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/internal/testkit"
)

// The wizard's "My own ACME CA" against a real step-ca: an internal
// service at a private address (10.77.0.2, which Let's Encrypt refuses)
// picks the choice on the Plan screen, types the CA's directory URL and
// root file (a wrong URL and a file that is no certificate first: the
// form says what is wrong), is validated by step-ca over the LAN on the
// real port 80, and `ipcert renew --force` later renews it from the same
// CA, trusting the same root. Before the plan offered the choice the
// address was refused on the Address screen and the plan had only Let's
// Encrypt.

// wizardEnv is the wizard's environment inside the host namespace: every
// public-address source is a closed loopback port (an internal machine
// that the internet does not know), and nothing could leave the namespace
// anyway.
func wizardEnv(t *testing.T) []string {
	t.Helper()
	const closed = "127.0.0.1:1"
	return []string{
		"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + t.TempDir(), "LANG=C.UTF-8", "TERM=xterm-256color",
		"IPCERT_ECHO4=http://" + closed, "IPCERT_DNS4=myip.opendns.com/A@" + closed, "IPCERT_STUN4=" + closed,
		"IPCERT_ECHO6=http://" + closed, "IPCERT_DNS6=myip.opendns.com/AAAA@" + closed, "IPCERT_STUN6=" + closed,
	}
}

// checkStoredCA: renewal.json names the CA and its root as issue --ca URL
// --ca-root FILE keeps them, so renew asks the same CA.
func checkStoredCA(t *testing.T, state, name string, ca *stepCA) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(state, "certs", name, "renewal.json"))
	if err != nil {
		t.Fatal(err)
	}
	var r store.Renewal
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	if string(r.CA) != ca.Directory || r.Directory != ca.Directory || r.CARoot != ca.PKI.RootFile {
		t.Errorf("renewal.json keeps ca %q, directory %q, ca_root %q; want %q, %q, %q", r.CA, r.Directory, r.CARoot, ca.Directory, ca.Directory, ca.PKI.RootFile)
	}
}

// renewFromSameCA: the built binary's renew --force renews name from the
// same step-ca.
func renewFromSameCA(t *testing.T, hostNS, state, name string, ca *stepCA, validity time.Duration, first string) {
	t.Helper()
	before := readCert(t, filepath.Join(state, "certs", name, "current", "cert.pem"))
	out, errs, code := ipcert(t, hostNS, "renew", "--force", "--state-dir", state, name)
	t.Logf("renew --force:\n%s%s", errs, out)
	if code != 10 || !strings.Contains(out, name+": renewed, version 2") {
		t.Fatalf("renew --force %s: exit %d (want 10: renewed), output:\n%s%s", name, code, out, errs)
	}
	after := checkCert(t, ca, state, name, netip.MustParseAddr(first), validity)
	if after.SerialNumber.Cmp(before.SerialNumber) == 0 {
		t.Fatal("renew --force left the same certificate current")
	}
}

func TestStepCAWizardOwnCA(t *testing.T) {
	needNetns(t)
	testkit.NeedProgram(t, "tmux", "tmux")
	bin := buildIpcert(t)
	caNS, hostNS := privateLAN(t)
	const validity = 20 * time.Hour
	ca := startStepCA(t, caOpts{Host: "10.77.0.1", Netns: caNS, Validity: validity})
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	outFile := filepath.Join(dir, "stdout")
	notPEM := filepath.Join(dir, "not-a-cert.pem")
	if err := os.WriteFile(notPEM, []byte("this is not a certificate\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	script := bin + " wizard --state-dir " + state + " >" + outFile + "; echo EXIT=$? >>" + outFile + "; sleep 600"
	argv := append(append([]string{"env", "-i"}, wizardEnv(t)...), "ip", "netns", "exec", hostNS, "sh", "-c", script)
	p := testkit.StartTmux(t, dir, 120, 40, argv...)

	p.WaitFor("step 1 of 9", "enter start")
	p.Keys("Enter")
	// No public address: this machine is internal. The typed private
	// address is one Let's Encrypt refuses, and says so, but it is not
	// refused: an own CA may certify it.
	p.WaitFor("step 2 of 9", "No public address found")
	p.Keys("t")
	p.Type("10.77.0.2")
	p.WaitFor("10.77.0.2 is a private IPv4 address", "not for Let's Encrypt", `Only your own ACME CA can certify it (the Plan's "My own ACME CA")`)
	p.Keys("Enter")
	p.WaitFor("[x] 10.77.0.2")
	p.Keys("Enter")
	// Preflight leaves the address to the CA's own policy.
	p.WaitFor("step 3 of 9", "next: Plan", "CA's own policy")
	p.Keys("Enter")
	// The plan starts on the own CA (Let's Encrypt cannot certify the
	// address); a Let's Encrypt choice is refused with the way out.
	p.WaitFor("step 4 of 9", "My own ACME CA (directory URL)", "Let's Encrypt's rules do not apply")
	p.Keys("Up")
	p.Keys("Enter")
	p.WaitFor("10.77.0.2 is in private network", `choose "My own ACME CA"`)
	p.Keys("Down")
	p.Keys("Enter")
	// Each question's note is drawn above the form once it has the
	// focus: keys typed earlier would go to the previous field.
	p.WaitFor("ACME directory URL of your CA", "names the ACME provisioner")
	p.Type("http://10.77.0.1:9000/acme/acme/directory")
	p.Keys("Enter")
	p.WaitFor("does not start with https://", "ACME runs over HTTPS")
	p.Keys("C-u")
	p.Type(ca.Directory)
	p.Keys("Enter")
	p.WaitFor("Root certificate of your CA", "Leave it empty for the system's roots")
	p.Type(filepath.Join(dir, "missing.pem"))
	p.Keys("Enter")
	p.WaitFor("missing.pem: no such file")
	p.Keys("C-u")
	p.Type(notPEM)
	p.Keys("Enter")
	p.WaitFor("not-a-cert.pem holds no PEM certificate")
	p.Keys("C-u")
	p.Type(ca.PKI.RootFile)
	p.Keys("Enter")
	p.WaitFor("Challenge", "an ACME CA validates an IP only by connecting to it")
	p.Keys("Enter")
	p.WaitFor("The certificate's key type")
	p.Keys("Enter")
	p.WaitFor("E-mail (optional)", "Optional, for the CA's account only.")
	p.Keys("Enter")
	p.WaitFor("Agree to your CA's terms of service?", "nothing is chosen yet")
	p.Keys("y")
	// The issuance says which of Let's Encrypt's rules did not apply, and
	// shows step-ca's validator reaching the responder on port 80.
	p.WaitFor("step 5 of 9", "Certificate issued for 10.77.0.2", "advertises no profiles", "Let's Encrypt's rules do not apply to it", "validator 10.77.0.1:")
	p.Keys("q")
	var out []byte
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) && !bytes.Contains(out, []byte("EXIT=")) {
		out, _ = os.ReadFile(outFile)
		time.Sleep(50 * time.Millisecond) // polling interval, bounded by the deadline
	}
	if !bytes.Contains(out, []byte("EXIT=0")) {
		t.Fatalf("the wizard did not exit 0; stdout:\n%s\npane:\n%s", out, p.Pane())
	}
	for _, want := range []string{"Issued a certificate for 10.77.0.2", "the ACME CA at " + ca.Directory} {
		if !strings.Contains(string(out), want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	const name = "10.77.0.2"
	checkCert(t, ca, state, name, netip.MustParseAddr(name), validity)
	checkStoredCA(t, state, name, ca)
	renewFromSameCA(t, hostNS, state, name, ca, validity, name)
}

// TestStepCAWizardOwnCAAccessible: the same choice in accessible mode,
// answers piped on stdin (a wrong URL and a file that is no certificate
// first, each explained and asked again), then renew from the same CA.
func TestStepCAWizardOwnCAAccessible(t *testing.T) {
	needNetns(t)
	bin := buildIpcert(t)
	caNS, hostNS := privateLAN(t)
	const validity = 20 * time.Hour
	ca := startStepCA(t, caOpts{Host: "10.77.0.1", Netns: caNS, Validity: validity})
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	in := strings.Join([]string{
		"1",         // Address: type an address (none was found)
		"10.77.0.2", // a private one
		"1",         // Preflight: go on to the plan
		"2",         // Plan: staging only (Let's Encrypt refuses the address: asked again)
		"4",         // My own ACME CA
		"ca.internal/acme/acme/directory",
		ca.Directory,
		dir, // a directory, not a file
		ca.PKI.RootFile,
		"1", // http-01 on port 80
		"1", // ec256
		"",  // no e-mail
		"y", // the terms
	}, "\n") + "\n"
	cmd := exec.Command("ip", "netns", "exec", hostNS, bin, "wizard", "--accessible", "--state-dir", state)
	cmd.Env = wizardEnv(t)
	cmd.Stdin = strings.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	t.Logf("wizard --accessible: %v\nstderr:\n%s\nstdout:\n%s", err, stderr.String(), stdout.String())
	if err != nil {
		t.Fatalf("the accessible wizard did not exit 0: %v", err)
	}
	said := strings.Join(strings.Fields(stderr.String()), " ")
	for _, want := range []string{
		"Not for Let's Encrypt: is in private network",
		`10.77.0.2 is in private network 10/8 (RFC 1918); Let's Encrypt refuses it (rejectedIdentifier): choose "My own ACME CA"`,
		"Let's Encrypt's rules do not apply to it",
		`"ca.internal/acme/acme/directory" does not start with https://`,
		dir + " cannot be read",
		"Agree to your CA's terms of service?",
		"advertises no profiles",
		"validator 10.77.0.1:",
	} {
		if !strings.Contains(said, want) {
			t.Errorf("the accessible wizard did not say %q", want)
		}
	}
	if !strings.Contains(stdout.String(), "Issued a certificate for 10.77.0.2") {
		t.Errorf("stdout lacks the issued certificate:\n%s", stdout.String())
	}
	const name = "10.77.0.2"
	checkCert(t, ca, state, name, netip.MustParseAddr(name), validity)
	checkStoredCA(t, state, name, ca)
	renewFromSameCA(t, hostNS, state, name, ca, validity, name)
}
