package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestRemove: ipcert remove stops renewals of a certificate and keeps its
// files aside, saying where; an unknown name changes nothing.
func TestRemove(t *testing.T) {
	state := t.TempDir()
	name := "rm-test"
	if code, out, errs := runCmd(t, []string{"issue", "--ip", "127.0.0.1", "--name", name, "--ca", "local", "--agree-tos", "--state-dir", state, "--quiet"}, nil); code != 0 {
		t.Fatalf("issue: exit %d\n%s%s", code, errs, out)
	}
	if code, _, errs := runCmd(t, []string{"remove", "no-such-cert", "--state-dir", state}, nil); code != exitUsage {
		t.Errorf("remove of an unknown name: exit %d\n%s", code, errs)
	}
	code, out, errs := runCmd(t, []string{"remove", name, "--revoke", "--state-dir", state}, nil)
	if code != 0 {
		t.Fatalf("remove: exit %d\n%s%s", code, errs, out)
	}
	if !strings.Contains(errs, "local test CA: nothing to revoke") || !strings.Contains(out, "Removed "+name+": renewals stop") {
		t.Errorf("remove says:\n%s%s", errs, out)
	}
	if _, err := os.Stat(filepath.Join(state, "certs", name)); err == nil {
		t.Error("the certificate is still under certs/")
	}
	kept, _ := filepath.Glob(filepath.Join(state, "removed", name+"-*", "cert", "renewal.json"))
	if len(kept) != 1 || !strings.Contains(out, filepath.Dir(filepath.Dir(kept[0]))) {
		t.Errorf("the files are not kept where remove says: %v\n%s", kept, out)
	}
	if code, out, _ := runCmd(t, []string{"renew", "--force", "--state-dir", state}, nil); code != 0 || strings.Contains(out, name) {
		t.Errorf("renew after remove: exit %d\n%s", code, out)
	}
}
