package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipcert/ipcert/internal/store"
)

// TestDeployRerunsOnlyTheDeployStep: after a renewal whose deploy hook
// failed, the advice names "ipcert deploy NAME", which runs the hooks again
// for the current certificate without issuing a new one (before, the advice
// was "ipcert renew --force", which issues another certificate).
func TestDeployRerunsOnlyTheDeployStep(t *testing.T) {
	dir := t.TempDir()
	ok := filepath.Join(t.TempDir(), "fixed")
	ran := filepath.Join(t.TempDir(), "ran")
	hook := "test -f " + ok + " && echo $IPCERT_NAME >> " + ran
	if code, _, errs := verifyRun(t, "issue", "--ca", "local", "--state-dir", dir, "--agree-tos", "--quiet", "--ip", "127.0.0.1", "--name", "web", "--deploy-hook", hook); code != exitOK {
		t.Fatalf("issue: %s", errs)
	}
	verifyRun(t, "renew", "--force", "web", "--state-dir", dir)
	st, _ := store.Open(dir)
	r, _ := st.LoadRenewal("web")
	if r.LastError == nil || r.LastError.Step != "deploy" || !strings.Contains(r.LastError.Fix, "ipcert deploy web") {
		t.Fatalf("want a deploy failure whose fix is ipcert deploy: %+v", r.LastError)
	}
	before, _ := st.CurrentVersion("web")

	// Still broken: exit 1, nothing issued.
	if code, _, errs := verifyRun(t, "deploy", "web", "--state-dir", dir); code != exitFailure || !strings.Contains(errs, "deploy hook") {
		t.Errorf("still failing: exit %d %s", code, errs)
	}
	os.WriteFile(ok, nil, 0o644)
	code, out, errs := verifyRun(t, "deploy", "127.0.0.1", "--state-dir", dir)
	if code != exitOK || !strings.Contains(out, "Ran the deploy hooks of web (version 2)") || !strings.Contains(out, "Cleared the stored deploy failure") {
		t.Fatalf("exit %d\n%s\n%s", code, out, errs)
	}
	after, _ := st.CurrentVersion("web")
	if after.N != before.N || !after.Leaf.Equal(before.Leaf) {
		t.Errorf("deploy issued a new certificate: version %d -> %d", before.N, after.N)
	}
	if b, _ := os.ReadFile(ran); string(b) != "web\n" {
		t.Errorf("hook ran %q", b)
	}
	if r, _ := st.LoadRenewal("web"); r.LastError != nil {
		t.Errorf("the stored deploy failure is still there: %+v", r.LastError)
	}
}
