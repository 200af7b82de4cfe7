package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	clientv3 "go.etcd.io/etcd/client/v3"
)

func TestSealing(t *testing.T) {
	s, err := LoadKey(keyFile(t))
	if err != nil {
		t.Fatal(err)
	}
	sealed := s.Seal("/ipcert/certs/a", []byte("secret key"))
	if bytes.Contains(sealed, []byte("secret key")) {
		t.Fatal("the sealed value holds the plain text")
	}
	if got, err := s.Open("/ipcert/certs/a", sealed); err != nil || string(got) != "secret key" {
		t.Fatalf("open: %q %v", got, err)
	}
	// Moved to another key, sealed by another cluster, or changed: refused.
	if _, err := s.Open("/ipcert/certs/b", sealed); !errors.Is(err, ErrSealed) {
		t.Errorf("opened under another key: %v", err)
	}
	other, _ := LoadKey(keyFile(t))
	if _, err := other.Open("/ipcert/certs/a", sealed); !errors.Is(err, ErrSealed) {
		t.Errorf("opened with another cluster key: %v", err)
	}
	sealed[len(sealed)-1] ^= 1
	if _, err := s.Open("/ipcert/certs/a", sealed); !errors.Is(err, ErrSealed) {
		t.Errorf("opened a changed value: %v", err)
	}
	// No default key: empty, short and world-readable keys are refused.
	if _, err := ParseKey(nil); err == nil {
		t.Error("an empty key was accepted")
	}
	if _, err := ParseKey([]byte("c2hvcnQ=")); err == nil {
		t.Error("a short key was accepted")
	}
	p := keyFile(t)
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadKey(p); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Errorf("a key readable by others: %v", err)
	}
}

// TestChallengeAnswers: an answer published by one machine is read by
// another at once (linearizable reads), goes when released, and ends by
// itself with its lease.
func TestChallengeAnswers(t *testing.T) {
	e := startEtcd(t)
	key := keyFile(t)
	a, b := connect(t, e, key), connect(t, e, key)
	ctx := t.Context()
	release, err := a.PutChallenge(ctx, "http-01", "tok_EN-1", "tok_EN-1.thumb", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if v, ok, err := b.Challenge(ctx, "http-01", "tok_EN-1"); err != nil || !ok || v != "tok_EN-1.thumb" {
		t.Fatalf("the other machine reads %q %v %v", v, ok, err)
	}
	if err := release(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.Challenge(ctx, "http-01", "tok_EN-1"); ok {
		t.Fatal("a released answer is still served")
	}
	if _, err := a.PutChallenge(ctx, "tls-alpn-01", "2001:db8::1", "ka", time.Second); err != nil {
		t.Fatal(err)
	}
	if _, ok, _ := b.Challenge(ctx, "tls-alpn-01", "2001:db8::1"); !ok {
		t.Fatal("tls-alpn-01 answer not found by address")
	}
	// The lease ends it (etcd checks leases every 500 ms): wait for it.
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, ok, _ := b.Challenge(ctx, "tls-alpn-01", "2001:db8::1"); !ok {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the answer outlived its 1 s lease by 15 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	for _, bad := range [][2]string{{"http-01", "../x"}, {"http-01", ""}, {"tls-alpn-01", "example.com"}, {"dns-01", "x"}} {
		if _, err := a.PutChallenge(ctx, bad[0], bad[1], "k", time.Minute); err == nil {
			t.Errorf("PutChallenge(%q, %q) accepted", bad[0], bad[1])
		}
	}
}

// TestFencingAfterFreeze: a machine takes a certificate's lock and is
// frozen (SIGSTOP) before it writes. Its lease ends; another machine takes
// the lock and writes. Thawed, the first machine's write is refused
// (ErrLockLost) and the second's version stays.
func TestFencingAfterFreeze(t *testing.T) {
	e := startEtcd(t)
	key := keyFile(t)
	child := exec.Command(os.Args[0], "-test.run=^$")
	child.Env = append(os.Environ(), "IPCERT_CLUSTER_CHILD=lock", "IPCERT_ETCD="+e.URL, "IPCERT_KEY="+key)
	stdin, _ := child.StdinPipe()
	stdout, _ := child.StdoutPipe()
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = child.Process.Kill(); _ = child.Wait() }()
	out := bufio.NewReader(stdout)
	if line, _ := out.ReadString('\n'); strings.TrimSpace(line) != "locked" {
		t.Fatalf("child: %q", line)
	}
	if err := child.Process.Signal(syscall.SIGSTOP); err != nil {
		t.Fatal(err)
	}
	s := connect(t, e, key)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	l, err := s.Lock(ctx, "shared", 10*time.Second)
	if err != nil {
		t.Fatalf("the frozen machine's lock did not expire: %v", err)
	}
	if _, err := s.PutCertificate(ctx, l, Certificate{Name: "shared", Version: 2, Key: []byte("our key")}); err != nil {
		t.Fatal(err)
	}
	if err := child.Process.Signal(syscall.SIGCONT); err != nil {
		t.Fatal(err)
	}
	if _, err := stdin.Write([]byte("write\n")); err != nil {
		t.Fatal(err)
	}
	if line, _ := out.ReadString('\n'); strings.TrimSpace(line) != "lost" {
		t.Fatalf("the thawed machine's write: %q, want lost", line)
	}
	c, ok, err := s.Certificate(ctx, "shared")
	if err != nil || !ok || c.Version != 2 || string(c.Key) != "our key" {
		t.Fatalf("stored: %+v %v %v", c, ok, err)
	}
	if err := l.Unlock(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestWatchResumesAfterCompaction: a machine that watched from a revision
// etcd has since compacted away gets the current version of every
// certificate, then what comes after.
func TestWatchResumesAfterCompaction(t *testing.T) {
	e := startEtcd(t)
	key := keyFile(t)
	s := connect(t, e, key)
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	l, err := s.Lock(ctx, "a", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	put := func(v int) int64 {
		rev, err := s.PutCertificate(ctx, l, Certificate{Name: "a", Version: v, Key: []byte("k")})
		if err != nil {
			t.Fatal(err)
		}
		return rev
	}
	first := put(1)
	put(2)
	last := put(3)
	// Compact everything up to the last write.
	if _, err := s.cli.Compact(ctx, last, clientv3.WithCompactPhysical()); err != nil {
		t.Fatal(err)
	}
	w := s.WatchCertificates(ctx, first+1)
	if c := <-w; c.Version != 3 {
		t.Fatalf("after compaction the watch sent version %d, want the current 3", c.Version)
	}
	put(4)
	if c := <-w; c.Version != 4 {
		t.Fatalf("then version %d, want 4", c.Version)
	}
}

// TestMachinesRegister: registrations are listed while their machines keep
// them alive.
func TestMachinesRegister(t *testing.T) {
	e := startEtcd(t)
	key := keyFile(t)
	s := connect(t, e, key)
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	for _, id := range []string{"m1", "m2"} {
		if err := s.Register(ctx, Machine{ID: id, Addresses: []string{"10.0.0.1"}, Serves: map[string]int{"a": 3}}, 5*time.Second); err != nil {
			t.Fatal(err)
		}
	}
	ms, err := s.Machines(ctx)
	if err != nil || len(ms) != 2 || ms[0].Serves["a"] != 3 {
		t.Fatalf("machines: %+v %v", ms, err)
	}
	if err := s.Register(ctx, Machine{ID: "bad/id"}, time.Second); err == nil {
		t.Error("a machine id with a slash was accepted")
	}
}
