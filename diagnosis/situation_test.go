package diagnosis

import (
	"net"
	"net/netip"
	"os"
	"strings"
	"syscall"
	"testing"

	"github.com/ipcert/ipcert/acmeflow"
)

// TestDiagnoseSituations: the causes and fixes of issue 23, each reasoned
// from the local evidence (the NAT verdict, the firewall tool and rule,
// the web server and its root, the interface and public addresses): the
// fix names what is on this machine, and its command is complete.
func TestDiagnoseSituations(t *testing.T) {
	const ip = "203.0.113.7"
	prob := func(typ, detail string) error {
		return &acmeflow.Error{Step: acmeflow.StepChallenge, Identifier: ip, Problem: &acmeflow.Problem{Type: acmeflow.ProblemNS + typ, Detail: detail}}
	}
	refused := prob("connection", ip+": Fetching http://"+ip+"/.well-known/acme-challenge/YG8: Connection refused")
	timeout := prob("connection", ip+": Fetching http://"+ip+"/.well-known/acme-challenge/YG8: Timeout during connect (likely firewall problem)")
	none := func(ev Evidence) Evidence {
		ev.SeenKnown, ev.CA, ev.StateDir = true, "production", "/srv/ipcert"
		if ev.Challenge == "" {
			ev.Challenge = acmeflow.ChallengeHTTP01
		}
		return ev
	}
	here := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr(ip)}
	lan := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("192.168.1.20")}
	busy := &acmeflow.Error{Step: acmeflow.StepResponder, Identifier: ip, Err: bindHint(&net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}, ":80")}
	busyTLS := &acmeflow.Error{Step: acmeflow.StepResponder, Identifier: ip, Err: bindHint(&net.OpError{Op: "listen", Net: "tcp", Err: os.NewSyscallError("bind", syscall.EADDRINUSE)}, ":443")}
	const v6 = "2001:db8:7::7"
	cases := []struct {
		name    string
		err     error
		ev      Evidence
		want    diagWant
		command string // the whole command, when it matters
		not     []string
	}{
		{"refused behind home NAT: forward the port", refused, none(Evidence{NAT: "home-nat", LocalAddrs: lan, LocalAddrsKnown: true}),
			diagWant{code: DiagNotForwarded, cause: []string{"NAT router", "not forwarded"}, fix: []string{"forward tcp port 80", "--map-ports"}},
			"ipcert issue --ca production --ip 203.0.113.7 --map-ports --agree-tos --state-dir /srv/ipcert", []string{"0.0.0.0"}},
		{"refused behind CGNAT: not yours", refused, none(Evidence{NAT: "cgnat", LocalAddrs: lan, LocalAddrsKnown: true, PublicNow: []netip.Addr{netip.MustParseAddr(ip), netip.MustParseAddr("2001:db8::20")}}),
			diagWant{code: DiagCGNAT, cause: []string{"carrier-grade NAT", "provider's"}, fix: []string{"2001:db8::20"}},
			"ipcert issue --ca production --ip 2001:db8::20 --agree-tos --state-dir /srv/ipcert", []string{"0.0.0.0", "forward tcp"}},
		{"refused by an nftables reject rule", refused, none(Evidence{NAT: "direct", LocalAddrs: here, LocalAddrsKnown: true, FirewallTools: []string{"nftables"},
			Firewall: []string{"nftables ipv4 port 80: table inet filter chain input: tcp dport 80 reject"}}),
			diagWant{code: DiagFirewall, cause: []string{"firewall (nftables) rejects", "refused"}, fix: []string{"in nftables"}},
			"sudo nft insert rule inet filter input tcp dport 80 accept", []string{"ufw", "0.0.0.0"}},
		{"dropped by nftables, no ufw here", timeout, none(Evidence{NAT: "direct", LocalAddrs: here, LocalAddrsKnown: true, FirewallTools: []string{"nftables"},
			Firewall: []string{"nftables ipv4 port 80: table inet filter chain input: policy drop"}}),
			diagWant{code: DiagFirewall, cause: []string{"drops", "timed out"}},
			"sudo nft insert rule inet filter input tcp dport 80 accept", []string{"ufw"}},
		{"dropped by iptables", timeout, none(Evidence{NAT: "direct", FirewallTools: []string{"iptables"}, Firewall: []string{"iptables ipv4 port 80: -A INPUT -p tcp -m tcp --dport 80 -j DROP"}}),
			diagWant{code: DiagFirewall, cause: []string{"iptables"}},
			"sudo iptables -I INPUT -p tcp --dport 80 -j ACCEPT", []string{"ufw"}},
		{"dropped by firewalld", timeout, none(Evidence{FirewallTools: []string{"firewalld"}, Firewall: []string{"firewalld ipv4 port 80: zone target default: not in services or ports"}}),
			diagWant{code: DiagFirewall, fix: []string{"firewall-cmd --reload"}},
			"sudo firewall-cmd --permanent --add-port=80/tcp", []string{"ufw"}},
		{"timeout with no host firewall: no ufw", timeout, none(Evidence{NAT: "direct", LocalAddrs: here, LocalAddrsKnown: true, FirewallTools: []string{"nftables"}}),
			diagWant{code: DiagConnectTimeout, cause: []string{"lets the port through"}, fix: []string{"security group"}},
			"ipcert doctor 203.0.113.7 --probe --agree-tos --state-dir /srv/ipcert", []string{"ufw", "behind"}},
		{"port 80 held by nginx: its real root", busy, Evidence{CA: "staging", Challenge: acmeflow.ChallengeHTTP01, PortOwner: "nginx (pid 812) on 0.0.0.0:80", WebServer: "nginx", WebServerRoot: "/srv/site"},
			diagWant{code: DiagPortBusy, fix: []string{"/srv/site"}},
			"ipcert issue --ca staging --ip 203.0.113.7 --challenge http-01 --webroot /srv/site --agree-tos", []string{"/var/www/html"}},
		{"port 443 held by nginx for tls-alpn-01: http-01 through its root", busyTLS, Evidence{CA: "staging", Challenge: acmeflow.ChallengeTLSALPN01, PortOwner: "nginx (pid 812) on 0.0.0.0:443", WebServer: "nginx", WebServerRoot: "/srv/site"},
			diagWant{code: DiagPortBusy, fix: []string{"--challenge http-01 --webroot"}},
			"ipcert issue --ca staging --ip 203.0.113.7 --challenge http-01 --webroot /srv/site --agree-tos", []string{"tls-alpn-01 --webroot", "--challenge tls-alpn-01"}},
		{"unrouted IPv6", &acmeflow.Error{Step: acmeflow.StepChallenge, Identifier: v6, Problem: &acmeflow.Problem{Type: acmeflow.ProblemConnection, Detail: `Get "http://[` + v6 + `]/.well-known/acme-challenge/YG8": dial tcp [` + v6 + `]:80: connect: network is unreachable`}},
			Evidence{SeenKnown: true, CA: "staging", Challenge: acmeflow.ChallengeHTTP01, PublicNow: []netip.Addr{netip.MustParseAddr(ip)}},
			diagWant{code: DiagNetUnreachable, cause: []string{"IPv6 prefix is not routed"}, fix: []string{"203.0.113.7"}},
			"ipcert issue --ca staging --ip 203.0.113.7 --agree-tos", nil},
		{"the CA reached another machine (no NAT here)", refused, none(Evidence{NAT: "direct", LocalAddrs: []netip.Addr{netip.MustParseAddr("198.51.100.9")}, LocalAddrsKnown: true}),
			diagWant{code: DiagWrongAddress, cause: []string{"not this machine's address", "not on any of its interfaces"}, evidence: []string{"198.51.100.9"}},
			"ipcert preflight --ip 203.0.113.7", []string{"router", "forward"}},
		{"the address moved since issuance", timeout, none(Evidence{Issued: true, NAT: "direct", LocalAddrs: []netip.Addr{netip.MustParseAddr("198.51.100.9")}, LocalAddrsKnown: true, PublicNow: []netip.Addr{netip.MustParseAddr("198.51.100.9")}}),
			diagWant{code: DiagAddressChanged, cause: []string{"now 198.51.100.9"}, evidence: []string{"public address now: 198.51.100.9"}},
			"ipcert issue --ca production --ip 198.51.100.9 --agree-tos --state-dir /srv/ipcert", []string{"ufw"}},
		{"another server answered, no NAT: no router claim", prob("unauthorized", ip+": Invalid response from http://"+ip+"/.well-known/acme-challenge/YG8: 404"), none(Evidence{NAT: "direct", LocalAddrs: here, LocalAddrsKnown: true}),
			diagWant{code: DiagForeignServer, cause: []string{"not behind a NAT"}},
			"ss -ltnp", []string{"router"}},
		{"a redirect of the whole server to https", prob("unauthorized", ip+": Invalid response from https://"+ip+"/.well-known/acme-challenge/YG8: 404"),
			Evidence{SeenKnown: true, CA: "staging", Challenge: acmeflow.ChallengeHTTP01, WebRoot: "/var/www/site", WebServer: "nginx", WebServerRoot: "/var/www/site", WebServerRedirects: true},
			diagWant{code: DiagRedirectHTTPS, cause: []string{"redirect to https"}, fix: []string{"location ^~ /.well-known/acme-challenge/ { root /var/www/site; }"}},
			"curl -sI http://203.0.113.7/.well-known/acme-challenge/test", []string{"--webroot"}},
		{"multi-perspective: some of the internet", prob("connection", "During secondary validation: "+ip+": Fetching http://"+ip+"/.well-known/acme-challenge/YG8: Timeout during connect (likely firewall problem)"), none(Evidence{}),
			diagWant{code: DiagSecondary, cause: []string{"primary validator reached", "geo-blocking", "only part of the internet"}, fix: []string{"country", "fail2ban"}, evidence: []string{"the remote perspective saw: " + ip}},
			"ipcert doctor 203.0.113.7 --probe --agree-tos --state-dir /srv/ipcert", nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			d := Diagnose(c.err, c.ev)
			checkDiag(t, d, c.want)
			if c.command != "" && d.Command != c.command {
				t.Errorf("command %q, want %q", d.Command, c.command)
			}
			if d.Command != d.Args.String() || strings.ContainsAny(d.Command, "\n\r") {
				t.Errorf("command %q is not its words %q on one line", d.Command, d.Args)
			}
			all := strings.ToLower(d.Cause + " " + d.Fix + " " + d.Command)
			for _, bad := range c.not {
				if strings.Contains(all, strings.ToLower(bad)) {
					t.Errorf("%q in the diagnosis: %s | %s | %s", bad, d.Cause, d.Fix, d.Command)
				}
			}
		})
	}
}

