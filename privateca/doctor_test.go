package privateca

import (
	"encoding/json"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestStepCADoctor: a renewal from step-ca fails because the CA validates
// on another port than ipcert's responder listens on (renewal.json keeps
// --http-listen 127.0.0.1:5003; this step-ca knocks on 5002, where nothing
// listens). `ipcert doctor NAME` must name that cause from what the CA
// does and what renewal.json keeps, re-check for that CA (its own address
// policy, no question to the internet about a public address) and give no
// Let's Encrypt advice; `doctor NAME --probe` orders from step-ca itself,
// trusting its root, not from Let's Encrypt staging. Everything runs in a
// network namespace of the test's: nothing could leave it. Before the fix
// doctor re-checked the address against Let's Encrypt's policy ("Let's
// Encrypt refuses it"), asked the internet for the public address,
// suggested a probe on Let's Encrypt staging, and --probe ordered there.
func TestStepCADoctor(t *testing.T) {
	needNetns(t)
	_, hostNS := privateLAN(t)
	const ourPort, caPort = 5003, 5002
	// The first issuance works: the CA validates on the responder's port.
	ca := startStepCA(t, caOpts{Host: "127.0.0.1", Netns: hostNS, Validity: 24 * time.Hour, HTTPPort: ourPort, TLSPort: ourPort})
	state := t.TempDir()
	const name = "127.0.0.1"
	out, errs := mustIpcert(t, hostNS, "issue", "--ip", name, "--ca", ca.Directory, "--ca-root", ca.PKI.RootFile,
		"--http-listen", "127.0.0.1:"+strconv.Itoa(ourPort), "--agree-tos", "--state-dir", state)
	t.Logf("issue:\n%s%s", errs, out)
	// The CA is set up again to validate elsewhere (as one that validates
	// on the standard port 80 would): the renewal fails, as the timer's
	// would.
	ca.restart(t, caPort, caPort)
	out, errs, code := ipcert(t, hostNS, "renew", "--force", "--state-dir", state, name)
	t.Logf("renew --force: exit %d\n%s%s", code, errs, out)
	if code == 0 || code == 10 || !strings.Contains(errs+out, "could not connect to validation target") {
		t.Fatalf("renew --force against a CA validating on another port: exit %d, want a validation failure", code)
	}
	noLetsEncryptAdvice(t, "renew", errs+out)

	out, errs, code = ipcert(t, hostNS, "doctor", name, "--state-dir", state)
	t.Logf("doctor: exit %d\n%s\n%s", code, errs, out)
	if code != 1 {
		t.Errorf("doctor exit %d, want 1 (a failure is stored)", code)
	}
	said := strings.Join(strings.Fields(out), " ")
	for _, want := range []string{
		"Nothing answered on the port the CA validates on",
		"ipcert's responder listened on 127.0.0.1:5003",
		"the CA validates http-01 on port 80",
		"--acme-http-port 5003",
		"left to the CA's own policy",
	} {
		if !strings.Contains(said, want) {
			t.Errorf("doctor does not say %q", want)
		}
	}
	noLetsEncryptAdvice(t, "doctor", out+errs)

	// --probe orders from the certificate's own CA, trusting its root.
	out, errs, code = ipcert(t, hostNS, "doctor", name, "--probe", "--state-dir", state, "--timeout", "60s")
	t.Logf("doctor --probe: exit %d\n%s\n%s", code, errs, out)
	said = strings.Join(strings.Fields(out+errs), " ")
	for _, want := range []string{"Probe: a real order for 127.0.0.1 on the ACME CA at " + ca.Directory, "Probe order on " + ca.Directory, "validation FAILED", "0 validator request(s) reached our responder"} {
		if !strings.Contains(said, want) {
			t.Errorf("doctor --probe does not say %q", want)
		}
	}
	noLetsEncryptAdvice(t, "doctor --probe", out+errs)
	var rep struct {
		Targets []struct {
			Order *struct {
				CA string `json:"ca"`
				OK bool   `json:"ok"`
			} `json:"probe_order"`
		} `json:"targets"`
	}
	out, _, _ = ipcert(t, hostNS, "doctor", name, "--probe", "--json", "--state-dir", state, "--timeout", "60s")
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.Targets) != 1 || rep.Targets[0].Order == nil || rep.Targets[0].Order.CA != ca.Directory || rep.Targets[0].Order.OK {
		t.Errorf("doctor --probe --json: %v, want one failed probe order on %s:\n%s", err, ca.Directory, out)
	}
}

// noLetsEncryptAdvice fails when text gives advice that only holds for
// Let's Encrypt.
func noLetsEncryptAdvice(t *testing.T, what, text string) {
	t.Helper()
	flat := strings.Join(strings.Fields(text), " ")
	for _, bad := range []string{"Let's Encrypt refuses", "Rate limited", "letsencrypt.org", "failed validations per", "Let's Encrypt staging", "rehearse on staging", "--ca staging", "NAT and cloud", "Public IPv4 address", "public address"} {
		if strings.Contains(flat, bad) {
			t.Errorf("%s gives Let's Encrypt's advice %q for a certificate of its own CA:\n%s", what, bad, text)
		}
	}
}

// TestStepCADoctorFirstIssuance: the same cause on a first issuance, which
// has no renewal.json: the failure record must keep how the attempt was
// asked (the CA's URL, its root, the responder), so that `ipcert doctor`
// (with the name, and with no argument) re-checks it for that CA. Before,
// the record kept no CA: doctor judged the private CA's certificate by
// Let's Encrypt's rules and suggested a probe on Let's Encrypt staging.
func TestStepCADoctorFirstIssuance(t *testing.T) {
	needNetns(t)
	_, hostNS := privateLAN(t)
	const ourPort, caPort = 5003, 5002
	ca := startStepCA(t, caOpts{Host: "127.0.0.1", Netns: hostNS, Validity: 24 * time.Hour, HTTPPort: caPort, TLSPort: caPort})
	state := t.TempDir()
	const name = "127.0.0.1"
	out, errs, code := ipcert(t, hostNS, "issue", "--ip", name, "--ca", ca.Directory, "--ca-root", ca.PKI.RootFile,
		"--http-listen", "127.0.0.1:"+strconv.Itoa(ourPort), "--agree-tos", "--state-dir", state, "--timeout", "60s")
	t.Logf("issue: exit %d\n%s%s", code, errs, out)
	if code != 1 || !strings.Contains(errs+out, "could not connect to validation target") {
		t.Fatalf("issue against a CA validating on another port: exit %d, want a validation failure", code)
	}
	for _, args := range [][]string{{"doctor", name}, {"doctor"}} {
		out, errs, code := ipcert(t, hostNS, append(args, "--state-dir", state)...)
		t.Logf("%v: exit %d\n%s\n%s", args, code, errs, out)
		if code != 1 {
			t.Errorf("%v: exit %d, want 1 (a failure is stored)", args, code)
		}
		said := strings.Join(strings.Fields(out), " ")
		for _, want := range []string{
			"Nothing answered on the port the CA validates on",
			"ipcert's responder listened on 127.0.0.1:5003",
			"--acme-http-port 5003",
			"left to the CA's own policy",
		} {
			if !strings.Contains(said, want) {
				t.Errorf("%v does not say %q", args, want)
			}
		}
		noLetsEncryptAdvice(t, strings.Join(args, " "), out+errs)
	}
}
