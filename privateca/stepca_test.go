package privateca

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/testkit"
)

// stepCAVersion is the step-ca the tests run (FACTS: smallstep's
// certificates module, built without cgo: with cgo it needs libpcsclite).
const stepCAVersion = "v0.30.2"

// stepCACache is where the binary is built once per machine.
const stepCACache = "/var/cache/ipcert-test/step-ca"

// require skips (locally) or fails (CI=true) when the test cannot run.
func require(t *testing.T, ok bool, why string) {
	t.Helper()
	testkit.Need(t, ok, why)
}

// buildIpcert builds the static binary once for the package's tests.
func buildIpcert(t *testing.T) string {
	t.Helper()
	return testkit.Binary(t)
}

// stepCABinary returns the cached step-ca, building it first if this
// machine has none (about 4 minutes on 2 cores, once). Concurrent test
// processes wait for one build through a lock file. The cache must belong
// to root or to us and be writable by nobody else: the binary is run as
// root.
func stepCABinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(stepCACache, "step-ca")
	if trusted(t, bin) {
		return bin
	}
	if err := os.MkdirAll(stepCACache, 0o755); err != nil {
		require(t, false, fmt.Sprintf("step-ca %s is not cached and its cache %s cannot be made (%v); build it with: CGO_ENABLED=0 GOBIN=%s go install github.com/smallstep/certificates/cmd/step-ca@%s", stepCAVersion, stepCACache, err, stepCACache, stepCAVersion))
	}
	trustedDir(t, stepCACache)
	lock, err := os.OpenFile(filepath.Join(stepCACache, ".build.lock"), os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		require(t, false, "cannot lock the step-ca cache: "+err.Error())
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		t.Fatalf("lock the step-ca cache: %v", err)
	}
	if trusted(t, bin) {
		return bin // another test process built it meanwhile
	}
	tmp, err := os.MkdirTemp(stepCACache, ".build-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	t.Logf("building step-ca %s into %s (once per machine, a few minutes)", stepCAVersion, stepCACache)
	cmd := exec.Command("go", "install", "github.com/smallstep/certificates/cmd/step-ca@"+stepCAVersion)
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOBIN="+tmp)
	cmd.Dir = tmp
	out, err := cmd.CombinedOutput()
	if err != nil {
		tail := string(out)
		if len(tail) > 2000 {
			tail = "..." + tail[len(tail)-2000:]
		}
		require(t, false, fmt.Sprintf("step-ca %s cannot be built here (CGO_ENABLED=0 go install github.com/smallstep/certificates/cmd/step-ca@%s: %v):\n%s", stepCAVersion, stepCAVersion, err, tail))
	}
	if err := os.Rename(filepath.Join(tmp, "step-ca"), bin); err != nil {
		t.Fatal(err)
	}
	return bin
}

// trusted says whether path is a regular file of root's (or ours) that
// nobody else may write.
func trusted(t *testing.T, path string) bool {
	t.Helper()
	fi, err := os.Lstat(path)
	if err != nil {
		return false
	}
	st := fi.Sys().(*syscall.Stat_t)
	if !fi.Mode().IsRegular() || (st.Uid != 0 && int(st.Uid) != os.Geteuid()) || fi.Mode().Perm()&0o022 != 0 {
		t.Fatalf("%s is not a regular file of root's that only its owner can write (%v, uid %d): refusing to run it", path, fi.Mode(), st.Uid)
	}
	trustedDir(t, filepath.Dir(path))
	return true
}

func trustedDir(t *testing.T, dir string) {
	t.Helper()
	fi, err := os.Lstat(dir)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if !fi.IsDir() || (st.Uid != 0 && int(st.Uid) != os.Geteuid()) || fi.Mode().Perm()&0o022 != 0 {
		t.Fatalf("%s must be a directory of root's that only its owner can write (%v, uid %d)", dir, fi.Mode(), st.Uid)
	}
}

// pki is a root and an intermediate made by the test, as `step ca init`
// would make them.
type pki struct {
	RootFile, CrtFile, KeyFile string
	Root                       *x509.Certificate
}

