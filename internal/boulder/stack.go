package boulder

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// The addresses of Boulder's compose network, recreated on the namespace's
// loopback (the dummy link type is missing here).
const (
	svcAddr   = "10.77.77.77" // every Boulder service
	dnsAddr   = "10.77.77.10" // consul's place: dnsmasq
	redisAddr = "10.77.77.4"
)

// PerspectiveUIDs are the user IDs the three remote VAs run as, so that a
// test can cut one perspective off the address it validates
// (BlockPerspectives) while the others still reach it.
var PerspectiveUIDs = []int{64001, 64002, 64003}

// Options says how to start a stack.
type Options struct {
	// Addresses are put on the namespace's loopback for the client under
	// test: the addresses it asks certificates for (they must look public
	// to Boulder). Its responder listens there on 80 and 443.
	Addresses []netip.Addr
	// Log receives progress lines (nil: none).
	Log func(string)
}

// Stack is a running Boulder in its own network namespace.
type Stack struct {
	NS        string // the network namespace: run the client with Command
	Dir       string // the run folder: configs, logs (logs/NAME.log), data
	Directory string // the ACME directory URL, as the client inside NS reaches it
	TLSRoot   string // PEM file of the root the WFE's HTTPS certificate chains to
	// IssuerRoots are the PEM files of the roots issued certificates chain to.
	IssuerRoots []string

	procs []*service
	log   func(string)
}

type service struct {
	name string
	args []string
	uid  int    // 0: root
	wait string // host:port that listens once it is up
	cmd  *exec.Cmd
	log  *os.File
	done chan error
}

// Start brings a stack up in a new namespace, or returns why not with the
// log of the service that failed. Close it.
func Start(ctx context.Context, in Install, opt Options) (s *Stack, err error) {
	logf := opt.Log
	if logf == nil {
		logf = func(string) {}
	}
	dir, err := os.MkdirTemp("", "boulder-run-")
	if err != nil {
		return nil, err
	}
	// Readable for the remote VAs' users.
	if err := os.Chmod(dir, 0o755); err != nil {
		return nil, err
	}
	s = &Stack{
		NS:          fmt.Sprintf("ipcboulder%d", os.Getpid()%1000000),
		Dir:         dir,
		Directory:   "https://boulder:4431/directory",
		TLSRoot:     filepath.Join(in.certs(), "ipki", "minica.pem"),
		IssuerRoots: []string{filepath.Join(in.certs(), "webpki", "root-ecdsa.cert.pem"), filepath.Join(in.certs(), "webpki", "root-rsa.cert.pem")},
		log:         logf,
	}
	defer func() {
		if err != nil {
			s.Close()
			s = nil
		}
	}()
	if err := s.netns(opt.Addresses); err != nil {
		return s, err
	}
	if err := s.layout(in); err != nil {
		return s, fmt.Errorf("boulder: configs: %w", err)
	}
	for _, svc := range s.services(in) {
		if err := s.start(ctx, in, svc); err != nil {
			return s, err
		}
	}
	if err := s.ready(ctx); err != nil {
		return s, err
	}
	logf("boulder: up in namespace " + s.NS + ", directory " + s.Directory)
	return s, nil
}

func sh(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("%s: %v: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return nil
}

// netns makes the namespace, its loopback addresses and the resolver and
// hosts files `ip netns exec` mounts over /etc for everything run inside.
func (s *Stack) netns(client []netip.Addr) error {
	_ = exec.Command("ip", "netns", "del", s.NS).Run()
	if err := sh("ip", "netns", "add", s.NS); err != nil {
		return err
	}
	in := func(args ...string) error { return sh(append([]string{"ip", "netns", "exec", s.NS}, args...)...) }
	if err := in("ip", "link", "set", "lo", "up"); err != nil {
		return err
	}
	addrs := []string{svcAddr + "/32", dnsAddr + "/32", redisAddr + "/32", "10.77.77.5/32", "10.88.88.88/32"}
	for _, a := range client {
		addrs = append(addrs, netip.PrefixFrom(a, a.BitLen()).String())
	}
	for _, a := range addrs {
		if err := in("ip", "addr", "add", a, "dev", "lo"); err != nil {
			return err
		}
	}
	etc := filepath.Join("/etc/netns", s.NS)
	if err := os.MkdirAll(etc, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(etc, "resolv.conf"), []byte("nameserver "+dnsAddr+"\n"), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(etc, "hosts"), []byte("127.0.0.1 localhost\n::1 localhost\n"+svcAddr+" boulder\n"), 0o644)
}

// Close stops every service (in reverse order) and removes the namespace
// and the run folder.
func (s *Stack) Close() {
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		if p.cmd != nil && p.cmd.Process != nil {
			_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.done
		}
		if p.log != nil {
			p.log.Close()
		}
	}
	s.procs = nil
	_ = exec.Command("ip", "netns", "del", s.NS).Run()
	_ = os.RemoveAll(filepath.Join("/etc/netns", s.NS))
	if os.Getenv("IPCERT_BOULDER_KEEP") == "" {
		_ = os.RemoveAll(s.Dir)
	}
}

