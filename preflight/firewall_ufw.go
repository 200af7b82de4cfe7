package preflight

// ufw: `ufw status verbose`, read as ufw applies it.

import (
	"os"
	"strings"
)

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
