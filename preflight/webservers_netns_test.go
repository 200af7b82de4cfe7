package preflight

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"testing"
)

// TestWebServerInAnotherNetns: an nginx in another network namespace (a
// container, a test's namespace) serves none of this machine's ports, so
// it is not "running" here; one in this namespace is.
func TestWebServerInAnotherNetns(t *testing.T) {
	root := t.TempDir()
	mk := func(pid, comm, ns string) {
		t.Helper()
		d := filepath.Join(root, "proc", pid)
		if err := os.MkdirAll(filepath.Join(d, "ns"), 0o755); err != nil {
			t.Fatal(err)
		}
		if comm != "" {
			if err := os.WriteFile(filepath.Join(d, "comm"), []byte(comm+"\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		if err := os.Symlink(ns, filepath.Join(d, "ns", "net")); err != nil {
			t.Fatal(err)
		}
	}
	mk("self", "", "net:[4026531840]")
	mk("101", "nginx", "net:[4026531840]")
	mk("202", "nginx", "net:[4026532999]")
	env := Env{Root: root, LookPath: func(string) (string, error) { return "", os.ErrNotExist }}
	var got []int
	for _, ws := range FindWebServers(context.Background(), env) {
		if ws.Name == "nginx" {
			got = ws.PIDs
		}
	}
	if !slices.Equal(got, []int{101}) {
		t.Errorf("nginx PIDs %v, want only 101 (202 is in another network namespace)", got)
	}
}
