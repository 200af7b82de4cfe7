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

func TestHookWords(t *testing.T) {
	for in, want := range map[string][]string{
		`/bin/sh /home/u/x.sh`:               {"/bin/sh", "/home/u/x.sh"},
		`"/home/u/my script.sh" --flag`:      {"/home/u/my script.sh", "--flag"},
		`X=1 Y='a b' /home/u/x`:              {"1", "a b", "/home/u/x"},
		`true && /home/u/x;/home/u/y|z`:      {"true", "/home/u/x", "/home/u/y", "z"},
		`a\ b\"c 'q"t' "d\"e\\f\$g"`:         {`a b"c`, `q"t`, `d"e\f$g`},
		`echo $(/home/u/x) "$(/home/u/y)"`:   {"echo", "/home/u/x", "/home/u/y"},
		"run `/home/u/x` >/var/log/o 2>&1 &": {"run", "/home/u/x", "/var/log/o", "2", "1"},
		`(cd /srv && ./go.sh) || exit 1`:     {"cd", "/srv", "./go.sh", "exit", "1"},
		`/usr/bin/env FOO=bar /home/u/x`:     {"/usr/bin/env", "bar", "/home/u/x"},
	} {
		if got := HookWords(in); strings.Join(got, "\x00") != strings.Join(want, "\x00") {
			t.Errorf("HookWords(%q) = %q, want %q", in, got, want)
		}
	}
}

// Issue 22: a hook ran another user's script as root when written any way
// but the bare path. Every word that names a file is checked.
func TestHooksRefuseAnotherUsersScriptEveryWay(t *testing.T) {
	testkit.NeedRoot(t, "the ownership check (it applies when running as root)")
	dir := t.TempDir()
	marker := filepath.Join(dir, "ran")
	theirs := filepath.Join(dir, "home")
	os.Mkdir(theirs, 0o755)
	os.Chown(theirs, 65534, 65534)
	bad := filepath.Join(theirs, "deploy.sh")
	if err := os.WriteFile(bad, []byte("#!/bin/sh\necho ran >> "+marker+"\n"), 0o755); err != nil {
		t.Fatal(err)
	}
	os.Chown(bad, 65534, 65534)
	for _, hook := range []string{
		bad,
		"/bin/sh " + bad,
		"sh " + bad,
		`"` + bad + `"`,
		"'" + bad + "' --now",
		"X=1 " + bad,
		"true && " + bad,
		"true; " + bad,
		"echo | " + bad,
		"sh -c " + bad,
		"echo $(" + bad + ")",
		"cd " + theirs + " && ./deploy.sh",
		"cp $IPCERT_FULLCHAIN " + theirs + "/cert.pem",
	} {
		res := RunHooks(context.Background(), HookSpec{Commands: []string{hook}}, CertPaths{})
		if len(res) != 1 || res[0].OK() || !strings.Contains(res[0].Error, "not run") || !strings.Contains(res[0].Error, "user nobody") {
			t.Errorf("%q: %+v", hook, res)
		}
		if err := CheckHookProgram(hook); err == nil {
			t.Errorf("%q: CheckHookProgram passed it", hook)
		}
	}
	if data, err := os.ReadFile(marker); err == nil {
		t.Errorf("another user's script ran as root: %q", data)
	}
	// What root's hooks usually look like passes.
	for _, hook := range []string{
		"systemctl reload nginx >/dev/null 2>&1",
		"/usr/bin/install -m 0644 \"$IPCERT_FULLCHAIN\" /tmp/ipcert-test-not-there.pem",
		"X=1 /bin/true && /bin/sh -c 'exit 0'",
	} {
		if err := CheckHookProgram(hook); err != nil {
			t.Errorf("%q refused: %v", hook, err)
		}
	}
}
