package preflight

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"os"
	"sync"
	"syscall"
	"time"
)

// Hop probes find the routers on the way out, as traceroute does: a UDP
// datagram with a small TTL makes the router where it expires answer with
// ICMP time exceeded, which Linux hands to an unprivileged UDP socket
// through its error queue (IP_RECVERR). The second hop of a home network
// is the ISP's side of the router's WAN: in 100.64/10 it is carrier-grade
// NAT (RFC 6598), which a home router that hides its own WAN address
// (miniupnpd reports none over UPnP and NAT-PMP when it is private or
// shared) cannot show.

const (
	hopMax     = 3
	hopWait    = 400 * time.Millisecond
	hopPortLow = 33434 // traceroute's first port: nothing listens there
)

// traceHops probes TTL 1..max towards dst, all at once, and returns the
// router that answered at each TTL (invalid where none did in time). A
// probe that reached dst ends the list.
func traceHops(ctx context.Context, dst netip.Addr, max int) ([]netip.Addr, error) {
	if !dst.Is4() {
		return nil, errors.New("hop probes are IPv4 only")
	}
	hops := make([]netip.Addr, max)
	reached := make([]bool, max)
	errs := make([]error, max)
	var wg sync.WaitGroup
	for i := range max {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hops[i], reached[i], errs[i] = probeHop(ctx, dst, i+1)
		}()
	}
	wg.Wait()
	for i := range max {
		if errs[i] != nil {
			return hops[:i], errs[i]
		}
		if reached[i] {
			return hops[:i+1], nil
		}
	}
	return hops, nil
}

// probeHop sends one datagram with the given TTL and reads the ICMP error
// it caused: the offender's address, and whether it was dst itself (port
// unreachable: the probe arrived).
func probeHop(ctx context.Context, dst netip.Addr, ttl int) (netip.Addr, bool, error) {
	c, err := net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, uint16(hopPortLow+ttl))))
	if err != nil {
		return netip.Addr{}, false, err
	}
	defer c.Close()
	rc, err := c.SyscallConn()
	if err != nil {
		return netip.Addr{}, false, err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_RECVERR, 1)
		if serr == nil {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_IP, syscall.IP_TTL, ttl)
		}
	}); err != nil {
		return netip.Addr{}, false, err
	}
	if serr != nil {
		return netip.Addr{}, false, serr
	}
	deadline := time.Now().Add(hopWait)
	if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
		deadline = dl
	}
	_ = c.SetReadDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { _ = c.SetReadDeadline(time.Now()) })
	defer stop()
	if _, err := c.Write([]byte("ipcert preflight hop probe")); err != nil {
		return netip.Addr{}, false, err
	}
	var from netip.Addr
	var reached bool
	buf := make([]byte, 128)
	oob := make([]byte, 512)
	err = rc.Read(func(fd uintptr) bool {
		_, oobn, _, _, e := syscall.Recvmsg(int(fd), buf, oob, syscall.MSG_ERRQUEUE)
		if e == syscall.EAGAIN || e == syscall.EINTR {
			return false
		}
		if e != nil {
			return true
		}
		msgs, e := syscall.ParseSocketControlMessage(oob[:oobn])
		if e != nil {
			return true
		}
		for _, m := range msgs {
			// struct sock_extended_err (16 bytes), then the offender's
			// struct sockaddr_in (linux/errqueue.h).
			if m.Header.Level != syscall.IPPROTO_IP || m.Header.Type != syscall.IP_RECVERR || len(m.Data) < 16+8 {
				continue
			}
			const originICMP = 2
			if m.Data[4] != originICMP {
				continue
			}
			from = netip.AddrFrom4([4]byte(m.Data[16+4 : 16+8]))
			reached = m.Data[5] == 3 // destination unreachable
		}
		return true
	})
	if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
		return netip.Addr{}, false, err
	}
	return from, reached, nil
}

// hopTarget is an internet address to probe towards: the first public-
// address source given as an IPv4 literal (STUN, then echo). The probes
// expire on the way and never reach it.
func hopTarget(env Env) (netip.Addr, bool) {
	for _, s := range env.STUN4 {
		if ap, err := netip.ParseAddrPort(s); err == nil && ap.Addr().Is4() {
			return ap.Addr(), true
		}
	}
	for _, s := range env.Echo4 {
		if u, err := url.Parse(s); err == nil {
			if a, err := netip.ParseAddr(u.Hostname()); err == nil && a.Is4() {
				return a, true
			}
		}
	}
	return netip.Addr{}, false
}
