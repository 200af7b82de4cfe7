package diagnosis

import (
	"fmt"
	"net/netip"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"github.com/ipcert/ipcert/preflight"
)

// The situation: what the local evidence says about where the validator's
// packets went (this machine, its router, another machine), so that the
// cause and the fix fit this machine: a fix names the firewall that is
// here, the web server's real root, the router only behind a NAT.

// selfPath is this program's path, for commands about the binary itself.
func selfPath() string {
	if p, err := os.Executable(); err == nil && !strings.ContainsAny(p, " \t\n'\"") {
		return p
	}
	return "/usr/bin/ipcert"
}

// behindNAT says the NAT check found this machine behind a router.
func (g *diag) behindNAT() bool {
	switch g.ev.NAT {
	case "home-nat", "nat", "double-nat", "cgnat", "cloud-1to1":
		return true
	}
	return false
}

// identAddr is the failed address.
func (g *diag) identAddr() (netip.Addr, bool) {
	a, err := netip.ParseAddr(g.d.Identifier)
	return a, err == nil
}

// notHere says the address is on none of this machine's interfaces, when
// they are known.
func (g *diag) notHere() bool {
	a, ok := g.identAddr()
	return ok && g.ev.LocalAddrsKnown && !slices.Contains(g.ev.LocalAddrs, a)
}

// publicNow is this machine's public address of the failed address's
// family as found now, when it is not the failed address: the address
// moved (a new lease, another uplink) since it was certified.
func (g *diag) publicNow() (netip.Addr, bool) {
	a, ok := g.identAddr()
	if !ok {
		return netip.Addr{}, false
	}
	for _, p := range g.ev.PublicNow {
		if p.Is4() == a.Is4() && p.IsValid() {
			return p, p != a
		}
	}
	return netip.Addr{}, false
}

// elsewhere explains a validation that reached some other machine than
// this one (the address moved, or was never this machine's): it sets the
// diagnosis and says true, or says false.
func (g *diag) elsewhere(port int) bool {
	a, ok := g.identAddr()
	if !ok || g.own() && !g.ev.LocalAddrsKnown {
		return false
	}
	if g.ev.LocalAddrsKnown && !g.notHere() {
		// On an interface here: this machine's, whatever address the
		// echo services see (a machine with several public addresses).
		return false
	}
	if now, moved := g.publicNow(); moved && g.ev.Issued {
		ips := g.replaceIdent(a.String(), now.String())
		g.set(DiagAddressChanged, "The address is no longer this machine's",
			fmt.Sprintf("The CA validated %s, but this machine's public address is now %s: the address changed (a new lease from the provider, another uplink, a moved VM) since it was certified, and the validator reached whatever has %s now.", a, now, a),
			fmt.Sprintf("Certify the address this machine has now (%s), and point your clients at it; --ip auto always takes the current one.", now),
			g.issueCmd(issueArgs{ips: ips}), false)
		g.evidence("public address now: %s (certified: %s)", now, a)
		return true
	}
	now, other := g.publicNow()
	if other || g.notHere() && !g.behindNAT() && g.ev.NAT != "" && g.ev.NAT != "unknown" {
		fix := "Certify an address of this machine (ipcert preflight lists them), or run ipcert on the machine that has " + a.String() + "."
		c := g.preflightCmd()
		if other {
			fix = fmt.Sprintf("Certify this machine's public address %s, or run ipcert on the machine that has %s.", now, a)
			c = g.issueCmd(issueArgs{ips: g.replaceIdent(a.String(), now.String())})
		}
		g.set(DiagWrongAddress, "The CA reached another machine",
			fmt.Sprintf("%s is not this machine's address (not on any of its interfaces, and not its public address), so the validator's connection to port %d went to another machine, or nowhere.", a, port),
			fix, c, false)
		if g.ev.LocalAddrsKnown {
			g.evidence("this machine's addresses: %s", addrList(g.ev.LocalAddrs))
		}
		if other {
			g.evidence("this machine's public address: %s", now)
		}
		return true
	}
	return false
}

func addrList(as []netip.Addr) string {
	var out []string
	for _, a := range as {
		if a.IsLoopback() || a.IsLinkLocalUnicast() {
			continue
		}
		out = append(out, a.String())
	}
	if len(out) == 0 {
		return "none but loopback and link-local"
	}
	return strings.Join(out, ", ")
}

