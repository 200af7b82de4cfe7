package preflight

// firewalld: the zone of the default route's interface.

import (
	"strings"
)

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
