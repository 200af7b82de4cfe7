package preflight

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// fakeNATPMP is a NAT-PMP server (RFC 6886) on loopback. grant maps a
// requested external port to the port it grants.
type fakeNATPMP struct {
	addr     string
	mu       sync.Mutex
	deleted  []int
	external [4]byte
	grant    map[int]int
}

func newFakeNATPMP(t *testing.T, external string, grant map[int]int) *fakeNATPMP {
	t.Helper()
	return serveFakeNATPMP(t, listenLoop(t, 4, "udp").(net.PacketConn), external, grant)
}

func serveFakeNATPMP(t *testing.T, pc net.PacketConn, external string, grant map[int]int) *fakeNATPMP {
	t.Helper()
	t.Cleanup(func() { _ = pc.Close() })
	f := &fakeNATPMP{addr: pc.LocalAddr().String(), external: netip.MustParseAddr(external).As4(), grant: grant}
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			switch {
			case n == 2 && buf[1] == 0:
				resp := make([]byte, 12)
				resp[1] = 128
				copy(resp[8:], f.external[:])
				_, _ = pc.WriteTo(resp, from)
			case n == 12 && buf[1] == 2:
				internal := int(binary.BigEndian.Uint16(buf[4:6]))
				ext := int(binary.BigEndian.Uint16(buf[6:8]))
				life := binary.BigEndian.Uint32(buf[8:12])
				resp := make([]byte, 16)
				resp[1] = 130
				binary.BigEndian.PutUint16(resp[8:10], uint16(internal))
				if life == 0 {
					f.mu.Lock()
					f.deleted = append(f.deleted, internal)
					f.mu.Unlock()
				} else {
					g := ext
					if x, ok := f.grant[ext]; ok {
						g = x
					}
					binary.BigEndian.PutUint16(resp[10:12], uint16(g))
					binary.BigEndian.PutUint32(resp[12:16], life)
				}
				_, _ = pc.WriteTo(resp, from)
			}
		}
	}()
	return f
}

const igdDescription = `<?xml version="1.0"?>
<root xmlns="urn:schemas-upnp-org:device-1-0">
<specVersion><major>1</major><minor>0</minor></specVersion>
<device>
<deviceType>urn:schemas-upnp-org:device:InternetGatewayDevice:1</deviceType>
<friendlyName>fake router</friendlyName><UDN>uuid:igd</UDN>
<deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANDevice:1</deviceType><UDN>uuid:wan</UDN>
<deviceList><device>
<deviceType>urn:schemas-upnp-org:device:WANConnectionDevice:1</deviceType><UDN>uuid:conn</UDN>
<serviceList><service>
<serviceType>urn:schemas-upnp-org:service:WANIPConnection:1</serviceType>
<serviceId>urn:upnp-org:serviceId:WANIPConn1</serviceId>
<controlURL>/ctl</controlURL><eventSubURL>/evt</eventSubURL><SCPDURL>/scpd.xml</SCPDURL>
</service></serviceList>
</device></deviceList>
</device></deviceList>
</device>
</root>`

// fakeIGD is a UPnP Internet Gateway Device on loopback: its description
// and the WANIPConnection:1 SOAP actions preflight uses.
type fakeIGD struct {
	url      *url.URL
	mu       sync.Mutex
	mappings map[string]string // external port -> internal client
	deleted  []string
}

func newFakeIGD(t *testing.T, external string) *fakeIGD {
	t.Helper()
	f := &fakeIGD{mappings: map[string]string{}}
	arg := func(body, name string) string {
		m := regexp.MustCompile("<" + name + ">([^<]*)</" + name + ">").FindStringSubmatch(body)
		if m == nil {
			return ""
		}
		return m[1]
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/desc.xml" {
			w.Header().Set("Content-Type", "text/xml")
			_, _ = io.WriteString(w, igdDescription)
			return
		}
		b, _ := io.ReadAll(r.Body)
		body := string(b)
		action := strings.Trim(r.Header.Get("SOAPAction"), `"`)
		_, action, _ = strings.Cut(action, "#")
		inner := ""
		f.mu.Lock()
		switch action {
		case "GetExternalIPAddress":
			inner = "<NewExternalIPAddress>" + external + "</NewExternalIPAddress>"
		case "AddPortMapping":
			f.mappings[arg(body, "NewExternalPort")] = arg(body, "NewInternalClient")
		case "GetSpecificPortMappingEntry":
			p := arg(body, "NewExternalPort")
			inner = fmt.Sprintf("<NewInternalPort>%s</NewInternalPort><NewInternalClient>%s</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>x</NewPortMappingDescription><NewLeaseDuration>300</NewLeaseDuration>", p, f.mappings[p])
		case "DeletePortMapping":
			f.deleted = append(f.deleted, arg(body, "NewExternalPort"))
		}
		f.mu.Unlock()
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		fmt.Fprintf(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:%sResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1">%s</u:%sResponse></s:Body></s:Envelope>`, action, inner, action)
	}))
	t.Cleanup(srv.Close)
	f.url, _ = url.Parse(srv.URL + "/desc.xml")
	return f
}

