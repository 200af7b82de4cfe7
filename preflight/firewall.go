package preflight

import (
	"context"
	"encoding/json"
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

func ufwEnabled(env Env) bool {
	b, err := os.ReadFile(env.path("etc/ufw/ufw.conf"))
	if err != nil {
		return false
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(line), "ENABLED="); ok {
			return strings.EqualFold(strings.Trim(v, `"' `), "yes")
		}
	}
	return false
}

func families() []string { return []string{"ipv4", "ipv6"} }

// evalUFW reads `ufw status verbose`: the first rule matching the port from
// Anywhere decides (ufw's rule order), else the default incoming policy.
func evalUFW(out string, ports []int) []PortVerdict {
	if !strings.Contains(out, "Status: active") {
		return nil
	}
	def := "deny"
	var rules [][]string
	var lines []string
	inRules := false
	for _, line := range strings.Split(out, "\n") {
		t := strings.TrimSpace(line)
		if v, ok := strings.CutPrefix(t, "Default:"); ok {
			for _, part := range strings.Split(v, ",") {
				f := strings.Fields(part)
				if len(f) >= 2 && f[1] == "(incoming)" {
					def = f[0]
				}
			}
		}
		if strings.HasPrefix(t, "--") {
			inRules = true
			continue
		}
		if inRules && t != "" {
			// Columns are separated by two or more spaces.
			var cols []string
			for _, c := range strings.Split(t, "  ") {
				if c = strings.TrimSpace(c); c != "" {
					cols = append(cols, c)
				}
			}
			if len(cols) >= 3 {
				rules = append(rules, cols)
				lines = append(lines, t)
			}
		}
	}
	var v []PortVerdict
	for _, fam := range families() {
		for _, p := range ports {
			pv := PortVerdict{Tool: "ufw", Family: fam, Port: p, Allowed: def == "allow", Rule: "Default: " + def + " (incoming)"}
			for i, c := range rules {
				to, action, from := c[0], strings.ToUpper(c[1]), c[2]
				v6 := strings.Contains(to, "(v6)") || strings.Contains(from, "(v6)")
				if (fam == "ipv6") != v6 {
					continue
				}
				if !strings.HasPrefix(from, "Anywhere") || strings.Contains(action, "OUT") || strings.Contains(action, "FWD") {
					continue
				}
				if !ufwPortMatch(strings.TrimSpace(strings.Replace(to, "(v6)", "", 1)), p) {
					continue
				}
				pv.Allowed = strings.HasPrefix(action, "ALLOW") || strings.HasPrefix(action, "LIMIT")
				pv.Rule = lines[i]
				break
			}
			v = append(v, pv)
		}
	}
	return v
}

// ufwAppPorts are the ports of the application profiles Debian's web
// server packages install (/etc/ufw/applications.d).
var ufwAppPorts = map[string][]int{
	"Nginx HTTP": {80}, "Nginx HTTPS": {443}, "Nginx Full": {80, 443},
	"Apache": {80}, "Apache Secure": {443}, "Apache Full": {80, 443},
	"WWW": {80}, "WWW Secure": {443}, "WWW Full": {80, 443},
}

func ufwPortMatch(to string, port int) bool {
	if to == "Anywhere" {
		return true
	}
	if ps, ok := ufwAppPorts[to]; ok {
		for _, x := range ps {
			if x == port {
				return true
			}
		}
		return false
	}
	spec, proto, _ := strings.Cut(to, "/")
	if proto != "" && proto != "tcp" {
		return false
	}
	if strings.Contains(spec, " ") { // an address: "10.0.0.1 80/tcp"
		f := strings.Fields(spec)
		spec = f[len(f)-1]
	}
	return portListMatch(spec, port, ",", ":")
}

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

