package reliability

import (
	"encoding/pem"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
)

// TestFaultCA runs `ipcert issue` against CAs that fail in the ways real
// ones and the networks before them do, then checks the contract: exit 1
// within a bounded time, a message that says what happened, current
// untouched, and the next run against a working CA succeeds.
func TestFaultCA(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state")
	if r := ipcert(t, nil, issueArgs(dir)...); r.code != 0 {
		t.Fatalf("first issuance: %s", r.stderr)
	}

	// A CA that answers 503 with Retry-After and an HTML page.
	unavailable := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Retry-After", "600")
		w.Header().Set("Content-Type", "text/html")
		w.WriteHeader(http.StatusServiceUnavailable)
		io.WriteString(w, "<html><body>Service Unavailable: maintenance</body></html>")
	}))
	defer unavailable.Close()
	root := filepath.Join(t.TempDir(), "root.pem")
	os.WriteFile(root, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: unavailable.Certificate().Raw}), 0o644)

	// A CA that accepts the connection and then says nothing.
	stall := stallingListener(t)
	// A CA that cuts the TLS handshake.
	reset, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer reset.Close()
	go func() {
		for {
			c, err := reset.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	closedPort, err := acmeflow.FreePort("127.0.0.1")
	if err != nil {
		t.Fatal(err)
	}
	closedAddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(closedPort))

	cases := []struct {
		name  string
		ca    string
		extra []string
		want  []string
		bound time.Duration
	}{
		{"ca-503", unavailable.URL + "/dir", []string{"--ca-root", root}, []string{"503", "maintenance"}, 10 * time.Second},
		{"ca-unreachable", "https://" + closedAddr + "/dir", nil, []string{"connection refused"}, 10 * time.Second},
		{"ca-stalls", "https://" + stall.Addr().String() + "/dir", []string{"--timeout", "3s"}, []string{"--timeout"}, 15 * time.Second},
		{"ca-resets", "https://" + reset.Addr().String() + "/dir", nil, []string{"directory"}, 10 * time.Second},
	}
	for _, c := range cases {
		before := currentSerial(t, dir)
		args := append([]string{"issue", "--ip", "127.0.0.1", "--ca", c.ca, "--state-dir", dir, "--agree-tos", "--name", "f", "--http-listen", "127.0.0.1:0"}, c.extra...)
		r := ipcert(t, nil, args...)
		if r.code != 1 || hasPanic(r.stderr) {
			t.Errorf("%s: exit %d\n%s", c.name, r.code, r.stderr)
		}
		for _, w := range c.want {
			if !strings.Contains(r.stderr, w) {
				t.Errorf("%s: message lacks %q:\n%s", c.name, w, r.stderr)
			}
		}
		if r.duration > c.bound {
			t.Errorf("%s: took %v, bound %v", c.name, r.duration, c.bound)
		}
		if currentSerial(t, dir) != before {
			t.Errorf("%s: current changed", c.name)
		}
		figure(t, "fault-"+c.name, "exit %d after %v, current untouched", r.code, r.duration.Round(time.Millisecond))
		if r := ipcert(t, nil, issueArgs(dir)...); r.code != 0 {
			t.Fatalf("%s: the next run against a working CA failed: %s", c.name, r.stderr)
		}
	}
}

// stallingListener accepts connections on loopback and never answers: a
// CA that hangs.
func stallingListener(t *testing.T) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	return ln
}
