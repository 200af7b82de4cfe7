package privateca

import (
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/internal/testkit"
)

// ipcert runs the built binary (inside netns when given) and returns
// stdout, stderr and the exit code.
func ipcert(t *testing.T, netns string, args ...string) (string, string, int) {
	t.Helper()
	bin := buildIpcert(t)
	name := bin
	if netns != "" {
		args = append([]string{"netns", "exec", netns, bin}, args...)
		name = "ip"
	}
	cmd := exec.Command(name, args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + t.TempDir()}
	return testkit.Run(t, cmd)
}

func mustIpcert(t *testing.T, netns string, args ...string) (string, string) {
	t.Helper()
	out, errs, code := ipcert(t, netns, args...)
	if code != 0 {
		t.Fatalf("ipcert %s: exit %d\nstdout:\n%s\nstderr:\n%s", strings.Join(args, " "), code, out, errs)
	}
	return out, errs
}

// checkCert verifies the current certificate of name in state against the
// CA's own root: exactly ip as SAN, the CA's validity (plus step-ca's one
// minute of backdating), and returns it.
func checkCert(t *testing.T, ca *stepCA, state, name string, ip netip.Addr, validity time.Duration) *x509.Certificate {
	t.Helper()
	return checkCertIPs(t, ca, state, name, []netip.Addr{ip}, validity)
}

