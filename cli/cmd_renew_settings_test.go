package cli

import (
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/store"
)

// TestRenewRepeatsWebrootSettings: --webroot-port was not stored (every
// renewal of such a certificate failed: the validator dialled a random
// port) and a relative --webroot was stored as given (renew runs from /).
func TestRenewRepeatsWebrootSettings(t *testing.T) {
	work := t.TempDir()
	t.Chdir(work)
	if err := os.Mkdir("www", 0o755); err != nil {
		t.Fatal(err)
	}
	port, err := acmeflow.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.FileServer(http.Dir(filepath.Join(work, "www")))}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	dir := filepath.Join(t.TempDir(), "state")
	st := renewIssueLocal(t, dir, "--webroot", "www", "--webroot-port", strconv.Itoa(port), "--name", "wr")
	r, err := st.LoadRenewal("wr")
	if err != nil {
		t.Fatal(err)
	}
	if r.WebRoot != filepath.Join(work, "www") || r.WebRootPort != port {
		t.Fatalf("renewal.json keeps webroot %q and port %d, want %q and %d", r.WebRoot, r.WebRootPort, filepath.Join(work, "www"), port)
	}
	// As the timer runs it: from another directory.
	t.Chdir(t.TempDir())
	code, out, errs := issueRun(t, nil, "renew", "--force", "--state-dir", dir)
	if code != exitRenewRenewed {
		t.Fatalf("renew of a web-root certificate: exit %d\n%s\n%s", code, out, errs)
	}
}

// TestDeployHookVariableIsOneCommand: IPCERT_DEPLOY_HOOK='systemctl
// reload nginx' became three hooks (systemctl, reload, nginx).
func TestDeployHookVariableIsOneCommand(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	hook := "echo one, two > " + filepath.Join(t.TempDir(), "out")
	code, _, errs := issueRun(t, map[string]string{"IPCERT_DEPLOY_HOOK": hook},
		"issue", "--ip", "127.0.0.1", "--ca", "local", "--state-dir", dir, "--agree-tos", "--quiet")
	if code != exitOK {
		t.Fatalf("exit %d: %s", code, errs)
	}
	st, _ := store.Open(dir)
	r, err := st.LoadRenewal("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	if len(r.DeployHooks) != 1 || r.DeployHooks[0] != hook {
		t.Fatalf("IPCERT_DEPLOY_HOOK=%q stored as %q, want one hook", hook, r.DeployHooks)
	}
}

// TestParallelIssueWaitsForLock: ten `ipcert issue` runs at once on one
// state directory all succeed: each waits for the lock (--wait) instead
// of exiting 4 at once.
func TestParallelIssueWaitsForLock(t *testing.T) {
	bin := renewBuild(t)
	dir := filepath.Join(t.TempDir(), "state")
	var wg sync.WaitGroup
	errs := make([]string, 10)
	for i := range errs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			cmd := exec.Command(bin, "issue", "--ip", "127.0.0.1", "--ca", "local", "--state-dir", dir,
				"--agree-tos", "--quiet", "--name", fmt.Sprintf("p%d", i))
			cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
			if out, err := cmd.CombinedOutput(); err != nil {
				errs[i] = fmt.Sprintf("run %d: %v: %s", i, err, out)
			}
		}()
	}
	wg.Wait()
	if msg := strings.Join(errs, ""); msg != "" {
		t.Fatal(msg)
	}
	st, _ := store.Open(dir)
	names, _ := st.Names()
	if len(names) != 10 {
		t.Fatalf("%d certificates stored, want 10: %v", len(names), names)
	}
}

// TestSnippetRefusesBrokenCurrent: with current pointing at a missing
// version, snippet --write wrote a config pointing at the broken link.
func TestSnippetRefusesBrokenCurrent(t *testing.T) {
	dir := t.TempDir()
	st := renewIssueLocal(t, dir, "--name", "b")
	cur := st.CurrentDir("b")
	if err := os.Remove(cur); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("versions/99", cur); err != nil {
		t.Fatal(err)
	}
	// --write would install into this machine's nginx: it must refuse
	// before writing anything.
	conf := "/etc/nginx/conf.d/ipcert-b.conf"
	_, before := os.Stat(conf)
	code, _, errs := issueRun(t, nil, "snippet", "nginx", "b", "--write", "--state-dir", dir)
	if _, after := os.Stat(conf); after == nil && before != nil {
		os.Remove(conf)
		t.Errorf("a config was written to %s", conf)
	}
	if code != exitFailure || !strings.Contains(errs, "renew --force b") {
		t.Fatalf("snippet --write on a broken current: exit %d: %s", code, errs)
	}
}