func makePKI(t *testing.T, dir string) pki {
	t.Helper()
	now := time.Now()
	rootKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rootTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "ipcert test private root"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour * 30),
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: 1,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	rootDER, err := x509.CreateCertificate(rand.Reader, rootTmpl, rootTmpl, rootKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(rootDER)
	intKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	intTmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "ipcert test private intermediate"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(24 * time.Hour * 29),
		IsCA: true, BasicConstraintsValid: true, MaxPathLen: 0, MaxPathLenZero: true,
		KeyUsage: x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
	}
	intDER, err := x509.CreateCertificate(rand.Reader, intTmpl, root, intKey.Public(), rootKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, _ := x509.MarshalECPrivateKey(intKey)
	p := pki{RootFile: filepath.Join(dir, "root_ca.crt"), CrtFile: filepath.Join(dir, "intermediate_ca.crt"), KeyFile: filepath.Join(dir, "intermediate_ca_key"), Root: root}
	write := func(path, typ string, der []byte, mode os.FileMode) {
		if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(p.RootFile, "CERTIFICATE", rootDER, 0o644)
	write(p.CrtFile, "CERTIFICATE", intDER, 0o644)
	write(p.KeyFile, "EC PRIVATE KEY", keyDER, 0o600)
	return p
}

// caOpts configure one step-ca.
type caOpts struct {
	Host     string        // the address it listens on (and its TLS name)
	Netns    string        // run inside this network namespace
	Validity time.Duration // the ACME provisioner's certificate lifetime
	// HTTPPort and TLSPort move its validator off 80/443 (step-ca's
	// --insecure --acme-http-port/--acme-tls-port, for loopback tests).
	HTTPPort, TLSPort int
}

// stepCA is a running step-ca.
type stepCA struct {
	Dir                  string
	Directory            string // the ACME directory URL
	PKI                  pki
	cmd                  *exec.Cmd
	log                  *testkit.Buffer
	exited               chan error
	bin, cfgFile, listen string
	o                    caOpts
}

// startStepCA writes a ca.json with one ACME provisioner ("acme",
// http-01 and tls-alpn-01) and starts step-ca on it.
func startStepCA(t *testing.T, o caOpts) *stepCA {
	t.Helper()
	bin := stepCABinary(t)
	dir := t.TempDir()
	p := makePKI(t, dir)
	port := 9000
	if o.Netns == "" {
		var err error
		if port, err = acmeflow.FreePort(o.Host); err != nil {
			t.Fatal(err)
		}
	}
	listen := net.JoinHostPort(o.Host, strconv.Itoa(port))
	d := o.Validity.String()
	cfg := map[string]any{
		"root":     p.RootFile,
		"crt":      p.CrtFile,
		"key":      p.KeyFile,
		"address":  listen,
		"dnsNames": []string{o.Host},
		"logger":   map[string]any{"format": "text"},
		"db":       map[string]any{"type": "badgerv2", "dataSource": filepath.Join(dir, "db")},
		"authority": map[string]any{
			"claims": map[string]any{"minTLSCertDuration": "5m", "maxTLSCertDuration": d, "defaultTLSCertDuration": d},
			"provisioners": []any{map[string]any{
				"type": "ACME", "name": "acme", "challenges": []string{"http-01", "tls-alpn-01"},
			}},
		},
		"tls": map[string]any{"minVersion": 1.2, "maxVersion": 1.3, "renegotiation": false},
	}
	data, _ := json.MarshalIndent(cfg, "", "  ")
	cfgFile := filepath.Join(dir, "ca.json")
	if err := os.WriteFile(cfgFile, data, 0o600); err != nil {
		t.Fatal(err)
	}
	ca := &stepCA{Dir: dir, Directory: "https://" + listen + "/acme/acme/directory", PKI: p, bin: bin, cfgFile: cfgFile, listen: listen, o: o}
	ca.start(t)
	t.Cleanup(func() {
		ca.stop()
		if t.Failed() {
			t.Logf("step-ca log:\n%s", ca.log.String())
		}
	})
	return ca
}

// start runs step-ca on its configuration and waits until it serves.
func (ca *stepCA) start(t *testing.T) {
	t.Helper()
	o := ca.o
	var args []string
	if o.HTTPPort != 0 || o.TLSPort != 0 {
		args = append(args, "--insecure", "--acme-http-port", strconv.Itoa(o.HTTPPort), "--acme-tls-port", strconv.Itoa(o.TLSPort))
	}
	args = append(args, ca.cfgFile)
	name := ca.bin
	if o.Netns != "" {
		args = append([]string{"netns", "exec", o.Netns, ca.bin}, args...)
		name = "ip"
	}
	cmd := exec.Command(name, args...)
	cmd.Env = []string{"PATH=/usr/bin:/bin", "HOME=" + ca.Dir, "STEPPATH=" + filepath.Join(ca.Dir, "step")}
	if ca.log == nil {
		ca.log = &testkit.Buffer{}
	}
	log := ca.log
	cmd.Stdout, cmd.Stderr = log, log
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	serving := strings.Count(log.String(), "Serving HTTPS on "+ca.listen)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ca.cmd = cmd
	ca.exited = make(chan error, 1)
	exited := ca.exited
	go func() { exited <- cmd.Wait() }()
	// step-ca says "Serving HTTPS on ADDR ..." when it accepts requests.
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for strings.Count(log.String(), "Serving HTTPS on "+ca.listen) == serving {
		select {
		case err := <-exited:
			t.Fatalf("step-ca exited at start (%v):\n%s", err, log.String())
		case <-tick.C:
		}
		if time.Now().After(deadline) {
			t.Fatalf("step-ca did not start serving within 30s:\n%s", log.String())
		}
	}
}

// stop ends step-ca and waits for it.
func (ca *stepCA) stop() {
	if ca.cmd == nil {
		return
	}
	_ = syscall.Kill(-ca.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-ca.exited:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-ca.cmd.Process.Pid, syscall.SIGKILL)
		<-ca.exited
	}
	ca.cmd = nil
}

// restart runs the same step-ca (configuration, keys, database, accounts)
// again with its validator on other ports.
func (ca *stepCA) restart(t *testing.T, httpPort, tlsPort int) {
	t.Helper()
	ca.stop()
	ca.o.HTTPPort, ca.o.TLSPort = httpPort, tlsPort
	ca.start(t)
}
