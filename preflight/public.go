package preflight

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/huin/goupnp"
	"github.com/ipcert/ipcert/internal/netlimit"
	"github.com/ipcert/ipcert/internal/untrusted"
	"github.com/miekg/dns"
)

// SourceAnswer is what one public-address source said.
type SourceAnswer struct {
	Kind   string     `json:"kind"` // https, dns or stun
	Source string     `json:"source"`
	Addr   netip.Addr `json:"addr,omitzero"`
	Error  string     `json:"error,omitempty"`
	MS     int64      `json:"ms"`
}

// FamilyResult is the public address of one family.
type FamilyResult struct {
	Family string `json:"family"` // ipv4 or ipv6
	// Addr is the majority answer; invalid when no source answered or the
	// top answers tie.
	Addr     netip.Addr `json:"addr,omitzero"`
	Votes    int        `json:"votes"`
	Answered int        `json:"answered"`
	Asked    int        `json:"asked"`
	// Disagree is true when sources gave different addresses (a proxy, a
	// VPN, several uplinks, or load-balanced NAT).
	Disagree bool           `json:"disagree"`
	Sources  []SourceAnswer `json:"sources"`
}

// PublicAddrs is the public address of each family, as the internet sees
// this machine.
type PublicAddrs struct {
	V4 FamilyResult `json:"ipv4"`
	V6 FamilyResult `json:"ipv6"`
}

// Addrs are the majority addresses found, IPv4 first.
func (p PublicAddrs) Addrs() []netip.Addr {
	var out []netip.Addr
	for _, f := range []FamilyResult{p.V4, p.V6} {
		if f.Addr.IsValid() {
			out = append(out, f.Addr)
		}
	}
	return out
}

// DetectPublic asks every configured source of both families in parallel,
// each dial forced to the family (tcp4/tcp6, udp4/udp6), and takes the
// majority per family (docs/letsencrypt.md: several sources, majority vote, warn on
// disagreement). It returns when every source has answered or timed out
// (Env.SourceTimeout), or ctx ends. `--ip auto` uses its Addrs.
func DetectPublic(ctx context.Context, env Env) PublicAddrs {
	env = env.withDefaults()
	var out PublicAddrs
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); out.V4 = detectFamily(ctx, env, 4) }()
	go func() { defer wg.Done(); out.V6 = detectFamily(ctx, env, 6) }()
	wg.Wait()
	return out
}

type source struct {
	kind, name string
	ask        func(ctx context.Context) (netip.Addr, error)
}

func detectFamily(ctx context.Context, env Env, fam int) FamilyResult {
	res := FamilyResult{Family: "ipv4"}
	tcp, udp := "tcp4", "udp4"
	echo, dnss, stuns := env.Echo4, env.DNS4, env.STUN4
	if fam == 6 {
		res.Family = "ipv6"
		tcp, udp = "tcp6", "udp6"
		echo, dnss, stuns = env.Echo6, env.DNS6, env.STUN6
	}
	var srcs []source
	client := env.httpClient(tcp, env.SourceTimeout)
	for _, u := range echo {
		srcs = append(srcs, source{"https", u, func(ctx context.Context) (netip.Addr, error) { return askEcho(ctx, client, u) }})
	}
	for _, d := range dnss {
		label := d.QName + " " + orDefault(d.QType, "A") + " @" + d.Server
		if d.Name != "" && d.Name != d.QName {
			label = d.Name + " " + label
		}
		srcs = append(srcs, source{"dns", label, func(ctx context.Context) (netip.Addr, error) { return askDNS(ctx, env, udp, d) }})
	}
	for _, s := range stuns {
		srcs = append(srcs, source{"stun", s, func(ctx context.Context) (netip.Addr, error) { return askSTUN(ctx, env, udp, s) }})
	}
	res.Asked = len(srcs)
	res.Sources = make([]SourceAnswer, len(srcs))
	var wg sync.WaitGroup
	for i, s := range srcs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sctx, cancel := context.WithTimeout(ctx, env.SourceTimeout)
			defer cancel()
			start := time.Now()
			a, err := s.ask(sctx)
			if err == nil && (a.Is4() != (fam == 4) || !a.IsValid()) {
				err = fmt.Errorf("answered %s, not an IPv%d address", a, fam)
			}
			ans := SourceAnswer{Kind: s.kind, Source: s.name, MS: time.Since(start).Milliseconds()}
			if err != nil {
				ans.Error = shortErr(err)
			} else {
				ans.Addr = a
			}
			res.Sources[i] = ans
		}()
	}
	wg.Wait()
	votes := map[netip.Addr]int{}
	for _, a := range res.Sources {
		if a.Addr.IsValid() {
			votes[a.Addr]++
			res.Answered++
		}
	}
	type kv struct {
		a netip.Addr
		n int
	}
	var ranked []kv
	for a, n := range votes {
		ranked = append(ranked, kv{a, n})
	}
	sort.Slice(ranked, func(i, j int) bool {
		if ranked[i].n != ranked[j].n {
			return ranked[i].n > ranked[j].n
		}
		return ranked[i].a.Less(ranked[j].a)
	})
	res.Disagree = len(ranked) > 1
	if len(ranked) > 0 && (len(ranked) == 1 || ranked[0].n > ranked[1].n) {
		res.Addr, res.Votes = ranked[0].a, ranked[0].n
	}
	return res
}

