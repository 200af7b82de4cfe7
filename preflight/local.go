package preflight

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/prometheus/procfs"
)

// IfaceAddr is one address on a local interface, classified with the same
// special-purpose table as the CA address policy (acmeflow.Classify), so
// the interface report and the policy can never disagree.
type IfaceAddr struct {
	Iface  string             `json:"iface"`
	Up     bool               `json:"up"`
	Addr   netip.Addr         `json:"addr"`
	Prefix netip.Prefix       `json:"prefix"`
	Class  acmeflow.AddrClass `json:"class"`
	Block  string             `json:"block,omitempty"` // the special-purpose block's name
}

// LocalAddrs lists and classifies every address on every local interface.
func LocalAddrs(env Env) ([]IfaceAddr, error) {
	env = env.withDefaults()
	ifs, err := env.Interfaces()
	if err != nil {
		return nil, err
	}
	var out []IfaceAddr
	for _, ifc := range ifs {
		for _, p := range ifc.Addrs {
			a := p.Addr().WithZone("").Unmap()
			class, block := acmeflow.Classify(a)
			out = append(out, IfaceAddr{Iface: ifc.Name, Up: ifc.Up, Addr: a, Prefix: p, Class: class, Block: block.Name})
		}
	}
	return out, nil
}

func (st *state) checkInterfaces(ctx context.Context, env Env) Result {
	addrs, err := st.ifaces()
	if err != nil {
		return Result{Status: StatusSkipped, Summary: "cannot list interfaces", Evidence: []string{err.Error()}}
	}
	st.set(func(r *Report) { r.Interfaces = addrs })
	var r Result
	var public []string
	for _, a := range addrs {
		line := fmt.Sprintf("%s %s: %s", a.Iface, a.Prefix, a.Class)
		if a.Block != "" {
			line += " (" + a.Block + ")"
		}
		if !a.Up {
			line += ", interface down"
		}
		r.Evidence = append(r.Evidence, line)
		if a.Class == acmeflow.ClassPublic && a.Up {
			public = append(public, a.Addr.String())
		}
	}
	r.Status = StatusOK
	if len(public) > 0 {
		r.Summary = "public address on an interface: " + strings.Join(public, ", ")
	} else {
		r.Summary = fmt.Sprintf("%d addresses, none public (NAT or cloud 1:1 NAT: see the NAT check)", len(addrs))
	}
	return r
}

// PortState says who listens on a validation port, per family.
type PortState struct {
	Port    int    `json:"port"`
	Family  string `json:"family"` // ipv4 or ipv6
	Free    bool   `json:"free"`
	Local   string `json:"local,omitempty"` // the listening address
	PID     int    `json:"pid,omitempty"`
	Process string `json:"process,omitempty"`
	// V6Only is false for an IPv6 wildcard socket that also takes IPv4
	// (net.ipv6.bindv6only=0), which holds the IPv4 port as well.
	DualStack bool `json:"dual_stack,omitempty"`
}

// tcpListen is the TCP_LISTEN state in /proc/net/tcp (include/net/tcp_states.h).
const tcpListen = 0x0A

