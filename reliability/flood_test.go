package reliability

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/localca"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/internal/testkit"
)

// The network attacks of issue 22, each against the built binary on
// loopback, bounded in count: the responders flooded while the CA
// validates (http-01 and tls-alpn-01), a CA whose body never ends. The
// figures (peak RSS, the failure record, stderr) go to scripts/reliability.

// Targets of issue 22.
const (
	floodMaxRSSKB    = 64 << 10 // peak RSS of the ipcert process
	floodMaxRecord   = 16 << 10 // failures/NAME.json
	floodMaxStderrKB = 64       // what ipcert prints
)

// ownCA is Pebble in this process (an ACME CA given by URL to the binary),
// validating http-01 on httpPort and tls-alpn-01 on tlsPort.
func ownCA(t *testing.T, httpPort, tlsPort int) (dir, root string) {
	t.Helper()
	srv, err := localca.Start(localca.Options{HTTPPort: httpPort, TLSPort: tlsPort})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	root = filepath.Join(t.TempDir(), "ca-root.pem")
	if err := os.WriteFile(root, srv.ListenerRootPEM(), 0o644); err != nil {
		t.Fatal(err)
	}
	return srv.DirectoryURL(), root
}

// gate stands between the CA's validator and ipcert's responder: it holds
// every connection until open, then forwards it to target, or cuts it when
// cut is set (a validation that fails). So the flood is over before the
// CA's requests arrive, whatever the scheduling.
type gate struct {
	ln      net.Listener
	target  string
	cut     bool
	release chan struct{}
	once    sync.Once
	held    sync.WaitGroup
}

func newGate(t *testing.T, port int, target string, cut bool) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, target: target, cut: cut, release: make(chan struct{})}
	t.Cleanup(func() { ln.Close(); g.open(); g.held.Wait() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			g.held.Add(1)
			go func() {
				defer g.held.Done()
				defer c.Close()
				<-g.release
				if g.cut {
					return
				}
				up, err := net.Dial("tcp", g.target)
				if err != nil {
					return
				}
				defer up.Close()
				go func() { io.Copy(up, c); up.(*net.TCPConn).CloseWrite() }()
				io.Copy(c, up)
			}()
		}
	}()
	return g
}

func (g *gate) open() { g.once.Do(func() { close(g.release) }) }

// running is the binary started in the background, watched from /proc.
type running struct {
	cmd    *exec.Cmd
	stderr *bytes.Buffer
	done   chan struct{}
	err    error

	watched chan struct{}
	hwmKB   int64 // VmHWM: the process's own peak RSS
	fds     int   // peak open files
}

func startIpcert(t *testing.T, args ...string) *running {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir()}
	r := &running{cmd: cmd, stderr: &bytes.Buffer{}, done: make(chan struct{}), watched: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = io.Discard, r.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go r.watch()
	go func() { r.err = cmd.Wait(); close(r.done) }()
	return r
}

// watch samples the peak RSS (VmHWM, a high-water mark: a sample cannot
// miss a peak that came before it) and the open files (leaked ones stay
// open) until the process ends.
func (r *running) watch() {
	defer close(r.watched)
	pid := r.cmd.Process.Pid
	for {
		select {
		case <-r.done:
			return
		default:
		}
		if data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid)); err == nil {
			for _, line := range strings.Split(string(data), "\n") {
				if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
					if kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil {
						r.hwmKB = max(r.hwmKB, kb)
					}
				}
			}
		}
		if ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid)); err == nil {
			r.fds = max(r.fds, len(ents))
		}
		time.Sleep(time.Millisecond)
	}
}

// wait returns the exit code and the peak RSS in KB: the process's own
// high-water mark as sampled (the rusage of a child started by vfork also
// counts the parent's pages at the exec, here the test's Pebble).
func (r *running) wait() (code int, rssKB int64) {
	<-r.done
	<-r.watched
	return r.cmd.ProcessState.ExitCode(), r.hwmKB
}