// maxEchoBody caps an echo service's answer (issue 22).
const maxEchoBody = 4096

// askEcho fetches an echo service: either the bare address, or a Cloudflare
// trace with an "ip=" line.
func askEcho(ctx context.Context, c *http.Client, u string) (netip.Addr, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return netip.Addr{}, err
	}
	req.Header.Set("User-Agent", "ipcert-preflight")
	resp, err := c.Do(req)
	if err != nil {
		return netip.Addr{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return netip.Addr{}, fmt.Errorf("HTTP %s", resp.Status)
	}
	// An address, or a Cloudflare trace (about 300 bytes): 4 KiB is plenty.
	body, err := netlimit.ReadAll(resp.Body, maxEchoBody, req.URL.Host, "answer")
	if err != nil {
		return netip.Addr{}, err
	}
	if a, err := netip.ParseAddr(strings.TrimSpace(string(body))); err == nil {
		return a.Unmap(), nil
	}
	sc := bufio.NewScanner(strings.NewReader(string(body)))
	for sc.Scan() {
		if v, ok := strings.CutPrefix(strings.TrimSpace(sc.Text()), "ip="); ok {
			return netip.ParseAddr(v)
		}
	}
	return netip.Addr{}, fmt.Errorf("no address in the answer %q", truncate(string(body), 60))
}

// askDNS sends one query straight to the server and reads the address from
// an A/AAAA answer or a TXT string.
func askDNS(ctx context.Context, env Env, network string, d DNSSource) (netip.Addr, error) {
	qtype, ok := dns.StringToType[strings.ToUpper(d.QType)]
	if !ok {
		return netip.Addr{}, fmt.Errorf("unknown query type %q", d.QType)
	}
	qclass := uint16(dns.ClassINET)
	if strings.EqualFold(d.QClass, "CH") {
		qclass = dns.ClassCHAOS
	}
	m := new(dns.Msg)
	m.SetQuestion(dns.Fqdn(d.QName), qtype)
	m.Question[0].Qclass = qclass
	m.RecursionDesired = false
	conn, err := env.Dial(ctx, network, d.Server)
	if err != nil {
		return netip.Addr{}, err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	c := &dns.Client{Net: "udp"}
	r, _, err := c.ExchangeWithConnContext(ctx, m, &dns.Conn{Conn: conn})
	if err != nil {
		return netip.Addr{}, err
	}
	if r.Rcode != dns.RcodeSuccess {
		return netip.Addr{}, fmt.Errorf("DNS %s", dns.RcodeToString[r.Rcode])
	}
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *dns.A:
			if a, ok := netip.AddrFromSlice(v.A); ok {
				return a.Unmap(), nil
			}
		case *dns.AAAA:
			if a, ok := netip.AddrFromSlice(v.AAAA); ok {
				return a, nil
			}
		case *dns.TXT:
			for _, s := range v.Txt {
				if a, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil {
					return a.Unmap(), nil
				}
			}
		}
	}
	return netip.Addr{}, errors.New("no address in the DNS answer")
}

// askSTUN sends a STUN binding request (RFC 8489) and reads the
// XOR-MAPPED-ADDRESS, retransmitting as RFC 8489 section 6.2.1 asks for UDP.
func askSTUN(ctx context.Context, env Env, network, server string) (netip.Addr, error) {
	req, txid, err := stunRequest()
	if err != nil {
		return netip.Addr{}, err
	}
	var addr netip.Addr
	_, err = udpExchange(ctx, env, network, server, req, 300*time.Millisecond, 1500, func(b []byte) (bool, error) {
		a, err := stunMappedAddr(b, txid)
		if errors.Is(err, errNotOurs) {
			return false, nil
		}
		addr = a
		return true, err
	})
	if err != nil {
		return netip.Addr{}, err
	}
	return addr, nil
}

