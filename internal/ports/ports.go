// Package ports draws a TCP port for a responder or a test server to
// listen on, from outside the kernel's ephemeral range.
package ports

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"syscall"
)

// Free finds a TCP port free on host and, when host is IPv4 loopback,
// on ::1 too (so a dual-stack order can use the same port).
//
// The port is closed again before the responder binds it, so it is drawn
// from outside the kernel's ephemeral range: a port the kernel hands out
// for bind(0) or for the local end of an outgoing connection (the client's
// own requests to the local CA included) could be taken in between, and
// the responder would then fail with "address already in use".
func Free(host string) (int, error) {
	lo, hi := quietPorts()
	for i := 0; i < 100; i++ {
		want := 0
		if hi > lo {
			want = lo + rand.IntN(hi-lo)
		}
		l, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(want)))
		if err != nil {
			if want != 0 && errors.Is(err, syscall.EADDRINUSE) {
				continue
			}
			return 0, err
		}
		p := l.Addr().(*net.TCPAddr).Port
		l.Close()
		if host == "127.0.0.1" || host == "" {
			l6, err := net.Listen("tcp6", net.JoinHostPort("::1", strconv.Itoa(p)))
			if err != nil {
				if errors.Is(err, syscall.EADDRNOTAVAIL) {
					return p, nil // no IPv6 loopback here
				}
				continue
			}
			l6.Close()
		}
		return p, nil
	}
	return 0, fmt.Errorf("no free TCP port found on %s after 100 tries; give the listen address yourself, such as %s", host, net.JoinHostPort(host, "5002"))
}

// quietPorts is the range [lo, hi) Free draws from: unprivileged ports
// the kernel never picks by itself. When the ephemeral range leaves too
// little room it is empty (lo == hi) and Free lets the kernel choose.
func quietPorts() (lo, hi int) {
	elo, ehi := 32768, 60999 // Linux's default ip_local_port_range
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		if f := strings.Fields(string(b)); len(f) == 2 {
			a, err1 := strconv.Atoi(f[0])
			z, err2 := strconv.Atoi(f[1])
			if err1 == nil && err2 == nil && a <= z {
				elo, ehi = a, z
			}
		}
	}
	const room = 2000
	switch {
	case elo-10000 >= room:
		return 10000, elo
	case elo-1024 >= room:
		return 1024, elo
	case 65536-(ehi+1) >= room:
		return ehi + 1, 65536
	}
	return 0, 0
}