// waitListening waits until addr takes connections (the responder is up)
// or the binary has exited.
func waitListening(t *testing.T, r *running, addr string) {
	t.Helper()
	for {
		select {
		case <-r.done:
			t.Fatalf("ipcert exited before its responder listened: %v\n%s", r.err, r.stderr)
		default:
		}
		if c, err := net.Dial("tcp", addr); err == nil {
			c.Close()
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// fromSource is an HTTP client whose connections come from the loopback
// address src (another host as far as the responder can tell).
func fromSource(src string) *http.Client {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 1, DisableCompression: true}}
}

// floodPerSource is how many requests or handshakes each of the three
// flooding sources sends: 100, or IPCERT_TEST_FLOOD (at most 20,000) for a
// measurement at issue 22's scale (12,000 handshakes).
func floodPerSource() int {
	if n, err := strconv.Atoi(os.Getenv("IPCERT_TEST_FLOOD")); err == nil && n > 0 && n <= 20000 {
		return n
	}
	return 100
}

// floodHTTP sends what issue 22 sent, bounded: per source 100 requests
// with 7 KB of path and User-Agent (under the header cap: they reach the
// handler), 5 with 900 KB of headers and 5 with a 1 MB body; and holds 40
// idle connections from one more source, which it returns.
func floodHTTP(addr string, f *flood) (hold []net.Conn) {
	var wg sync.WaitGroup
	for i := range 3 {
		src := fmt.Sprintf("127.0.0.%d", 2+i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := fromSource(src)
			defer c.CloseIdleConnections()
			do := func(method, path, ua string, body io.Reader) {
				if f.stopped() {
					return
				}
				req, _ := http.NewRequest(method, "http://"+addr+path, body)
				req.Header.Set("User-Agent", ua)
				if resp, err := c.Do(req); err == nil {
					io.Copy(io.Discard, resp.Body)
					resp.Body.Close()
				}
				f.sent.Add(1)
			}
			for j := range floodPerSource() {
				do("GET", "/.well-known/acme-challenge/%1b]0;owned%07"+strings.Repeat("A", 2000)+strconv.Itoa(j), strings.Repeat("U", 5000), nil)
			}
			for range 5 {
				do("GET", "/x", strings.Repeat("H", 900<<10), nil)
			}
			for range 5 {
				do("POST", "/.well-known/acme-challenge/x", "flood", bytes.NewReader(make([]byte, 1<<20)))
			}
		}()
	}
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.5")}}
	for range 40 {
		if c, err := d.Dial("tcp", addr); err == nil {
			hold = append(hold, c)
		}
	}
	wg.Wait()
	return hold
}

// floodTLS sends 300 ClientHellos with 200 protocols of 250 bytes each
// (50 KB), one in four with the address's reverse name (public: it is
// answered), from three sources.
func floodTLS(addr string, f *flood) {
	var protos []string
	for i := range 200 {
		protos = append(protos, fmt.Sprintf("%03d\x1b[2J%s", i, strings.Repeat("p", 243)))
	}
	protos = append(protos, "acme-tls/1")
	var wg sync.WaitGroup
	for i := range 3 {
		src := fmt.Sprintf("127.0.0.%d", 2+i)
		wg.Add(1)
		go func() {
			defer wg.Done()
			d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
			for j := range floodPerSource() {
				if f.stopped() {
					return
				}
				sni := "flood.example"
				if j%4 == 0 {
					sni = acmeflow.ReverseName(netip.MustParseAddr("127.0.0.1"))
				}
				c, err := tls.DialWithDialer(d, "tcp", addr, &tls.Config{ServerName: sni, NextProtos: protos, InsecureSkipVerify: true})
				if err == nil {
					c.Close()
				}
				f.sent.Add(1)
			}
		}()
	}
	wg.Wait()
}

// flood counts what a flood sent; it stops when stop closes (ipcert has
// exited: its responder is gone).
type flood struct {
	sent atomic.Int64
	stop <-chan struct{}
}

func (f *flood) stopped() bool {
	select {
	case <-f.stop:
		return true
	default:
		return false
	}
}

// floodBeforeValidation is how much of the flood reaches the responder
// before the gate lets the CA's validator through: 300, or with
// IPCERT_TEST_FLOOD all of it (then keep it small enough to end within
// Pebble's 15 s validation timeout: 2,000 per source takes about 8 s).
func floodBeforeValidation() int64 {
	if os.Getenv("IPCERT_TEST_FLOOD") != "" {
		return 3 * int64(floodPerSource())
	}
	return 300
}

// TestResponderFlood floods ipcert's responder while a CA (Pebble, behind
// a gate that holds its validator until 300 flood requests are in; the
// rest go on while it validates) validates: the
// issuance succeeds when the CA's requests get through, and when they do
// not, the failure record stays a few KB; stderr and the peak RSS stay
// bounded either way (issue 22: 3.6 GB, a 507 MB record, 405 MB on stderr;
// 24 GB and the OOM killer for tls-alpn-01).
func TestResponderFlood(t *testing.T) {
	for _, chal := range []spec.Challenge{acmeflow.ChallengeHTTP01, acmeflow.ChallengeTLSALPN01} {
		for _, validates := range []bool{true, false} {
			name := string(chal) + "-validated"
			if !validates {
				name = string(chal) + "-failed"
			}
			t.Run(name, func(t *testing.T) { floodOnce(t, chal, validates) })
		}
	}
}

func floodOnce(t *testing.T, chal spec.Challenge, validates bool) {
	resp, err := acmeflow.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	gatePort, err := acmeflow.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	respAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(resp))
	g := newGate(t, gatePort, respAddr, !validates)
	dir, root := ownCA(t, gatePort, gatePort)
	state := filepath.Join(t.TempDir(), "state")
	listen := "--http-listen"
	if chal == acmeflow.ChallengeTLSALPN01 {
		listen = "--tls-listen"
	}
	r := startIpcert(t, "issue", "--ip", "127.0.0.1", "--ca", dir, "--ca-root", root, "--agree-tos", "--state-dir", state,
		"--name", "flood", "--challenge", string(chal), listen, respAddr, "--timeout", "90s")
	waitListening(t, r, respAddr)
	f := &flood{stop: r.done}
	flooded := make(chan struct{})
	var hold []net.Conn
	go func() {
		defer close(flooded)
		if chal == acmeflow.ChallengeHTTP01 {
			hold = floodHTTP(respAddr, f)
		} else {
			floodTLS(respAddr, f)
		}
	}()
	// The CA validates once the first 300 are in (or the flood is over).
	before := time.Now()
	for f.sent.Load() < floodBeforeValidation() {
		select {
		case <-flooded:
		case <-time.After(time.Millisecond):
			continue
		}
		break
	}
	floodTook := time.Since(before)
	g.open()
	code, rss := r.wait()
	<-flooded
	for _, c := range hold {
		c.Close()
	}
	sent := f.sent.Load()
	stderr := r.stderr.Bytes()
	record, _ := os.ReadFile(filepath.Join(state, "failures", "flood.json"))

	if validates && code != 0 {
		t.Errorf("the issuance failed under the flood (exit %d):\n%.4000s", code, stderr)
	}
	if !validates && (code == 0 || len(record) == 0) {
		t.Errorf("a cut validation: exit %d, failure record %d bytes:\n%.4000s", code, len(record), stderr)
	}
	if len(record) > floodMaxRecord {
		t.Errorf("failure record is %d bytes, target <= %d", len(record), floodMaxRecord)
	}
	if len(stderr) > floodMaxStderrKB<<10 {
		t.Errorf("stderr is %d bytes, bound %d KB", len(stderr), floodMaxStderrKB)
	}
	if rss > floodMaxRSSKB {
		t.Errorf("peak RSS %d KB, target <= %d KB", rss, floodMaxRSSKB)
	}
	if !validates && !bytes.Contains(record, []byte("counted, not kept")) {
		t.Errorf("the failure record does not say that requests were counted, not kept:\n%.4000s", record)
	}
	if bytes.Contains(stderr, []byte("\x1b")) || bytes.Contains(record, []byte("\x1b")) {
		t.Error("an escape sequence from the flood reached stderr or the record")
	}
	what := "issuance succeeded"
	if !validates {
		what = fmt.Sprintf("failure record %d B", len(record))
	}
	figure(t, "flood-"+string(chal)+map[bool]string{true: "-validated", false: "-failed"}[validates], "%d requests (the CA's validator let through after %v): %s, peak RSS %d KB, stderr %d B", sent, floodTook.Round(time.Millisecond), what, rss, len(stderr))
}

