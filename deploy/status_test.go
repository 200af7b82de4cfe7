package deploy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
)

// storeCert puts a self-signed certificate valid from nb for 160 h into
// the store as the current version of name, with renewal.json r.
func storeCert(t *testing.T, st *store.Store, r *store.Renewal, nb time.Time, serial int64) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(serial), NotBefore: nb, NotAfter: nb.Add(160 * time.Hour)}
	for _, id := range r.Identifiers {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.ParseIP(id))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	cert := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	n, err := st.SaveVersion(r.Name, store.CertFiles{Cert: cert, FullChain: cert, PrivKey: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder})})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Activate(r.Name, n); err != nil {
		t.Fatal(err)
	}
	r.Directory, r.Challenge, r.Profile = "https://acme.test/dir", "http-01", "shortlived"
	if err := st.SaveRenewal(r); err != nil {
		t.Fatal(err)
	}
}

func TestStatus(t *testing.T) {
	st, err := store.Open(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	nb := now.Add(-10 * time.Hour)
	// a: fresh, no ARI yet: half-life.
	storeCert(t, st, &store.Renewal{Issuance: spec.Issuance{Identifiers: []string{"192.0.2.1"}, CA: "production"}, Name: "a", LastSuccess: nb}, nb, 1)
	// b: renewal time chosen inside the ARI window.
	renewAt := nb.Add(79 * time.Hour)
	storeCert(t, st, &store.Renewal{Issuance: spec.Issuance{Identifiers: []string{"192.0.2.2"}, CA: "staging"}, Name: "b", LastSuccess: nb, RenewAt: renewAt, ARI: &store.ARIState{WindowStart: nb.Add(78 * time.Hour), WindowEnd: nb.Add(81 * time.Hour), NextCheck: now.Add(6 * time.Hour)}}, nb, 2)
	// c: failing, in backoff.
	fail := &store.Failure{Time: now.Add(-time.Minute), Step: "challenge", Detail: "Timeout during connect"}
	storeCert(t, st, &store.Renewal{Issuance: spec.Issuance{Identifiers: []string{"192.0.2.3"}, CA: "production"}, Name: "c", LastSuccess: nb, Failures: 2, NextAttempt: now.Add(9 * time.Minute), LastError: fail, LastAttempt: fail.Time}, nb, 3)
	// d: expired long ago, renewal overdue.
	storeCert(t, st, &store.Renewal{Issuance: spec.Issuance{Identifiers: []string{"192.0.2.4"}, CA: "production"}, Name: "d"}, now.Add(-200*time.Hour), 4)
	// e: renewal.json without a current version.
	st.SaveRenewal(&store.Renewal{Issuance: spec.Issuance{Identifiers: []string{"192.0.2.5"}, Challenge: "http-01"}, Name: "e", Directory: "x"})
	// f: a broken renewal.json.
	os.MkdirAll(st.CertDir("f"), 0o700)
	os.WriteFile(filepath.Join(st.CertDir("f"), "renewal.json"), []byte("{"), 0o600)

	units := t.TempDir()
	os.WriteFile(filepath.Join(units, TimerTimerName), []byte("[Timer]\n"), 0o644)
	probe := func() (TimerState, error) {
		return TimerStatus(t.Context(), TimerOptions{UnitDir: units, CronDir: t.TempDir(), Root: t.TempDir()})
	}
	rep, err := statusReport(st, now, probe)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.TimerInstalled || rep.Timer.Mode != TimerSystemd || rep.StateDir != st.Root() {
		t.Errorf("timer: %+v", rep)
	}
	if len(rep.Certificates) != 6 {
		t.Fatalf("%d certificates", len(rep.Certificates))
	}
	by := map[string]CertStatus{}
	for _, c := range rep.Certificates {
		by[c.Name] = c
	}
	a := by["a"]
	if a.NextRenewal != nb.Add(80*time.Hour) || !strings.HasPrefix(a.NextRenewalWhy, "half-life") || a.LastResult != "ok" || a.ValidFor != 150*time.Hour || a.Serial != "1" || a.CA != "production" || a.Version != 1 {
		t.Errorf("a: %+v", a)
	}
	if b := by["b"]; b.NextRenewal != renewAt || !strings.Contains(b.NextRenewalWhy, "ARI") || b.ARINextCheck != now.Add(6*time.Hour) {
		t.Errorf("b: %+v", b)
	}
	if c := by["c"]; c.LastResult != "failed" || c.NextRenewal != now.Add(9*time.Minute) || !strings.Contains(c.NextRenewalWhy, "2 failed") || c.LastError.Detail != "Timeout during connect" {
		t.Errorf("c: %+v", c)
	}
	if d := by["d"]; !d.Expired || d.ValidFor >= 0 || !strings.HasPrefix(d.NextRenewalWhy, "due now") || d.LastResult != "never" {
		t.Errorf("d: %+v", d)
	}
	if e := by["e"]; !strings.Contains(e.Problem, "no certificate yet") {
		t.Errorf("e: %+v", e)
	}
	if f := by["f"]; !strings.Contains(f.Problem, "not valid JSON") {
		t.Errorf("f: %+v", f)
	}

	// No timer, and a probe that fails, are reported, not fatal.
	rep, err = statusReport(st, now, func() (TimerState, error) { return TimerState{}, errors.New("systemctl: no bus") })
	if err != nil || rep.TimerInstalled || rep.TimerError != "systemctl: no bus" {
		t.Errorf("probe error: %+v %v", rep, err)
	}
}