func TestCmdRendering(t *testing.T) {
	for _, c := range []struct {
		in   Cmd
		want string
	}{
		{Cmd{"ipcert", "issue", "--ip", "2001:db8::7", "--webroot", "/srv/my site"}, "ipcert issue --ip 2001:db8::7 --webroot '/srv/my site'"},
		{Cmd{"curl", "-sI", "http://[2001:db8::7]/x"}, "curl -sI http://[2001:db8::7]/x"},
		{Cmd{"echo", "it's", ""}, `echo 'it'\''s' ''`},
	} {
		if got := c.in.String(); got != c.want {
			t.Errorf("%q: %s, want %s", []string(c.in), got, c.want)
		}
	}
	c := Cmd{"ipcert", "issue", "--ca", "staging", "--agree-tos"}
	if got := c.Set("--ca", "production").Set("--webroot", "/x").Drop("--agree-tos").String(); got != "ipcert issue --ca production --webroot /x" {
		t.Errorf("Set/Drop: %s", got)
	}
	if v, ok := c.Flag("--ca"); !ok || v != "staging" {
		t.Errorf("Flag: %q %v", v, ok)
	}
}

// TestFirewallVerdictOfTheFamily: for an IPv6 address the IPv6 rule is
// the one named and opened.
func TestFirewallVerdictOfTheFamily(t *testing.T) {
	err := &acmeflow.Error{Step: acmeflow.StepChallenge, Identifier: "2001:db8::7", Problem: &acmeflow.Problem{Type: acmeflow.ProblemConnection, Detail: "Timeout during connect (likely firewall problem)"}}
	d := Diagnose(err, Evidence{SeenKnown: true, CA: "staging", Challenge: acmeflow.ChallengeHTTP01, Firewall: []string{
		"iptables ipv4 port 80: -A INPUT -p tcp -m tcp --dport 80 -j DROP",
		"iptables ipv6 port 80: -A INPUT -p tcp -m tcp --dport 80 -j DROP",
	}})
	if d.Code != DiagFirewall || d.Command != "sudo ip6tables -I INPUT -p tcp --dport 80 -j ACCEPT" {
		t.Errorf("%s: %s", d.Code, d.Command)
	}
}

// TestSecondPublicAddressIsHere: an address on one of this machine's
// interfaces is its own, though the public address seen from outside is
// another (several public addresses): not "another machine".
func TestSecondPublicAddressIsHere(t *testing.T) {
	err := &acmeflow.Error{Step: acmeflow.StepChallenge, Identifier: "203.0.113.8", Problem: &acmeflow.Problem{Type: acmeflow.ProblemConnection, Detail: "Connection refused"}}
	d := Diagnose(err, Evidence{SeenKnown: true, CA: "staging", Challenge: acmeflow.ChallengeHTTP01, NAT: "direct",
		LocalAddrsKnown: true, LocalAddrs: []netip.Addr{netip.MustParseAddr("203.0.113.7"), netip.MustParseAddr("203.0.113.8")},
		PublicNow: []netip.Addr{netip.MustParseAddr("203.0.113.7")}})
	if d.Code == DiagWrongAddress || d.Code == DiagAddressChanged {
		t.Errorf("an address on an interface here is called another machine's: %s: %s", d.Code, d.Cause)
	}
}