// TestEndlessCABody: a CA whose directory never ends (issue 22: 13.5 GB
// before the timeout) is cut at the cap with an error naming it.
func TestEndlessCABody(t *testing.T) {
	const maxSent = 64 << 20 // the flood is bounded too
	srv := newEndlessTLS(t, maxSent)
	root := filepath.Join(t.TempDir(), "root.pem")
	writeCertPEM(t, root, srv.Certificate().Raw)
	r := startIpcert(t, "issue", "--ip", "127.0.0.1", "--ca", srv.URL+"/dir", "--ca-root", root, "--agree-tos",
		"--state-dir", filepath.Join(t.TempDir(), "state"), "--http-listen", "127.0.0.1:0", "--timeout", "60s")
	code, rss := r.wait()
	stderr := r.stderr.String()
	if code != 1 || hasPanic(stderr) {
		t.Errorf("exit %d:\n%.4000s", code, stderr)
	}
	host := strings.TrimPrefix(srv.URL, "https://")
	if !strings.Contains(stderr, host) || !strings.Contains(stderr, "1 MiB") || !strings.Contains(stderr, "ca-too-large") {
		t.Errorf("the error does not name the CA (%s) and the cap (1 MiB):\n%.4000s", host, stderr)
	}
	if rss > floodMaxRSSKB {
		t.Errorf("peak RSS %d KB, target <= %d KB", rss, floodMaxRSSKB)
	}
	figure(t, "endless-ca-body", "exit %d, peak RSS %d KB, stderr %d B", code, rss, len(stderr))
}

