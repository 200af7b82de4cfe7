package cli

import (
	"bytes"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/deploy"
	"github.com/ipcert/ipcert/internal/store"
)

// TestStatusJSONStreamedAndKeysOnRequest: status --json is written
// certificate by certificate in the shape of deploy.StatusReport, and the
// private keys are checked against their certificates only with
// --verify-keys (at thousands of certificates that check was most of
// status's time).
func TestStatusJSONStreamedAndKeysOnRequest(t *testing.T) {
	dir := t.TempDir()
	renewIssueLocal(t, dir, "--name", "a")
	st := renewIssueLocal(t, dir, "--name", "b", "--verify", "127.0.0.1:8443")
	code, out, errs := issueRun(t, nil, "status", "--json", "--state-dir", dir)
	if code != exitOK {
		t.Fatalf("status --json: exit %d: %s", code, errs)
	}
	var rep deploy.StatusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("status --json is not one JSON document: %v\n%s", err, out)
	}
	if rep.StateDir != st.Root() || len(rep.Certificates) != 2 || rep.Certificates[1].VerifyAddr != "127.0.0.1:8443" || rep.Certificates[0].Serial == "" {
		t.Fatalf("status --json: %+v", rep)
	}
	// A key that is not the certificate's (swapped by hand).
	v, err := st.CurrentVersion("a")
	if err != nil {
		t.Fatal(err)
	}
	key, _ := acmeflow.GenerateKey("ec256")
	pemKey, _ := acmeflow.EncodeKey(key)
	if err := os.WriteFile(filepath.Join(v.Dir, store.KeyFile), pemKey, 0o600); err != nil {
		t.Fatal(err)
	}
	if code, _, _ := issueRun(t, nil, "status", "--state-dir", dir); code != exitOK {
		t.Errorf("without --verify-keys the key is not read: want exit 0, got %d", code)
	}
	code, out, _ = issueRun(t, nil, "status", "--verify-keys", "--state-dir", dir)
	if code != exitFailure || !strings.Contains(out, "PROBLEM") {
		t.Fatalf("--verify-keys must find the wrong key: exit %d\n%s", code, out)
	}
}

// TestStatusShowsFailedFirstIssuance: a first issuance that failed left
// no certificate, so status said nothing about it (doctor knew).
func TestStatusShowsFailedFirstIssuance(t *testing.T) {
	dir := t.TempDir()
	// A CA that is down for maintenance.
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusServiceUnavailable)
	}))
	defer srv.Close()
	ca := srv.URL + "/dir"
	root := filepath.Join(t.TempDir(), "root.pem")
	os.WriteFile(root, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644)
	if code, _, errs := issueRun(t, nil, "issue", "--ip", "127.0.0.1", "--ca", ca, "--ca-root", root, "--state-dir", dir, "--agree-tos", "--quiet", "--name", "nope"); code != exitFailure {
		t.Fatalf("issue against a closed port: exit %d: %s", code, errs)
	}
	code, out, _ := issueRun(t, nil, "status", "--state-dir", dir)
	if code != exitFailure || !strings.Contains(out, "nope") || !strings.Contains(out, "NOT ISSUED") || !strings.Contains(out, "ipcert doctor nope") {
		t.Fatalf("status after a failed first issuance: exit %d\n%s", code, out)
	}
	code, out, _ = issueRun(t, nil, "status", "--json", "--state-dir", dir)
	var rep deploy.StatusReport
	if err := json.Unmarshal([]byte(out), &rep); err != nil || len(rep.NotIssued) != 1 || rep.NotIssued[0].Name != "nope" {
		t.Fatalf("status --json: exit %d %v\n%s", code, err, out)
	}
}

// TestStatusJSONFromIndexAsFromFiles: once the status index holds the
// certificates, status --json prints what it prints from the files
// (--verify-keys reads them all), and a certificate changed since is
// shown as changed.
func TestStatusJSONFromIndexAsFromFiles(t *testing.T) {
	dir := t.TempDir()
	renewIssueLocal(t, dir, "--name", "a")
	st := renewIssueLocal(t, dir, "--name", "b", "--verify", "127.0.0.1:8443")
	validFor := regexp.MustCompile(`"valid_for_ns": -?[0-9]+`)
	status := func(args ...string) string {
		t.Helper()
		code, out, errs := issueRun(t, nil, append([]string{"status", "--json", "--state-dir", dir}, args...)...)
		if code != exitOK {
			t.Fatalf("status --json %s: exit %d: %s", args, code, errs)
		}
		return validFor.ReplaceAllString(out, `"valid_for_ns": N`)
	}
	// Folders are cached once they are older than the racy window.
	deadline := time.Now().Add(20 * time.Second)
	for {
		status()
		if data, err := os.ReadFile(filepath.Join(dir, "status-index")); err == nil && bytes.Contains(data, []byte(`"name": "a"`)) && bytes.Contains(data, []byte(`"name": "b"`)) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("status never wrote a status-index with both certificates")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got, want := status(), status("--verify-keys"); got != want {
		t.Fatalf("from the index:\n%s\nfrom the files:\n%s", got, want)
	}
	r, err := st.LoadRenewal("a")
	if err != nil {
		t.Fatal(err)
	}
	r.Reload = "nginx"
	if err := st.SaveRenewal(r); err != nil {
		t.Fatal(err)
	}
	got := status()
	if got != status("--verify-keys") || !strings.Contains(got, `"reload": "nginx"`) {
		t.Fatalf("after a change:\n%s", got)
	}
}
