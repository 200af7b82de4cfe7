package acmeflow

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"
)

// eventCounter collects what a seenLog emits.
type eventCounter struct {
	mu       sync.Mutex
	n        int
	warnings int
	bytes    int
}

func (c *eventCounter) emit(ev Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.Kind == EventWarning {
		c.warnings++
	} else {
		c.n++
	}
	c.bytes += len(ev.String())
}

func (c *eventCounter) get() (n, warnings, bytes int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.n, c.warnings, c.bytes
}

// dialFrom connects to addr from the loopback address src (127.0.0.2 is
// another host as far as the responder can tell).
func dialFrom(t testing.TB, src, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// httpGet sends one request on c and reads the status line and headers.
func httpGet(t testing.TB, c net.Conn, path string, extra string) int {
	t.Helper()
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n%s\r\n", path, extra)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("read response: %v", err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

func checkBounded(t *testing.T, seen []ValidatorRequest) {
	t.Helper()
	for _, v := range seen {
		for name, f := range map[string]string{"remote": v.Remote, "local": v.Local, "host": v.Host, "path": v.Path, "sni": v.SNI, "user agent": v.UserAgent, "note": v.Note} {
			if len(f) > maxFieldBytes {
				t.Errorf("%s of a kept request is %d bytes, cap %d", name, len(f), maxFieldBytes)
			}
		}
		if len(v.ALPN) > maxALPNKept+1 {
			t.Errorf("kept %d ALPN protocols, cap %d (+1 for the count)", len(v.ALPN), maxALPNKept)
		}
		for _, a := range v.ALPN {
			if len(a) > maxALPNBytes {
				t.Errorf("ALPN protocol of %d bytes kept", len(a))
			}
		}
		if len(v.ALPN) == maxALPNKept+1 && v.ALPN[maxALPNKept] != "(+197 more)" {
			t.Errorf("the count of the protocols not kept: %q, want (+197 more)", v.ALPN[maxALPNKept])
		}
	}
}

// An http-01 flood (issue 22: 320 requests of 1 MB took a run to 3.6 GB)
// leaves a bounded record, bounded events, and the validator's request
// after it is still kept and answered.
func TestHTTPResponderFloodBounded(t *testing.T) {
	ev := &eventCounter{}
	seen := &seenLog{emit: ev.emit}
	r, err := startHTTPResponder(context.Background(), "127.0.0.1:0", []netip.Addr{netip.MustParseAddr("127.0.0.1")}, seen)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	r.add(challengeAnswer{ident: netip.MustParseAddr("127.0.0.1"), token: "tok", keyAuth: "tok.thumb"})
	laddr := r.addrs[0]

	const flood = 300
	long := strings.Repeat("A", 6000)
	sent := 0
	// The responder answers one request per connection (no keep-alive):
	// each request is a connection of its own.
	get := func(src, path, extra string) int {
		c := dialFrom(t, src, laddr)
		defer c.Close()
		return httpGet(t, c, path, extra)
	}
	for i := range 3 {
		src := fmt.Sprintf("127.0.0.%d", i+2)
		for range flood / 3 {
			get(src, "/.well-known/acme-challenge/"+long[:1000], "User-Agent: "+long[:4000]+"\r\n")
			sent++
		}
		// The validator's token from an attacker's address: answered,
		// kept at most maxAnsweredPerSource times.
		for range 5 {
			if got := get(src, challengePrefix+"tok", ""); got != 200 {
				t.Fatalf("known token answered %d", got)
			}
			sent++
		}
	}
	// A header past MaxHeaderBytes is refused before the handler.
	c := dialFrom(t, "127.0.0.2", laddr)
	if got := httpGet(t, c, "/x", "X-Big: "+strings.Repeat("B", 2*maxRequestBytes)+"\r\n"); got != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("a %d-byte header got HTTP %d, want 431", 2*maxRequestBytes, got)
	}
	c.Close()
	// The validators, from two perspectives.
	for _, src := range []string{"127.0.0.1", "127.0.0.10"} {
		c := dialFrom(t, src, laddr)
		if got := httpGet(t, c, challengePrefix+"tok", "User-Agent: validator\r\n"); got != 200 {
			t.Fatalf("validator got %d", got)
		}
		sent++
		c.Close()
	}

	kept := seen.snapshot()
	dropped, _ := seen.counts()
	if len(kept) > maxAnsweredPerChallenge+maxAnsweredSources+maxUnanswered {
		t.Errorf("kept %d requests, cap %d", len(kept), maxAnsweredPerChallenge+maxAnsweredSources+maxUnanswered)
	}
	if len(kept)+dropped != sent {
		t.Errorf("kept %d + dropped %d != sent %d", len(kept), dropped, sent)
	}
	checkBounded(t, kept)
	for _, src := range []string{"127.0.0.1:", "127.0.0.10:"} {
		found := false
		for _, v := range kept {
			found = found || strings.HasPrefix(v.Remote, src) && v.Answered && v.UserAgent == "validator"
		}
		if !found {
			t.Errorf("the validator's request from %s is not in the record", src)
		}
	}
	n, warnings, bytes := ev.get()
	if n != len(kept) || warnings != 1 {
		t.Errorf("%d validator events and %d warnings for %d kept requests, want one event each and one warning", n, warnings, len(kept))
	}
	data, _ := json.Marshal(kept)
	if len(data) > 16<<10 || bytes > 16<<10 {
		t.Errorf("record %d bytes as JSON, events %d bytes: want <= 16 KB", len(data), bytes)
	}
}

// A tls-alpn-01 flood of handshakes with long ALPN lists (issue 22: 12,000
// took the process to the OOM killer) keeps a bounded, capped record.
func TestTLSALPNResponderFloodBounded(t *testing.T) {
	ev := &eventCounter{}
	seen := &seenLog{emit: ev.emit}
	ip := netip.MustParseAddr("127.0.0.1")
	r, err := startTLSALPNResponder(context.Background(), "127.0.0.1:0", []netip.Addr{ip}, seen)
	if err != nil {
		t.Fatal(err)
	}
	defer r.close()
	if err := r.add(challengeAnswer{ident: ip, token: "tok", keyAuth: "tok.thumb"}); err != nil {
		t.Fatal(err)
	}
	addr := r.ls[0].Addr().String()
	var protos []string
	for i := range 200 {
		protos = append(protos, fmt.Sprintf("%03d-%s", i, strings.Repeat("p", 250)))
	}
	hand := func(src, sni string, alpn []string) error {
		c := dialFrom(t, src, addr)
		defer c.Close()
		tc := tls.Client(c, &tls.Config{ServerName: sni, NextProtos: alpn, InsecureSkipVerify: true})
		return tc.Handshake()
	}
	sent := 0
	for i := range 120 {
		src := fmt.Sprintf("127.0.0.%d", 2+i%3)
		sni := "x.example"
		if i%4 == 0 {
			sni = ReverseName(ip) // answered: the reverse name is public
		}
		_ = hand(src, sni, append(protos, acmeTLSALPN))
		sent++
	}
	for _, src := range []string{"127.0.0.1", "127.0.0.10"} {
		if err := hand(src, ReverseName(ip), []string{acmeTLSALPN}); err != nil {
			t.Fatalf("validator's handshake from %s: %v", src, err)
		}
		sent++
	}
	// The server records after the handshake; the client may be done first.
	waitFor(t, func() bool { k, d := len(seen.snapshot()), dropped(seen); return k+d == sent })
	kept := seen.snapshot()
	if len(kept) > maxAnsweredPerChallenge+maxAnsweredSources+maxUnanswered {
		t.Errorf("kept %d handshakes, cap %d", len(kept), maxAnsweredPerChallenge+maxAnsweredSources+maxUnanswered)
	}
	checkBounded(t, kept)
	for _, src := range []string{"127.0.0.1:", "127.0.0.10:"} {
		found := false
		for _, v := range kept {
			found = found || strings.HasPrefix(v.Remote, src) && v.Answered
		}
		if !found {
			t.Errorf("the validator's handshake from %s is not in the record", src)
		}
	}
	data, _ := json.Marshal(kept)
	_, _, bytes := ev.get()
	if len(data) > 16<<10 || bytes > 16<<10 {
		t.Errorf("record %d bytes as JSON, events %d bytes: want <= 16 KB", len(data), bytes)
	}
}

func dropped(l *seenLog) int { d, _ := l.counts(); return d }

// waitFor polls cond until it holds (5 s at most: a failure, not a timing).
func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// The connection limits: past maxConnsPerSource a source's oldest
// connection is closed for its new one; with every slot taken, a new
// source still gets in (a connection of the largest source is closed).
func TestLimitListener(t *testing.T) {
	raw, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	seen := &seenLog{emit: func(Event) {}}
	l := newLimitListener(raw, seen)
	defer l.Close()
	admitted := make(chan net.Conn, 1024)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			admitted <- c
		}
	}()
	addr := raw.Addr().String()
	var clients []net.Conn
	defer func() {
		for _, c := range clients {
			c.Close()
		}
	}()
	open := func(src string, n int) {
		for range n {
			clients = append(clients, dialFrom(t, src, addr))
		}
	}
	closed := func() int { _, r := seen.counts(); return r }
	state := func(src string) (total, mine int) {
		l.mu.Lock()
		defer l.mu.Unlock()
		return l.total, len(l.open[netip.PrefixFrom(netip.MustParseAddr(src), 32)])
	}

	open("127.0.0.2", maxConnsPerSource+3)
	waitFor(t, func() bool { return len(admitted) == maxConnsPerSource+3 && closed() == 3 })
	if total, mine := state("127.0.0.2"); total != maxConnsPerSource || mine != maxConnsPerSource {
		t.Fatalf("one source: %d open (%d of it), want %d", total, mine, maxConnsPerSource)
	}
	// The oldest went first: the client's read sees the close.
	clients[0].SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := clients[0].Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the oldest connection of the source: read %v, want EOF", err)
	}

	// Fill every slot from other sources.
	for i := 0; ; i++ {
		total, _ := state("127.0.0.2")
		if total >= maxConns {
			break
		}
		want := min(maxConns-total, maxConnsPerSource)
		before := len(admitted)
		open(fmt.Sprintf("127.0.0.%d", 3+i), want)
		waitFor(t, func() bool { return len(admitted) == before+want })
	}
	c0 := closed()
	// A new source: admitted, one of a full source's connections closed.
	open("127.0.0.200", 1)
	waitFor(t, func() bool { return closed() == c0+1 })
	if total, mine := state("127.0.0.200"); total != maxConns || mine != 1 {
		t.Errorf("after the eviction: %d open (want %d), %d of the new source (want 1)", total, maxConns, mine)
	}
	// Closing frees the slot.
	var c net.Conn
	for c = range admitted {
		if c.RemoteAddr().(*net.TCPAddr).IP.String() == "127.0.0.200" {
			break
		}
	}
	c.Close()
	if total, mine := state("127.0.0.200"); total != maxConns-1 || mine != 0 {
		t.Errorf("after a close: %d open (want %d), %d of the source (want 0)", total, maxConns-1, mine)
	}
}
