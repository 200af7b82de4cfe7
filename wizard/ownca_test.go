package wizard

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/preflight"
)

// writeRoot writes a self-signed CA certificate as PEM.
func writeRoot(t *testing.T, path string) {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestPlanOwnCA: an address Let's Encrypt refuses leads to the plan's
// "My own ACME CA"; Let's Encrypt is refused for it with the way out; a
// URL that is not https and a root file that is missing or holds no
// certificate are explained in the form; the issuance then opens that CA
// with that root and keeps both for renew, as issue --ca URL --ca-root
// does. (privateca's TestStepCAWizardOwnCA does the same against a real
// step-ca.)
func TestPlanOwnCA(t *testing.T) {
	dir := t.TempDir()
	root, notPEM := filepath.Join(dir, "root.pem"), filepath.Join(dir, "key.pem")
	writeRoot(t, root)
	if err := os.WriteFile(notPEM, []byte("-----BEGIN EC PRIVATE KEY-----\nAAAA\n-----END EC PRIVATE KEY-----\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	const url = "https://ca.internal:9000/acme/acme/directory"
	var mu sync.Mutex
	var opened [][2]string
	var tmplCA, tmplRoot string
	deps := fakeDeps(issuerFunc(func(ctx context.Context, req acmeflow.Request, opts acmeflow.IssueOptions) (*acmeflow.Issued, error) {
		mu.Lock()
		tmplCA, tmplRoot = string(opts.Renewal.CA), opts.Renewal.CARoot
		mu.Unlock()
		return fakeIssued("10.0.0.7", string(opts.Renewal.CA), req.Identifiers...), nil
	}))
	deps.OpenCA = func(choice, rootFile string) (*cachoice.CA, error) {
		mu.Lock()
		opened = append(opened, [2]string{choice, rootFile})
		mu.Unlock()
		return fakeCA(choice, rootFile)
	}
	rec := &recordingPreflight{}
	deps.Preflight = rec.run
	d := toAddress(t, deps, testConfig(false))
	for _, k := range []string{"space", "down", "space"} { // unpick the detected public addresses
		d.key(k)
	}
	d.key("t")
	d.typeText("10.0.0.7")
	d.key("enter")
	d.key("enter")
	d.until("the checks", func() bool { return d.m.pre.report != nil })
	if r := rec.requests(); len(r) != 1 || !r[0].OwnCA || !r[0].Internal {
		t.Errorf("preflight requests %+v: want one for an own CA on an internal address (Let's Encrypt refuses 10.0.0.7): no public-address checks (issue 24 item 5)", r)
	}
	d.key("enter")
	d.until("the plan", func() bool { return d.focused() == "ca" })
	if d.m.plan.a.CA != PlanOwnCA {
		t.Errorf("the plan starts on %q; for an address only an own CA certifies, want %q", d.m.plan.a.CA, PlanOwnCA)
	}
	d.key("up")
	d.key("enter")
	if v := oneLine(d.view()); d.focused() != "ca" || !strings.Contains(v, `10.0.0.7 is in private network 10/8 (RFC 1918); Let's Encrypt refuses it (rejectedIdentifier): choose "My own ACME CA"`) {
		t.Errorf("production for 10.0.0.7 was not refused with the way out (focus %q):\n%s", d.focused(), v)
	}
	d.key("down")
	d.key("enter")
	d.until("the URL question", func() bool { return d.focused() == "ca-url" })
	// Back from the empty URL to the CA question: the URL's check is for
	// going forward (it once kept the user in the field).
	d.send(tea.KeyMsg{Type: tea.KeyShiftTab})
	d.until("the CA question again", func() bool { return d.focused() == "ca" })
	d.key("enter")
	d.until("the URL question again", func() bool { return d.focused() == "ca-url" })
	d.key("enter")
	if v := oneLine(d.view()); d.focused() != "ca-url" || !strings.Contains(v, "type the ACME directory URL of your CA") {
		t.Errorf("an empty URL went on (focus %q):\n%s", d.focused(), v)
	}
	clear := tea.KeyMsg{Type: tea.KeyCtrlU}
	for _, c := range []struct{ typed, want string }{
		{"http://ca.internal/acme/acme/directory", "does not start with https://: ACME runs over HTTPS (RFC 8555 section 6.1)"},
		{"https:///acme/directory", "names no host"},
	} {
		d.typeText(c.typed)
		d.key("enter")
		if v := oneLine(d.view()); d.focused() != "ca-url" || !strings.Contains(v, c.want) {
			t.Errorf("URL %q: focus %q, want the error %q on screen:\n%s", c.typed, d.focused(), c.want, v)
		}
		d.send(clear)
	}
	d.typeText(url)
	d.key("enter")
	d.until("the root question", func() bool { return d.focused() == "ca-root" })
	for _, c := range []struct{ typed, want string }{
		{filepath.Join(dir, "missing.pem"), "missing.pem: no such file"},
		{notPEM, "key.pem holds no PEM certificate"},
		{dir, "cannot be read (is a directory)"},
	} {
		d.typeText(c.typed)
		d.key("enter")
		if v := oneLine(d.view()); d.focused() != "ca-root" || !strings.Contains(v, c.want) {
			t.Errorf("root %q: focus %q, want the error %q on screen:\n%s", c.typed, d.focused(), c.want, v)
		}
		d.send(clear)
	}
	d.typeText(root)
	d.key("enter")
	d.until("the challenge", func() bool { return d.focused() == "challenge" })
	if v := oneLine(d.view()); !strings.Contains(v, "an ACME CA validates an IP only by connecting to it") {
		t.Errorf("the challenge note for an own CA:\n%s", v)
	}
	d.key("enter")
	d.until("the key question", func() bool { return d.focused() == "key" })
	d.key("enter")
	d.until("the e-mail", func() bool { return d.focused() == "email" })
	d.key("enter")
	d.until("the terms", func() bool { return d.m.plan.consentReady() })
	if v := oneLine(d.view()); !strings.Contains(v, "Agree to your CA's terms of service?") {
		t.Errorf("the terms question names Let's Encrypt for an own CA:\n%s", v)
	}
	d.key("y")
	d.until("the certificate", func() bool { return d.m.outcome.Issued != nil })
	mu.Lock()
	defer mu.Unlock()
	if len(opened) != 1 || opened[0] != [2]string{url, root} {
		t.Errorf("opened %v, want the own CA with its root: %s %s", opened, url, root)
	}
	if tmplCA != url || tmplRoot != root {
		t.Errorf("renewal.json would keep ca %q ca_root %q, want %q %q", tmplCA, tmplRoot, url, root)
	}
	if v := oneLine(d.view()); !strings.Contains(v, "from "+url) {
		t.Errorf("the issue screen does not name the own CA:\n%s", v)
	}
}

// TestInternalChecksSkipThePublicSide: the checks of an own CA on an
// internal address are the local ones only (issue 24 item 5), and a
// public address still gets every check.
func TestInternalChecksSkipThePublicSide(t *testing.T) {
	for _, id := range []string{preflight.IDPublic4, preflight.IDPublic6, preflight.IDNAT, preflight.IDSelfFetch} {
		if slices.Contains(InternalChecks, id) {
			t.Errorf("%s is checked for an internal address", id)
		}
	}
	m := New(context.Background(), fakeDeps(nil), testConfig(false))
	m.ans.Addrs = []netip.Addr{pub4}
	if r := m.preflightRequest(false); r.Internal || r.OwnCA {
		t.Errorf("a public address for Let's Encrypt: %+v", r)
	}
	m.ans.Addrs = []netip.Addr{pub4, netip.MustParseAddr("10.0.0.7")}
	if r := m.preflightRequest(false); r.Internal || !r.OwnCA {
		t.Errorf("a public and a private address: %+v (the public one is checked from outside)", r)
	}
}

// TestNextCommandsTrustTheOwnRoot: the verify command the summary names
// for an own CA's certificate trusts that CA's root, so it works as
// printed (issue 24 item 7).
func TestNextCommandsTrustTheOwnRoot(t *testing.T) {
	r := &store.Renewal{Issuance: spec.Issuance{CA: "https://ca.internal:9000/acme/acme/directory", CARoot: "/etc/step ca/root.pem"}}
	var verify string
	for _, c := range NextCommands("10.0.0.7", "10.0.0.7", "/var/lib/ipcert", r) {
		if c[0] == "verify" {
			verify = c[1]
		}
	}
	if verify != "ipcert verify 10.0.0.7 --root '/etc/step ca/root.pem'" {
		t.Errorf("verify: %q", verify)
	}
	for _, c := range NextCommands("x", "81.2.69.160", "", &store.Renewal{Issuance: spec.Issuance{CA: "production"}}) {
		if c[0] == "verify" && c[1] != "ipcert verify 81.2.69.160" {
			t.Errorf("verify for Let's Encrypt: %q", c[1])
		}
	}
}
