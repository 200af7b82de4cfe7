package acmeflow

import (
	"context"
	"net"
	"net/netip"
	"testing"
	"time"
)

// A connection that never sends its ClientHello must not hold the engine
// at shutdown for the 10 s handshake deadline (issue 12).
func TestTLSALPNCloseDoesNotWaitForHalfOpen(t *testing.T) {
	seen := &seenLog{emit: func(Event) {}}
	r, err := startTLSALPNResponder(context.Background(), "127.0.0.1:0", []netip.Addr{netip.MustParseAddr("127.0.0.1")}, seen)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", r.ls[0].Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// Wait until the responder has taken the connection.
	deadline := time.Now().Add(5 * time.Second)
	for {
		r.mu.Lock()
		n := len(r.open)
		r.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the responder never accepted the connection")
		}
		time.Sleep(time.Millisecond)
	}
	done := make(chan struct{})
	go func() { r.close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("close() still waits for a half-open connection after 5 s (the handshake deadline is 10 s)")
	}
}