// newEndlessTLS is a CA whose every answer is a 200 with a JSON body that
// never ends (up to maxSent bytes, so the test is bounded too).
func newEndlessTLS(t *testing.T, maxSent int) *httptest.Server {
	t.Helper()
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		io.WriteString(w, `{"newNonce": "`)
		chunk := bytes.Repeat([]byte("a"), 64<<10)
		for n := 0; n < maxSent; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

func writeCertPEM(t *testing.T, path string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestRenewManyFromOwnCAFds renews many due certificates from a CA given
// by URL with --ca-root at --parallel 4: the open files stay bounded
// (issue 22: each renewal cloned an HTTP transport and never closed it; 300
// renewals held 602 open files; 60 here held 131). The peak is sampled from /proc while the
// run lasts: leaked descriptors stay open, so the sampling cannot miss them.
func TestRenewManyFromOwnCAFds(t *testing.T) {
	// IPCERT_TEST_DUE=300 is the measurement of issue 22's target (300
	// due, <= 64 open files); 60 already showed the leak (131 before).
	due := 60
	if n, err := strconv.Atoi(os.Getenv("IPCERT_TEST_DUE")); err == nil && n > 0 && n <= 1000 {
		due = n
	}
	port, err := acmeflow.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	dir, root := ownCA(t, port, 0)
	state := filepath.Join(t.TempDir(), "state")
	dueFixture(t, state, due, dir, root, port)
	r := startIpcert(t, "renew", "--state-dir", state, "--parallel", "4")
	code, rss := r.wait()
	peak := r.fds
	out := r.stderr.String()
	if code != 10 {
		t.Fatalf("renew exit %d (want 10: renewed):\n%.4000s", code, out)
	}
	if peak > 64 {
		t.Errorf("peak open files %d for %d renewals, target <= 64", peak, due)
	}
	figure(t, "renew-own-ca-fds", "%d due renewed from a --ca-root CA at --parallel 4: peak %d open files, peak RSS %d KB", due, peak, rss)
}

// dueFixture fills state with n certificates due now for 127.1.0.x from
// the CA at dir (its HTTPS root in root), validated on port.
func dueFixture(t *testing.T, state string, n int, dir, root string, port int) {
	t.Helper()
	st, err := store.Open(state)
	if err != nil {
		t.Fatal(err)
	}
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	now := time.Now().UTC().Truncate(time.Second)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fixture CA"},
		NotBefore: now.Add(-24 * time.Hour), NotAfter: now.Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, _ := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	ca, _ := x509.ParseCertificate(caDER)
	caPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER})
	for i := range n {
		ip := net.IPv4(127, 1, byte((i+1)>>8), byte(i+1))
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		nb := now.Add(-100 * time.Hour) // past half of 160 hours: due
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(1000 + i)), NotBefore: nb, NotAfter: nb.Add(160 * time.Hour), IPAddresses: []net.IP{ip},
			KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		leaf, _ := x509.ParseCertificate(der)
		certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
		keyPEM, err := acmeflow.EncodeKey(key)
		if err != nil {
			t.Fatal(err)
		}
		name := store.NameFor([]string{ip.String()})
		v, err := st.SaveVersion(name, store.CertFiles{Cert: certPEM, Chain: caPEM, FullChain: append(append([]byte{}, certPEM...), caPEM...), PrivKey: keyPEM})
		if err != nil {
			t.Fatal(err)
		}
		if err := st.Activate(name, v); err != nil {
			t.Fatal(err)
		}
		if err := st.SaveRenewal(&store.Renewal{Issuance: spec.Issuance{Identifiers: []string{ip.String()}, CA: spec.CAChoice(dir), CARoot: root, Challenge: acmeflow.ChallengeHTTP01, KeyType: "ec256", HTTPListen: net.JoinHostPort(ip.String(), strconv.Itoa(port))}, Name: name, Directory: dir, Profile: acmeflow.ProfileShortlived, Current: v, Serial: fmt.Sprintf("%x", leaf.SerialNumber), NotBefore: leaf.NotBefore, NotAfter: leaf.NotAfter, LastAttempt: now, LastSuccess: now}); err != nil {
			t.Fatal(err)
		}
	}
}

