package cli

import (
	"context"
	"crypto/x509"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/deploy"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/internal/testkit"
	"github.com/ipcert/ipcert/ui"
)

// wizardIssueLocal issues a certificate for 127.0.0.1 from the local CA
// into a new store.
func wizardIssueLocal(t *testing.T) (*store.Store, *acmeflow.Issued, *cachoice.CA) {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ca, err := cachoice.Open(cachoice.Local, cachoice.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ca.Close)
	req := acmeflow.Request{Identifiers: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Challenge: acmeflow.ChallengeHTTP01, AgreeTOS: true}
	ca.Apply(&req)
	eng := &acmeflow.Engine{Store: st}
	iss, err := eng.Issue(context.Background(), req, acmeflow.IssueOptions{Renewal: &store.Renewal{Issuance: spec.Issuance{CA: cachoice.Local}}, RootPEM: ca.RootPEM})
	if err != nil {
		t.Fatal(err)
	}
	return st, iss, ca
}

// TestWizardVerifyServedAndUnreachable: the verify step's check against
// the certificate served on loopback (a match a browser trusting the test
// root accepts), and against a closed port (a failure with the fix).
func TestWizardVerifyServedAndUnreachable(t *testing.T) {
	st, iss, ca := wizardIssueLocal(t)
	roots := func() *x509.CertPool {
		p := x509.NewCertPool()
		p.AppendCertsFromPEM(ca.RootPEM)
		return p
	}
	rep := wizardVerify(roots, demoServeTarget(st))(context.Background(), iss)
	if rep.Status != ui.OK || !strings.Contains(rep.Summary, "serves the stored current certificate") {
		t.Errorf("served certificate: %+v", rep)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := l.Addr().String()
	l.Close()
	rep = wizardVerify(roots, func(*acmeflow.Issued) (string, func(), error) { return closed, func() {}, nil })(context.Background(), iss)
	if rep.Status != ui.Fail || !strings.Contains(rep.Fix, "ipcert verify "+closed) {
		t.Errorf("closed port: %+v", rep)
	}
}

// TestWizardVerifyOwnCARoot: a certificate of an own ACME CA is checked
// the way that CA's browsers see it, trusting its --ca-root (here the
// test CA's root stands for it), not the system's roots, which would
// refuse every such certificate.
func TestWizardVerifyOwnCARoot(t *testing.T) {
	st, iss, ca := wizardIssueLocal(t)
	root := filepath.Join(t.TempDir(), "root.pem")
	if err := os.WriteFile(root, ca.RootPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	r := *iss.Renewal
	r.CA, r.CARoot = "https://ca.internal:9000/acme/acme/directory", root
	own := *iss
	own.Renewal = &r
	rep := wizardVerify(systemRoots, demoServeTarget(st))(context.Background(), &own)
	if rep.Status != ui.OK || !slices.Contains(rep.Lines, "a browser trusting the CA accepts it") {
		t.Errorf("own CA's certificate, checked with its root: %+v", rep)
	}
}

// TestWizardServersSnippets: the install step offers every service of the
// catalogue installed here, each with its snippet pointing at the current
// link (or at the copy for a service reading as its own user).
func TestWizardServersSnippets(t *testing.T) {
	testkit.Need(t, len(deploy.DetectServers(context.Background(), deploy.Env{})) > 0, "no web server is installed (apt-get install -y nginx)")
	st, iss, _ := wizardIssueLocal(t)
	targets := wizardServers(st)(context.Background(), iss)
	if len(targets) == 0 {
		t.Fatal("no install targets")
	}
	for _, tg := range targets {
		// Caddy reads as its own user: its snippet names the copy for it.
		want := st.CurrentDir(iss.Name)
		k, _ := deploy.ParseKind(tg.Kind)
		l := deploy.LayoutFor(k, deploy.Debian, iss.Name)
		if l.CopyDir != "" && k != deploy.Cockpit {
			want = l.CopyDir
		}
		if !l.Service.Web && !tg.Running {
			t.Errorf("%s is offered though it does not run here", tg.Kind)
		}
		if !strings.Contains(tg.Snippet, want) || tg.ConfigPath == "" {
			t.Errorf("%s: snippet does not use %s, or no config path %q", tg.Kind, want, tg.ConfigPath)
		}
		if tg.CanInstall != (os.Geteuid() == 0) {
			t.Errorf("%s: CanInstall %v as uid %d", tg.Kind, tg.CanInstall, os.Geteuid())
		}
	}
}

// TestWizardDryRenewLocal: the renewal step's dry run against a fresh
// local CA works and leaves the store's current version alone.
func TestWizardDryRenewLocal(t *testing.T) {
	st, iss, _ := wizardIssueLocal(t)
	before, _ := st.CurrentVersion(iss.Name)
	rep := wizardDryRenew(st)(context.Background(), iss)
	if rep.Status != ui.OK {
		t.Fatalf("dry renewal: %+v", rep)
	}
	after, _ := st.CurrentVersion(iss.Name)
	if before.N != after.N {
		t.Errorf("a dry renewal changed the current version: %d -> %d", before.N, after.N)
	}
}

// TestCronRuns: a cron daemon is a process named cron, crond or fcron
// (issue 24 item 9: a cron job on a machine without one never runs).
func TestCronRuns(t *testing.T) {
	proc := t.TempDir()
	add := func(pid, comm string) {
		os.MkdirAll(filepath.Join(proc, pid), 0o755)
		os.WriteFile(filepath.Join(proc, pid, "comm"), []byte(comm+"\n"), 0o644)
	}
	add("1", "init")
	add("42", "crontab")
	os.MkdirAll(filepath.Join(proc, "self"), 0o755)
	if cronRuns(proc) {
		t.Error("no cron daemon, yet cronRuns")
	}
	add("77", "crond")
	if !cronRuns(proc) {
		t.Error("crond runs, yet not found")
	}
}

// TestWizardVerifyNoGraceWithoutReload: with nothing reloaded by the
// wizard, the check connects once and answers (issue 24 item 10: it spun
// for the reload's grace on a refused connection), saying how long it
// took.
func TestWizardVerifyNoGraceWithoutReload(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var accepts atomic.Int32
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			accepts.Add(1)
			c.Close() // no TLS: the check fails
		}
	}()
	_, iss, _ := wizardIssueLocal(t)
	rep := wizardVerifyAfter(func() *x509.CertPool { return x509.NewCertPool() }, func(*acmeflow.Issued) (string, func(), error) { return l.Addr().String(), func() {}, nil }, &reloadClock{})(context.Background(), iss)
	if rep.Status != ui.Fail || !strings.Contains(strings.Join(rep.Lines, "\n"), "checked in ") {
		t.Errorf("report: %+v", rep)
	}
	if n := accepts.Load(); n != 1 {
		t.Errorf("%d connections with nothing reloaded, want 1", n)
	}
}
