package acmeflow

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"
)

// The responders face the whole internet while a validation runs, so what
// they keep, and what a peer can make them hold, is bounded (issue 22: 320
// requests of 1 MB took a run to 3.6 GB and a 507 MB failure record;
// 12,000 handshakes with long ALPN lists to the OOM killer).
//
// Kept, per challenge (a token we know, a reverse name we serve): the
// first answered request of each source, for up to maxAnsweredSources
// sources, so the validators of every perspective are shown however much
// one source sends (Let's Encrypt validates from several places, one
// request each; the reverse name of tls-alpn-01 is public, so anyone can
// be answered); and more answered requests of a source already kept, up to
// maxAnsweredPerSource of it (Pebble sends three from one place) while the
// challenge has fewer than maxAnsweredPerChallenge. Of the requests we
// could not answer (scanners, a wrong path or SNI: the evidence when a
// validation fails) the first maxUnanswered, at most
// maxUnansweredPerSource per source. Everything past that is counted, not
// kept: not in the events, the log, the diagnosis or the failure record.
// Each kept field is capped in bytes (after escaping).
const (
	maxAnsweredSources      = 8
	maxAnsweredPerChallenge = 8
	maxAnsweredPerSource    = 3
	maxUnanswered           = 8
	maxUnansweredPerSource  = 2

	// path, Host, User-Agent, SNI, note: a validator's path is 71 bytes,
	// an IPv6 reverse name 72, Let's Encrypt's User-Agent 87.
	maxFieldBytes   = 100
	maxAddrBytes    = 64 // the remote and local address:port ([v6%zone]:port fits)
	maxALPNKept     = 4  // protocols kept of a ClientHello's list
	maxALPNBytes    = 32 // each ("acme-tls/1" is 10)
	maxRequestBytes = 8 << 10

	// Connections: at most maxConnsPerSource open from one source (an IPv4
	// address, an IPv6 /64) and maxConns in all. A new connection is always
	// taken: past a cap, one of the same source (past maxConnsPerSource) or
	// of the source holding the most (past maxConns) is closed for it, an
	// idle one first, else the oldest. So a flood from a few sources cannot
	// keep a validator out, and a CA validating many addresses at once from
	// one place (a private CA, 25 addresses) still fits.
	maxConnsPerSource = 32
	maxConns          = 256

	// Deadlines: a validator sends its request or ClientHello at once.
	responderHeaderTimeout = 5 * time.Second
	responderIOTimeout     = 10 * time.Second
)

// SeenCountsText says what the responder did not keep: dropped requests
// past its record, refused connections past its limits.
func SeenCountsText(dropped, refused int) string {
	var parts []string
	if dropped > 0 {
		parts = append(parts, fmt.Sprintf("%d more requests reached the responder and were counted, not kept (ipcert keeps per challenge the first answered request of up to %d sources and the first %d others)", dropped, maxAnsweredSources, maxUnanswered))
	}
	if refused > 0 {
		parts = append(parts, fmt.Sprintf("%d connections were closed for newer ones (more than %d open from one source or %d in all)", refused, maxConnsPerSource, maxConns))
	}
	return strings.Join(parts, "; ")
}

// capBytes cuts s to at most n bytes on a rune boundary, marking the cut.
func capBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n - 3
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + "..."
}

// capText escapes s for people (Printable) and caps it at n bytes: cut
// before escaping too, so a megabyte of input costs no megabytes of work.
func capText(s string, n int) string {
	return capBytes(Printable(capBytes(s, n)), n)
}

// bounded is v with every field from the network escaped and capped.
func (v ValidatorRequest) bounded() ValidatorRequest {
	v.Remote, v.Local = capText(v.Remote, maxAddrBytes), capText(v.Local, maxAddrBytes)
	v.Host, v.Path = capText(v.Host, maxFieldBytes), capText(v.Path, maxFieldBytes)
	v.SNI, v.UserAgent, v.Note = capText(v.SNI, maxFieldBytes), capText(v.UserAgent, maxFieldBytes), capText(v.Note, maxFieldBytes)
	if v.ALPN != nil {
		// The handshake keeps maxALPNKept protocols and a "(+N more)".
		n := min(len(v.ALPN), maxALPNKept+1)
		alpn := make([]string, n)
		for i := range n {
			alpn[i] = capText(v.ALPN[i], maxALPNBytes)
		}
		v.ALPN = alpn
	}
	return v
}

// sourceKey groups connections and requests by where they come from: the
// address for IPv4, the /64 for IPv6 (one host holds a whole /64).
func sourceKey(remote string) netip.Prefix {
	ap, err := netip.ParseAddrPort(remote)
	if err != nil {
		return netip.Prefix{}
	}
	a := ap.Addr().Unmap().WithZone("")
	if a.Is4() {
		return netip.PrefixFrom(a, 32)
	}
	p, _ := a.Prefix(64)
	return p
}