// ListeningPorts reads /proc/net/tcp and tcp6 (under Env.Root) for
// listeners on ports and finds their owners by matching socket inodes
// against /proc/<pid>/fd links (docs/letsencrypt.md).
func ListeningPorts(env Env, ports []int) ([]PortState, error) {
	env = env.withDefaults()
	fs, err := procfs.NewFS(env.path("proc"))
	if err != nil {
		return nil, err
	}
	want := map[uint64]bool{}
	for _, p := range ports {
		want[uint64(p)] = true
	}
	type sock struct {
		port   int
		family string
		local  string
		inode  uint64
	}
	var socks []sock
	// A socket no process holds any more closed between the table and the
	// descriptors (the self-fetch's own listener, which comes and goes
	// while this check runs): if a second look at the table has lost it,
	// the port is not held.
	gone := func(family string, inode uint64) bool {
		tab, err := readListenTable(env.path("proc"), family)
		return err == nil && !slices.ContainsFunc(tab, func(l procTCPLine) bool { return l.inode == inode })
	}
	for _, fam := range []string{"ipv4", "ipv6"} {
		tab, err := readListenTable(env.path("proc"), fam)
		if err != nil {
			if os.IsNotExist(err) && fam == "ipv6" {
				continue // IPv6 disabled in the kernel
			}
			return nil, err
		}
		for _, l := range tab {
			if l.state != tcpListen || !want[uint64(l.local.Port())] {
				continue
			}
			socks = append(socks, sock{int(l.local.Port()), fam, l.local.String(), l.inode})
		}
	}
	// Finding owners reads every process's descriptors: only when a
	// wanted port is held at all.
	owners := map[uint64]owner{}
	if len(socks) > 0 {
		owners = socketOwners(fs)
		socks = slices.DeleteFunc(socks, func(s sock) bool { _, ok := owners[s.inode]; return !ok && gone(s.family, s.inode) })
	}
	bindv6only := readInt(env.path("proc/sys/net/ipv6/bindv6only"), 0)
	var out []PortState
	for _, p := range ports {
		for _, fam := range []string{"ipv4", "ipv6"} {
			ps := PortState{Port: p, Family: fam, Free: true}
			for _, s := range socks {
				if s.port != p || s.family != fam {
					continue
				}
				// The self-fetch listens on the port while this check
				// reads: our own socket does not make the port busy.
				if o, ok := owners[s.inode]; ok && o.pid == os.Getpid() {
					continue
				}
				ps.Free = false
				ps.Local = s.local
				if o, ok := owners[s.inode]; ok {
					ps.PID, ps.Process = o.pid, o.name
				}
				if fam == "ipv6" && strings.HasPrefix(s.local, "[::]") && bindv6only == 0 {
					ps.DualStack = true
				}
				break
			}
			out = append(out, ps)
		}
	}
	// A dual-stack [::]:80 socket owns the IPv4 port too, though it does
	// not appear in /proc/net/tcp.
	for i := range out {
		if out[i].Family == "ipv4" && out[i].Free {
			for _, o := range out {
				if o.Port == out[i].Port && o.DualStack {
					out[i].Free, out[i].Local, out[i].PID, out[i].Process = false, o.Local+" (dual-stack)", o.PID, o.Process
				}
			}
		}
	}
	return out, nil
}

type procTCPLine struct {
	local netip.AddrPort
	state int
	inode uint64
}

// readListenTable is listenTable; a test puts a table that changes
// between two reads in its place.
var readListenTable = listenTable

// listenTable reads the kernel's TCP socket table of one family
// (/proc/net/tcp or tcp6 under proc). The format is the kernel's
// (Documentation/networking/proc_net_tcp.rst, net/ipv4/tcp_ipv4.c
// get_tcp4_sock): a header line, then per socket "sl: local remote st
// tx:rx tr:when retrnsmt uid timeout inode ...", the addresses in hex as
// the kernel holds them in memory.
func listenTable(proc string, family string) ([]procTCPLine, error) {
	name := "tcp"
	if family == "ipv6" {
		name = "tcp6"
	}
	f, err := os.Open(filepath.Join(proc, "net", name))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseNetTCP(f)
}

// parseNetTCP parses a /proc/net/tcp or tcp6 table. A line it cannot
// read is skipped, like a socket that closed meanwhile.
func parseNetTCP(r io.Reader) ([]procTCPLine, error) {
	var out []procTCPLine
	sc := bufio.NewScanner(r)
	first := true
	for sc.Scan() {
		if first {
			first = false // the header
			continue
		}
		f := strings.Fields(sc.Text())
		if len(f) < 10 {
			continue
		}
		local, ok := parseProcAddr(f[1])
		if !ok {
			continue
		}
		st, err1 := strconv.ParseUint(f[3], 16, 8)
		inode, err2 := strconv.ParseUint(f[9], 10, 64)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, procTCPLine{local, int(st), inode})
	}
	return out, sc.Err()
}

// parseProcAddr reads "0100007F:0050" (IPv4) or 32 hex digits and a port
// (IPv6): the address is the kernel's in-memory words (four bytes each,
// in the machine's byte order: little-endian on every platform ipcert
// ships for, docs/ARCHITECTURE.md), the port is big-endian hex.
func parseProcAddr(s string) (netip.AddrPort, bool) {
	h, p, ok := strings.Cut(s, ":")
	if !ok || len(p) != 4 || len(h) != 8 && len(h) != 32 {
		return netip.AddrPort{}, false
	}
	raw, err := hex.DecodeString(h)
	port, perr := strconv.ParseUint(p, 16, 16)
	if err != nil || perr != nil {
		return netip.AddrPort{}, false
	}
	for w := 0; w+4 <= len(raw); w += 4 {
		raw[w], raw[w+1], raw[w+2], raw[w+3] = raw[w+3], raw[w+2], raw[w+1], raw[w]
	}
	a, _ := netip.AddrFromSlice(raw)
	return netip.AddrPortFrom(a.Unmap(), uint16(port)), true
}

type owner struct {
	pid  int
	name string
}

