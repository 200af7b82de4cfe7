package preflight

import (
	"context"
	"strconv"
	"strings"
	"testing"
)

// verdicts indexes a firewall's verdicts as "tool family port".
func verdicts(fw Firewall) map[string]PortVerdict {
	m := map[string]PortVerdict{}
	for _, v := range fw.Verdict {
		m[v.Tool+" "+v.Family+" "+strconv.Itoa(v.Port)] = v
	}
	return m
}

func TestFirewallNftInetDrop80(t *testing.T) {
	env := offlineEnv(t)
	env.LookPath = lookPaths("nft")
	env.Runner = replay{"nft -j list ruleset": "firewall/nft-inet-drop80.json"}
	fw := ReadFirewall(context.Background(), env, []int{80, 443})
	v := verdicts(fw)
	for _, fam := range []string{"ipv4", "ipv6"} {
		if x := v["nftables "+fam+" 80"]; x.Allowed || !strings.Contains(x.Rule, "tcp dport 80") || !strings.Contains(x.Rule, "drop") {
			t.Errorf("%s 80: %+v", fam, x)
		}
		// 443 is in the named set @web.
		if x := v["nftables "+fam+" 443"]; !x.Allowed {
			t.Errorf("%s 443: %+v", fam, x)
		}
	}
	// Policy drop decides a port no rule names.
	fw = ReadFirewall(context.Background(), env, []int{8080})
	if x := verdicts(fw)["nftables ipv4 8080"]; x.Allowed || !strings.Contains(x.Rule, "policy drop") {
		t.Errorf("8080: %+v", x)
	}
}

// Oracle Cloud's images: INPUT accepts 22 then REJECTs everything else.
func TestFirewallIptablesOracle(t *testing.T) {
	env := offlineEnv(t)
	env.LookPath = lookPaths("iptables-save", "ip6tables-save")
	env.Runner = replay{
		"iptables-save -t filter":  "firewall/iptables-save-oracle.txt",
		"ip6tables-save -t filter": "firewall/ip6tables-save-oracle.txt",
	}
	st := &state{opts: Options{}.withDefaults(), report: &Report{}}
	r := st.checkFirewall(context.Background(), env)
	if r.Status != StatusFail || !strings.Contains(r.Fix, "iptables -I INPUT -p tcp --dport 80") || !strings.Contains(r.Fix, "ip6tables") {
		t.Fatalf("result = %+v", r)
	}
	v := verdicts(st.report.Firewall)
	if x := v["iptables ipv4 443"]; x.Allowed || !strings.Contains(x.Rule, "-j REJECT") {
		t.Errorf("443: %+v", x)
	}
	fw := ReadFirewall(context.Background(), env, []int{22})
	if x := verdicts(fw)["iptables ipv4 22"]; !x.Allowed {
		t.Errorf("22: %+v", x)
	}
}

// The same Oracle rules through iptables-nft, as nft shows them: x_tables
// matches are opaque, the REJECT target is still a verdict.
func TestFirewallNftFromIptablesNft(t *testing.T) {
	env := offlineEnv(t)
	env.LookPath = lookPaths("nft")
	env.Runner = replay{"nft -j list ruleset": "firewall/nft-oracle-iptables-nft.json"}
	v := verdicts(ReadFirewall(context.Background(), env, []int{22, 80}))
	if x := v["nftables ipv4 80"]; x.Allowed || !strings.Contains(x.Rule, "REJECT") {
		t.Errorf("80: %+v", x)
	}
	if x := v["nftables ipv6 22"]; !x.Allowed {
		t.Errorf("22: %+v", x)
	}
}

func TestFirewallUFW(t *testing.T) {
	env := offlineEnv(t)
	env.Root = testdata("ufw-enabled")
	env.LookPath = lookPaths("ufw")
	env.Runner = replay{"ufw status verbose": "firewall/ufw-status-verbose-ssh-only.txt"}
	st := &state{opts: Options{}.withDefaults(), report: &Report{}}
	r := st.checkFirewall(context.Background(), env)
	v := verdicts(st.report.Firewall)
	if x := v["ufw ipv4 80"]; x.Allowed || !strings.Contains(x.Rule, "DENY IN") {
		t.Errorf("v4 80: %+v", x)
	}
	// 443 is allowed from one network only: the default (deny) decides.
	if x := v["ufw ipv4 443"]; x.Allowed || !strings.Contains(x.Rule, "Default: deny") {
		t.Errorf("v4 443: %+v", x)
	}
	if x := v["ufw ipv6 443"]; !x.Allowed || !strings.Contains(x.Rule, "Nginx Full") {
		t.Errorf("v6 443: %+v", x)
	}
	if r.Status != StatusFail || !strings.Contains(r.Fix, "sudo ufw allow 80/tcp") {
		t.Errorf("result = %+v", r)
	}

	env.Runner = replay{"ufw status verbose": "firewall/ufw-status-inactive.txt"}
	if fw := ReadFirewall(context.Background(), env, []int{80}); len(fw.Tools) != 0 {
		t.Errorf("inactive ufw: %+v", fw)
	}
	// ufw disabled in ufw.conf is not even asked.
	env.Root = testdata("empty-root")
	env.Runner = replay{}
	if fw := ReadFirewall(context.Background(), env, []int{80}); len(fw.Tools) != 0 || len(fw.Errors) != 0 {
		t.Errorf("disabled ufw: %+v", fw)
	}
}

func TestFirewallFirewalld(t *testing.T) {
	env := offlineEnv(t)
	env.LookPath = lookPaths("firewall-cmd")
	env.Runner = replay{
		"firewall-cmd --state":    "firewall/firewall-cmd-state.txt",
		"firewall-cmd --list-all": "firewall/firewall-cmd-list-all-public.txt",
	}
	v := verdicts(ReadFirewall(context.Background(), env, []int{80, 443, 8080}))
	if x := v["firewalld ipv4 80"]; x.Allowed {
		t.Errorf("80: %+v", x)
	}
	if x := v["firewalld ipv6 443"]; !x.Allowed || x.Rule != "services: https" {
		t.Errorf("443: %+v", x)
	}
	if x := v["firewalld ipv4 8080"]; !x.Allowed || !strings.Contains(x.Rule, "8000-8100/tcp") {
		t.Errorf("8080: %+v", x)
	}
}

func TestFirewallNone(t *testing.T) {
	st := &state{opts: Options{}.withDefaults(), report: &Report{}}
	r := st.checkFirewall(context.Background(), offlineEnv(t))
	if r.Status != StatusOK || !strings.Contains(r.Summary, "no active host firewall") {
		t.Errorf("result = %+v", r)
	}
	// nft present but not readable (not root): a warning, not "open".
	env := offlineEnv(t)
	env.LookPath = lookPaths("nft")
	env.Runner = replay{"nft -j list ruleset": "!exit status 1: Operation not permitted"}
	r = st.checkFirewall(context.Background(), env)
	if r.Status != StatusWarn {
		t.Errorf("unreadable: %+v", r)
	}
}