// udpExchange sends req to server and returns the first answer that
// accept takes, sending req again after rto, 2*rto, 4*rto... (the
// retransmission both STUN and NAT-PMP ask for) until ctx ends. accept
// returns false to wait for another datagram, or an error to give up.
func udpExchange(ctx context.Context, env Env, network, server string, req []byte, rto time.Duration, size int, accept func([]byte) (bool, error)) ([]byte, error) {
	conn, err := env.Dial(ctx, network, server)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	buf := make([]byte, size)
	for {
		if _, err := conn.Write(req); err != nil {
			return nil, err
		}
		_ = conn.SetReadDeadline(time.Now().Add(rto))
		n, err := conn.Read(buf)
		if err != nil {
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && ctx.Err() == nil {
				rto *= 2
				continue
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		ok, err := accept(buf[:n])
		if err != nil {
			return nil, err
		}
		if ok {
			return buf[:n], nil
		}
	}
}

// shortErr makes network errors readable in a one-line evidence entry.
func shortErr(err error) string {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return "timed out"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return "timed out"
	}
	// A peer past a read cap: the cap and the peer, whatever wraps it.
	var ce goupnp.ContextError // has no Unwrap
	if errors.As(err, &ce) && ce.Err != nil {
		err = ce.Err
	}
	var tl *netlimit.TooLargeError
	if errors.As(err, &tl) {
		return tl.Error()
	}
	// "read udp4 127.0.0.1:50304->127.0.0.1:9: read: connection refused"
	// says no more than its last words.
	var oe *net.OpError
	if errors.As(err, &oe) && oe.Err != nil {
		err = oe.Err
	}
	s := strings.TrimPrefix(err.Error(), "read: ")
	if i := strings.LastIndex(s, ": "); i > 0 && strings.Contains(s, "dial") {
		s = s[i+2:]
	}
	return untrusted.Text(truncate(s, 120))
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}

// checkPublic reports one family's public address.
func (st *state) checkPublic(ctx context.Context, fam int) Result {
	p := st.public()
	f, other := p.V4, p.V6
	if fam == 6 {
		f, other = p.V6, p.V4
	}
	var r Result
	for _, s := range f.Sources {
		if s.Error != "" {
			r.Evidence = append(r.Evidence, fmt.Sprintf("%s %s: %s", s.Kind, s.Source, s.Error))
		} else {
			r.Evidence = append(r.Evidence, fmt.Sprintf("%s %s: %s", s.Kind, s.Source, s.Addr))
		}
	}
	switch {
	case f.Asked == 0:
		r.Status, r.Summary = StatusSkipped, "no sources configured"
	case f.Answered == 0 && other.Answered == 0:
		r.Status = StatusFail
		r.Summary = fmt.Sprintf("none of %d sources answered: no internet connection?", f.Asked)
		r.Fix = "check the network connection (ip route; ping 1.1.1.1) and any outgoing firewall or proxy; Let's Encrypt must reach this machine from the internet"
	case f.Answered == 0:
		r.Status = StatusWarn
		r.Summary = fmt.Sprintf("no IPv%d connectivity (none of %d sources answered)", fam, f.Asked)
		if fam == 6 {
			r.Status = StatusSkipped
			r.Fix = "certificates for IPv4 only are fine; for IPv6 ask your provider to route a prefix to this machine"
		}
	case !f.Addr.IsValid():
		r.Status = StatusWarn
		r.Summary = fmt.Sprintf("the sources disagree and no address has a majority (%d answers)", f.Answered)
		r.Fix = "the internet sees this machine through more than one address (several uplinks, a VPN or a proxy): give the address with --ip"
	case f.Disagree:
		r.Status = StatusWarn
		r.Summary = fmt.Sprintf("%s (%d of %d answers; the others differ)", f.Addr, f.Votes, f.Answered)
		r.Fix = "check for a VPN, a proxy or several uplinks; if " + f.Addr.String() + " is not the address Let's Encrypt should connect to, give it with --ip"
	default:
		r.Status = StatusOK
		r.Summary = fmt.Sprintf("%s (%d of %d sources agree)", f.Addr, f.Votes, f.Asked)
	}
	return r
}
