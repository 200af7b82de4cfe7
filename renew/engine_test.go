package renew

import (
	"context"
	"crypto/tls"
	"encoding/pem"
	"errors"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/internal/localca"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
)

// Engine.RenewalInfo against Pebble: the window of a fresh certificate and
// the Retry-After, then Plan picks a moment inside it.
func TestRenewalInfoFromPebble(t *testing.T) {
	srv, port := localca.StartForTest(t, localca.Options{})
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	eng := &acmeflow.Engine{Store: st}
	req := acmeflow.Request{Identifiers: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Directory: srv.DirectoryURL(), HTTPClient: srv.HTTPClient(),
		Challenge: acmeflow.ChallengeHTTP01, HTTPListen: "127.0.0.1:" + strconv.Itoa(port), AgreeTOS: true, CAKey: "local"}
	ctx := context.Background()
	iss, err := eng.Issue(ctx, req, acmeflow.IssueOptions{Renewal: &store.Renewal{Issuance: spec.Issuance{CA: "local"}}})
	if err != nil {
		t.Fatal(err)
	}
	info, err := eng.RenewalInfo(ctx, req, iss.Renewal.CertID)
	if err != nil {
		t.Fatal(err)
	}
	nb := iss.Cert.Leaf.NotBefore
	// localca's package doc: Pebble's window for 160 h is notBefore+82h40m
	// to +130h40m, each minus 1 s; Retry-After 21600.
	if d := info.WindowStart.Sub(nb); d < 82*time.Hour || d > 83*time.Hour {
		t.Errorf("window starts %s after notBefore", d)
	}
	if d := info.WindowEnd.Sub(nb); d < 130*time.Hour || d > 131*time.Hour {
		t.Errorf("window ends %s after notBefore", d)
	}
	if info.RetryAfter != 6*time.Hour {
		t.Errorf("Retry-After %s, want 6h", info.RetryAfter)
	}
	r := iss.Renewal
	r.CA = "production" // pretend it is a CA that remembers, so Plan uses ARI
	now := time.Now()
	ApplyARI(r, info, nil, now)
	d := Plan(r, now, testRand(), false)
	if d.Action != Wait || d.RenewAt.Before(info.WindowStart) || !d.RenewAt.Before(info.WindowEnd) || !d.At.Equal(now.Add(6*time.Hour).UTC()) {
		t.Fatalf("plan: %+v", d)
	}

	// An unknown certificate: a clear error, kept by ApplyARI.
	_, err = eng.RenewalInfo(ctx, req, "AAAA.AAAA")
	var ae *acmeflow.Error
	if !errors.As(err, &ae) || ae.Step != acmeflow.StepRenewalInfo {
		t.Fatalf("unknown cert: %v", err)
	}
	ApplyARI(r, nil, err, now)
	if r.ARI.Error == "" || !r.ARI.WindowStart.Equal(info.WindowStart) {
		t.Fatalf("ARI state after an error: %+v", r.ARI)
	}
}

// listenerRootFile saves the certificate the CA's HTTPS listener presents,
// as a --ca-root file: the way a user trusts a test CA given by URL.
func listenerRootFile(t *testing.T, dirURL string) string {
	t.Helper()
	u, err := url.Parse(dirURL)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := tls.Dial("tcp", u.Host, &tls.Config{InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	certs := conn.ConnectionState().PeerCertificates
	path := filepath.Join(t.TempDir(), "ca-root.pem")
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certs[len(certs)-1].Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// The real Issuer and ARI source against a CA given by URL (a Pebble that
// outlives the runs, so it knows the old certificate): the first run asks
// ARI and waits; --force renews with `replaces`, which the CA accepts (a
// refusal would show as the "ordering again without replaces" warning).
func TestRealIssuerAndARIByURL(t *testing.T) {
	srv, port := localca.StartForTest(t, localca.Options{})
	root := listenerRootFile(t, srv.DirectoryURL())
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	ca, err := cachoice.Open(spec.CAChoice(srv.DirectoryURL()), cachoice.Options{HTTPListen: "127.0.0.1:" + strconv.Itoa(port), RootFile: root})
	if err != nil {
		t.Fatal(err)
	}
	req := acmeflow.Request{Identifiers: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Challenge: acmeflow.ChallengeHTTP01,
		HTTPListen: "127.0.0.1:" + strconv.Itoa(port), AgreeTOS: true}
	ca.Apply(&req)
	ctx := context.Background()
	first, err := (&acmeflow.Engine{Store: st}).Issue(ctx, req, acmeflow.IssueOptions{Renewal: &store.Renewal{Issuance: spec.Issuance{CA: spec.CAChoice(srv.DirectoryURL()), CARoot: root}}})
	if err != nil {
		t.Fatal(err)
	}
	var warnings []string
	cas := &CAs{Store: st, Events: func(_ string, ev acmeflow.Event) {
		if ev.Kind == acmeflow.EventWarning {
			warnings = append(warnings, ev.Message)
		}
	}}
	rn := &Runner{Store: st, Issuer: NewIssuer(cas), ARI: NewARI(cas), Rand: testRand()}
	res, err := rn.Run(ctx, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, _ := st.LoadRenewal(first.Name)
	if !res.Network || res.Certs[0].Outcome != NotDue || r.ARI == nil || r.ARI.Error != "" || r.RenewAt.Before(r.ARI.WindowStart) {
		t.Fatalf("first run: %+v, ARI %+v, renew at %s", res.Certs, r.ARI, r.RenewAt)
	}
	// The second run has fresh ARI state: offline.
	if res, err := rn.Run(ctx, Options{}); err != nil || res.Network {
		t.Fatalf("second run: %+v %v", res, err)
	}
	res, err = rn.Run(ctx, Options{Force: true})
	if err != nil || res.Certs[0].Outcome != Renewed {
		t.Fatalf("forced: %+v %v", res, err)
	}
	if len(warnings) > 0 {
		t.Fatalf("warnings: %q", warnings)
	}
	r, _ = st.LoadRenewal(first.Name)
	if r.Current != 2 || r.CertID == first.Renewal.CertID || r.ARI == nil || r.CARoot != root {
		t.Fatalf("after the renewal: %+v", r)
	}

	// A certificate the CA cannot match (here: an unknown serial) makes it
	// refuse `replaces`; the renewal goes through without it, with a warning.
	aki, _, _ := strings.Cut(r.CertID, ".")
	r.CertID = aki + ".AQID"
	if err := st.SaveRenewal(r); err != nil {
		t.Fatal(err)
	}
	res, err = rn.Run(ctx, Options{Force: true})
	if err != nil || res.Certs[0].Outcome != Renewed {
		t.Fatalf("forced with an unknown certificate ID: %+v %v", res, err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "without replaces") {
		t.Fatalf("warnings: %q", warnings)
	}
}
