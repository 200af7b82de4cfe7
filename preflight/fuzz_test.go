package preflight

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The firewall readers parse what ufw, firewall-cmd, iptables-save and
// nft -j print: outside input that varies by version and distribution. They
// must never panic, whatever the tools print.

var fuzzPorts = []int{80, 443}

func seedDir(f *testing.F, glob string) {
	paths, _ := filepath.Glob(filepath.Join("..", "testdata", "preflight", glob))
	for _, p := range paths {
		if data, err := os.ReadFile(p); err == nil {
			f.Add(string(data))
		}
	}
}

func FuzzFirewallOutputs(f *testing.F) {
	seedDir(f, "firewall/*")
	f.Add("Status: active\n\nTo Action From\n-- ------ ----\n80/tcp ALLOW IN Anywhere\n")
	f.Add("*filter\n:INPUT ACCEPT [0:0]\n-A INPUT -p tcp -m tcp --dport 80 -j DROP\nCOMMIT\n")
	f.Add(`{"nftables":[{"rule":{"family":"inet","table":"filter","chain":"input","expr":[{"match":{"op":"==","left":{"payload":{"protocol":"tcp","field":"dport"}},"right":80}},{"drop":null}]}}]}`)
	f.Add("public (active)\n  target: default\n  services: ssh dhcpv6-client\n  ports: 80/tcp\n")
	f.Fuzz(func(t *testing.T, out string) {
		_ = evalUFW(out, fuzzPorts)
		_ = evalFirewalld(out, fuzzPorts)
		_ = evalIptables(out, "ipv4", fuzzPorts)
		_, _ = evalNft(out, fuzzPorts)
	})
}

func FuzzNginxConfig(f *testing.F) {
	f.Add("http { server { listen 80 default_server; root /var/www/html; } }")
	f.Add("server { listen [::]:80; location / { return 301 https://$host$request_uri; } }")
	f.Add("stream { server { listen 443; } }")
	f.Fuzz(func(t *testing.T, conf string) {
		_ = parseNginxServers(conf)
	})
}

func FuzzProcNetTCP(f *testing.F) {
	seedDir(f, "proc-nginx/proc/net/tcp*")
	f.Add("  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n   0: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0\n")
	f.Fuzz(func(t *testing.T, table string) {
		lines, err := parseNetTCP(strings.NewReader(table))
		if err != nil {
			return
		}
		for _, l := range lines {
			if !l.local.IsValid() || l.local.Addr().Is4In6() {
				t.Errorf("%q: parsed %v", table, l.local)
			}
		}
	})
}