// Command runs a program inside the stack's namespace.
func (s *Stack) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", s.NS, name}, args...)...)
}

// Log is the tail (up to max bytes) of one service's log, for a failing
// test's message.
func (s *Stack) Log(name string, max int) string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, "logs", name+".log"))
	if len(b) > max {
		b = b[len(b)-max:]
	}
	return string(b)
}

// BlockPerspectives cuts the first n remote VAs off ports 80 and 443 of
// every address (their connections are refused, as behind a firewall that
// rejects); the primary VA and the others still connect. It returns the
// undo.
func (s *Stack) BlockPerspectives(n int) (func() error, error) {
	var uids []string
	for _, u := range PerspectiveUIDs[:n] {
		uids = append(uids, strconv.Itoa(u))
	}
	rules := fmt.Sprintf("table inet ipcertblock {\n chain out {\n  type filter hook output priority 0;\n  meta skuid { %s } tcp dport { 80, 443 } reject with tcp reset\n }\n}\n", strings.Join(uids, ", "))
	f := filepath.Join(s.Dir, "block.nft")
	if err := os.WriteFile(f, []byte(rules), 0o644); err != nil {
		return nil, err
	}
	if err := sh("ip", "netns", "exec", s.NS, "nft", "-f", f); err != nil {
		return nil, err
	}
	return func() error { return sh("ip", "netns", "exec", s.NS, "nft", "delete", "table", "inet", "ipcertblock") }, nil
}

func (s *Stack) services(in Install) []*service {
	b := in.bin("boulder")
	cfg := func(f string) string { return "test/config-next/" + f }
	grpc := func(name, cmd, conf, port, debug string, uid int) *service {
		return &service{name: name, args: []string{b, cmd, "--config", cfg(conf), "--addr", ":" + port, "--debug-addr", ":" + debug}, uid: uid, wait: svcAddr + ":" + port}
	}
	return []*service{
		{name: "dnsmasq", args: []string{mustLook("dnsmasq"), "--keep-in-foreground", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
			"--listen-address=" + dnsAddr, "--bind-interfaces", "--user=root", "--log-facility=-",
			"--conf-file=" + filepath.Join(s.Dir, "dnsmasq.conf")}, wait: dnsAddr + ":53"},
		{name: "mariadb", args: []string{mustLook("mariadbd"), "--no-defaults", "--datadir=" + filepath.Join(s.Dir, "mysql"), "--socket=" + filepath.Join(s.Dir, "mysql.sock"),
			"--bind-address=" + svcAddr, "--port=3306", "--user=root", "--pid-file=" + filepath.Join(s.Dir, "mysql.pid"), "--skip-log-bin"}, wait: svcAddr + ":3306"},
		{name: "redis", args: []string{mustLook("redis-server"), filepath.Join(s.Dir, "redis.conf")}, wait: redisAddr + ":4218"},
		{name: "ct-test-srv", args: []string{in.bin("ct-test-srv"), "--config", "test/ct-test-srv/ct-test-srv.json"}, wait: svcAddr + ":4609"},
		grpc("remoteva-a", "remoteva", "remoteva-a.json", "9397", "8011", PerspectiveUIDs[0]),
		grpc("remoteva-b", "remoteva", "remoteva-b.json", "9498", "8012", PerspectiveUIDs[1]),
		grpc("remoteva-c", "remoteva", "remoteva-c.json", "9499", "8023", PerspectiveUIDs[2]),
		grpc("sa", "boulder-sa", "sa.json", "9395", "8003", 0),
		grpc("publisher", "boulder-publisher", "publisher.json", "9391", "8009", 0),
		grpc("va", "boulder-va", "va.json", "9392", "8004", 0),
		grpc("ra-sct-provider", "boulder-ra", "ra.json", "9594", "8118", 0),
		grpc("ca", "boulder-ca", "ca.json", "9393", "8001", 0),
		grpc("ra", "boulder-ra", "ra.json", "9394", "8002", 0),
		{name: "nonce-taro", args: []string{b, "nonce-service", "--config", cfg("nonce-a.json"), "--addr", svcAddr + ":9301", "--debug-addr", ":8111"}, wait: svcAddr + ":9301"},
		{name: "nonce-zinc", args: []string{b, "nonce-service", "--config", cfg("nonce-b.json"), "--addr", svcAddr + ":9401", "--debug-addr", ":8112"}, wait: svcAddr + ":9401"},
		{name: "wfe2", args: []string{b, "boulder-wfe2", "--config", cfg("wfe2.json"), "--addr", ":4001", "--tls-addr", ":4431", "--debug-addr", ":8013"}, wait: svcAddr + ":4431"},
	}
}

