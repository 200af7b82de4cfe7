package deploy

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestRunHooks(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "combined.pem"), []byte("x"), 0o600)
	paths := CertPathsIn("n1", []string{"192.0.2.1", "2001:db8::1"}, dir)
	out := filepath.Join(t.TempDir(), "order")
	spec := HookSpec{
		Commands: []string{
			`echo "$IPCERT_NAME|$IPCERT_IDENTIFIERS|$IPCERT_CERT|$IPCERT_KEY|$IPCERT_FULLCHAIN|$IPCERT_CHAIN|$IPCERT_COMBINED|$IPCERT_DIR"; echo hook1 >> ` + out,
			`echo oops >&2; exit 3`,
			"",
		},
		Reload:  Cmd{Path: "/bin/sh", Args: []string{"-c", "echo reload >> " + out + "; echo reloaded $IPCERT_NAME"}},
		Timeout: 10 * time.Second,
	}
	res := RunHooks(context.Background(), spec, paths)
	if len(res) != 3 {
		t.Fatalf("%d results, want 3 (empty command skipped)", len(res))
	}
	want := "n1|192.0.2.1 2001:db8::1|" + dir + "/cert.pem|" + dir + "/privkey.pem|" + dir + "/fullchain.pem|" + dir + "/chain.pem|" + dir + "/combined.pem|" + dir
	if !res[0].OK() || strings.TrimSpace(res[0].Output) != want {
		t.Errorf("hook 1: %v %q\nwant %q", res[0].Err, res[0].Output, want)
	}
	if res[1].OK() || !strings.Contains(res[1].Output, "oops") || !strings.Contains(res[1].Error, "exit status 3") || res[1].Command != "echo oops >&2; exit 3" {
		t.Errorf("hook 2: %+v", res[1])
	}
	if !res[2].OK() || strings.TrimSpace(res[2].Output) != "reloaded n1" {
		t.Errorf("reload: %+v", res[2])
	}
	order, _ := os.ReadFile(out)
	if string(order) != "hook1\nreload\n" {
		t.Errorf("order %q: a failed hook must not stop the reload, which runs last", order)
	}
}

// TestRunHooksTimeout: a hung hook is killed with its background children
// at the timeout, and the run goes on.
func TestRunHooksTimeout(t *testing.T) {
	start := time.Now()
	res := RunHooks(context.Background(), HookSpec{
		Commands: []string{"sleep 30 & sleep 30; echo never", "echo next"},
		Timeout:  300 * time.Millisecond,
	}, CertPathsIn("n", []string{"192.0.2.1"}, t.TempDir()))
	if el := time.Since(start); el > 5*time.Second {
		t.Fatalf("took %v: the timeout did not kill the hook", el)
	}
	if !res[0].TimedOut || res[0].OK() || !strings.Contains(res[0].Error, "did not finish within 300ms") {
		t.Errorf("first: %+v", res[0])
	}
	if !res[1].OK() || strings.TrimSpace(res[1].Output) != "next" {
		t.Errorf("second: %+v", res[1])
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res = RunHooks(ctx, HookSpec{Commands: []string{"true"}}, CertPaths{})
	if len(res) != 1 || res[0].OK() || !strings.Contains(res[0].Error, "not run") {
		t.Errorf("cancelled: %+v", res)
	}
}

func TestExecRunnerOutputLimit(t *testing.T) {
	out, err := ExecRunner{}.Run(context.Background(), Cmd{Path: "/bin/sh", Args: []string{"-c", "head -c 200000 /dev/zero | tr '\\0' x"}})
	if err != nil {
		t.Fatal(err)
	}
	if len(out) > MaxOutput+100 || !strings.Contains(string(out), "more bytes of output not kept") {
		t.Errorf("kept %d bytes", len(out))
	}
	_, err = ExecRunner{}.Run(context.Background(), Cmd{Path: "ipcert-no-such-program"})
	if err == nil || !strings.Contains(err.Error(), "not installed") {
		t.Errorf("missing program: %v", err)
	}
}

func TestCmdString(t *testing.T) {
	c := Cmd{Path: "nginx", Args: []string{"-t", "-c", "/a b/x.conf", "it's"}}
	if got := c.String(); got != `nginx -t -c '/a b/x.conf' 'it'\''s'` {
		t.Errorf("%s", got)
	}
}
