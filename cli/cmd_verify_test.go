package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/deploy"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/internal/testkit"
)

func verifyRun(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, stdio{In: strings.NewReader(""), Out: &out, Err: &errb, Env: func(string) string { return "" }})
	return code, out.String(), errb.String()
}

// verifyIssue gets a certificate from the local CA into dir.
func verifyIssue(t *testing.T, dir string, ips ...string) {
	t.Helper()
	args := []string{"issue", "--ca", "local", "--state-dir", dir, "--agree-tos", "--quiet"}
	for _, ip := range ips {
		args = append(args, "--ip", ip)
	}
	if code, _, errs := verifyRun(t, args...); code != exitOK {
		t.Fatalf("issue: exit %d: %s", code, errs)
	}
}

// verifyServe serves the files of a stored version on 127.0.0.1, the way
// a web server that read them at its last reload would.
func verifyServe(t *testing.T, versionDir string) string {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(versionDir, store.FullChainFile), filepath.Join(versionDir, store.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
	return l.Addr().String()
}

func TestVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	verifyIssue(t, dir, "127.0.0.1")
	st, _ := store.Open(dir)
	v1, err := st.CurrentVersion("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	addr := verifyServe(t, v1.Dir)
	root := filepath.Join(st.CurrentDir("127.0.0.1"), store.RootFile)

	code, out, errs := verifyRun(t, "verify", addr, "--root", root, "--state-dir", dir)
	if code != exitOK || !strings.Contains(out, `MATCH: this is the stored current certificate of "127.0.0.1" (version 1)`) ||
		!strings.Contains(out, "A browser trusting the given root would accept it.") || !strings.Contains(out, "IP addresses  127.0.0.1") {
		t.Fatalf("match: exit %d\n%s\n%s", code, out, errs)
	}
	// Without the test root a browser says no, and the hint names it.
	code, out, _ = verifyRun(t, "verify", "--state-dir", dir, addr)
	if code != exitOK || !strings.Contains(out, "would NOT accept it") || !strings.Contains(out, "--root "+root) {
		t.Errorf("system roots: exit %d\n%s", code, out)
	}
	// A new version is current, the server was not reloaded: mismatch.
	// (Each --ca local run is a new CA, so the old certificate does not
	// chain to the new root.pem: only the outcome matters here.)
	verifyIssue(t, dir, "127.0.0.1")
	code, out, _ = verifyRun(t, "verify", addr, "--root", root, "--state-dir", dir, "--json")
	var got struct {
		Outcome        string `json:"outcome"`
		Reason         string `json:"reason"`
		ExpectedSerial string `json:"expected_serial"`
		Version        int    `json:"version"`
	}
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if code != exitVerifyMismatch || got.Outcome != string(deploy.Mismatch) || got.Version != 2 || !strings.Contains(got.Reason, "reload") {
		t.Errorf("mismatch: exit %d %+v", code, got)
	}
	// Nothing listening.
	closedPort, err := acmeflow.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	closed := net.JoinHostPort("127.0.0.1", strconv.Itoa(closedPort))
	code, out, _ = verifyRun(t, "verify", closed, "--state-dir", dir, "--timeout", "2s")
	if code != exitVerifyUnreachable || !strings.Contains(out, "UNREACHABLE") || !strings.Contains(out, "connection refused") {
		t.Errorf("unreachable: exit %d\n%s", code, out)
	}
	for _, bad := range [][]string{{"verify"}, {"verify", "example.com"}, {"verify", "127.0.0.1", "--root", filepath.Join(dir, "nope.pem")}, {"verify", "127.0.0.1", "--name", "a;b", "--state-dir", dir}} {
		if code, _, errs := verifyRun(t, bad...); code != exitUsage || errs == "" {
			t.Errorf("%v: exit %d %q", bad, code, errs)
		}
	}
}

// TestVerifyCommandRealNginx is the whole path from the command line: a
// certificate from the local CA, "ipcert snippet nginx" on free high ports,
// Debian's nginx started with it, and "ipcert verify" reporting a match;
// after a second issuance, a mismatch until the reload hook runs, then a
// match on the new version.
func TestVerifyCommandRealNginx(t *testing.T) {
	if testing.Short() {
		t.Skip("real servers: not in -short")
	}
	bin := testkit.NeedProgram(t, "nginx", "nginx")
	dir := t.TempDir()
	verifyIssue(t, dir, "127.0.0.1")
	name := "127.0.0.1"
	st, _ := store.Open(dir)

	prefix := t.TempDir()
	os.MkdirAll(filepath.Join(prefix, "conf.d"), 0o755)
	os.MkdirAll(filepath.Join(prefix, "tmp"), 0o755)
	httpsPort, err := acmeflow.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	httpPort := httpsPort
	for httpPort == httpsPort {
		if httpPort, err = acmeflow.FreePort("127.0.0.1"); err != nil {
			t.Fatal(err)
		}
	}
	code, snip, errs := verifyRun(t, "snippet", "nginx", name, "--state-dir", dir, "--webroot", prefix,
		"--https-port", strconv.Itoa(httpsPort), "--http-port", strconv.Itoa(httpPort))
	if code != exitOK {
		t.Fatalf("snippet: %d %s", code, errs)
	}
	os.WriteFile(filepath.Join(prefix, "conf.d", "ipcert.conf"), []byte(snip), 0o644)
	conf := filepath.Join(prefix, "nginx.conf")
	os.WriteFile(conf, []byte(fmt.Sprintf("daemon off;\npid %[1]s/nginx.pid;\nerror_log %[1]s/error.log;\nevents { worker_connections 64; }\nhttp {\n    access_log off;\n    client_body_temp_path %[1]s/tmp/b;\n    proxy_temp_path %[1]s/tmp/p;\n    fastcgi_temp_path %[1]s/tmp/f;\n    uwsgi_temp_path %[1]s/tmp/u;\n    scgi_temp_path %[1]s/tmp/s;\n    include %[1]s/conf.d/*.conf;\n}\n", prefix)), 0o644)
	base := []string{"-p", prefix + "/", "-c", conf, "-e", filepath.Join(prefix, "error.log")}
	cmd := exec.Command(bin, base...)
	nlog, err := os.Create(filepath.Join(prefix, "stderr.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer nlog.Close()
	cmd.Stdout, cmd.Stderr = nlog, nlog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() { cmd.Process.Signal(os.Interrupt); <-done })

	target := net.JoinHostPort("127.0.0.1", strconv.Itoa(httpsPort))
	root := filepath.Join(st.CurrentDir(name), store.RootFile)
	verifyUntil := func(want int, wantText string) {
		t.Helper()
		deadline := time.Now().Add(15 * time.Second)
		for {
			code, out, _ := verifyRun(t, "verify", target, "--state-dir", dir, "--root", root, "--timeout", "2s")
			if code == want && strings.Contains(out, wantText) {
				return
			}
			if time.Now().After(deadline) {
				logs, _ := os.ReadFile(filepath.Join(prefix, "error.log"))
				t.Fatalf("verify: exit %d, want %d with %q:\n%s\nnginx: %s", code, want, wantText, out, logs)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	verifyUntil(exitOK, `MATCH: this is the stored current certificate of "127.0.0.1" (version 1)`)

	verifyIssue(t, dir, "127.0.0.1")
	verifyUntil(exitVerifyMismatch, "MISMATCH")
	for _, h := range deploy.RunHooks(context.Background(), deploy.HookSpec{Reload: deploy.Cmd{Path: bin, Args: append(base, "-s", "reload")}},
		deploy.CertPathsIn(name, []string{"127.0.0.1"}, st.CurrentDir(name))) {
		if !h.OK() {
			t.Fatalf("reload hook: %v %s", h.Err, h.Output)
		}
	}
	verifyUntil(exitOK, `MATCH: this is the stored current certificate of "127.0.0.1" (version 2)`)
}

// verifyServeOn is verifyServe on a chosen address.
func verifyServeOn(t *testing.T, versionDir, addr string) {
	t.Helper()
	cert, err := tls.LoadX509KeyPair(filepath.Join(versionDir, store.FullChainFile), filepath.Join(versionDir, store.KeyFile))
	if err != nil {
		t.Fatal(err)
	}
	l, err := tls.Listen("tcp", addr, &tls.Config{Certificates: []tls.Certificate{cert}})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { l.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.(*tls.Conn).Handshake()
			c.Close()
		}
	}()
}

// TestVerifyChoosesAmongSeveral: several stored certificates cover
// 127.0.0.1. verify must compare with the one the address is meant to
// serve (renewal.json's verify address), else with the one it does serve,
// and say which it compared with; before, it took the alphabetically
// first name and reported a mismatch.
func TestVerifyChoosesAmongSeveral(t *testing.T) {
	dir := t.TempDir()
	issue := func(name string, extra ...string) {
		t.Helper()
		args := append([]string{"issue", "--ca", "local", "--state-dir", dir, "--agree-tos", "--quiet", "--ip", "127.0.0.1", "--name", name}, extra...)
		if code, _, errs := verifyRun(t, args...); code != exitOK {
			t.Fatalf("issue %s: exit %d: %s", name, code, errs)
		}
	}
	port, err := acmeflow.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	target := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	issue("alpn")
	issue("ren2", "--verify", target)
	st, _ := store.Open(dir)
	ren2, err := st.CurrentVersion("ren2")
	if err != nil {
		t.Fatal(err)
	}
	verifyServeOn(t, ren2.Dir, target)

	code, out, errs := verifyRun(t, "verify", target, "--state-dir", dir, "--root", filepath.Join(ren2.Dir, store.RootFile))
	if code != exitOK || !strings.Contains(out, `MATCH: this is the stored current certificate of "ren2" (version 1)`) ||
		!strings.Contains(out, `Compared with "ren2"`) {
		t.Fatalf("verify address: exit %d\n%s\n%s", code, out, errs)
	}

	// No verify address anywhere: the served certificate decides.
	r, _ := st.LoadRenewal("ren2")
	r.VerifyAddr = ""
	st.SaveRenewal(r)
	code, out, _ = verifyRun(t, "verify", target, "--state-dir", dir, "--json")
	var got verifyOut
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("not JSON: %v\n%s", err, out)
	}
	if code != exitOK || got.Name != "ren2" || got.ChosenBy != "served certificate" || got.Outcome != deploy.Match {
		t.Fatalf("served certificate: exit %d %+v", code, got)
	}

	// ren2 renewed, the server not reloaded: it serves an earlier
	// version of ren2, which is the one to compare with.
	issue("ren2")
	code, out, _ = verifyRun(t, "verify", target, "--state-dir", dir)
	if code != exitVerifyMismatch || !strings.Contains(out, `stored current of "ren2": version 2`) || !strings.Contains(out, "version 1 of it") {
		t.Errorf("earlier version: exit %d\n%s", code, out)
	}

	// A certificate no longer stored is served: a guess among several,
	// said as such, with how to choose.
	issue("gone")
	gone, _ := st.CurrentVersion("gone")
	port2, _ := acmeflow.FreePort("127.0.0.1")
	target2 := net.JoinHostPort("127.0.0.1", strconv.Itoa(port2))
	verifyServeOn(t, gone.Dir, target2)
	os.RemoveAll(st.CertDir("gone"))
	code, out, _ = verifyRun(t, "verify", target2, "--state-dir", dir)
	if code != exitVerifyMismatch || !strings.Contains(out, "alpn, ren2") || !strings.Contains(out, "--name") {
		t.Errorf("ambiguous: exit %d\n%s", code, out)
	}
	// --name decides.
	code, out, _ = verifyRun(t, "verify", target2, "--state-dir", dir, "--name", "ren2")
	if code != exitVerifyMismatch || !strings.Contains(out, `stored current of "ren2": version 2`) || strings.Contains(out, "a guess") {
		t.Errorf("--name: exit %d\n%s", code, out)
	}
}