// nftWhere is where an nftables verdict was decided: "table inet filter
// chain input: ..." (preflight's wording).
var nftWhere = regexp.MustCompile(`^table (\S+) (\S+) chain (\S+):`)

// block is the first host firewall verdict that blocks the port, and
// whether it rejects (the validator sees "connection refused") rather than
// drops (a timeout).
func (g *diag) block() (preflight.PortVerdict, bool, bool) {
	// The verdict for the failed address's family first.
	fam := "ipv4"
	if a, ok := g.identAddr(); ok && a.Is6() {
		fam = "ipv6"
	}
	fws := slices.Clone(g.ev.Firewall)
	slices.SortStableFunc(fws, func(x, y string) int {
		xf, yf := strings.Contains(x, " "+fam+" port "), strings.Contains(y, " "+fam+" port ")
		switch {
		case xf && !yf:
			return -1
		case yf && !xf:
			return 1
		}
		return 0
	})
	for _, f := range fws {
		// AddPreflight's "TOOL FAMILY port N: RULE".
		head, rule, ok := strings.Cut(f, ": ")
		w := strings.Fields(head)
		if !ok || len(w) != 4 || w[2] != "port" {
			continue
		}
		p, _ := strconv.Atoi(w[3])
		b := preflight.PortVerdict{Tool: w[0], Family: w[1], Port: p, Rule: rule}
		r := strings.ToLower(rule)
		return b, strings.Contains(r, "reject"), true
	}
	return preflight.PortVerdict{}, false, false
}

// openCmd is the command that opens tcp port in the host firewall that
// blocks it, in that firewall's own tool.
func openCmd(b preflight.PortVerdict, port int) Cmd {
	p := strconv.Itoa(port)
	switch b.Tool {
	case "ufw":
		return cmd("sudo", "ufw", "allow", p+"/tcp")
	case "firewalld":
		return cmd("sudo", "firewall-cmd", "--permanent", "--add-port="+p+"/tcp")
	case "iptables":
		tool := "iptables"
		if b.Family == "ipv6" {
			tool = "ip6tables"
		}
		return cmd("sudo", tool, "-I", "INPUT", "-p", "tcp", "--dport", p, "-j", "ACCEPT")
	case "nftables":
		if m := nftWhere.FindStringSubmatch(b.Rule); m != nil {
			return cmd("sudo", "nft", "insert", "rule", m[1], m[2], m[3], "tcp", "dport", p, "accept")
		}
		return cmd("sudo", "nft", "list", "ruleset")
	}
	return nil
}

// firewallTail is what the fix adds after opening the port: firewalld's
// permanent rule needs a reload.
func firewallTail(b preflight.PortVerdict) string {
	if b.Tool == "firewalld" {
		return " then sudo firewall-cmd --reload"
	}
	return ""
}

// hostFirewall explains a port the host firewall blocks: a reject rule
// (refused) or a drop rule (timeout), fixed with the firewall's own tool.
func (g *diag) hostFirewall(port int) bool {
	b, reject, ok := g.block()
	if !ok {
		return false
	}
	how := "drops"
	seen := "the validator's connection timed out"
	if reject {
		how, seen = "rejects", "the validator was refused"
	}
	g.set(DiagFirewall, "The host firewall blocks the validation port",
		fmt.Sprintf("This machine's firewall (%s) %s tcp port %d (%s %s): %s.", b.Tool, how, port, b.Family, b.Rule, seen),
		fmt.Sprintf("Allow tcp port %d in %s for everyone, IPv4 and IPv6, then run again%s.", port, b.Tool, firewallTail(b)),
		openCmd(b, port), false)
	return true
}

