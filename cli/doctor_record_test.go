package cli

import (
	"crypto/tls"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/diagnosis"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/internal/testkit"
)

// acmeDirectory serves an ACME directory over TLS on ln.
func acmeDirectory(t *testing.T, ln net.Listener, cert tls.Certificate) *httptest.Server {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		base := "https://" + r.Host
		fmt.Fprintf(w, `{"newNonce":"%s/nonce","newAccount":"%s/acct","newOrder":"%s/order"}`, base, base, base)
	}))
	srv.Listener.Close()
	srv.Listener = ln
	srv.TLS = &tls.Config{Certificates: []tls.Certificate{cert}}
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv
}

// downCA is the URL and root file of an ACME CA on loopback that is not
// running yet, and a function that starts it on that very address.
func downCA(t *testing.T) (dirURL, root string, start func()) {
	t.Helper()
	srv := httptest.NewTLSServer(http.NotFoundHandler())
	addr, cert := srv.Listener.Addr().String(), srv.TLS.Certificates[0]
	root = filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(root, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	srv.Close()
	return "https://" + addr + "/dir", root, func() {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		acmeDirectory(t, ln, cert)
	}
}

// TestIssueSaysWhenTheFailureCannotBeRecorded: when the record of a
// failure cannot be written (here failures/ is a file; a full disk does
// the same), issue says so instead of sending the user to doctor, which
// would find nothing.
func TestIssueSaysWhenTheFailureCannotBeRecorded(t *testing.T) {
	ca, root, _ := downCA(t)
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "failures"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	code, _, errs := issueRun(t, nil, "issue", "--ip", "127.0.0.1", "--ca", ca, "--ca-root", root, "--state-dir", dir, "--agree-tos", "--wait", "0s")
	if code != exitFailure {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if !strings.Contains(errs, "could not be recorded") || strings.Contains(errs, `Run "ipcert doctor`) {
		t.Errorf("the message sends the user to doctor although nothing was recorded:\n%s", errs)
	}
	// Recorded: the doctor command names the address and the state
	// directory.
	dir2 := t.TempDir()
	_, _, errs = issueRun(t, nil, "issue", "--ip", "127.0.0.1", "--ca", ca, "--ca-root", root, "--state-dir", dir2, "--agree-tos", "--wait", "0s")
	if want := `Run "ipcert doctor 127.0.0.1 --state-dir ` + dir2 + `"`; !strings.Contains(errs, want) {
		t.Errorf("want %s in:\n%s", want, errs)
	}
}

// TestDoctorNewestFirstAndRechecksTheCA: doctor lists the newest failure
// first, with its CA and time; a failure at the CA (it refused) is
// re-checked exactly: the name, a connection, the directory, and says
// when the CA answers again.
func TestDoctorNewestFirstAndRechecksTheCA(t *testing.T) {
	ca, root, start := downCA(t)
	dir := t.TempDir()
	for _, ip := range []string{"127.0.0.1", "127.0.0.2"} {
		code, _, errs := issueRun(t, nil, "issue", "--ip", ip, "--ca", ca, "--ca-root", root, "--state-dir", dir, "--agree-tos", "--wait", "0s")
		if code != exitFailure || !strings.Contains(errs, "[ca-refused]") {
			t.Fatalf("exit %d: %s", code, errs)
		}
	}
	code, out, errs := issueRun(t, nil, "doctor", "--state-dir", dir)
	if code != exitFailure {
		t.Fatalf("exit %d: %s\n%s", code, out, errs)
	}
	first, second := strings.Index(out, "127.0.0.2"), strings.Index(out, "127.0.0.1")
	if first < 0 || second < 0 || first > second {
		t.Errorf("the newest failure (127.0.0.2) is not first:\n%s", out)
	}
	if !strings.Contains(out, "on "+ca) {
		t.Errorf("doctor does not name the CA of the failure:\n%s", out)
	}
	if !strings.Contains(out, "[FAIL] connect") || strings.Contains(out, "The CA answers now") {
		t.Errorf("the CA is still down, and doctor's re-check should say so:\n%s", out)
	}
	start()
	_, out, _ = issueRun(t, nil, "doctor", "127.0.0.2", "--state-dir", dir)
	for _, want := range []string{"[ ok ] connect", "[ ok ] directory", "The CA answers now"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor after the CA came back lacks %q:\n%s", want, out)
		}
	}
}

// TestDoctorExplainsTheWizardRehearsal: the wizard's recorder (the one
// wizardDeps wires) keeps a failed staging rehearsal, and doctor then
// explains that failure, on Let's Encrypt staging, not "no failures
// stored".
func TestDoctorExplainsTheWizardRehearsal(t *testing.T) {
	dir := t.TempDir()
	st, err := store.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	record := wizardRecordFailure(&acmeflow.Engine{Store: st})
	failure := &acmeflow.Error{Step: acmeflow.StepDirectory, Err: &net.DNSError{Err: "no such host", Name: "acme-staging-v02.api.letsencrypt.org", IsNotFound: true}}
	req := acmeflow.Request{Identifiers: []netip.Addr{netip.MustParseAddr("81.2.69.160")}, Challenge: acmeflow.ChallengeHTTP01}
	att := diagnosis.AttemptOf(&req, nil, cachoice.Staging)
	att.StateDir = dir
	if err := record("81.2.69.160", diagnosis.WithEvidence(failure, att.Evidence(time.Now()))); err != nil {
		t.Fatal(err)
	}
	code, out, errs := issueRun(t, nil, "doctor", "--state-dir", dir, "--offline")
	if code != exitFailure || strings.Contains(out, "No failures stored") {
		t.Fatalf("exit %d:\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"[ca-dns]", "on Let's Encrypt staging", "acme-staging-v02.api.letsencrypt.org"} {
		if !strings.Contains(out, want) {
			t.Errorf("doctor lacks %q:\n%s", want, out)
		}
	}
}

// TestIssueOnAFullDisk: the state directory's file system is full (a
// tmpfs the test fills): issue says the disk is full, and that the
// failure could not be recorded, instead of sending the user to a doctor
// that would find nothing.
func TestIssueOnAFullDisk(t *testing.T) {
	if os.Geteuid() != 0 {
		testkit.Need(t, false, "mounting a small tmpfs needs root")
	}
	dir := filepath.Join(t.TempDir(), "state")
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", dir).CombinedOutput(); err != nil {
		testkit.Need(t, false, fmt.Sprintf("mount tmpfs: %v: %s", err, out))
	}
	t.Cleanup(func() { _ = exec.Command("umount", "-l", dir).Run() })
	// Fill it.
	f, err := os.Create(filepath.Join(dir, "filler"))
	if err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	for {
		if _, err := f.Write(buf); err != nil {
			break
		}
	}
	f.Close()
	code, _, errs := issueRun(t, nil, "issue", "--ip", "127.0.0.1", "--ca", "local", "--state-dir", dir, "--agree-tos", "--wait", "0s")
	if code != exitFailure {
		t.Fatalf("exit %d on a full disk:\n%s", code, errs)
	}
	for _, want := range []string{"[disk-full]", "could not be recorded"} {
		if !strings.Contains(errs, want) {
			t.Errorf("issue on a full disk lacks %q:\n%s", want, errs)
		}
	}
	if strings.Contains(errs, `Run "ipcert doctor`) {
		t.Errorf("issue sends the user to doctor, which cannot know the failure:\n%s", errs)
	}
}
