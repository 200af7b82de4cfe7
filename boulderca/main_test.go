package boulderca

import (
	"context"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/boulder"
	"github.com/ipcert/ipcert/internal/testkit"
)

// The addresses the tests certify: they must look public to Boulder, and
// live on the namespace's loopback where ipcert's responder answers.
// 64.112.117.0/25 is the "public" network of Boulder's own test set-up;
// the tests take from 64.112.112.0/21 and an IPv6 /64 beside it. Each call
// gives a new address (Boulder counts certificates per address set, so a
// test run again with -count must not reuse one).
var nextAddr atomic.Int32

func fresh(t *testing.T, s *boulder.Stack) (v4, v6 netip.Addr) {
	t.Helper()
	k := int(nextAddr.Add(1))
	if k > 2000 {
		t.Fatal("the tests used up their 2000 addresses")
	}
	v4 = netip.AddrFrom4([4]byte{64, 112, byte(112 + k/250), byte(1 + k%250)})
	// Each IPv6 address in a /64 of its own: Boulder counts certificates
	// per /64 (50 in 90 days), and a -count=20 run issues more than that.
	v6 = netip.MustParseAddr(fmt.Sprintf("2602:80a:6000:%x::1", k))
	if err := s.AddAddresses(v4, v6); err != nil {
		t.Fatal(err)
	}
	return v4, v6
}

var (
	once     sync.Once
	stack    *boulder.Stack
	startErr error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if stack != nil {
		stack.Close()
	}
	os.Exit(code)
}

// boulderStack is the package's one stack, started by the first test that
// needs it (a cold machine builds Boulder first: minutes).
func boulderStack(t *testing.T) *boulder.Stack {
	t.Helper()
	testkit.NeedRoot(t, "running Boulder in a network namespace")
	miss := boulder.Missing()
	testkit.Need(t, miss == "", "Boulder needs "+miss)
	once.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
		defer cancel()
		in, err := boulder.Prepare(ctx, func(s string) { fmt.Fprintln(os.Stderr, s) })
		if err != nil {
			startErr = err
			return
		}
		stack, startErr = boulder.Start(ctx, in, boulder.Options{})
	})
	if startErr != nil {
		t.Fatalf("Boulder: %v", startErr)
	}
	return stack
}

// ipcert runs the built binary inside the stack's namespace.
func ipcert(t *testing.T, s *boulder.Stack, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	cmd := s.Command(ctx, testkit.Binary(t), args...)
	cmd.Env = []string{"PATH=/usr/sbin:/usr/bin:/sbin:/bin", "HOME=" + t.TempDir()}
	return testkit.Run(t, cmd)
}

// caArgs are the flags that point ipcert at the stack's WFE.
func caArgs(s *boulder.Stack, state string) []string {
	return []string{"--ca", s.Directory, "--ca-root", s.TLSRoot, "--agree-tos", "--state-dir", state}
}

func mustIssue(t *testing.T, s *boulder.Stack, state string, args ...string) string {
	t.Helper()
	out, errs, code := ipcert(t, s, append(append([]string{"issue"}, args...), caArgs(s, state)...)...)
	if code != 0 {
		t.Fatalf("ipcert issue %s: exit %d\n%s%s\nwfe2 log tail:\n%s", strings.Join(args, " "), code, errs, out, s.Log("wfe2", 2000))
	}
	return errs + out
}

// checkShape checks the current certificate of name as Let's Encrypt
// issues one for IP addresses: empty subject, exactly ips as IP SANs and
// nothing else, 160 hours, embedded SCTs, chaining to one of Boulder's
// roots through the stored chain.
func checkShape(t *testing.T, s *boulder.Stack, state, name string, ips []netip.Addr) *x509.Certificate {
	t.Helper()
	cur := filepath.Join(state, "certs", name, "current")
	leaf := readCert(t, filepath.Join(cur, "cert.pem"))
	if len(leaf.Subject.Names) != 0 || leaf.Subject.CommonName != "" {
		t.Errorf("%s: subject %q, want empty", name, leaf.Subject)
	}
	if len(leaf.DNSNames) != 0 || len(leaf.EmailAddresses) != 0 || len(leaf.URIs) != 0 {
		t.Errorf("%s: names beside the addresses: %v %v %v", name, leaf.DNSNames, leaf.EmailAddresses, leaf.URIs)
	}
	var got []string
	for _, ip := range leaf.IPAddresses {
		a, _ := netip.AddrFromSlice(ip)
		got = append(got, a.Unmap().String())
	}
	var want []string
	for _, ip := range ips {
		want = append(want, ip.String())
	}
	if strings.Join(sortedCopy(got), ",") != strings.Join(sortedCopy(want), ",") {
		t.Errorf("%s: IP SANs %v, want %v", name, got, want)
	}
	// Boulder's shortlived profile: 160 hours, NotAfter inclusive (RFC 5280).
	if d := leaf.NotAfter.Sub(leaf.NotBefore) + time.Second; d != 160*time.Hour {
		t.Errorf("%s: validity %s, want 160h (the shortlived profile)", name, d)
	}
	sct := false
	for _, e := range leaf.Extensions {
		if e.Id.String() == "1.3.6.1.4.1.11129.2.4.2" {
			sct = true
		}
	}
	if !sct {
		t.Errorf("%s: no embedded SCT list", name)
	}
	roots := x509.NewCertPool()
	for _, r := range s.IssuerRoots {
		roots.AddCert(readCert(t, r))
	}
	inter := x509.NewCertPool()
	chain, err := os.ReadFile(filepath.Join(cur, "chain.pem"))
	if err != nil {
		t.Fatal(err)
	}
	inter.AppendCertsFromPEM(chain)
	for _, ip := range ips {
		if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: ip.String(), CurrentTime: leaf.NotBefore.Add(time.Hour)}); err != nil {
			t.Errorf("%s: does not verify for %s against Boulder's roots: %v", name, ip, err)
		}
	}
	return leaf
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(b)
	if blk == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func sortedCopy(s []string) []string {
	out := append([]string(nil), s...)
	for i := range out {
		for j := i + 1; j < len(out); j++ {
			if out[j] < out[i] {
				out[i], out[j] = out[j], out[i]
			}
		}
	}
	return out
}

// validators counts the validator requests ipcert reported for one address.
func validators(out string, ip netip.Addr) int {
	n := 0
	// "-> 192.0.2.1:80" or "-> [2001:db8::1]:80"
	to := "-> " + strings.TrimSuffix(netip.AddrPortFrom(ip, 0).String(), "0")
	for _, l := range strings.Split(out, "\n") {
		if strings.Contains(l, "validator ") && strings.Contains(l, to) {
			n++
		}
	}
	return n
}

func nil2(ips ...netip.Addr) []netip.Addr { return ips }