func checkCertIPs(t *testing.T, ca *stepCA, state, name string, ips []netip.Addr, validity time.Duration) *x509.Certificate {
	t.Helper()
	cur := filepath.Join(state, "certs", name, "current")
	leaf := readCert(t, filepath.Join(cur, "cert.pem"))
	inter := x509.NewCertPool()
	chainPEM, err := os.ReadFile(filepath.Join(cur, "chain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	if !inter.AppendCertsFromPEM(chainPEM) {
		t.Fatalf("chain.pem holds no certificate:\n%s", chainPEM)
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca.PKI.Root)
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}); err != nil {
		t.Fatalf("the certificate does not chain to the private CA's root: %v", err)
	}
	var got []string
	for _, a := range leaf.IPAddresses {
		got = append(got, a.String())
	}
	var want []string
	for _, a := range ips {
		want = append(want, a.String())
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) || len(leaf.DNSNames) != 0 {
		t.Fatalf("SANs %v %v, want only %v", leaf.IPAddresses, leaf.DNSNames, want)
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got < validity || got > validity+2*time.Minute {
		t.Fatalf("validity %s, want the CA's %s (160 hours would mean Let's Encrypt's profile was assumed)", got, validity)
	}
	return leaf
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := pem.Decode(data)
	if b == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(b.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// status is the part of `ipcert status --json` these tests read.
type status struct {
	Certificates []struct {
		Name           string    `json:"name"`
		Version        int       `json:"version"`
		NotBefore      time.Time `json:"not_before"`
		NotAfter       time.Time `json:"not_after"`
		NextRenewal    time.Time `json:"next_renewal"`
		NextRenewalWhy string    `json:"next_renewal_reason"`
	} `json:"certificates"`
}

func readStatus(t *testing.T, netns, state string) status {
	t.Helper()
	out, _, code := ipcert(t, netns, "status", "--json", "--state-dir", state)
	var st status
	if err := json.Unmarshal([]byte(out), &st); err != nil || len(st.Certificates) != 1 {
		t.Fatalf("status --json (exit %d): %v\n%s", code, err, out)
	}
	return st
}

// checkNoProfileNotice: the user is told that no profile was requested and
// which of Let's Encrypt's rules did not apply.
func checkNoProfileNotice(t *testing.T, stderr string) {
	t.Helper()
	for _, want := range []string{"advertises no profiles", "none is requested", "Let's Encrypt's rules do not apply", "160 hours", "private and reserved addresses", "rate limits", "half-life"} {
		if !strings.Contains(stderr, want) {
			t.Errorf("the output does not say %q:\n%s", want, stderr)
		}
	}
	if strings.Contains(stderr, "Ordering a shortlived certificate") {
		t.Errorf("a shortlived order was announced to a CA without profiles:\n%s", stderr)
	}
}

// checkRenewTiming: without profiles and without ARI, renewal follows the
// CA's validity: half of the lifetime the CA gave.
func checkRenewTiming(t *testing.T, netns, state string, leaf *x509.Certificate) {
	t.Helper()
	st := readStatus(t, netns, state).Certificates[0]
	half := leaf.NotBefore.Add(leaf.NotAfter.Sub(leaf.NotBefore) / 2)
	if d := st.NextRenewal.Sub(half); d < -time.Second || d > time.Second {
		t.Errorf("next renewal %s (%s), want half-life of the CA's validity %s", st.NextRenewal, st.NextRenewalWhy, half)
	}
	if !strings.Contains(st.NextRenewalWhy, "half-life") {
		t.Errorf("next renewal reason %q, want half-life (step-ca has no ARI)", st.NextRenewalWhy)
	}
}

// TestStepCALoopback issues from a real step-ca on loopback for 127.0.0.1
// and ::1 with http-01 and tls-alpn-01, then renews. step-ca's directory
// has no meta.profiles and no renewalInfo; its validator is pointed at our
// responders' high ports with its own --acme-http-port/--acme-tls-port.
// Before the fix every order stopped at the directory ("does not offer
// the shortlived profile (it offers: none)").
func TestStepCALoopback(t *testing.T) {
	cases := []struct {
		ip        string
		challenge spec.Challenge
		validity  time.Duration
	}{
		// 30 hours: neither Let's Encrypt's 160 hours nor step-ca's
		// default; 24 hours: step-ca's default, always less than a day
		// from expiry.
		{"127.0.0.1", acmeflow.ChallengeHTTP01, 30 * time.Hour},
		{"127.0.0.1", acmeflow.ChallengeTLSALPN01, 24 * time.Hour},
		{"::1", acmeflow.ChallengeHTTP01, 24 * time.Hour},
		{"::1", acmeflow.ChallengeTLSALPN01, 30 * time.Hour},
	}
	for _, c := range cases {
		validity := c.validity
		t.Run(c.ip+"/"+string(c.challenge), func(t *testing.T) {
			ip := netip.MustParseAddr(c.ip)
			if ip.Is6() {
				ln, err := net.Listen("tcp6", "[::1]:0")
				require(t, err == nil, "this machine has no IPv6 loopback")
				ln.Close()
			}
			httpPort, err := acmeflow.FreePort(c.ip)
			if err != nil {
				t.Fatal(err)
			}
			tlsPort, err := acmeflow.FreePort(c.ip)
			if err != nil {
				t.Fatal(err)
			}
			ca := startStepCA(t, caOpts{Host: "127.0.0.1", Validity: validity, HTTPPort: httpPort, TLSPort: tlsPort})
			state := t.TempDir()
			listen := "--http-listen=" + net.JoinHostPort(c.ip, strconv.Itoa(httpPort))
			if c.challenge == acmeflow.ChallengeTLSALPN01 {
				listen = "--tls-listen=" + net.JoinHostPort(c.ip, strconv.Itoa(tlsPort))
			}
			out, errs := mustIpcert(t, "", "issue", "--ip", c.ip, "--ca", ca.Directory, "--ca-root", ca.PKI.RootFile,
				"--challenge", string(c.challenge), listen, "--agree-tos", "--state-dir", state)
			t.Logf("issue:\n%s%s", errs, out)
			checkNoProfileNotice(t, errs)
			if want := fmt.Sprintf("(%d hours)", int(validity.Hours())); !strings.Contains(out, want) {
				t.Errorf("the result does not give the CA's validity %s:\n%s", want, out)
			}
			name := store.NameFor([]string{c.ip})
			leaf := checkCert(t, ca, state, name, ip, validity)
			checkRenewTiming(t, "", state, leaf)

			// Nothing is due: renew opens no connection and keeps the
			// CA's timing.
			out, errs = mustIpcert(t, "", "renew", "--state-dir", state)
			if strings.Contains(out+errs, "renewed") || strings.Contains(errs, "warning:") {
				t.Errorf("renew of a certificate that is not due renewed or warned:\n%s%s", out, errs)
			}
			out, errs, code := ipcert(t, "", "renew", "--force", "--state-dir", state)
			t.Logf("renew --force:\n%s%s", errs, out)
			if code != 10 || !strings.Contains(out, name+": renewed, version 2") {
				t.Fatalf("renew --force: exit %d (want 10: renewed), output:\n%s%s", code, out, errs)
			}
			checkNoProfileNotice(t, errs)
			// A CA without ARI is not a fault: the timer's journal must
			// not carry a warning on every renewal.
			if strings.Contains(errs, "warning:") {
				t.Errorf("renewing from a CA without ARI logged a warning:\n%s", errs)
			}
			leaf2 := checkCert(t, ca, state, name, ip, validity)
			if leaf2.SerialNumber.Cmp(leaf.SerialNumber) == 0 {
				t.Fatal("renew --force left the same certificate current")
			}
			checkRenewTiming(t, "", state, leaf2)
		})
	}
}

// TestStepCADualStack: one certificate for 127.0.0.1 and ::1 from step-ca,
// whose order stays pending until both authorizations are valid (the
// engine polls the order, not each authorization).
func TestStepCADualStack(t *testing.T) {
	ln, err := net.Listen("tcp6", "[::1]:0")
	require(t, err == nil, "this machine has no IPv6 loopback")
	ln.Close()
	port, err := acmeflow.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	const validity = 30 * time.Hour
	ca := startStepCA(t, caOpts{Host: "127.0.0.1", Validity: validity, HTTPPort: port, TLSPort: port})
	state := t.TempDir()
	for _, ch := range []string{string(acmeflow.ChallengeHTTP01), string(acmeflow.ChallengeTLSALPN01)} {
		listen := "--http-listen=127.0.0.1:" + strconv.Itoa(port)
		if ch == string(acmeflow.ChallengeTLSALPN01) {
			listen = "--tls-listen=127.0.0.1:" + strconv.Itoa(port)
		}
		out, errs := mustIpcert(t, "", "issue", "--ip", "127.0.0.1", "--ip", "::1", "--name", "both-"+ch, "--ca", ca.Directory, "--ca-root", ca.PKI.RootFile,
			"--challenge", ch, listen, "--agree-tos", "--state-dir", state)
		t.Logf("issue:\n%s%s", errs, out)
		checkCertIPs(t, ca, state, "both-"+ch, []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}, validity)
	}
}

// TestStepCAValidationFailure: step-ca cannot reach the responder (its
// validator knocks on another port). It leaves the challenge pending with
// the error of its attempt and does not try again; the run must end with
// that error and its diagnosis, not wait for --timeout and say only
// "context deadline exceeded" (it did).
func TestStepCAValidationFailure(t *testing.T) {
	caPort, err := acmeflow.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ourPort, err := acmeflow.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	ca := startStepCA(t, caOpts{Host: "127.0.0.1", Validity: 24 * time.Hour, HTTPPort: caPort, TLSPort: caPort})
	// One address (its authorization is polled) and two (the order is:
	// it stays pending, so the authorizations are asked every few polls).
	for _, ips := range [][]string{{"127.0.0.1"}, {"127.0.0.1", "::1"}} {
		args := []string{"issue", "--ca", ca.Directory, "--ca-root", ca.PKI.RootFile,
			"--http-listen", "127.0.0.1:" + strconv.Itoa(ourPort), "--agree-tos", "--state-dir", t.TempDir(), "--timeout", "60s"}
		for _, ip := range ips {
			args = append(args, "--ip", ip)
		}
		start := time.Now()
		out, errs, code := ipcert(t, "", args...)
		t.Logf("%v: exit %d after %s\n%s%s", ips, code, time.Since(start).Round(time.Millisecond), errs, out)
		if code != 1 || strings.Contains(errs, "gave up") || strings.Contains(errs, "deadline exceeded") {
			t.Fatalf("%v: exit %d: want the CA's validation error, not the timeout", ips, code)
		}
		for _, want := range []string{"connection: The server could not connect to validation target", "Diagnosis:"} {
			if !strings.Contains(errs, want) {
				t.Errorf("%v: output lacks %q", ips, want)
			}
		}
	}
}
