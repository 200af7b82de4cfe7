package preflight

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
)

// Firewall is what the host firewall does to a new inbound TCP connection
// from the internet to each validation port, per family. It is read-only:
// nothing is changed.
type Firewall struct {
	// Tools are the firewalls found active: ufw, firewalld, nftables,
	// iptables.
	Tools   []string      `json:"tools"`
	Verdict []PortVerdict `json:"verdicts"`
	Errors  []string      `json:"errors,omitempty"`
}

// PortVerdict is one tool's verdict for one port and family.
type PortVerdict struct {
	Tool    string `json:"tool"`
	Family  string `json:"family"` // ipv4 or ipv6
	Port    int    `json:"port"`
	Allowed bool   `json:"allowed"`
	// Rule is the rule that decided, in the tool's words, or the chain
	// policy.
	Rule string `json:"rule"`
}

// ReadFirewall asks each installed firewall tool, read-only, what happens to
// inbound tcp to ports, for IPv4 and IPv6.
func ReadFirewall(ctx context.Context, env Env, ports []int) Firewall {
	env = env.withDefaults()
	var fw Firewall
	run := func(name string, args ...string) (string, bool) {
		path, err := findTool(env, name)
		if err != nil {
			return "", false
		}
		out, err := env.Runner.Run(ctx, path, args...)
		if err != nil {
			fw.Errors = append(fw.Errors, fmt.Sprintf("%s %s: %s", name, strings.Join(args, " "), toolErr(err)))
			if len(out) == 0 {
				return "", false
			}
		}
		return string(out), true
	}
	add := func(tool string, v []PortVerdict) {
		if len(v) == 0 {
			return
		}
		fw.Tools = append(fw.Tools, tool)
		fw.Verdict = append(fw.Verdict, v...)
	}
	// ufw: only when enabled (its rules are iptables/nft rules too, but
	// its own words make the better evidence and fix).
	if ufwEnabled(env) {
		if out, ok := run("ufw", "status", "verbose"); ok {
			add("ufw", evalUFW(out, ports))
		}
	}
	if out, ok := run("firewall-cmd", "--state"); ok && strings.TrimSpace(out) == "running" {
		if out, ok := run("firewall-cmd", "--list-all"); ok {
			add("firewalld", evalFirewalld(out, ports))
		}
	}
	if out, ok := run("nft", "-j", "list", "ruleset"); ok {
		v, err := evalNft(out, ports)
		if err != nil {
			fw.Errors = append(fw.Errors, "nft -j list ruleset: "+err.Error())
		}
		add("nftables", v)
	}
	// iptables-save shows legacy (x_tables) rules; with iptables-nft they
	// also appear in the nft ruleset, which only repeats the verdict.
	if out, ok := run("iptables-save", "-t", "filter"); ok {
		add("iptables", evalIptables(out, "ipv4", ports))
	}
	if out, ok := run("ip6tables-save", "-t", "filter"); ok {
		add("iptables", evalIptables(out, "ipv6", ports))
	}
	fw.Tools = dedupe(fw.Tools)
	return fw
}

// toolErr is a firewall tool's failure in its own words: the first line
// of what it wrote on stderr ("Operation not permitted (you must be
// root)"), after the exit status.
func toolErr(err error) string {
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		if line, _, _ := strings.Cut(strings.TrimSpace(string(ee.Stderr)), "\n"); line != "" {
			return ee.Error() + ": " + line
		}
	}
	return shortErr(err)
}

// findTool finds a firewall program: on PATH, else where Debian puts it.
// An ordinary user's PATH has no sbin, and missing nft there does not mean
// there is no firewall.
func findTool(env Env, name string) (string, error) {
	p, err := env.LookPath(name)
	if err == nil {
		return p, nil
	}
	for _, d := range []string{"usr/sbin", "sbin", "usr/local/sbin"} {
		q := env.path(d + "/" + name)
		if fi, serr := os.Stat(q); serr == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return q, nil
		}
	}
	return "", err
}

func dedupe(s []string) []string {
	var out []string
	for _, x := range s {
		if !contains(out, x) {
			out = append(out, x)
		}
	}
	return out
}

func families() []string { return []string{"ipv4", "ipv6"} }

// portListMatch matches "80", "80,443", "1:1024" (sep ":") or "1-1024".
func portListMatch(spec string, port int, listSep, rangeSep string) bool {
	for _, part := range strings.Split(spec, listSep) {
		part = strings.TrimSpace(part)
		if lo, hi, ok := strings.Cut(part, rangeSep); ok {
			l, e1 := strconv.Atoi(lo)
			h, e2 := strconv.Atoi(hi)
			if lo == "" {
				l, e1 = 0, nil
			}
			if hi == "" {
				h, e2 = 65535, nil
			}
			if e1 == nil && e2 == nil && port >= l && port <= h {
				return true
			}
			continue
		}
		if n, err := strconv.Atoi(part); err == nil && n == port {
			return true
		}
	}
	return false
}

