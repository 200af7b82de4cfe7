package cli

import (
	"crypto/tls"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"

	"github.com/ipcert/ipcert/deploy"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/monitor"
)

// TestStatusCheckStates: every Nagios state of `status --check` from a
// real certificate state: a fresh certificate (OK), two failed renewals
// in a row (CRITICAL), a verify address serving another certificate
// (CRITICAL), no certificate at all (UNKNOWN); less than 48 h and 24 h
// left (WARNING, CRITICAL) on the same stored certificate seen later.
func TestStatusCheckStates(t *testing.T) {
	empty := t.TempDir()
	if code, out, _ := issueRun(t, nil, "status", "--check", "--state-dir", empty); code != monitor.Unknown || !strings.HasPrefix(out, "IPCERT UNKNOWN") {
		t.Errorf("no certificates: exit %d %q", code, out)
	}
	dir := t.TempDir()
	st := renewIssueLocal(t, dir, "--name", "a")
	code, out, _ := issueRun(t, nil, "status", "--check", "--state-dir", dir)
	if code != monitor.OK || !strings.HasPrefix(out, "IPCERT OK - 1 certificate(s), soonest expiry a in ") || !strings.Contains(out, "| hours_left=") {
		t.Errorf("fresh: exit %d %q", code, out)
	}
	var certs []deploy.CertStatus
	deploy.StatusEach(st, time.Now(), deploy.StatusOptions{}, func(c deploy.CertStatus) { certs = append(certs, c) })
	left := time.Until(certs[0].NotAfter)
	if s, line := monitor.Check(certs, nil, monitor.DefaultThresholds, time.Now().Add(left-40*time.Hour)); s != monitor.Warning {
		t.Errorf("40 h left: %d %q", s, line)
	}
	if s, line := monitor.Check(certs, nil, monitor.DefaultThresholds, time.Now().Add(left-10*time.Hour)); s != monitor.Critical {
		t.Errorf("10 h left: %d %q", s, line)
	}
	// Two failed renewals in a row.
	st.UpdateRenewal(t.Context(), "a", func(r *store.Renewal) (bool, error) {
		r.Failures, r.LastError = 2, &store.Failure{Time: time.Now(), Step: "challenge", Detail: "Timeout during connect"}
		return true, nil
	})
	if code, out, _ := issueRun(t, nil, "status", "--check", "--state-dir", dir); code != monitor.Critical || !strings.Contains(out, "2 failed renewal(s)") {
		t.Errorf("two failures: exit %d %q", code, out)
	}
	// Served: another certificate at the verify address.
	dir2 := t.TempDir()
	st2 := renewIssueLocal(t, dir2, "--name", "b")
	other, err := tls.X509KeyPair(mustRead(t, filepath.Join(st.CurrentDir("a"), "fullchain.pem")), mustRead(t, filepath.Join(st.CurrentDir("a"), "privkey.pem")))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{other}})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func(c net.Conn) { c.(*tls.Conn).Handshake(); c.Close() }(c)
		}
	}()
	st2.UpdateRenewal(t.Context(), "b", func(r *store.Renewal) (bool, error) {
		r.VerifyAddr = ln.Addr().String()
		return true, nil
	})
	if code, out, _ := issueRun(t, nil, "status", "--check", "--state-dir", dir2); code != monitor.Critical || !strings.Contains(out, "does not serve the current certificate") {
		t.Errorf("another certificate served: exit %d %q", code, out)
	}
}

// TestPrometheusTextfileLints: status --prometheus and renew --prometheus
// write a textfile that Prometheus' own linter accepts, with the expected
// series.
func TestPrometheusTextfileLints(t *testing.T) {
	dir := t.TempDir()
	renewIssueLocal(t, dir, "--name", "a", "--verify", "127.0.0.1:1")
	prom := filepath.Join(t.TempDir(), "ipcert.prom")
	if code, _, errs := issueRun(t, nil, "renew", "--state-dir", dir, "--prometheus", prom); code != exitRenewNothing {
		t.Fatalf("renew --prometheus: exit %d %s", code, errs)
	}
	for _, args := range [][]string{nil, {"status", "--state-dir", dir, "--prometheus", prom}} {
		if args != nil {
			if code, _, errs := issueRun(t, nil, args...); code != exitOK {
				t.Fatalf("status --prometheus: exit %d %s", code, errs)
			}
		}
		f, err := os.Open(prom)
		if err != nil {
			t.Fatal(err)
		}
		problems, err := promlint.New(f).Lint()
		f.Close()
		if err != nil || len(problems) > 0 {
			t.Fatalf("promlint: %v %+v", err, problems)
		}
		text := string(mustRead(t, prom))
		for _, want := range []string{`ipcert_certificate_expiry_timestamp_seconds{name="a"}`, `ipcert_certificate_renewal_failures{name="a"} 0`,
			`ipcert_certificate_served_current{name="a"} 0`, "ipcert_renew_last_run_timestamp_seconds"} {
			if !strings.Contains(text, want) {
				t.Errorf("%s lacks %s:\n%s", prom, want, text)
			}
		}
	}
	if code, _, _ := issueRun(t, nil, "renew", "--state-dir", dir, "--prometheus", "x.txt"); code != exitUsage {
		t.Errorf("a file not ending in .prom: exit %d", code)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
