package cli

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/deploy"
	"github.com/ipcert/ipcert/internal/testkit"
)

// TestRenewVerifyWaitsForReload: the renewal's deploy hook reloads a real
// nginx, which returns before the new workers serve; the check after it
// must wait for the new certificate instead of failing the job with
// "serves serial OLD, not the stored current NEW" (seen 5 of 5 times
// under a real systemd with Debian's nginx.service).
func TestRenewVerifyWaitsForReload(t *testing.T) {
	nginx := testkit.NeedProgram(t, "nginx", "nginx")
	testkit.NeedRoot(t, "running nginx's workers")
	dir := filepath.Join(t.TempDir(), "state")
	port, err := acmeflow.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	verify := "127.0.0.1:" + strconv.Itoa(port)
	conf := filepath.Join(t.TempDir(), "nginx.conf")
	reload := fmt.Sprintf("%s -c %s -s reload", nginx, conf)
	st := renewIssueLocal(t, dir, "--name", "box", "--deploy-hook", reload, "--verify", verify)
	cur := st.CurrentDir("box")
	run := filepath.Dir(conf)
	os.WriteFile(conf, []byte(fmt.Sprintf(`worker_processes 2;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path %[1]s/body; proxy_temp_path %[1]s/proxy; fastcgi_temp_path %[1]s/fcgi;
  uwsgi_temp_path %[1]s/uwsgi; scgi_temp_path %[1]s/scgi;
  server {
    listen 127.0.0.1:%[2]d ssl;
    ssl_certificate %[3]s/fullchain.pem;
    ssl_certificate_key %[3]s/privkey.pem;
    location / { return 200 "ok\n"; }
  }
}
`, run, port, cur)), 0o644)
	if out, err := exec.Command(nginx, "-c", conf).CombinedOutput(); err != nil {
		t.Fatalf("start nginx: %v\n%s", err, out)
	}
	t.Cleanup(func() { exec.Command(nginx, "-c", conf, "-s", "stop").Run() })
	first, err := st.CurrentVersion("box")
	if err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, func() bool {
		res, _ := deploy.Verify(t.Context(), verify, deploy.VerifyOptions{Expected: first.Leaf})
		return res.Outcome == deploy.Match
	})
	for i := range 3 {
		code, out, errs := issueRun(t, nil, "renew", "--force", "--state-dir", dir)
		if code != exitRenewRenewed {
			t.Fatalf("renewal %d with reload and verify: exit %d\n%s\n%s", i+1, code, out, errs)
		}
		if !strings.Contains(errs, "serves the new certificate") {
			t.Errorf("the log does not say the new certificate is served:\n%s", errs)
		}
		r, _ := st.LoadRenewal("box")
		if r.LastError != nil {
			t.Fatalf("renewal %d recorded an error: %+v", i+1, r.LastError)
		}
	}
}

func waitFor(t *testing.T, bound time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within %s", bound)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
