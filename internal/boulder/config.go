package boulder

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// ratelimitDefaults are Boulder's test defaults (test/config-next/
// ratelimit-defaults.yml) with two changes: an address may be certified
// 50 times (Boulder's test default is 2, and the tests certify a few
// addresses again and again), and an identical set of identifiers 3 times
// in 3 hours, so a test meets the 429 on its fourth order.
const ratelimitDefaults = `NewRegistrationsPerIPAddress:
  count: 10000
  burst: 10000
  period: 168h
NewRegistrationsPerIPv6Range:
  count: 99999
  burst: 99999
  period: 168h
CertificatesPerDomain:
  count: 50
  burst: 50
  period: 2160h
FailedAuthorizationsPerDomainPerAccount:
  count: 30
  burst: 30
  period: 5m
FailedAuthorizationsForPausingPerDomainPerAccount:
  count: 1
  burst: 3600
  period: 24h
NewOrdersPerAccount:
  count: 1500
  burst: 1500
  period: 3h
CertificatesPerFQDNSet:
  count: 3
  burst: 3
  period: 3h
`

// SRV records and names that consul answers in Boulder's compose set-up,
// for the services Start runs (test/consul/config.hcl has the full set).
var srvRecords = []struct {
	service, target string
	port            int
}{
	{"sa", "sa", 9395},
	{"ra", "ra", 9394},
	{"ra-sct-provider", "ra", 9594},
	{"ca", "ca", 9393},
	{"va", "va", 9392},
	{"publisher", "publisher", 9391},
	{"nonce-taro", "nonce", 9301},
	{"nonce-zinc", "nonce", 9401},
	{"redisratelimits", "redis1", 4218},
}

