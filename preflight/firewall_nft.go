package preflight

// nftables: `nft -j list ruleset`, the input hook's chains in priority order.

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

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
