package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"net"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/diagnosis"
	"github.com/ipcert/ipcert/internal/netlimit"
	"github.com/ipcert/ipcert/internal/safefs"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/preflight"
)

// codeScenario is one way to meet a diagnosis code: an error as the
// engine returns it, and the evidence that decides the cause.
type codeScenario struct {
	code string
	err  func(ip string) error
	ev   diagnosis.Evidence
}

func chalProblem(typ, detail string) func(string) error {
	return func(ip string) error {
		return &acmeflow.Error{Step: acmeflow.StepChallenge, Identifier: ip, Problem: &acmeflow.Problem{Type: acmeflow.ProblemNS + typ, Detail: strings.ReplaceAll(detail, "IP", ip)}}
	}
}

func stepProblem(step acmeflow.Step, typ, detail string) func(string) error {
	return func(ip string) error {
		return &acmeflow.Error{Step: step, Problem: &acmeflow.Problem{Type: acmeflow.ProblemNS + typ, Detail: detail}}
	}
}

func stepError(step acmeflow.Step, err error) func(string) error {
	return func(ip string) error { return &acmeflow.Error{Step: step, Identifier: ip, Err: err} }
}

// everyCode meets every diagnosis code once (TestEveryCodeHasAScenario
// keeps it complete).
func everyCode(webroot string) []codeScenario {
	none := diagnosis.Evidence{SeenKnown: true}
	tls := diagnosis.Evidence{SeenKnown: true, Challenge: spec.TLSALPN01}
	wr := diagnosis.Evidence{SeenKnown: true, WebRoot: webroot}
	seen := diagnosis.Evidence{SeenKnown: true, Seen: []acmeflow.ValidatorRequest{{Challenge: spec.HTTP01, Remote: "23.178.112.10:4000", Answered: true}}}
	lan := []netip.Addr{netip.MustParseAddr("192.168.1.20")}
	busy := func(port string, errno syscall.Errno) func(string) error {
		return stepError(acmeflow.StepResponder, fmt.Errorf("cannot listen on :%s: %w", port, &net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", errno)}))
	}
	return []codeScenario{
		{diagnosis.DiagInterrupted, stepError(acmeflow.StepChallenge, context.Canceled), diagnosis.Evidence{}},
		{diagnosis.DiagLocked, stepError(acmeflow.StepStore, store.ErrLocked), diagnosis.Evidence{}},
		{diagnosis.DiagBadAddress, stepError(acmeflow.StepAddress, &acmeflow.AddrError{}), diagnosis.Evidence{}},
		{diagnosis.DiagNoShortlived, stepError(acmeflow.StepDirectory, acmeflow.ErrNoShortlived), diagnosis.Evidence{}},
		{diagnosis.DiagTOS, stepError(acmeflow.StepAccount, errors.New("the CA's terms of service need agreeing: run again with --agree-tos")), diagnosis.Evidence{}},
		{diagnosis.DiagCADNS, stepError(acmeflow.StepDirectory, &net.DNSError{Err: "no such host", Name: "acme-staging-v02.api.letsencrypt.org", IsNotFound: true}), diagnosis.Evidence{}},
		{diagnosis.DiagCARefused, stepError(acmeflow.StepDirectory, syscall.ECONNREFUSED), diagnosis.Evidence{}},
		{diagnosis.DiagCATLS, stepError(acmeflow.StepDirectory, x509.UnknownAuthorityError{}), diagnosis.Evidence{}},
		{diagnosis.DiagCATimeout, stepError(acmeflow.StepDirectory, &url.Error{Op: "Get", URL: "https://ca/dir", Err: os.ErrDeadlineExceeded}), diagnosis.Evidence{}},
		{diagnosis.DiagCAUnreachable, stepError(acmeflow.StepDirectory, syscall.ENETUNREACH), diagnosis.Evidence{}},
		{diagnosis.DiagBadNonce, stepProblem(acmeflow.StepOrder, "badNonce", "JWS has an invalid anti-replay nonce"), diagnosis.Evidence{}},
		{diagnosis.DiagServerInternal, stepProblem(acmeflow.StepOrder, "serverInternal", "Error creating new order"), diagnosis.Evidence{}},
		{diagnosis.DiagRateLimited, stepProblem(acmeflow.StepOrder, "rateLimited", "too many new orders (300) from this account"), diagnosis.Evidence{}},
		{diagnosis.DiagRejectedReserved, stepProblem(acmeflow.StepOrder, "rejectedIdentifier", "IP address is in a reserved address block: [RFC1918]: Private-Use"), diagnosis.Evidence{}},
		{diagnosis.DiagRejectedProfile, stepProblem(acmeflow.StepOrder, "rejectedIdentifier", "Default profile does not permit IP address identifiers"), diagnosis.Evidence{}},
		{diagnosis.DiagRejectedCanonical, stepProblem(acmeflow.StepOrder, "rejectedIdentifier", `Cannot issue for "2a01:04f8::7": IP address is invalid`), diagnosis.Evidence{}},
		{diagnosis.DiagRejectedIdentifier, stepProblem(acmeflow.StepOrder, "rejectedIdentifier", "The ACME server refuses to issue for this address: forbidden by policy"), diagnosis.Evidence{}},
		{diagnosis.DiagInvalidProfile, stepProblem(acmeflow.StepOrder, "invalidProfile", "profile shortlived-beta is not recognised"), diagnosis.Evidence{}},
		{diagnosis.DiagBadCSRCommonName, stepProblem(acmeflow.StepFinalize, "badCSR", "CSR contains IP address in Common Name"), diagnosis.Evidence{}},
		{diagnosis.DiagBadCSR, stepProblem(acmeflow.StepFinalize, "badCSR", "key too small"), diagnosis.Evidence{}},
		{diagnosis.DiagAccount, stepProblem(acmeflow.StepAccount, "invalidContact", "contact email has invalid domain"), diagnosis.Evidence{}},
		{diagnosis.DiagPortBusy, busy("80", syscall.EADDRINUSE), diagnosis.Evidence{WebServer: "nginx", WebServerRoot: webroot}},
		{diagnosis.DiagPortBusy, busy("443", syscall.EADDRINUSE), diagnosis.Evidence{Challenge: spec.TLSALPN01, WebServer: "nginx", WebServerRoot: webroot}},
		{diagnosis.DiagPortBusy, busy("443", syscall.EADDRINUSE), diagnosis.Evidence{Challenge: spec.TLSALPN01}},
		{diagnosis.DiagPortForbidden, busy("80", syscall.EACCES), diagnosis.Evidence{}},
		{diagnosis.DiagWebRootMissing, stepError(acmeflow.StepResponder, errors.New("web root /nonexistent: no such file or directory")), diagnosis.Evidence{WebRoot: "/nonexistent"}},
		{diagnosis.DiagWebRootNotWritable, stepError(acmeflow.StepResponder, errors.New("web root "+webroot+" is not writable")), diagnosis.Evidence{WebRoot: webroot}},
		{diagnosis.DiagWebRootNotServed, chalProblem("unauthorized", "IP: Invalid response from http://IP/.well-known/acme-challenge/x: 404"), wr},
		{diagnosis.DiagWebRootLink, stepError(acmeflow.StepResponder, errors.New("web root "+webroot+": .well-known is a symbolic link")), diagnosis.Evidence{WebRoot: webroot}},
		{diagnosis.DiagConnectTimeout, chalProblem("connection", "IP: Fetching http://IP/.well-known/acme-challenge/x: Timeout during connect (likely firewall problem)"), none},
		{diagnosis.DiagConnectTimeout, chalProblem("connection", "IP: Fetching http://IP/.well-known/acme-challenge/x: Timeout during connect (likely firewall problem)"), diagnosis.Evidence{SeenKnown: true, NAT: "cloud-1to1"}},
		{diagnosis.DiagSlowServer, chalProblem("connection", "IP: Fetching http://IP/.well-known/acme-challenge/x: Timeout after connect (your server may be slow or overloaded)"), seen},
		{diagnosis.DiagConnectRefused, chalProblem("connection", "IP: Fetching http://IP/.well-known/acme-challenge/x: Connection refused"), none},
		{diagnosis.DiagConnectReset, chalProblem("connection", "IP: Fetching http://IP/.well-known/acme-challenge/x: Connection reset by peer"), none},
		{diagnosis.DiagNetUnreachable, chalProblem("connection", "IP: Fetching http://IP/.well-known/acme-challenge/x: Network unreachable"), none},
		{diagnosis.DiagNetUnreachable, func(string) error {
			return chalProblem("connection", `Get "http://[2a02:898:0:20::7]/.well-known/acme-challenge/x": connect: network is unreachable`)("2a02:898:0:20::7")
		}, diagnosis.Evidence{SeenKnown: true, PublicNow: []netip.Addr{netip.MustParseAddr("81.2.69.160")}}},
		{diagnosis.DiagSecondary, chalProblem("connection", "During secondary validation: IP: Fetching http://IP/.well-known/acme-challenge/x: Timeout during connect (likely firewall problem)"), none},
		{diagnosis.DiagNotFound, chalProblem("unauthorized", "IP: Invalid response from http://IP/.well-known/acme-challenge/x: 404"), diagnosis.Evidence{}},
		{diagnosis.DiagBadStatus, chalProblem("unauthorized", "IP: Invalid response from http://IP/.well-known/acme-challenge/x: 403"), diagnosis.Evidence{}},
		{diagnosis.DiagWrongContent, chalProblem("unauthorized", `The key authorization file from the server did not match this challenge. Expected "a.b" (got "nope")`), wr},
		{diagnosis.DiagForeignServer, chalProblem("unauthorized", "IP: Invalid response from http://IP/.well-known/acme-challenge/x: 404"), none},
		{diagnosis.DiagForeignServer, chalProblem("unauthorized", "IP: Invalid response from http://IP/.well-known/acme-challenge/x: 404"), diagnosis.Evidence{SeenKnown: true, NAT: "direct"}},
		{diagnosis.DiagRedirectPort, chalProblem("connection", "IP: Fetching http://IP:8443/.well-known/acme-challenge/x: Invalid port in redirect target. Only ports 80 and 443 are supported, not 8443"), none},
		{diagnosis.DiagTooManyRedirects, chalProblem("connection", "IP: Fetching http://IP/.well-known/acme-challenge/x: Too many redirects"), none},
		{diagnosis.DiagHTTPOnTLSPort, chalProblem("tls", "IP: Server only speaks HTTP, not TLS"), tls},
		{diagnosis.DiagNoALPN, chalProblem("tls", `IP: Cannot negotiate ALPN protocol "acme-tls/1" for tls-alpn-01 challenge`), tls},
		{diagnosis.DiagWrongCert, chalProblem("unauthorized", "IP: Incorrect validation certificate for tls-alpn-01 challenge."), tls},
		{diagnosis.DiagTLSConnect, chalProblem("connection", "Failed to connect to IP:443 for the tls-alpn-01 challenge"), tls},
		{diagnosis.DiagChallengeNotOffered, stepError(acmeflow.StepChallenge, errors.New("the CA does not offer tls-alpn-01 for this address")), diagnosis.Evidence{Challenge: spec.TLSALPN01}},
		{diagnosis.DiagDiskFull, stepError(acmeflow.StepStore, &fs.PathError{Op: "write", Path: "/x", Err: syscall.ENOSPC}), diagnosis.Evidence{}},
		{diagnosis.DiagReadOnly, stepError(acmeflow.StepStore, &fs.PathError{Op: "open", Path: "/x", Err: syscall.EROFS}), diagnosis.Evidence{}},
		{diagnosis.DiagStateNotWritable, stepError(acmeflow.StepStore, &fs.PathError{Op: "open", Path: "/x", Err: fs.ErrPermission}), diagnosis.Evidence{}},
		{diagnosis.DiagStateUntrusted, stepError(acmeflow.StepStore, &safefs.UntrustedError{Path: "/x", Target: "/x", Uid: 1000, Fix: "chown root /x"}), diagnosis.Evidence{}},
		{diagnosis.DiagStoreRename, stepError(acmeflow.StepStore, &os.LinkError{Op: "rename", Old: "/s/a.tmp", New: "/s/a", Err: syscall.EBUSY}), diagnosis.Evidence{}},
		{diagnosis.DiagJWS, stepProblem(acmeflow.StepOrder, "malformed", "JWS verification error"), diagnosis.Evidence{}},
		{diagnosis.DiagCATooLarge, stepError(acmeflow.StepDirectory, &netlimit.TooLargeError{Peer: "ca.example:443", What: "response", Limit: 1 << 20}), diagnosis.Evidence{}},
		{diagnosis.DiagFirewall, chalProblem("connection", "IP: Fetching http://IP/.well-known/acme-challenge/x: Connection refused"), diagnosis.Evidence{SeenKnown: true, FirewallTools: []string{"nftables"}, Firewall: []string{"nftables ipv4 port 80: table inet filter chain input: tcp dport 80 reject"}}},
		{diagnosis.DiagFirewall, chalProblem("connection", "IP: Fetching http://IP/.well-known/acme-challenge/x: Timeout during connect (likely firewall problem)"), diagnosis.Evidence{SeenKnown: true, FirewallTools: []string{"ufw"}, Firewall: []string{"ufw ipv4 port 80: Default: deny (incoming)"}}},
		{diagnosis.DiagNotForwarded, chalProblem("connection", "IP: Fetching http://IP/.well-known/acme-challenge/x: Connection refused"), diagnosis.Evidence{SeenKnown: true, NAT: "home-nat", LocalAddrs: lan, LocalAddrsKnown: true}},
		{diagnosis.DiagCGNAT, chalProblem("connection", "IP: Fetching http://IP/.well-known/acme-challenge/x: Connection refused"), diagnosis.Evidence{SeenKnown: true, NAT: "cgnat", PublicNow: []netip.Addr{netip.MustParseAddr("2a02:898:0:20::20")}}},
		{diagnosis.DiagWrongAddress, chalProblem("connection", "IP: Fetching http://IP/.well-known/acme-challenge/x: Connection refused"), diagnosis.Evidence{SeenKnown: true, NAT: "direct", LocalAddrs: lan, LocalAddrsKnown: true}},
		{diagnosis.DiagAddressChanged, chalProblem("connection", "IP: Fetching http://IP/.well-known/acme-challenge/x: Timeout during connect"), diagnosis.Evidence{SeenKnown: true, Issued: true, NAT: "direct", PublicNow: []netip.Addr{netip.MustParseAddr("81.2.69.199")}}},
		{diagnosis.DiagRedirectHTTPS, chalProblem("unauthorized", "IP: Invalid response from https://IP/.well-known/acme-challenge/x: 404"), wr},
		{diagnosis.DiagUnknown, stepError(acmeflow.StepOrder, errors.New("something nobody expected")), diagnosis.Evidence{}},
	}
}

// allCodes are the codes declared in diagnosis.go.
func allCodes(t *testing.T) []string {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("..", "diagnosis", "diagnosis.go"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, m := range regexp.MustCompile(`(?m)^\s+Diag\w+\s+= "([a-z0-9-]+)"$`).FindAllSubmatch(src, -1) {
		out = append(out, string(m[1]))
	}
	if len(out) < 40 {
		t.Fatalf("found only %d codes in diagnosis.go", len(out))
	}
	return out
}

func TestEveryCodeHasAScenario(t *testing.T) {
	have := map[string]bool{}
	for _, s := range everyCode("/srv/www") {
		have[s.code] = true
	}
	for _, c := range allCodes(t) {
		if !have[c] {
			t.Errorf("no scenario in everyCode meets %q", c)
		}
	}
}

// TestSuggestedCommandsAreValid runs every command a diagnosis suggests
// (and the doctor commands issue prints after it), for every code, for
// each kind of CA and state directory, through ipcert's own flag parsing
// and validation: the command as printed, on one line, is accepted.
func TestSuggestedCommandsAreValid(t *testing.T) {
	dir := t.TempDir()
	webroot := filepath.Join(dir, "www")
	if err := os.Mkdir(webroot, 0o755); err != nil {
		t.Fatal(err)
	}
	root := filepath.Join(dir, "root.pem")
	writeTestRoot(t, root)
	others := []string{"ss", "df", "findmnt", "ls", "curl", "getent", "timedatectl", "nft", "iptables", "ip6tables", "ufw", "firewall-cmd", "setcap"}
	variants := []struct {
		name string
		att  diagnosis.Attempt
	}{
		{"production", diagnosis.Attempt{Issuance: spec.Issuance{CA: "production", Challenge: spec.HTTP01, Identifiers: []string{"81.2.69.160"}}}},
		{"staging, own state dir", diagnosis.Attempt{Issuance: spec.Issuance{CA: "staging", Challenge: spec.HTTP01, Identifiers: []string{"81.2.69.160"}}, StateDir: filepath.Join(dir, "state 1")}},
		{"own CA", diagnosis.Attempt{Issuance: spec.Issuance{CA: "https://ca.example.net:9000/acme/acme/directory", CARoot: root, Challenge: spec.HTTP01, Identifiers: []string{"10.0.0.7"}}, StateDir: filepath.Join(dir, "state")}},
		{"web root, two addresses", diagnosis.Attempt{Issuance: spec.Issuance{CA: "production", Challenge: spec.HTTP01, WebRoot: webroot, Identifiers: []string{"81.2.69.160", "2a02:898:0:20::7"}}}},
		{"tls-alpn-01", diagnosis.Attempt{Issuance: spec.Issuance{CA: "staging", Challenge: spec.TLSALPN01, Identifiers: []string{"2a02:898:0:20::7"}}}},
	}
	checked := 0
	for _, v := range variants {
		for _, sc := range everyCode(webroot) {
			ev := v.att.Evidence(time.Now())
			// The scenario's evidence decides the cause; the variant's the
			// attempt.
			sev := sc.ev
			sev.CA, sev.CARoot, sev.StateDir, sev.Identifiers, sev.Now = ev.CA, ev.CARoot, ev.StateDir, ev.Identifiers, ev.Now
			if sc.code == diagnosis.DiagWrongAddress || sc.code == diagnosis.DiagAddressChanged {
				sev.PublicNow = sc.ev.PublicNow
			}
			if sev.Challenge == "" {
				sev.Challenge = ev.Challenge
			}
			if sev.WebRoot == "" && sev.Challenge != acmeflow.ChallengeTLSALPN01 && sc.code != diagnosis.DiagPortBusy {
				sev.WebRoot = ev.WebRoot
			}
			sev.HTTPPort, sev.TLSPort = 80, 443
			d := diagnosis.Diagnose(sc.err(v.att.Identifiers[0]), sev)
			var out bytes.Buffer
			diagnosis.WriteFailure(&out, d, nil)
			cmds := []diagnosis.Cmd{d.Args}
			for _, m := range regexp.MustCompile(`"(ipcert [^"]+)"`).FindAllStringSubmatch(out.String(), -1) {
				cmds = append(cmds, shellWords(t, m[1]))
			}
			for _, c := range cmds {
				if len(c) == 0 {
					continue
				}
				checked++
				where := fmt.Sprintf("%s / %s: %q", v.name, sc.code, c.String())
				if strings.ContainsAny(c.String(), "\n\r") {
					t.Errorf("%s: more than one line", where)
				}
				if sub, ok := c.Ipcert(); ok {
					checkIpcertCommand(t, where, sub, c, v.att.StateDir)
					continue
				}
				w := c
				if w[0] == "sudo" {
					w = w[1:]
				}
				if !slices.Contains(others, w[0]) || strings.HasPrefix(w[0], "ipcert") {
					t.Errorf("%s: %q is not a known program", where, w[0])
				}
			}
		}
	}
	// The commands of preflight's fixes.
	for _, addrs := range [][]netip.Addr{nil, {netip.MustParseAddr("81.2.69.160")}, {netip.MustParseAddr("81.2.69.160"), netip.MustParseAddr("2a02:898:0:20::7")}} {
		for _, line := range []string{preflight.RehearsalCommand(addrs), preflight.PreflightCommand(addrs), preflight.PreflightCommand(addrs, "--map-ports")} {
			c := shellWords(t, line)
			sub, _ := c.Ipcert()
			checked++
			if sub == "issue" && len(addrs) == 0 {
				// --ip auto asks the internet, which the test has not:
				// the words are checked, not the lookup.
				if v, _ := c.Flag("--ip"); v != "auto" {
					t.Errorf("%q: want --ip auto", line)
				}
				continue
			}
			checkIpcertCommand(t, "preflight's fix: "+line, sub, c, "")
		}
	}
	t.Logf("%d commands checked", checked)
}

// checkIpcertCommand runs an ipcert command through its own flag parsing
// and validation: with the context already cancelled, a valid command
// stops at its first real work (exit 130 or 1), a bad one with exit 2.
func checkIpcertCommand(t *testing.T, where, sub string, c diagnosis.Cmd, stateDir string) {
	t.Helper()
	args := []string(c)
	if args[0] == "sudo" {
		args = args[1:]
	}
	args = args[1:]
	if sub == "issue" {
		for _, must := range []string{"--ip", "--ca", "--agree-tos"} {
			if _, ok := c.Flag(must); !ok {
				t.Errorf("%s: lacks %s", where, must)
			}
		}
	}
	if sub == "issue" || sub == "doctor" || sub == "status" {
		if got, _ := c.Flag("--state-dir"); got != stateDir {
			t.Errorf("%s: --state-dir %q, want %q", where, got, stateDir)
		}
	}
	if _, ok := c.Flag("--state-dir"); !ok && sub != "preflight" {
		// Nothing of the test may touch /etc/ipcert.
		args = append(args, "--state-dir", filepath.Join(t.TempDir(), "state"))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	var o, e bytes.Buffer
	code := run(ctx, args, stdio{In: strings.NewReader(""), Out: &o, Err: &e, Env: func(string) string { return "" }})
	if code == exitUsage {
		t.Errorf("%s: refused (exit %d): %s", where, code, e.String())
	}
}

func writeTestRoot(t *testing.T, path string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test root"}, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true, BasicConstraintsValid: true}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// shellWords splits a command line as a POSIX shell does for the words
// ipcert prints: plain words and single-quoted parts.
func shellWords(t *testing.T, line string) diagnosis.Cmd {
	t.Helper()
	var out diagnosis.Cmd
	var w strings.Builder
	inWord, quoted := false, false
	for i := 0; i < len(line); i++ {
		ch := line[i]
		switch {
		case quoted && ch == '\'':
			quoted = false
		case quoted:
			w.WriteByte(ch)
		case ch == '\'':
			quoted, inWord = true, true
		case ch == ' ':
			if inWord {
				out = append(out, w.String())
				w.Reset()
				inWord = false
			}
		case ch == '\\' && i+1 < len(line):
			i++
			w.WriteByte(line[i])
			inWord = true
		default:
			w.WriteByte(ch)
			inWord = true
		}
	}
	if quoted {
		t.Errorf("unbalanced quote in %q", line)
	}
	if inWord {
		out = append(out, w.String())
	}
	return out
}

// TestTroubleshootingListsEveryCode: docs/troubleshooting.md names every
// diagnosis code.
func TestTroubleshootingListsEveryCode(t *testing.T) {
	doc, err := os.ReadFile(filepath.Join("..", "docs", "troubleshooting.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range allCodes(t) {
		if !strings.Contains(string(doc), "`"+c+"`") {
			t.Errorf("docs/troubleshooting.md does not list %q", c)
		}
	}
}