// The test binary doubles as the endless public-address service inside a
// network namespace (IPCERT_TEST_ROLE=endless-echo).
func init() {
	if os.Getenv("IPCERT_TEST_ROLE") == "endless-echo" {
		os.Exit(endlessEcho(os.Getenv("IPCERT_TEST_ADDR"), os.Getenv("IPCERT_TEST_READY")))
	}
}

// endlessEcho answers every request with an address followed by spaces
// that never end (64 MB at most), until killed.
func endlessEcho(addr, ready string) int {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		fmt.Println(err)
		return 1
	}
	os.WriteFile(ready, nil, 0o644)
	_ = http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "203.0.113.7")
		chunk := bytes.Repeat([]byte(" "), 32<<10)
		for n := 0; n < 64<<20; n += len(chunk) {
			if _, err := w.Write(chunk); err != nil {
				return
			}
		}
	}))
	return 0
}

// TestEndlessPublicAddress: `ipcert preflight` asking a public-address
// service whose answer never ends (issue 22) stops at 4 KiB and names the
// service, in a network namespace of its own (nothing leaves the machine).
func TestEndlessPublicAddress(t *testing.T) {
	testkit.NeedRoot(t, "a network namespace")
	unshare := testkit.NeedProgram(t, "unshare", "util-linux")
	ipPath := testkit.NeedProgram(t, "ip", "iproute2")
	timePath := testkit.NeedProgram(t, "time", "time")
	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ready, rss := filepath.Join(dir, "ready"), filepath.Join(dir, "rss")
	script := `"$IP" link set lo up || exit 99
"$SELF" & srv=$!
i=0; while [ ! -e "$READY" ]; do i=$((i+1)); [ $i -gt 1000 ] && exit 98; sleep 0.01; done
"$TIME" -f %M -o "$RSS" "$IPCERT" preflight --ip 127.0.0.1 --ca local --echo4 http://127.0.0.1:8080/ --echo6 http://127.0.0.1:8080/ --no-upnp --natpmp off --self-fetch=false --verbose
rc=$?; kill $srv; exit $rc`
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, unshare, "-n", "sh", "-c", script)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "IP=" + ipPath, "SELF=" + self, "READY=" + ready, "TIME=" + timePath, "RSS=" + rss, "IPCERT=" + bin,
		"IPCERT_TEST_ROLE=endless-echo", "IPCERT_TEST_ADDR=127.0.0.1:8080", "IPCERT_TEST_READY=" + ready}
	out, _ := cmd.CombinedOutput()
	if code := cmd.ProcessState.ExitCode(); code == 98 || code == 99 || hasPanic(string(out)) {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	if !strings.Contains(string(out), "127.0.0.1:8080") || !strings.Contains(string(out), "4 KiB") {
		t.Errorf("preflight does not name the service and the cap (4 KiB):\n%.4000s", out)
	}
	kb, _ := os.ReadFile(rss)
	// GNU time writes "Command exited with non-zero status N" first.
	lines := strings.Fields(string(kb))
	n := 0
	if len(lines) > 0 {
		n, _ = strconv.Atoi(lines[len(lines)-1])
	}
	if n == 0 || n > floodMaxRSSKB {
		t.Errorf("peak RSS %q KB, target <= %d KB", kb, floodMaxRSSKB)
	}
	figure(t, "endless-public-address", "preflight exit %d (no address source answered), the answer cut at 4 KiB with the service named, peak RSS %d KB", cmd.ProcessState.ExitCode(), n)
}