// socketOwners maps socket inodes to the process holding them. Processes
// this user may not inspect are skipped (their owner stays unknown).
func socketOwners(fs procfs.FS) map[uint64]owner {
	out := map[uint64]owner{}
	procs, err := fs.AllProcs()
	if err != nil {
		return out
	}
	for _, p := range procs {
		targets, err := p.FileDescriptorTargets()
		if err != nil {
			continue
		}
		name, _ := p.Comm()
		for _, t := range targets {
			if v, ok := strings.CutPrefix(t, "socket:["); ok {
				if ino, err := strconv.ParseUint(strings.TrimSuffix(v, "]"), 10, 64); err == nil {
					if _, seen := out[ino]; !seen {
						out[ino] = owner{p.PID, name}
					}
				}
			}
		}
	}
	return out
}

func readInt(path string, def int) int {
	b, err := os.ReadFile(path)
	if err != nil {
		return def
	}
	n, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		return def
	}
	return n
}

func (st *state) checkPorts(ctx context.Context, env Env) Result {
	ports := []int{st.opts.HTTPPort, st.opts.TLSPort}
	ps, err := ListeningPorts(env, ports)
	if err != nil {
		return Result{Status: StatusSkipped, Summary: "cannot read /proc/net/tcp", Evidence: []string{err.Error()}}
	}
	st.set(func(r *Report) { r.Ports = ps })
	r := Result{Status: StatusOK}
	var held []string
	var fixes []string
	for _, p := range ps {
		if p.Free {
			r.Evidence = append(r.Evidence, fmt.Sprintf("tcp %s port %d: free", p.Family, p.Port))
			continue
		}
		who := "an unknown process (run as root to see which)"
		if p.PID != 0 {
			who = fmt.Sprintf("%s (pid %d)", p.Process, p.PID)
		}
		r.Evidence = append(r.Evidence, fmt.Sprintf("tcp %s port %d: held by %s on %s", p.Family, p.Port, who, p.Local))
		held = append(held, fmt.Sprintf("%d/%s by %s", p.Port, p.Family, who))
		fix := fmt.Sprintf("port %d: ", p.Port)
		switch {
		case p.Port == st.opts.HTTPPort && isWebServer(p.Process):
			fix += "use http-01 into the web server's web root (--challenge http-01 --webroot DIR), or stop " + p.Process + " while validating"
		case p.Port == st.opts.TLSPort:
			fix += "tls-alpn-01 needs this port for itself: use http-01, or stop " + orUnknown(p.Process) + " while validating"
		default:
			fix += "stop " + orUnknown(p.Process) + " while validating (ss -ltnp shows it)"
		}
		if !contains(fixes, fix) {
			fixes = append(fixes, fix)
		}
	}
	if len(held) > 0 {
		// A held port only rules out the standalone responder on that
		// port; the other challenge, or the web root, still works.
		r.Status = StatusWarn
		r.Summary = "in use: " + strings.Join(held, ", ")
		r.Fix = strings.Join(fixes, "; ")
	} else {
		r.Summary = fmt.Sprintf("ports %d and %d are free on IPv4 and IPv6", st.opts.HTTPPort, st.opts.TLSPort)
	}
	return r
}

func orUnknown(s string) string {
	if s == "" {
		return "the process holding it"
	}
	return s
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// Privilege says whether this process may bind ports below 1024.
type Privilege struct {
	UID int `json:"uid"`
	// CapNetBindService is CAP_NET_BIND_SERVICE in the effective set.
	CapNetBindService bool `json:"cap_net_bind_service"`
	// UnprivilegedPortStart is net.ipv4.ip_unprivileged_port_start (1024
	// when unknown); ports at or above it need no privilege.
	UnprivilegedPortStart int  `json:"unprivileged_port_start"`
	CanBind               bool `json:"can_bind"`
}

// capNetBindService is the capability's bit (linux/capability.h).
const capNetBindService = 10

// ReadPrivilege reads the user, the effective capabilities (/proc/self/status)
// and net.ipv4.ip_unprivileged_port_start, and says whether port can be bound.
func ReadPrivilege(env Env, port int) Privilege {
	env = env.withDefaults()
	p := Privilege{UID: env.Getuid(), UnprivilegedPortStart: readInt(env.path("proc/sys/net/ipv4/ip_unprivileged_port_start"), 1024)}
	if b, err := os.ReadFile(env.path("proc/self/status")); err == nil {
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "CapEff:"); ok {
				if caps, err := strconv.ParseUint(strings.TrimSpace(v), 16, 64); err == nil {
					p.CapNetBindService = caps&(1<<capNetBindService) != 0
				}
			}
		}
	}
	p.CanBind = p.UID == 0 || p.CapNetBindService || port >= p.UnprivilegedPortStart
	return p
}