func orDefault(s, d string) string {
	if s == "" {
		return d
	}
	return s
}

// A fwRule is one rule of an iptables or nftables chain, reduced to what
// matters for a new inbound TCP connection from anywhere to one port.
type fwRule struct {
	text string
	// applies says whether the rule matches a new tcp connection from the
	// internet to port. Rules limited to loopback, established
	// connections, given sources or other protocols do not.
	applies func(port int) bool
	verdict string // accept, drop, reject, return, jump, goto, "" (no verdict)
	target  string // the chain of a jump/goto
}

type fwChain struct {
	policy string // accept or drop ("" for a non-base chain)
	rules  []fwRule
}

// evalChain walks chain for a packet to port and returns the verdict
// ("accept", "drop", "reject", or "" when a regular chain falls through)
// and the deciding rule.
func evalChain(chains map[string]*fwChain, name string, port, depth int) (string, string) {
	c := chains[name]
	if c == nil || depth > 16 {
		return "", ""
	}
	for _, r := range c.rules {
		if !r.applies(port) {
			continue
		}
		switch r.verdict {
		case "accept", "drop", "reject":
			return r.verdict, r.text
		case "return":
			return "", ""
		case "jump", "goto":
			if v, t := evalChain(chains, r.target, port, depth+1); v != "" {
				return v, t
			}
			if r.verdict == "goto" {
				return "", ""
			}
		}
	}
	return "", ""
}

func (st *state) checkFirewall(ctx context.Context, env Env) Result {
	ports := []int{st.opts.HTTPPort, st.opts.TLSPort}
	fw := ReadFirewall(ctx, env, ports)
	st.set(func(r *Report) { r.Firewall = fw })
	r := Result{Status: StatusOK}
	r.Evidence = append(r.Evidence, fw.Errors...)
	if len(fw.Tools) == 0 {
		r.Summary = "no active host firewall found (ufw, firewalld, nftables, iptables)"
		if len(fw.Errors) > 0 {
			r.Status = StatusWarn
			r.Summary = "could not check the host firewall: nft and iptables could not read the rules"
			if uid := env.withDefaults().Getuid(); uid != 0 {
				r.Summary = fmt.Sprintf("could not check the host firewall: as uid %d, nft and iptables may not read the rules (only root may)", uid)
				r.Fix = "run the check as root: sudo " + PreflightCommand(st.opts.IPs)
			}
		}
		return r
	}
	var blocked []string
	var fixes []string
	for _, v := range fw.Verdict {
		word := "allowed"
		if !v.Allowed {
			word = "BLOCKED"
			blocked = append(blocked, fmt.Sprintf("tcp %d %s by %s", v.Port, v.Family, v.Tool))
			fixes = append(fixes, firewallFix(v))
		}
		r.Evidence = append(r.Evidence, fmt.Sprintf("%s %s tcp %d: %s by %s", v.Tool, v.Family, v.Port, word, v.Rule))
	}
	if len(blocked) == 0 {
		r.Summary = "inbound tcp " + strconv.Itoa(st.opts.HTTPPort) + " and " + strconv.Itoa(st.opts.TLSPort) + " allowed on IPv4 and IPv6 (" + strings.Join(fw.Tools, ", ") + ")"
		return r
	}
	// A blocked port is a fail only if both validation ports are blocked
	// for a family: one open port still allows its challenge.
	r.Status = StatusWarn
	for _, fam := range families() {
		all := true
		n := 0
		for _, v := range fw.Verdict {
			if v.Family == fam {
				n++
				all = all && !v.Allowed
			}
		}
		if n > 0 && all {
			r.Status = StatusFail
		}
	}
	r.Summary = "blocked: " + strings.Join(dedupe(blocked), ", ")
	r.Fix = strings.Join(dedupe(fixes), "; ")
	return r
}

func firewallFix(v PortVerdict) string {
	p := strconv.Itoa(v.Port)
	switch v.Tool {
	case "ufw":
		return "sudo ufw allow " + p + "/tcp"
	case "firewalld":
		return "sudo firewall-cmd --permanent --add-port=" + p + "/tcp && sudo firewall-cmd --reload"
	case "nftables":
		return "add an accept rule for tcp dport " + p + " before " + v.Rule + " (nft insert rule ...), and make it persistent in /etc/nftables.conf"
	default:
		cmd := "iptables"
		if v.Family == "ipv6" {
			cmd = "ip6tables"
		}
		return "sudo " + cmd + " -I INPUT -p tcp --dport " + p + " -m conntrack --ctstate NEW -j ACCEPT (before " + v.Rule + "; save with netfilter-persistent save)"
	}
}
