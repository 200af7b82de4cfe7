package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestValidationHooks: --pre-hook runs right before the CA validates and
// --post-hook when validation is over; both are kept for renewals and run
// again at one; a pre hook that fails stops the order before the CA is
// asked to validate, and the post hook still runs.
func TestValidationHooks(t *testing.T) {
	dir := t.TempDir()
	state := filepath.Join(dir, "state")
	pre, post := filepath.Join(dir, "pre"), filepath.Join(dir, "post")
	args := []string{"issue", "--ip", "127.0.0.1", "--ca", "local", "--agree-tos", "--state-dir", state,
		"--pre-hook", "touch " + pre, "--post-hook", "touch " + post}
	code, out, errs := runCmd(t, args, nil)
	if code != 0 {
		t.Fatalf("issue: exit %d\n%s%s", code, errs, out)
	}
	for _, f := range []string{pre, post} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("the hook did not run: %v", err)
		}
	}
	if !strings.Contains(errs, "pre hook touch "+pre+": ok") {
		t.Errorf("issue does not say the pre hook ran:\n%s", errs)
	}
	r, err := os.ReadFile(filepath.Join(state, "certs", "127.0.0.1", "renewal.json"))
	if err != nil || !strings.Contains(string(r), `"pre_hooks"`) || !strings.Contains(string(r), `"post_hooks"`) {
		t.Fatalf("renewal.json keeps no validation hooks: %v\n%s", err, r)
	}
	os.Remove(pre)
	os.Remove(post)
	if code, out, errs := runCmd(t, []string{"renew", "--force", "--state-dir", state}, nil); code != exitRenewRenewed {
		t.Fatalf("renew --force: exit %d\n%s%s", code, errs, out)
	}
	for _, f := range []string{pre, post} {
		if _, err := os.Stat(f); err != nil {
			t.Errorf("the renewal did not run the hook: %v", err)
		}
	}

	os.Remove(post)
	state2 := filepath.Join(dir, "state2")
	code, out, errs = runCmd(t, []string{"issue", "--ip", "127.0.0.1", "--ca", "local", "--agree-tos", "--state-dir", state2,
		"--pre-hook", "exit 3", "--post-hook", "touch " + post}, nil)
	if code != exitFailure || !strings.Contains(errs, "--pre-hook exit 3 failed") {
		t.Errorf("a failing pre hook: exit %d\n%s%s", code, errs, out)
	}
	if strings.Contains(errs, "Asking the CA to validate") {
		t.Error("the CA was asked to validate although the pre hook failed")
	}
	if _, err := os.Stat(post); err != nil {
		t.Errorf("the post hook did not run after the failed pre hook: %v", err)
	}
	if code, _, errs := runCmd(t, append(args[:len(args)-2:len(args)-2], "--post-hook", ""), nil); code != exitUsage || !strings.Contains(errs, "--post-hook is empty") {
		t.Errorf("an empty post hook: exit %d\n%s", code, errs)
	}
}