// evalFirewalld reads `firewall-cmd --list-all` for the default zone: a
// port is open when the zone's target accepts, or it lists the port or the
// http/https service.
func evalFirewalld(out string, ports []int) []PortVerdict {
	fields := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		k, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok {
			fields[k] = strings.TrimSpace(v)
		}
	}
	services := strings.Fields(fields["services"])
	openPorts := strings.Fields(fields["ports"])
	var v []PortVerdict
	for _, fam := range families() {
		for _, p := range ports {
			pv := PortVerdict{Tool: "firewalld", Family: fam, Port: p, Rule: "zone target " + orDefault(fields["target"], "default") + ": not in services or ports"}
			if t := fields["target"]; t == "ACCEPT" {
				pv.Allowed, pv.Rule = true, "target: ACCEPT"
			}
			for _, s := range services {
				if (s == "http" && p == 80) || (s == "https" && p == 443) {
					pv.Allowed, pv.Rule = true, "services: "+s
				}
			}
			for _, op := range openPorts {
				spec, proto, _ := strings.Cut(op, "/")
				if proto == "tcp" && portListMatch(spec, p, ",", "-") {
					pv.Allowed, pv.Rule = true, "ports: "+op
				}
			}
			v = append(v, pv)
		}
	}
	return v
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

// evalIptables reads iptables-save (filter table): the INPUT chain, its
// jumps, and its policy. Oracle Cloud's images end INPUT with
// "-A INPUT -j REJECT --reject-with icmp-host-prohibited" after port 22
// (docs/letsencrypt.md), which this finds as the deciding rule.
func evalIptables(out, fam string, ports []int) []PortVerdict {
	chains := map[string]*fwChain{}
	table := ""
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		switch {
		case strings.HasPrefix(line, "*"):
			table = line[1:]
		case table != "filter":
		case strings.HasPrefix(line, ":"):
			f := strings.Fields(line[1:])
			if len(f) >= 2 {
				pol := strings.ToLower(f[1])
				if pol == "-" {
					pol = ""
				}
				chains[f[0]] = &fwChain{policy: pol}
			}
		case strings.HasPrefix(line, "-A "):
			f := strings.Fields(line)
			if len(f) < 2 {
				continue
			}
			c := chains[f[1]]
			if c == nil {
				c = &fwChain{}
				chains[f[1]] = c
			}
			c.rules = append(c.rules, parseIptablesRule(line, f[2:]))
		}
	}
	input := chains["INPUT"]
	if input == nil {
		return nil
	}
	var v []PortVerdict
	for _, p := range ports {
		verdict, rule := evalChain(chains, "INPUT", p, 0)
		if verdict == "" {
			verdict, rule = input.policy, ":INPUT "+strings.ToUpper(input.policy)+" (chain policy)"
		}
		v = append(v, PortVerdict{Tool: "iptables", Family: fam, Port: p, Allowed: verdict == "accept" || verdict == "", Rule: rule})
	}
	return v
}

func parseIptablesRule(text string, f []string) fwRule {
	r := fwRule{text: text}
	proto, dports, neverNew := "", "", false
	conditional := false
	for i := 0; i < len(f); i++ {
		arg := func() string {
			if i+1 < len(f) {
				i++
				return f[i]
			}
			return ""
		}
		switch f[i] {
		case "!":
			// A negated match: too varied to judge; assume it does not
			// describe "anyone on the internet".
			conditional = true
		case "-p", "--protocol":
			proto = arg()
		case "--dport", "--destination-port", "--dports", "--destination-ports":
			dports = arg()
		case "-s", "--source":
			if s := arg(); s != "0.0.0.0/0" && s != "::/0" {
				conditional = true
			}
		case "-i", "--in-interface":
			if arg() == "lo" {
				neverNew = true
			}
		case "--state", "--ctstate":
			if !strings.Contains(arg(), "NEW") {
				neverNew = true
			}
		case "-j":
			t := arg()
			switch t {
			case "ACCEPT", "DROP", "REJECT", "RETURN":
				r.verdict = strings.ToLower(t)
			default:
				r.verdict, r.target = "jump", t
			}
		case "-g", "--goto":
			r.verdict, r.target = "goto", arg()
		case "--match-set", "--src-range", "--limit", "--hashlimit", "--rcheck", "--update", "--recent":
			conditional = true
		}
	}
	r.applies = func(port int) bool {
		if neverNew || conditional {
			return false
		}
		if proto != "" && proto != "tcp" && proto != "6" && proto != "all" {
			return false
		}
		if dports != "" && !portListMatch(dports, port, ",", ":") {
			return false
		}
		return true
	}
	return r
}