// natFix explains a validation that never reached this machine behind a
// NAT: CGNAT (the address is not this machine's at all), or a router that
// does not forward the port.
func (g *diag) natFix(port int) bool {
	switch g.ev.NAT {
	case "cgnat":
		cause := fmt.Sprintf("This machine is behind carrier-grade NAT (its router's outside address is in 100.64.0.0/10): %s is your provider's, shared with other customers, and no port forward of yours can make the provider's NAT send port %d to this machine.", g.addr(), port)
		fix := "Use an address that is yours: IPv6 if the machine has a global one, or ask the provider for a public IPv4 address (often an option called \"public IP\" or \"disable CGNAT\")."
		var c Cmd
		for _, p := range g.ev.PublicNow {
			if p.Is6() && p.IsGlobalUnicast() {
				c = g.issueCmd(issueArgs{ips: []string{p.String()}})
				fix = fmt.Sprintf("Use an address that is yours: this machine's IPv6 address %s, or ask the provider for a public IPv4 address.", p)
				break
			}
		}
		if c == nil {
			c = g.preflightCmd()
		}
		g.set(DiagCGNAT, "Carrier-grade NAT: this address is not yours", cause, fix, c, false)
		return true
	case "home-nat", "nat", "double-nat":
		routers := "the router"
		if g.ev.NAT == "double-nat" {
			routers = "every router on the way (the NAT is double)"
		}
		to := "this machine"
		for _, a := range g.ev.LocalAddrs {
			if a.Is4() && a.IsPrivate() {
				to = "this machine (" + a.String() + ")"
				break
			}
		}
		if g.ev.NAT == "home-nat" {
			// The router answers UPnP/NAT-PMP (preflight asked it): ipcert
			// can map the port itself.
			g.set(DiagNotForwarded, "The router does not forward the port to this machine",
				fmt.Sprintf("This machine is behind a NAT router: %s is the router's outside address, and the validator's connection to its port %d was not forwarded here.", g.addr(), port),
				fmt.Sprintf("Let ipcert ask the router to forward tcp port %d during issuance (UPnP/NAT-PMP, --map-ports), or forward it to %s in the router's settings, then run again.", port, to),
				g.issueCmd(issueArgs{extra: []string{"--map-ports"}}), false)
			return true
		}
		g.set(DiagNotForwarded, "The router does not forward the port to this machine",
			fmt.Sprintf("This machine is behind NAT: %s is the outside address of %s, and the validator's connection to its port %d was not forwarded here (the router does not answer UPnP or NAT-PMP, so ipcert cannot ask it).", g.addr(), routers, port),
			fmt.Sprintf("Forward tcp port %d on %s to %s in the router's settings, then run again.", port, routers, to),
			g.issueCmd(issueArgs{}), false)
		return true
	case "cloud-1to1":
		g.set(DiagConnectTimeout, "The cloud provider's firewall blocks the port",
			fmt.Sprintf("This is a cloud VM behind its provider's 1:1 NAT: the provider's security group or network firewall must allow tcp port %d, and it did not let the validator through.", port),
			fmt.Sprintf("Allow tcp port %d from 0.0.0.0/0 and ::/0 in the VM's security group (or network firewall), then run again.", port),
			g.doctorCmd(true), false)
		return true
	}
	return false
}

// portBusy: another program holds the port ipcert's responder needs. A web
// server answers through its real document root (http-01 on port 80,
// whatever challenge failed: --webroot answers only http-01).
func (g *diag) portBusy(owner string) {
	port := g.port()
	server := "that program"
	if g.ev.WebServer != "" {
		server = g.ev.WebServer
	}
	if g.ev.WebServerRoot != "" {
		how := "Answer through " + server + "'s document root " + g.ev.WebServerRoot + " (--webroot), or stop it for the minute of issuance."
		if g.ev.Challenge == "tls-alpn-01" {
			how = "tls-alpn-01 needs port " + strconv.Itoa(port) + " to itself; answer http-01 through " + server + "'s document root " + g.ev.WebServerRoot + " instead (--challenge http-01 --webroot), or stop it for the minute of issuance."
		}
		g.set(DiagPortBusy, "The validation port is busy", "Another program holds the port our responder needs"+owner+".", how,
			g.issueCmd(issueArgs{challenge: "http-01", webroot: g.ev.WebServerRoot}), false)
		return
	}
	g.set(DiagPortBusy, "The validation port is busy", "Another program holds the port our responder needs"+owner+".",
		"Answer through the document root the web server serves for this address (--webroot DIR; ipcert preflight shows the default server's root), or stop it for the minute of issuance.",
		g.preflightCmd(), false)
}

// replaceIdent is the order's addresses with old replaced by new.
func (g *diag) replaceIdent(old, new string) []string {
	var out []string
	for _, id := range g.idents() {
		if id == old {
			id = new
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	if len(out) == 0 {
		out = []string{new}
	}
	return out
}

// forwardCmd is the command after a port forward to this machine: the
// issuance again, with --map-ports when the router answers UPnP/NAT-PMP
// (preflight asked it: home-nat) so ipcert can make the forward itself.
func (g *diag) forwardCmd() Cmd {
	if g.ev.NAT == "home-nat" {
		return g.issueCmd(issueArgs{extra: []string{"--map-ports"}})
	}
	return g.issueCmd(issueArgs{})
}
