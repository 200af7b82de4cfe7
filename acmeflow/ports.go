package acmeflow

import (
	"net"
	"strconv"

	"github.com/ipcert/ipcert/internal/ports"
)

// FreePort finds a TCP port free on host and, when host is IPv4 loopback,
// on ::1 too (internal/ports.Free: drawn from outside the kernel's
// ephemeral range, so nothing takes it before the responder binds it).
func FreePort(host string) (int, error) { return ports.Free(host) }

// PortOf is the port of ADDR:PORT ([ADDR]:PORT for IPv6), or 0 when there
// is none.
func PortOf(hostport string) int {
	_, p, err := net.SplitHostPort(hostport)
	if err != nil {
		return 0
	}
	n, _ := strconv.Atoi(p)
	return n
}
