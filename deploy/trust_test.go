package deploy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/ipcert/ipcert/internal/testkit"
)

// A deploy hook's program that another user can change is not run as root
// (issue 12): renewal.json may name a script in someone's home.
func TestHooksRefuseAnotherUsersProgram(t *testing.T) {
	testkit.NeedRoot(t, "the ownership check (it applies when running as root)")
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	theirs := filepath.Join(dir, "home")
	os.Mkdir(theirs, 0o755)
	os.Chown(theirs, 65534, 65534)
	bad := filepath.Join(theirs, "deploy.sh")
	good := filepath.Join(dir, "deploy.sh")
	for _, p := range []string{bad, good} {
		if err := os.WriteFile(p, []byte("#!/bin/sh\necho \"$0\" >> "+marker+"\n"), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	res := RunHooks(context.Background(), HookSpec{Commands: []string{bad + " --flag", good}}, CertPaths{})
	if len(res) != 2 {
		t.Fatalf("%d results", len(res))
	}
	if res[0].OK() || !strings.Contains(res[0].Error, "not run") || !strings.Contains(res[0].Error, "belongs to user nobody") {
		t.Errorf("another user's script: %+v", res[0])
	}
	if !res[1].OK() {
		t.Errorf("root's own script: %+v", res[1])
	}
	data, _ := os.ReadFile(marker)
	if strings.Contains(string(data), bad) || !strings.Contains(string(data), good) {
		t.Errorf("ran: %q", data)
	}
}