func (st *state) checkPrivilege(ctx context.Context, env Env) Result {
	low := min(st.opts.HTTPPort, st.opts.TLSPort)
	p := ReadPrivilege(env, low)
	st.set(func(r *Report) { r.Privilege = p })
	r := Result{Evidence: []string{
		fmt.Sprintf("effective uid %d", p.UID),
		fmt.Sprintf("CAP_NET_BIND_SERVICE: %v", p.CapNetBindService),
		fmt.Sprintf("net.ipv4.ip_unprivileged_port_start = %d", p.UnprivilegedPortStart),
	}}
	switch {
	case p.UID == 0:
		r.Status, r.Summary = StatusOK, "running as root"
	case p.CapNetBindService:
		r.Status, r.Summary = StatusOK, "has CAP_NET_BIND_SERVICE"
	case p.CanBind:
		r.Status, r.Summary = StatusOK, fmt.Sprintf("ports from %d up need no privilege here", p.UnprivilegedPortStart)
	default:
		r.Status = StatusWarn
		r.Summary = fmt.Sprintf("not root: cannot bind port %d", low)
		exe, _ := os.Executable()
		if exe == "" {
			exe = "ipcert"
		}
		r.Fix = "run with sudo, or grant the capability once: sudo setcap cap_net_bind_service=+ep " + filepath.Clean(exe) + " (or use http-01 into a web server's web root, which needs no port)"
	}
	return r
}

// checkAddress applies the CA's address policy to each address, then waits
// for the other checks: when they say validation will probably fail, it
// states what a failed attempt costs (docs/letsencrypt.md, rate limits).
func (st *state) checkAddress(ctx context.Context, env Env) Result {
	addrs := st.addrs()
	r := Result{Status: StatusOK}
	if len(addrs) == 0 {
		r.Status, r.Summary = StatusFail, "no address to check: none given and none detected"
		r.Fix = "give the address with --ip ADDR"
	}
	var bad []string
	for _, a := range addrs {
		if err := acmeflow.CheckAddr(a, !st.opts.LocalCA && !st.opts.OwnCA); err != nil {
			r.Status = StatusFail
			bad = append(bad, err.Error())
			if ae, ok := err.(*acmeflow.AddrError); ok && r.Fix == "" {
				r.Fix = ae.Fix
			}
			r.Evidence = append(r.Evidence, err.Error())
			continue
		}
		class, _ := acmeflow.Classify(a)
		r.Evidence = append(r.Evidence, fmt.Sprintf("%s: %s, accepted by the address policy", a, class))
	}
	if len(addrs) > 0 {
		if len(bad) > 0 {
			r.Summary = strings.Join(bad, "; ")
		} else {
			r.Summary = acmeflow.JoinAddrs(addrs) + ": an address Let's Encrypt accepts"
			if st.opts.LocalCA {
				r.Summary = acmeflow.JoinAddrs(addrs) + ": an address the local test CA can validate"
			} else if st.opts.OwnCA {
				r.Summary = acmeflow.JoinAddrs(addrs) + ": left to the CA's own policy (Let's Encrypt's refusal of private and reserved addresses does not apply)"
			}
		}
	}
	// Wait for the others (bounded by ctx) to weigh the cost of a mistake.
	done := make(chan struct{})
	go func() { st.others.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		return r
	}
	st.mu.Lock()
	var failing []string
	for id, res := range st.results {
		if res.Status == StatusFail && !res.Advisory {
			failing = append(failing, id)
		}
	}
	st.mu.Unlock()
	sort.Strings(failing)
	if len(failing) > 0 && !st.opts.LocalCA && !st.opts.OwnCA && len(addrs) > 0 {
		if r.Status == StatusOK {
			// The mark is for the whole row: say why it is not a ✓.
			r.Status = StatusWarn
			r.Summary += "; but other checks fail (" + strings.Join(failing, ", ") + "): a failed attempt counts against the limits"
		}
		r.Evidence = append(r.Evidence, "failing checks: "+strings.Join(failing, ", "))
		cost := "validation will probably fail (" + strings.Join(failing, ", ") + "). Each failed attempt on production counts: 5 failed authorizations per address per account per hour, 5 certificates per identical set per 7 days, 50 per address (IPv6: per /64) per 7 days (letsencrypt.org/docs/rate-limits). Fix the failing checks and rehearse on staging first: " + RehearsalCommand(addrs)
		if r.Fix == "" {
			r.Fix = cost
		} else {
			r.Fix += "; " + cost
		}
	}
	return r
}
