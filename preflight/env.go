package preflight

import (
	"bufio"
	"bytes"
	"context"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// Runner runs a command and returns its standard output. Tests replace it
// with recorded outputs; the firewall and web-server checks only read.
type Runner interface {
	Run(ctx context.Context, name string, args ...string) ([]byte, error)
}

// ExecRunner runs real commands with os/exec.
type ExecRunner struct{}

// Run runs name with args and returns its standard output. The error of a
// command that exits non-zero carries its standard error.
func (ExecRunner) Run(ctx context.Context, name string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd.Output()
}

// DNSSource is one DNS method of finding the public address: a query sent
// straight to the server that answers with the address it sees the query
// come from.
type DNSSource struct {
	Name   string `json:"name"`
	Server string `json:"server"` // host:port, an IP literal (no resolver needed)
	QName  string `json:"qname"`
	QType  string `json:"qtype"`  // A, AAAA or TXT
	QClass string `json:"qclass"` // IN (default) or CH
}

// Interface is a local network interface and its addresses.
type Interface struct {
	Name  string
	Up    bool
	Addrs []netip.Prefix
}

// Env is everything the checks touch. DefaultEnv gives the real one; tests
// set every endpoint to a fake on loopback.
type Env struct {
	// HTTPS echo services per family: the body is the address, or a
	// Cloudflare trace with an "ip=" line.
	Echo4, Echo6 []string
	// DNS methods per family.
	DNS4, DNS6 []DNSSource
	// STUN servers (host:port, IP literals) per family.
	STUN4, STUN6 []string
	// SourceTimeout bounds each public-address source (default 2s).
	SourceTimeout time.Duration

	// Dial opens connections; the network is always forced to a family
	// (tcp4, tcp6, udp4, udp6) so each family is measured on its own.
	Dial func(ctx context.Context, network, address string) (net.Conn, error)
	// Listen opens the self-fetch listener.
	Listen func(ctx context.Context, network, address string) (net.Listener, error)
	// Interfaces lists local interfaces.
	Interfaces func() ([]Interface, error)

	// Root is where /proc, /sys and /etc are read from ("/" by default;
	// testdata trees in tests).
	Root string
	// Runner runs read-only commands (ufw, nft, iptables-save, nginx -T...).
	Runner Runner
	// LookPath finds installed programs.
	LookPath func(string) (string, error)
	// Getuid is the effective user id.
	Getuid func() int
	// Now is the clock.
	Now func() time.Time

	// MetadataURL is the cloud metadata service's base URL, asked only when
	// DMI says which cloud this is.
	MetadataURL string
	// DiscoverIGD finds UPnP Internet Gateway Devices (SSDP multicast on
	// the LAN by default) and returns their description URLs. Nil turns
	// UPnP off.
	DiscoverIGD func(ctx context.Context) ([]*url.URL, error)
	// NATPMP is the router's NAT-PMP server: "gateway" for the default
	// gateway from /proc/net/route on port 5351 (RFC 6886), or host:port.
	// Empty or "off" turns NAT-PMP off, so a zero Env sends nothing to
	// the LAN.
	NATPMP string
	// Hops probes the routers on the way to dst (TTL 1..max, ICMP time
	// exceeded; see hops.go). Nil turns the probe off, so a zero Env
	// sends nothing.
	Hops func(ctx context.Context, dst netip.Addr, max int) ([]netip.Addr, error)
}

// DefaultEnv is the real environment with the internet endpoints of
// docs/letsencrypt.md ("Finding the public address and the NAT"). Servers are IP
// literals so no resolver is involved, and so the family of the dial is
// the family measured.
func DefaultEnv() Env {
	return Env{
		Echo4: []string{
			"https://api.ipify.org",
			"https://1.1.1.1/cdn-cgi/trace",
			"https://ipv4.icanhazip.com",
			"https://ifconfig.me/ip",
		},
		Echo6: []string{
			"https://api6.ipify.org",
			"https://[2606:4700:4700::1111]/cdn-cgi/trace",
			"https://ipv6.icanhazip.com",
			"https://ifconfig.me/ip",
		},
		DNS4: []DNSSource{
			{Name: "OpenDNS", Server: "208.67.222.222:53", QName: "myip.opendns.com.", QType: "A"},
			{Name: "Google", Server: "216.239.32.10:53", QName: "o-o.myaddr.l.google.com.", QType: "TXT"},
			{Name: "Cloudflare", Server: "1.1.1.1:53", QName: "whoami.cloudflare.", QType: "TXT", QClass: "CH"},
		},
		DNS6: []DNSSource{
			{Name: "OpenDNS", Server: "[2620:119:35::35]:53", QName: "myip.opendns.com.", QType: "AAAA"},
			{Name: "Google", Server: "[2001:4860:4802:32::a]:53", QName: "o-o.myaddr.l.google.com.", QType: "TXT"},
			{Name: "Cloudflare", Server: "[2606:4700:4700::1111]:53", QName: "whoami.cloudflare.", QType: "TXT", QClass: "CH"},
		},
		STUN4: []string{"stun.l.google.com:19302", "stun.cloudflare.com:3478"},
		STUN6: []string{"stun.l.google.com:19302", "stun.cloudflare.com:3478"},
		// The link-local metadata address every major cloud uses.
		MetadataURL: "http://169.254.169.254",
		DiscoverIGD: discoverIGD,
		NATPMP:      "gateway",
		Hops:        traceHops,
	}
}

func (e Env) withDefaults() Env {
	if e.SourceTimeout <= 0 {
		e.SourceTimeout = 2 * time.Second
	}
	if e.Dial == nil {
		d := &net.Dialer{}
		e.Dial = d.DialContext
	}
	if e.Listen == nil {
		lc := &net.ListenConfig{}
		e.Listen = lc.Listen
	}
	if e.Interfaces == nil {
		e.Interfaces = systemInterfaces
	}
	if e.Root == "" {
		e.Root = "/"
	}
	if e.Runner == nil {
		e.Runner = ExecRunner{}
	}
	if e.LookPath == nil {
		e.LookPath = exec.LookPath
	}
	if e.Getuid == nil {
		e.Getuid = os.Geteuid
	}
	if e.Now == nil {
		e.Now = time.Now
	}
	return e
}

// path joins a path under Root, so /proc/net/tcp reads from a testdata
// tree in tests.
func (e Env) path(p string) string { return filepath.Join(e.Root, p) }

// httpClient is a client whose connections are forced to one family
// (network "tcp4" or "tcp6") through Env.Dial.
func (e Env) httpClient(network string, timeout time.Duration) *http.Client {
	tr := &http.Transport{
		DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) {
			return e.Dial(ctx, network, addr)
		},
		TLSHandshakeTimeout:    timeout,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: maxHeaderBytes,
		Proxy:                  nil, // a proxy would answer with its own address
	}
	return &http.Client{Transport: tr, Timeout: timeout}
}

