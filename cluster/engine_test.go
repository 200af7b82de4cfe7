package cluster

import (
	"context"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/localca"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/internal/testkit"
)

// roundRobin is a TCP proxy in front of several machines: each new
// connection goes to the next one, starting with the second, as a load
// balancer or an ECMP route spreads a validator's connections.
type roundRobin struct {
	l     net.Listener
	to    []string
	mu    sync.Mutex
	next  int
	count []int
}

func startRoundRobin(t *testing.T, listen string, to []string) *roundRobin {
	t.Helper()
	l, err := net.Listen("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	p := &roundRobin{l: l, to: to, next: 1, count: make([]int, len(to))}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			p.mu.Lock()
			i := p.next
			p.next = (p.next + 1) % len(p.to)
			p.count[i]++
			p.mu.Unlock()
			go func() {
				defer c.Close()
				u, err := net.Dial("tcp", p.to[i])
				if err != nil {
					return
				}
				defer u.Close()
				go func() { _, _ = io.Copy(u, c); u.(*net.TCPConn).CloseWrite() }()
				_, _ = io.Copy(c, u)
			}()
		}
	}()
	return p
}

func listenLocal(t testing.TB) net.Listener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

// TestEngineThroughRoundRobin: three machines serve the address; the
// validator's connections are spread over them. The issuing machine
// publishes its answers to the store and the two others answer from it:
// the order succeeds for three addresses with either challenge. The
// control, without publishing, fails: the validator reached a machine
// that did not hold the answer.
func TestEngineThroughRoundRobin(t *testing.T) {
	e := startEtcd(t)
	key := keyFile(t)
	for _, challenge := range []spec.Challenge{acmeflow.ChallengeHTTP01, acmeflow.ChallengeTLSALPN01} {
		for _, shared := range []bool{true, false} {
			name := string(challenge) + map[bool]string{true: " shared", false: " control"}[shared]
			t.Run(name, func(t *testing.T) {
				ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
				defer cancel()
				// Machine 1 is the issuer (its own responder); machines 2 and
				// 3 run the agent's Answerer on the shared store.
				// The engine's responder binds it: a port from below the
				// kernel's ephemeral range, which no other connection takes
				// meanwhile (internal/ports).
				issuerAddr := "127.0.0.1:" + strconv.Itoa(testkit.FreePort(t))
				var targets []string
				targets = append(targets, issuerAddr)
				for range 2 {
					l := listenLocal(t)
					targets = append(targets, l.Addr().String())
					a := &Answerer{Store: connect(t, e, key)}
					actx, acancel := context.WithCancel(ctx)
					t.Cleanup(acancel)
					if challenge == acmeflow.ChallengeHTTP01 {
						go a.Serve(actx, l, nil)
					} else {
						go a.Serve(actx, nil, l)
					}
				}
				// The balancer listens on every loopback address (the three
				// identifiers), on a port it keeps from the start.
				proxy := startRoundRobin(t, "0.0.0.0:0", targets)
				port := proxy.l.Addr().(*net.TCPAddr).Port

				ca, err := localca.Start(localca.Options{HTTPPort: port, TLSPort: port})
				if err != nil {
					t.Fatal(err)
				}
				defer ca.Close()
				st, err := store.Open(filepath.Join(t.TempDir(), "state"))
				if err != nil {
					t.Fatal(err)
				}
				idents := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("127.0.0.2"), netip.MustParseAddr("127.0.0.3")}
				req := acmeflow.Request{Identifiers: idents, Directory: ca.DirectoryURL(), HTTPClient: ca.HTTPClient(), CAKey: "local",
					Challenge: challenge, HTTPListen: issuerAddr, TLSListen: issuerAddr, AgreeTOS: true}
				if shared {
					issuer := connect(t, e, key)
					req.Publish = func(ctx context.Context, challenge spec.Challenge, ident netip.Addr, token, keyAuth string) (func(), error) {
						id := token
						if challenge == acmeflow.ChallengeTLSALPN01 {
							id = ident.String()
						}
						release, err := issuer.PutChallenge(ctx, string(challenge), id, keyAuth, 10*time.Minute)
						if err != nil {
							return nil, err
						}
						return func() { _ = release(context.Background()) }, nil
					}
				}
				_, err = (&acmeflow.Engine{Store: st}).Obtain(ctx, req)
				proxy.mu.Lock()
				counts := append([]int(nil), proxy.count...)
				proxy.mu.Unlock()
				t.Logf("connections per machine: %v; result: %v", counts, err)
				if counts[1] == 0 {
					t.Fatalf("no validator connection reached machine 2: %v", counts)
				}
				if shared && err != nil {
					t.Fatalf("with the answers shared the order failed: %v", err)
				}
				if !shared && (err == nil || !strings.Contains(err.Error(), "127.0.0.")) {
					t.Fatalf("without sharing the order did not fail at a validation: %v", err)
				}
			})
		}
	}
}