func (f *fakeIGD) discover(ctx context.Context) ([]*url.URL, error) { return []*url.URL{f.url}, nil }

// natState is a run state with a known public address and interfaces.
func natState(env Env, opts Options, public string, ifaceAddrs ...string) *state {
	var prefixes []netip.Prefix
	for _, a := range ifaceAddrs {
		prefixes = append(prefixes, netip.MustParsePrefix(a))
	}
	env.Interfaces = func() ([]Interface, error) {
		return []Interface{{Name: "eth0", Up: true, Addrs: prefixes}}, nil
	}
	st := newState(context.Background(), env, opts.withDefaults(), &Report{})
	var p PublicAddrs
	if public != "" {
		p.V4 = FamilyResult{Family: "ipv4", Addr: netip.MustParseAddr(public), Votes: 3, Answered: 3, Asked: 3}
	}
	st.public = func() PublicAddrs { return p }
	return st
}

func TestNATDirect(t *testing.T) {
	env := offlineEnv(t)
	st := natState(env, Options{}, pubA, pubA+"/24")
	r := st.checkNAT(context.Background(), env.withDefaults())
	if r.Status != StatusOK || st.report.NAT.Kind != NATDirect {
		t.Fatalf("%+v %+v", r, st.report.NAT)
	}
}

func TestNATCloudAWS(t *testing.T) {
	var asked []string
	var mu sync.Mutex
	md := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		asked = append(asked, r.Method+" "+r.URL.Path)
		mu.Unlock()
		switch {
		case r.Method == http.MethodPut && r.URL.Path == "/latest/api/token":
			_, _ = io.WriteString(w, "tok")
		case r.URL.Path == "/latest/meta-data/public-ipv4" && r.Header.Get("X-aws-ec2-metadata-token") == "tok":
			_, _ = io.WriteString(w, pubA)
		default:
			http.NotFound(w, r)
		}
	}))
	defer md.Close()
	env := offlineEnv(t)
	env.Root = testdata("cloud-aws")
	env.MetadataURL = md.URL
	st := natState(env, Options{}, pubA, "172.31.5.6/20")
	r := st.checkNAT(context.Background(), env.withDefaults())
	if st.report.NAT.Kind != NATCloud || st.report.NAT.Cloud != "aws" || st.report.NAT.CloudPublic.String() != pubA {
		t.Fatalf("%+v", st.report.NAT)
	}
	if r.Status != StatusWarn || !strings.Contains(r.Fix, "security group") {
		t.Errorf("%+v", r)
	}

	// Without a DMI match the metadata service is never asked.
	mu.Lock()
	asked = nil
	mu.Unlock()
	env.Root = testdata("empty-root")
	st = natState(env, Options{}, pubA, "172.31.5.6/20")
	st.checkNAT(context.Background(), env.withDefaults())
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 0 {
		t.Errorf("metadata asked without a cloud in DMI: %v", asked)
	}
}

func TestDetectCloudOracle(t *testing.T) {
	env := offlineEnv(t)
	env.Root = testdata("cloud-oracle")
	if c, _ := DetectCloud(env); c != "oracle" {
		t.Errorf("cloud = %q", c)
	}
}

