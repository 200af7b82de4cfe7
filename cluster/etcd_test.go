package cluster

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/testkit"
)

// etcd is a real etcd member (Debian's etcd-server) on loopback, one per
// test: ready in a fraction of a second.
type etcd struct {
	URL string
	cmd *exec.Cmd
	log *testkit.Buffer
}

func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

func startEtcd(t testing.TB) *etcd {
	t.Helper()
	bin := testkit.NeedProgram(t, "etcd", "etcd-server")
	client, peer := "http://"+freeAddr(t), "http://"+freeAddr(t)
	dir := t.TempDir()
	e := &etcd{URL: client, log: &testkit.Buffer{}}
	e.cmd = exec.Command(bin, "--name", "t", "--data-dir", filepath.Join(dir, "data"),
		"--listen-client-urls", client, "--advertise-client-urls", client,
		"--listen-peer-urls", peer, "--initial-advertise-peer-urls", peer,
		"--initial-cluster", "t="+peer, "--log-level", "warn")
	e.cmd.Stdout, e.cmd.Stderr = e.log, e.log
	if err := e.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = e.cmd.Process.Kill()
		_ = e.cmd.Wait()
		if t.Failed() {
			t.Logf("etcd log:\n%s", e.log.String())
		}
	})
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.Dial("tcp", strings.TrimPrefix(client, "http://"))
		if err == nil {
			c.Close()
			return e
		}
		if time.Now().After(deadline) {
			t.Fatalf("etcd did not listen in 20 s:\n%s", e.log.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// keyFile writes a new cluster key, 0600.
func keyFile(t testing.TB) string {
	t.Helper()
	k, err := NewKey()
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(p, k, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func connect(t testing.TB, e *etcd, key string) *Store {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := Connect(ctx, Config{Endpoints: []string{e.URL}, KeyPath: key})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// TestMain lets a test run this binary as a second machine (child).
func TestMain(m *testing.M) {
	if os.Getenv("IPCERT_CLUSTER_CHILD") == "lock" {
		os.Exit(childLock())
	}
	os.Exit(m.Run())
}

// childLock takes the lock of "shared", says "locked", waits for a line on
// stdin, then tries to write version 1 and says "written" or "lost".
func childLock() int {
	ctx := context.Background()
	s, err := Connect(ctx, Config{Endpoints: []string{os.Getenv("IPCERT_ETCD")}, KeyPath: os.Getenv("IPCERT_KEY")})
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	l, err := s.Lock(ctx, "shared", 2*time.Second)
	if err != nil {
		fmt.Println("error", err)
		return 1
	}
	fmt.Println("locked")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err = s.PutCertificate(wctx, l, Certificate{Name: "shared", Version: 1, Key: []byte("child's key")})
	switch {
	case err == ErrLockLost:
		fmt.Println("lost")
	case err != nil:
		fmt.Println("error", err)
	default:
		fmt.Println("written")
	}
	return 0
}