// evalNft reads `nft -j list ruleset`: every base chain on the input hook
// of an ip, ip6 or inet table sees the packet in turn, and a drop or
// reject in any of them is final.
func evalNft(out string, ports []int) ([]PortVerdict, error) {
	var doc struct {
		Nftables []map[string]json.RawMessage `json:"nftables"`
	}
	if err := json.Unmarshal([]byte(out), &doc); err != nil {
		return nil, err
	}
	type chainKey struct{ family, table, name string }
	type baseChain struct {
		key  chainKey
		prio int
	}
	chains := map[chainKey]*fwChain{}
	sets := map[chainKey][]json.RawMessage{}
	var bases []baseChain
	var rules []nftRule
	for _, obj := range doc.Nftables {
		if raw, ok := obj["chain"]; ok {
			var c struct {
				Family, Table, Name, Hook, Policy, Type string
				Prio                                    int
			}
			if json.Unmarshal(raw, &c) != nil {
				continue
			}
			k := chainKey{c.Family, c.Table, c.Name}
			chains[k] = &fwChain{policy: c.Policy}
			if c.Hook == "input" && c.Type == "filter" && (c.Family == "ip" || c.Family == "ip6" || c.Family == "inet") {
				bases = append(bases, baseChain{k, c.Prio})
			}
		}
		if raw, ok := obj["set"]; ok {
			var s struct {
				Family, Table, Name string
				Elem                []json.RawMessage
			}
			if json.Unmarshal(raw, &s) == nil {
				sets[chainKey{s.Family, s.Table, s.Name}] = s.Elem
			}
		}
		if raw, ok := obj["rule"]; ok {
			var r nftRule
			if json.Unmarshal(raw, &r) == nil {
				rules = append(rules, r)
			}
		}
	}
	for _, r := range rules {
		k := chainKey{r.Family, r.Table, r.Chain}
		c := chains[k]
		if c == nil {
			continue
		}
		lookup := func(name string) []json.RawMessage { return sets[chainKey{r.Family, r.Table, name}] }
		c.rules = append(c.rules, r.compile(lookup))
	}
	var v []PortVerdict
	for _, fam := range families() {
		for _, p := range ports {
			pv := PortVerdict{Tool: "nftables", Family: fam, Port: p, Allowed: true, Rule: "no input chain"}
			decided := false
			for _, b := range bases {
				if (b.key.family == "ip" && fam != "ipv4") || (b.key.family == "ip6" && fam != "ipv6") {
					continue
				}
				// Each table's chains are a namespace of their own.
				sub := map[string]*fwChain{}
				for k, c := range chains {
					if k.family == b.key.family && k.table == b.key.table {
						sub[k.name] = c
					}
				}
				verdict, rule := evalChain(sub, b.key.name, p, 0)
				where := fmt.Sprintf("table %s %s chain %s", b.key.family, b.key.table, b.key.name)
				if verdict == "" {
					verdict = orDefault(chains[b.key].policy, "accept")
					rule = "policy " + verdict
				}
				if verdict == "accept" {
					if !decided {
						pv.Rule = where + ": " + rule
					}
					continue
				}
				pv.Allowed, pv.Rule, decided = false, where+": "+rule, true
				break
			}
			v = append(v, pv)
		}
	}
	return v, nil
}