// keepPolicy decides which validator requests are kept. Not safe for
// concurrent use: seenLog holds its lock.
type keepPolicy struct {
	answered   map[string]int       // challenge -> kept
	answeredBy map[answeredKey]int  // challenge and source -> kept
	sources    map[string]int       // challenge -> sources kept
	unanswered int                  // kept
	otherBy    map[netip.Prefix]int // source -> unanswered kept
}

type answeredKey struct {
	challenge string
	source    netip.Prefix
}

// keep says whether a request for challenge (the token or reverse name,
// when we answered it) from remote is kept, and counts it if so.
func (p *keepPolicy) keep(answered bool, challenge, remote string) bool {
	src := sourceKey(remote)
	if answered {
		if p.answered == nil {
			p.answered, p.answeredBy, p.sources = map[string]int{}, map[answeredKey]int{}, map[string]int{}
		}
		k := answeredKey{challenge, src}
		switch mine := p.answeredBy[k]; {
		case mine == 0 && p.sources[challenge] < maxAnsweredSources:
			p.sources[challenge]++
		case mine > 0 && mine < maxAnsweredPerSource && p.answered[challenge] < maxAnsweredPerChallenge:
		default:
			return false
		}
		p.answered[challenge]++
		p.answeredBy[k]++
		return true
	}
	if p.otherBy == nil {
		p.otherBy = map[netip.Prefix]int{}
	}
	if p.unanswered >= maxUnanswered || p.otherBy[src] >= maxUnansweredPerSource {
		return false
	}
	p.unanswered++
	p.otherBy[src]++
	return true
}

// limitListener holds at most maxConnsPerSource connections from one
// source and maxConns in all (see the constants); the connections it
// closes for new ones are counted in seen.
type limitListener struct {
	net.Listener
	seen *seenLog

	mu    sync.Mutex
	open  map[netip.Prefix][]*limitConn // per source, oldest first
	total int
}

func newLimitListener(l net.Listener, seen *seenLog) *limitListener {
	return &limitListener{Listener: l, seen: seen, open: map[netip.Prefix][]*limitConn{}}
}

func (l *limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return l.admit(c), nil
}

// admit registers c, closing another connection when c goes past a cap.
func (l *limitListener) admit(c net.Conn) *limitConn {
	src := sourceKey(c.RemoteAddr().String())
	l.mu.Lock()
	var evict *limitConn
	switch {
	case len(l.open[src]) >= maxConnsPerSource:
		evict = pickEvict(l.open[src])
	case l.total >= maxConns:
		var big netip.Prefix
		most := 0
		for s, cs := range l.open {
			if len(cs) > most {
				big, most = s, len(cs)
			}
		}
		evict = pickEvict(l.open[big])
	}
	if evict != nil {
		l.removeLocked(evict)
	}
	lc := &limitConn{Conn: c, l: l, src: src}
	l.open[src] = append(l.open[src], lc)
	l.total++
	l.mu.Unlock()
	if evict != nil {
		evict.Conn.Close()
		if l.seen != nil {
			l.seen.refuse()
		}
	}
	return lc
}

// pickEvict is the connection to close of cs (oldest first): an idle one
// (an HTTP keep-alive waiting for its next request), else the oldest.
func pickEvict(cs []*limitConn) *limitConn {
	for _, c := range cs {
		if c.idle.Load() {
			return c
		}
	}
	if len(cs) == 0 {
		return nil
	}
	return cs[0]
}

// trackIdle is an http.Server's ConnState: it marks the connections that
// wait between requests, the first to close past a cap.
func trackIdle(c net.Conn, s http.ConnState) {
	if lc, ok := c.(*limitConn); ok {
		lc.idle.Store(s == http.StateIdle)
	}
}

// removeLocked forgets c; false when it was forgotten already.
func (l *limitListener) removeLocked(c *limitConn) bool {
	cs := l.open[c.src]
	for i, o := range cs {
		if o == c {
			cs = append(cs[:i], cs[i+1:]...)
			if len(cs) == 0 {
				delete(l.open, c.src)
			} else {
				l.open[c.src] = cs
			}
			l.total--
			return true
		}
	}
	return false
}

type limitConn struct {
	net.Conn
	l    *limitListener
	src  netip.Prefix
	idle atomic.Bool
}

func (c *limitConn) Close() error {
	c.l.mu.Lock()
	c.l.removeLocked(c)
	c.l.mu.Unlock()
	return c.Conn.Close()
}