func systemInterfaces() ([]Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []Interface
	for _, ifc := range ifs {
		addrs, err := ifc.Addrs()
		if err != nil {
			continue
		}
		it := Interface{Name: ifc.Name, Up: ifc.Flags&net.FlagUp != 0}
		for _, a := range addrs {
			if ipn, ok := a.(*net.IPNet); ok {
				ip, ok := netip.AddrFromSlice(ipn.IP)
				if !ok {
					continue
				}
				ones, _ := ipn.Mask.Size()
				it.Addrs = append(it.Addrs, netip.PrefixFrom(ip.Unmap(), ones))
			}
		}
		out = append(out, it)
	}
	return out, nil
}

// discoverIGD is the real SSDP search (multicast on the LAN) for Internet
// Gateway Devices: it returns as soon as one answers. goupnp's
// DiscoverDevicesCtx collects answers until its context ends, and then
// fetched the device description with the same, expired context, so with
// the NAT check's short timeout UPnP never worked against a real router
// (found with Debian's miniupnpd: "error requesting root device
// details").
func discoverIGD(ctx context.Context) ([]*url.URL, error) {
	return ssdpSearch(ctx, &net.UDPAddr{IP: net.IPv4(239, 255, 255, 250), Port: 1900}, []string{
		"urn:schemas-upnp-org:device:InternetGatewayDevice:1",
		"urn:schemas-upnp-org:device:InternetGatewayDevice:2",
	})
}

// ssdpSearch sends an M-SEARCH for each target to dst (UDP, so three
// times, 250 ms apart: UPnP Device Architecture 1.1 section 1.3.2) and
// returns the locations of the first answer; it waits for more only
// while answers keep arriving within ssdpGrace, so several gateways on
// one LAN are all seen.
func ssdpSearch(ctx context.Context, dst *net.UDPAddr, targets []string) ([]*url.URL, error) {
	var lc net.ListenConfig
	pc, err := lc.ListenPacket(ctx, "udp4", ":0")
	if err != nil {
		return nil, err
	}
	defer pc.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = pc.SetReadDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { _ = pc.SetReadDeadline(time.Now()) })
	defer stop()
	send := func() {
		for _, st := range targets {
			msg := "M-SEARCH * HTTP/1.1\r\nHOST: 239.255.255.250:1900\r\nMAN: \"ssdp:discover\"\r\nMX: 1\r\nST: " + st + "\r\n\r\n"
			_, _ = pc.WriteTo([]byte(msg), dst)
		}
	}
	send()
	resend := time.NewTicker(250 * time.Millisecond)
	defer resend.Stop()
	go func() {
		for i := 0; i < 2; i++ {
			select {
			case <-resend.C:
				send()
			case <-ctx.Done():
				return
			}
		}
	}()
	want := map[string]bool{}
	for _, st := range targets {
		want[st] = true
	}
	var out []*url.URL
	seen := map[string]bool{}
	buf := make([]byte, 2048)
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			if len(out) > 0 {
				return out, nil
			}
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, err
		}
		resp, err := http.ReadResponse(bufio.NewReader(bytes.NewReader(buf[:n])), nil)
		if err != nil || resp.StatusCode != http.StatusOK || !want[resp.Header.Get("ST")] {
			continue
		}
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || loc.Host == "" || (loc.Scheme != "http" && loc.Scheme != "https") || seen[loc.String()] {
			continue
		}
		seen[loc.String()] = true
		out = append(out, loc)
		if len(out) >= maxGateways {
			// Anyone on the LAN may answer, as often as they like: each
			// answer would extend the wait and be fetched (issue 22).
			return out, nil
		}
		_ = pc.SetReadDeadline(time.Now().Add(ssdpGrace))
	}
}

// ssdpGrace is how long the search waits for another gateway after an
// answer.
const ssdpGrace = 100 * time.Millisecond