// start runs one service inside the namespace and waits until its port
// listens, or it dies (then the error carries its log).
func (s *Stack) start(ctx context.Context, in Install, svc *service) error {
	if err := os.MkdirAll(filepath.Join(s.Dir, "logs"), 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(s.Dir, "logs", svc.name+".log"))
	if err != nil {
		return err
	}
	svc.log = f
	args := []string{"netns", "exec", s.NS}
	if svc.uid != 0 {
		u := strconv.Itoa(svc.uid)
		args = append(args, "setpriv", "--reuid="+u, "--regid="+u, "--clear-groups", "--")
	}
	cmd := exec.Command("ip", append(args, svc.args...)...)
	cmd.Dir = s.Dir
	cmd.Env = append(os.Environ(), "SOFTHSM2_CONF="+in.softhsmConf(), "GORACE=halt_on_error=1")
	cmd.Stdout, cmd.Stderr = f, f
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("boulder: start %s: %w", svc.name, err)
	}
	svc.cmd = cmd
	svc.done = make(chan error, 1)
	go func() { svc.done <- cmd.Wait() }()
	s.procs = append(s.procs, svc)
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-svc.done:
			svc.done <- err
			return fmt.Errorf("boulder: %s exited while starting (%v); its log:\n%s", svc.name, err, s.Log(svc.name, 3000))
		default:
		}
		c, err := s.Dial(ctx, "tcp", svc.wait)
		if err == nil {
			c.Close()
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return fmt.Errorf("boulder: %s did not listen on %s in 60 s; its log:\n%s", svc.name, svc.wait, s.Log(svc.name, 3000))
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// Dial connects from inside the namespace: the socket is made on a thread
// that entered it (and that thread is never used again for anything else).
func (s *Stack) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		// No UnlockOSThread: the thread ends with the goroutine, its
		// namespace with it.
		fd, err := unix.Open(filepath.Join("/var/run/netns", s.NS), unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			ch <- result{err: err}
			return
		}
		defer unix.Close(fd)
		if err := unix.Setns(fd, unix.CLONE_NEWNET); err != nil {
			ch <- result{err: err}
			return
		}
		d := net.Dialer{Timeout: 2 * time.Second}
		c, err := d.DialContext(ctx, network, addr)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// HTTPClient reaches the WFE from inside the namespace, trusting its root.
func (s *Stack) HTTPClient() (*http.Client, error) {
	pem, err := os.ReadFile(s.TLSRoot)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if h, p, err := net.SplitHostPort(addr); err == nil && h == "boulder" {
				addr = net.JoinHostPort(svcAddr, p)
			}
			return s.Dial(ctx, network, addr)
		},
		TLSClientConfig: &tls.Config{RootCAs: pool},
	}}, nil
}

// ready waits until the WFE serves its directory and a nonce (which goes
// through the nonce service).
func (s *Stack) ready(ctx context.Context) error {
	c, err := s.HTTPClient()
	if err != nil {
		return err
	}
	deadline := time.Now().Add(60 * time.Second)
	var last error
	for time.Now().Before(deadline) && ctx.Err() == nil {
		last = func() error {
			resp, err := c.Get(s.Directory)
			if err != nil {
				return err
			}
			var dir struct {
				NewNonce string `json:"newNonce"`
			}
			err = json.NewDecoder(io.LimitReader(resp.Body, 1<<16)).Decode(&dir)
			resp.Body.Close()
			if err != nil || dir.NewNonce == "" {
				return fmt.Errorf("directory: %v (status %d)", err, resp.StatusCode)
			}
			resp, err = c.Head(dir.NewNonce)
			if err != nil {
				return err
			}
			resp.Body.Close()
			if resp.Header.Get("Replay-Nonce") == "" {
				return fmt.Errorf("new-nonce: status %d and no nonce", resp.StatusCode)
			}
			return nil
		}()
		if last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return errors.Join(fmt.Errorf("boulder: the WFE did not serve a directory and a nonce in 60 s: %v; its log:\n%s", last, s.Log("wfe2", 3000)))
}

// SQL runs one query on Boulder's database (boulder_sa_next) and returns
// its rows, tab-separated, without a header.
func (s *Stack) SQL(query string) (string, error) {
	out, err := exec.Command(mustLook("mariadb"), "--no-defaults", "-S", filepath.Join(s.Dir, "mysql.sock"), "-u", "root", "-N", "-B", "boulder_sa_next", "-e", query).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("mariadb %q: %v: %s", query, err, out)
	}
	return string(out), nil
}

// AddAddresses puts more client addresses on the namespace's loopback.
func (s *Stack) AddAddresses(addrs ...netip.Addr) error {
	for _, a := range addrs {
		if err := sh("ip", "netns", "exec", s.NS, "ip", "addr", "add", netip.PrefixFrom(a, a.BitLen()).String(), "dev", "lo"); err != nil {
			return err
		}
	}
	return nil
}