type nftRule struct {
	Family, Table, Chain string
	Handle               int
	Expr                 []map[string]json.RawMessage
}

// compile reduces an nft rule to a fwRule: it understands the matches a
// firewall for a server uses (tcp dport, l4proto, ct state, iif/iifname,
// saddr) and treats anything else as "not about the whole internet".
func (r nftRule) compile(set func(string) []json.RawMessage) fwRule {
	out := fwRule{}
	var text []string
	conditional, neverNew, otherProto, xtState := false, false, false, false
	var portMatch func(int) bool
	for _, e := range r.Expr {
		for k, raw := range e {
			switch k {
			case "match":
				var m struct {
					Op    string
					Left  map[string]json.RawMessage
					Right json.RawMessage
				}
				if json.Unmarshal(raw, &m) != nil {
					conditional = true
					continue
				}
				text = append(text, nftMatchText(m.Left, m.Op, m.Right))
				neg := m.Op == "!="
				if p, ok := m.Left["payload"]; ok {
					var pl struct{ Protocol, Field string }
					_ = json.Unmarshal(p, &pl)
					switch {
					case pl.Protocol == "tcp" && pl.Field == "dport":
						vals := nftValues(m.Right, set)
						pm := func(port int) bool { return nftValueMatch(vals, port) }
						if neg {
							portMatch = func(port int) bool { return !pm(port) }
						} else {
							portMatch = pm
						}
					case pl.Protocol == "udp" || pl.Protocol == "icmp" || pl.Protocol == "icmpv6" || pl.Protocol == "sctp":
						otherProto = true
					case pl.Field == "saddr":
						conditional = true
					case pl.Protocol == "tcp":
						// tcp sport, flags...: ignore the detail, it is tcp.
					default:
						conditional = true
					}
					continue
				}
				if mt, ok := m.Left["meta"]; ok {
					var me struct{ Key string }
					_ = json.Unmarshal(mt, &me)
					vals := nftStrings(m.Right, set)
					switch me.Key {
					case "l4proto", "protocol", "nfproto":
						if me.Key == "l4proto" && !contains(vals, "tcp") != neg {
							otherProto = true
						}
					case "iif", "iifname":
						if contains(vals, "lo") && !neg {
							neverNew = true
						} else if !neg {
							conditional = true // a given interface only
						}
					default:
						conditional = true
					}
					continue
				}
				if ct, ok := m.Left["ct"]; ok {
					var c struct{ Key string }
					_ = json.Unmarshal(ct, &c)
					vals := nftStrings(m.Right, set)
					if c.Key == "state" {
						if contains(vals, "new") == neg {
							neverNew = true
						}
						continue
					}
					conditional = true
					continue
				}
				conditional = true
			case "accept", "drop", "return":
				out.verdict = k
				text = append(text, k)
			case "reject":
				out.verdict = "reject"
				text = append(text, "reject")
			case "jump", "goto":
				var t struct{ Target string }
				_ = json.Unmarshal(raw, &t)
				out.verdict, out.target = k, t.Target
				text = append(text, k+" "+t.Target)
			case "xt":
				// iptables-nft rules carry x_tables matches and targets
				// nft cannot show: a match is opaque (a -m state, a
				// -m recent...), a REJECT/DROP target is a verdict.
				var xt struct{ Type, Name string }
				_ = json.Unmarshal(raw, &xt)
				switch {
				case xt.Type == "target" && (xt.Name == "REJECT" || xt.Name == "DROP"):
					out.verdict = strings.ToLower(xt.Name)
					text = append(text, "xt target "+xt.Name)
				case xt.Type == "target" && xt.Name == "ACCEPT":
					out.verdict = "accept"
					text = append(text, "xt target ACCEPT")
				case xt.Name == "conntrack" || xt.Name == "state":
					// Which states is not shown. Server rule sets use
					// "--state NEW --dport N -j ACCEPT" and a portless
					// "--state RELATED,ESTABLISHED -j ACCEPT": judge by
					// whether the rule names a port (below).
					xtState = true
					text = append(text, "xt match "+xt.Name)
				case xt.Name == "comment":
				default:
					conditional = true
					text = append(text, "xt "+xt.Type+" "+xt.Name)
				}
			case "counter", "log", "comment", "limit":
				if k == "limit" {
					conditional = true
				}
			}
		}
	}
	if xtState && portMatch == nil {
		neverNew = true
	}
	out.text = fmt.Sprintf("%s (handle %d)", strings.Join(text, " "), r.Handle)
	out.applies = func(port int) bool {
		if neverNew || conditional || otherProto {
			return false
		}
		if portMatch != nil && !portMatch(port) {
			return false
		}
		return true
	}
	return out
}

