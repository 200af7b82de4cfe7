package preflight

// iptables and ip6tables: `-S` rules, walked as the kernel does.

import (
	"strings"
)

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
