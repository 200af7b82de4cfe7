package deploy

import (
	"context"
	"crypto/x509"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/localca"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
)

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// testIssuer issues real certificates for loopback addresses from Pebble
// in-process, through the real ACME protocol.
type testIssuer struct {
	ca    *localca.Server
	port  int
	eng   *acmeflow.Engine
	roots *x509.CertPool
}

func newIssuer(t *testing.T) *testIssuer {
	t.Helper()
	ca, port := localca.StartForTest(t, localca.Options{})
	st, err := store.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca.IssuerRootPEM())
	return &testIssuer{ca: ca, port: port, eng: &acmeflow.Engine{Store: st}, roots: roots}
}

// issue gets a certificate for idents (http-01 on the CA's validation
// port) and makes it current under name; the renewal template is kept
// like ipcert renew would keep it.
func (ti *testIssuer) issue(t *testing.T, name string, idents []netip.Addr, combined bool) *acmeflow.Issued {
	t.Helper()
	tmpl := &store.Renewal{Issuance: spec.Issuance{CA: "local", Combined: combined}}
	if r, err := ti.eng.Store.LoadRenewal(name); err == nil {
		tmpl = r
	}
	lp := net.JoinHostPort(idents[0].String(), strconv.Itoa(ti.port))
	req := acmeflow.Request{
		Identifiers: idents, Directory: ti.ca.DirectoryURL(), HTTPClient: ti.ca.HTTPClient(), CAKey: "local",
		Challenge: acmeflow.ChallengeHTTP01, HTTPListen: lp, AgreeTOS: true,
	}
	iss, err := ti.eng.Issue(context.Background(), req, acmeflow.IssueOptions{Name: name, Renewal: tmpl, RootPEM: ti.ca.IssuerRootPEM()})
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// startServer runs a real server in the foreground and stops it when the
// test ends.
func startServer(t *testing.T, logPath string, env []string, name string, args ...string) *exec.Cmd {
	t.Helper()
	logf, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(name, args...)
	cmd.Env = append(os.Environ(), env...)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		once.Do(func() {
			cmd.Process.Signal(os.Interrupt)
			select {
			case <-done:
			case <-time.After(5 * time.Second):
				cmd.Process.Kill()
				<-done
			}
			logf.Close()
		})
	})
	return cmd
}

// waitVerify polls Verify until cond holds or 15 s pass (servers start
// and reload asynchronously).
func waitVerify(t *testing.T, addr string, opts VerifyOptions, cond func(VerifyResult) bool, logPath string) VerifyResult {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var last VerifyResult
	for {
		opts.Timeout = 2 * time.Second
		res, err := Verify(context.Background(), addr, opts)
		if err != nil {
			t.Fatal(err)
		}
		last = res
		if cond(res) {
			return res
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logPath)
			t.Fatalf("%s: gave up waiting; last outcome %s: %s\nserver log:\n%s", addr, last.Outcome, last.Reason, log)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func mustAddrs(ss ...string) []netip.Addr {
	out := make([]netip.Addr, len(ss))
	for i, s := range ss {
		out[i] = netip.MustParseAddr(s)
	}
	return out
}

// statusReport is the whole report, as `status --json --verify-keys`
// builds it: StatusHeader and every certificate from StatusEach.
func statusReport(st *store.Store, now time.Time, probe TimerProbe) (StatusReport, error) {
	rep := StatusHeader(st, probe)
	err := StatusEach(st, now, StatusOptions{VerifyKeys: true}, func(c CertStatus) {
		rep.Certificates = append(rep.Certificates, c)
	})
	return rep, err
}