func nftMatchText(left map[string]json.RawMessage, op string, right json.RawMessage) string {
	l := ""
	for k, v := range left {
		var m map[string]any
		if json.Unmarshal(v, &m) == nil {
			if p, ok := m["protocol"]; ok {
				l = fmt.Sprintf("%v %v", p, m["field"])
			} else if key, ok := m["key"]; ok {
				l = fmt.Sprintf("%s %v", k, key)
			}
		}
	}
	o := ""
	if op != "==" && op != "in" {
		o = op + " "
	}
	return l + " " + o + strings.ReplaceAll(string(right), `"`, "")
}

// nftValues reads a match's right side as port values: a number, a
// {"set": [...]} (numbers and {"range": [lo, hi]}) or "@name".
func nftValues(raw json.RawMessage, set func(string) []json.RawMessage) [][2]int {
	var out [][2]int
	var n int
	if json.Unmarshal(raw, &n) == nil {
		return [][2]int{{n, n}}
	}
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if name, ok := strings.CutPrefix(s, "@"); ok {
			for _, e := range set(name) {
				out = append(out, nftValues(e, set)...)
			}
			return out
		}
		if n, err := strconv.Atoi(s); err == nil {
			return [][2]int{{n, n}}
		}
		if s == "http" {
			return [][2]int{{80, 80}}
		}
		if s == "https" {
			return [][2]int{{443, 443}}
		}
		return nil
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) == nil {
		if r, ok := obj["range"]; ok {
			var lh []int
			if json.Unmarshal(r, &lh) == nil && len(lh) == 2 {
				return [][2]int{{lh[0], lh[1]}}
			}
		}
		if st, ok := obj["set"]; ok {
			var elems []json.RawMessage
			if json.Unmarshal(st, &elems) == nil {
				for _, e := range elems {
					out = append(out, nftValues(e, set)...)
				}
			}
		}
		if el, ok := obj["elem"]; ok {
			var inner struct{ Val json.RawMessage }
			if json.Unmarshal(el, &inner) == nil {
				return nftValues(inner.Val, set)
			}
		}
	}
	return out
}

func nftValueMatch(vals [][2]int, port int) bool {
	for _, v := range vals {
		if port >= v[0] && port <= v[1] {
			return true
		}
	}
	return false
}

// nftStrings reads a match's right side as words ("tcp", ["established",
// "related"], {"set": [...]}).
func nftStrings(raw json.RawMessage, set func(string) []json.RawMessage) []string {
	var s string
	if json.Unmarshal(raw, &s) == nil {
		if name, ok := strings.CutPrefix(s, "@"); ok {
			var out []string
			for _, e := range set(name) {
				out = append(out, nftStrings(e, set)...)
			}
			return out
		}
		return []string{s}
	}
	var list []json.RawMessage
	if json.Unmarshal(raw, &list) == nil {
		var out []string
		for _, e := range list {
			out = append(out, nftStrings(e, set)...)
		}
		return out
	}
	var obj map[string]json.RawMessage
	if json.Unmarshal(raw, &obj) == nil {
		if st, ok := obj["set"]; ok {
			return nftStrings(st, set)
		}
	}
	return nil
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
