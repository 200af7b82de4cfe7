package renew

import (
	"context"
	"errors"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/acmeflow/localca"
	"github.com/ipcert/ipcert/acmeflow/store"
)

// Engine.RenewalInfo against Pebble: the window of a fresh certificate and
// the Retry-After, then Plan picks a moment inside it.
func TestRenewalInfoFromPebble(t *testing.T) {
	port, err := cachoice.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := localca.Start(localca.Options{HTTPPort: port})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	eng := &acmeflow.Engine{Store: st}
	req := acmeflow.Request{Identifiers: []netip.Addr{netip.MustParseAddr("127.0.0.1")}, Directory: srv.DirectoryURL(), HTTPClient: srv.HTTPClient(),
		Challenge: acmeflow.ChallengeHTTP01, HTTPListen: "127.0.0.1:" + strconv.Itoa(port), AgreeTOS: true, CAKey: "local"}
	ctx := context.Background()
	iss, err := eng.Issue(ctx, req, acmeflow.IssueOptions{Renewal: &store.Renewal{CA: "local"}})
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