func TestNATHomeViaNATPMPWithMapping(t *testing.T) {
	pmp := newFakeNATPMP(t, pubA, map[int]int{80: 8080})
	env := offlineEnv(t)
	env.NATPMP = pmp.addr
	st := natState(env, Options{MapPorts: true}, pubA, "192.168.1.20/24")
	r := st.checkNAT(context.Background(), env.withDefaults())
	nat := st.report.NAT
	if nat.Kind != NATHome || nat.Router.String() != pubA || nat.RouterSource != "nat-pmp" {
		t.Fatalf("%+v / %+v", nat, r)
	}
	if len(nat.Mappings) != 2 {
		t.Fatalf("mappings %+v", nat.Mappings)
	}
	for _, m := range nat.Mappings {
		if !m.Removed {
			t.Errorf("mapping not removed: %+v", m)
		}
		if m.Requested == 80 && (m.Granted != 8080 || m.Error == "") {
			t.Errorf("the other port granted must be reported: %+v", m)
		}
		if m.Requested == 443 && (m.Granted != 443 || m.Error != "") {
			t.Errorf("443: %+v", m)
		}
	}
	pmp.mu.Lock()
	defer pmp.mu.Unlock()
	if len(pmp.deleted) != 2 {
		t.Errorf("deleted %v", pmp.deleted)
	}
	if !strings.Contains(r.Fix, "forward them by hand") {
		t.Errorf("fix: %s", r.Fix)
	}
}

func TestNATCGNATViaUPnP(t *testing.T) {
	igd := newFakeIGD(t, "100.64.1.2")
	env := offlineEnv(t)
	env.DiscoverIGD = igd.discover
	st := natState(env, Options{MapPorts: true}, pubA, "192.168.1.20/24")
	r := st.checkNAT(context.Background(), env.withDefaults())
	nat := st.report.NAT
	if nat.Kind != NATCGNAT || r.Status != StatusFail || nat.RouterSource != "upnp" {
		t.Fatalf("%+v / %+v", nat, r)
	}
	for _, m := range nat.Mappings {
		if m.Granted != m.Requested || !m.Removed || m.Error != "" {
			t.Errorf("mapping %+v", m)
		}
	}
	igd.mu.Lock()
	defer igd.mu.Unlock()
	if igd.mappings["80"] != "192.168.1.20" || len(igd.deleted) != 2 {
		t.Errorf("igd saw %v, deleted %v", igd.mappings, igd.deleted)
	}
}

func TestNATDoubleAndUnknown(t *testing.T) {
	pmp := newFakeNATPMP(t, pubB, nil)
	env := offlineEnv(t)
	env.NATPMP = pmp.addr
	st := natState(env, Options{}, pubA, "192.168.1.20/24")
	if r := st.checkNAT(context.Background(), env.withDefaults()); st.report.NAT.Kind != NATDouble || r.Status != StatusFail {
		t.Fatalf("%+v %+v", st.report.NAT, r)
	}
	pmp = newFakeNATPMP(t, "192.168.0.2", nil)
	env.NATPMP = pmp.addr
	st = natState(env, Options{}, pubA, "192.168.1.20/24")
	if r := st.checkNAT(context.Background(), env.withDefaults()); st.report.NAT.Kind != NATDouble || !strings.Contains(r.Summary, "private") {
		t.Fatalf("%+v %+v", st.report.NAT, r)
	}
	// No router answers (NAT-PMP black-holed): plain NAT, a warning.
	env.NATPMP = blackholeUDP(t, 4)
	st = natState(env, Options{}, pubA, "192.168.1.20/24")
	if r := st.checkNAT(context.Background(), env.withDefaults()); st.report.NAT.Kind != NATBehind || r.Status != StatusWarn {
		t.Fatalf("%+v %+v", st.report.NAT, r)
	}
}

func TestNATPMPGatewayFromProcRoute(t *testing.T) {
	env := offlineEnv(t)
	env.NATPMP = "gateway"
	env.Root = testdata("proc-nginx")
	if a, err := natpmpAddr(env); err != nil || a != "192.168.1.1:5351" {
		t.Errorf("natpmpAddr = %q, %v", a, err)
	}
}

// An interface in 100.64/10 with no router answering: the machine is on
// the carrier's shared space itself (a mobile or some fibre uplinks).
func TestNATCGNATOnInterface(t *testing.T) {
	env := offlineEnv(t)
	st := natState(env, Options{}, pubA, "100.72.1.9/10")
	r := st.checkNAT(context.Background(), env.withDefaults())
	if st.report.NAT.Kind != NATCGNAT || r.Status != StatusFail || !strings.Contains(r.Summary, "100.72.1.9") {
		t.Fatalf("%+v %+v", st.report.NAT, r)
	}
}