// layout writes the run folder: Boulder's test folder with our configs, the
// database copy, dnsmasq's and Redis's configs.
func (s *Stack) layout(in Install) error {
	test := filepath.Join(s.Dir, "test")
	if out, err := exec.Command("cp", "-r", filepath.Join(in.src(), "test"), test).CombinedOutput(); err != nil {
		return fmt.Errorf("copy test folder: %v: %s", err, out)
	}
	for _, d := range []string{"ipki", "webpki"} {
		_ = os.RemoveAll(filepath.Join(test, "certs", d))
		if err := os.Symlink(filepath.Join(in.certs(), d), filepath.Join(test, "certs", d)); err != nil {
			return err
		}
	}
	if out, err := exec.Command("cp", "-a", in.dbTemplate(), filepath.Join(s.Dir, "mysql")).CombinedOutput(); err != nil {
		return fmt.Errorf("copy database: %v: %s", err, out)
	}

	db := svcAddr + ":3306"
	secrets := map[string]string{
		"sa_dburl":              "sa@tcp(" + db + ")/boulder_sa_next?readTimeout=14s&writeTimeout=14s&timeout=1s",
		"sa_ro_dburl":           "sa_ro@tcp(" + db + ")/boulder_sa_next?readTimeout=14s&writeTimeout=14s&timeout=1s",
		"incidents_dburl":       "incidents_sa@tcp(" + db + ")/incidents_sa?readTimeout=14s&timeout=1s",
		"incidents_admin_dburl": "incidents_sa_admin@tcp(" + db + ")/incidents_sa?readTimeout=14s&timeout=1s",
	}
	for f, v := range secrets {
		if err := os.WriteFile(filepath.Join(test, "secrets", f), []byte(v), 0o644); err != nil {
			return err
		}
	}
	cn := filepath.Join(test, "config-next")
	// No pkimetal here: an empty lint configuration (zlint's own lints
	// still run).
	if err := os.WriteFile(filepath.Join(cn, "zlint.toml"), nil, 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(cn, "ratelimit-defaults.yml"), []byte(ratelimitDefaults), 0o644); err != nil {
		return err
	}
	edits := map[string]func(map[string]any){
		"wfe2.json": func(c map[string]any) {
			w := obj(c, "wfe")
			delete(w, "emailExporter")
			delete(obj(w, "certProfiles"), "mtcshortlived")
		},
		"ra.json": func(c map[string]any) {
			r := obj(c, "ra")
			delete(r, "profileToMTCA")
			delete(obj(r, "validationProfiles"), "mtcshortlived")
		},
		"va.json": func(c map[string]any) {
			// IP identifiers need no DNS; the VA is given a static
			// resolver instead of consul's DoH service.
			v := obj(c, "va")
			delete(v, "dnsProvider")
			v["dnsStaticResolvers"] = []any{svcAddr + ":8053"}
		},
		"ca.json": nil, "sa.json": nil, "publisher.json": nil, "nonce-a.json": nil, "nonce-b.json": nil,
		"remoteva-a.json": nil, "remoteva-b.json": nil, "remoteva-c.json": nil,
	}
	for f, edit := range edits {
		if err := rewriteJSON(filepath.Join(cn, f), func(c map[string]any) {
			for _, v := range c {
				if m, ok := v.(map[string]any); ok {
					delete(m, "openTelemetry")
				}
			}
			delete(c, "openTelemetry")
			delete(c, "openTelemetryHttpConfig")
			for _, v := range c {
				if m, ok := v.(map[string]any); ok {
					if sl, ok := m["syslog"].(map[string]any); ok {
						sl["sysloglevel"], sl["syslogLevel"] = -1, -1
					}
				}
			}
			if sl, ok := c["syslog"].(map[string]any); ok {
				sl["sysloglevel"] = -1
			}
			if edit != nil {
				edit(c)
			}
		}); err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
	}
	if err := rewriteJSON(filepath.Join(test, "ct-test-srv", "ct-test-srv.json"), func(c map[string]any) {
		for _, p := range c["Personalities"].([]any) {
			p.(map[string]any)["FlakinessRate"] = 0
		}
	}); err != nil {
		return err
	}

	var dns strings.Builder
	for _, h := range []struct{ name, addr string }{
		{"consul.service.consul", dnsAddr}, {"boulder.service.consul", svcAddr}, {"rva1.service.consul", svcAddr},
		{"sa.service.consul", svcAddr}, {"ra.service.consul", svcAddr}, {"ca.service.consul", svcAddr},
		{"va.service.consul", svcAddr}, {"publisher.service.consul", svcAddr}, {"nonce.service.consul", svcAddr},
		{"redis1.service.consul", redisAddr},
	} {
		fmt.Fprintf(&dns, "host-record=%s,%s\n", h.name, h.addr)
	}
	for _, r := range srvRecords {
		fmt.Fprintf(&dns, "srv-host=_%s._tcp.service.consul,%s.service.consul,%d\n", r.service, r.target, r.port)
	}
	if err := os.WriteFile(filepath.Join(s.Dir, "dnsmasq.conf"), []byte(dns.String()), 0o644); err != nil {
		return err
	}

	// Boulder's test/redis-ratelimits.config, with our paths and address.
	src, err := os.ReadFile(filepath.Join(test, "redis-ratelimits.config"))
	if err != nil {
		return err
	}
	redis := strings.ReplaceAll(string(src), "/test/certs/", filepath.Join(test, "certs")+"/")
	redisDir := filepath.Join(s.Dir, "redis")
	if err := os.MkdirAll(redisDir, 0o755); err != nil {
		return err
	}
	redis += "\nbind " + redisAddr + "\ndir " + redisDir + "\nsave \"\"\ndaemonize no\n"
	return os.WriteFile(filepath.Join(s.Dir, "redis.conf"), []byte(redis), 0o644)
}

func obj(m map[string]any, key string) map[string]any {
	if v, ok := m[key].(map[string]any); ok {
		return v
	}
	v := map[string]any{}
	m[key] = v
	return v
}

func rewriteJSON(path string, edit func(map[string]any)) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var c map[string]any
	if err := json.Unmarshal(b, &c); err != nil {
		return err
	}
	edit(c)
	out, err := json.MarshalIndent(c, "", "\t")
	if err != nil {
		return err
	}
	return os.WriteFile(path, out, 0o644)
}
