package deploy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/internal/testkit"
)

// needUser returns the uid and gid of a system user the test runs a
// server as (root needed to switch to it); it skips, or fails with
// CI=true, when either is missing.
func needUser(t *testing.T, name string) (uid, gid int) {
	t.Helper()
	testkit.NeedRoot(t, "running a server as user "+name)
	u, err := user.Lookup(name)
	testkit.Need(t, err == nil, "there is no user "+name+" (apt-get install -y caddy creates it)")
	uid, _ = strconv.Atoi(u.Uid)
	gid, _ = strconv.Atoi(u.Gid)
	return uid, gid
}

// TestCaddyAsItsOwnUser runs Debian's caddy as user caddy, as
// caddy.service does. Pointed at ipcert's state (0700 root) its config
// test fails with "permission denied" and Install refuses the snippet;
// pointed at the copy CopyForGroup keeps for group caddy it passes, the
// server serves the certificate, and after a renewal the built-in deploy
// hook refreshes the copy (still readable by caddy only through its
// group) before the reload, which serves the new one.
func TestCaddyAsItsOwnUser(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers: not in -short")
	}
	bin := testkit.NeedProgram(t, "caddy", "caddy")
	testkit.NeedProgram(t, "runuser", "util-linux")
	uid, gid := needUser(t, "caddy")

	ti := newIssuer(t)
	idents := mustAddrs("127.0.0.1")
	name := store.NameFor(acmeflow.AddrStrings(idents))
	first := ti.issue(t, name, idents, false)
	paths := CertPathsIn(name, acmeflow.AddrStrings(idents), ti.eng.Store.CurrentDir(name))

	// A prefix caddy can read: the test's temporary directories are 0700.
	p := t.TempDir()
	for _, d := range []string{p, filepath.Dir(p)} {
		os.Chmod(d, 0o755)
	}
	home, webroot := filepath.Join(p, "home"), filepath.Join(p, "www")
	os.MkdirAll(home, 0o755)
	os.Chown(home, uid, gid)
	os.MkdirAll(webroot, 0o755)
	os.WriteFile(filepath.Join(webroot, "index.html"), []byte("home page"), 0o644)
	admin := "localhost:" + strconv.Itoa(testkit.FreePort(t))
	httpsPort, httpPort := testkit.FreePort(t), testkit.FreePort(t)
	conf := filepath.Join(p, "Caddyfile")
	os.WriteFile(conf, []byte(fmt.Sprintf("{\n\tadmin %s\n\thttp_port %d\n\tauto_https disable_redirects\n\tstorage file_system %s\n}\n\nimport %s/ipcert-*.caddy\n", admin, httpPort, filepath.Join(home, "data"), p)), 0o644)
	env := []string{"HOME=" + home, "XDG_DATA_HOME=" + home, "XDG_CONFIG_HOME=" + home}
	l := Layout{Kind: Caddy, ConfigPath: filepath.Join(p, "ipcert-"+name+".caddy"), User: "caddy",
		Test: Cmd{Path: bin, Args: []string{"validate", "--config", conf, "--adapter", "caddyfile"}, Env: env}}
	snippet := func(certDir, group string) []byte {
		b, err := Snippet(Caddy, SnippetParams{Name: name, Identifiers: []string{"127.0.0.1"}, CertDir: certDir, CopyGroup: group, WebRoot: webroot, HTTPSPort: httpsPort, HTTPPort: httpPort})
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	if got := l.TestCmd(); got.Path != "runuser" || !strings.Contains(got.String(), "-u caddy -- "+bin+" validate") {
		t.Fatalf("the config test must run as caddy: %s", got)
	}

	// The state itself: caddy cannot read it.
	_, err := Install(context.Background(), Installer{Layout: l, Content: snippet(paths.Dir, ""), BackupDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "permission denied") {
		t.Fatalf("a snippet naming ipcert's 0700 state must fail caddy's own test as user caddy, got %v", err)
	}

	// The copy for group caddy.
	copyDir := filepath.Join(p, "copy")
	created, err := CopyForGroup(paths, copyDir, "caddy")
	if err != nil || !created {
		t.Fatalf("copy: %v (created %v)", err, created)
	}
	res, err := Install(context.Background(), Installer{Layout: l, Content: snippet(copyDir, "caddy"), BackupDir: t.TempDir()})
	if err != nil || !res.Tested {
		t.Fatalf("install with the copy: %v %+v", err, res)
	}

	logf, _ := os.Create(filepath.Join(p, "server.log"))
	cmd := exec.Command(bin, "run", "--config", conf, "--adapter", "caddyfile")
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{uint32(gid)}}}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
	addr := hostPort(idents[0], httpsPort)
	opts := VerifyOptions{Roots: ti.roots, Expected: first.Version.Leaf}
	if r := waitVerify(t, addr, opts, func(r VerifyResult) bool { return r.Outcome != Unreachable }, logf.Name()); r.Outcome != Match || !r.Accepted {
		t.Fatalf("caddy as user caddy: %s (%s)", r.Outcome, r.Reason)
	}

	// A renewal: the built-in hook refreshes the copy, then the reload.
	second := ti.issue(t, name, idents, false)
	spec := HookSpec{Commands: []string{CopyHook("caddy", copyDir)}, Timeout: 20 * time.Second,
		Reload: Cmd{Path: bin, Args: []string{"reload", "--config", conf, "--adapter", "caddyfile", "--address", admin, "--force"}, Env: env}}
	for _, h := range RunHooks(context.Background(), spec, paths) {
		if !h.OK() {
			t.Fatalf("hook %s: %v\n%s", h.Command, h.Err, h.Output)
		}
	}
	opts.Expected = second.Version.Leaf
	waitVerify(t, addr, opts, func(r VerifyResult) bool { return r.Outcome == Match }, logf.Name())
	for _, f := range []string{copyDir, filepath.Join(copyDir, "privkey.pem"), filepath.Join(copyDir, "fullchain.pem")} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		want := os.FileMode(0o640)
		if fi.IsDir() {
			want = 0o750
		}
		if fi.Mode().Perm() != want || st.Uid != 0 || int(st.Gid) != gid {
			t.Errorf("%s: mode %o uid %d gid %d, want %o root:caddy", f, fi.Mode().Perm(), st.Uid, st.Gid, want)
		}
	}
}
