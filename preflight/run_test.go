package preflight

import (
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/testkit"
)

// loopbackListen turns the self-fetch's wildcard listen into a loopback
// one, so tests accept nothing from outside.
func loopbackListen(ctx context.Context, network, addr string) (net.Listener, error) {
	_, port, _ := net.SplitHostPort(addr)
	host := "127.0.0.1"
	if network == "tcp6" {
		host = "::1"
	}
	var lc net.ListenConfig
	return lc.Listen(ctx, network, net.JoinHostPort(host, port))
}

// answeringEnv has every endpoint on a loopback fake that answers
// 127.0.0.1 / ::1 (so the self-fetch reaches our own listener).
func answeringEnv(t *testing.T) Env {
	env := offlineEnv(t)
	env.Root = testdata("proc-nginx")
	env.LookPath = lookPaths("nginx", "nft")
	env.Runner = replay{"nginx -T": "web/nginx-T-debian.txt", "nft -j list ruleset": "firewall/nft-inet-drop80.json"}
	env.Listen = loopbackListen
	env.Echo4 = []string{fakeEcho(t, 4, "127.0.0.1", 0), fakeEcho(t, 4, "127.0.0.1", 0), fakeEcho(t, 4, "127.0.0.1", 0)}
	env.DNS4 = []DNSSource{{Server: fakeDNS(t, 4, "127.0.0.1", 0), QName: "a.", QType: "A"}, {Server: fakeDNS(t, 4, "127.0.0.1", 0), QName: "t.", QType: "TXT"}}
	env.STUN4 = []string{fakeSTUN(t, 4, "127.0.0.1", 0)}
	env.Echo6 = []string{fakeEcho(t, 6, "::1", 0)}
	env.STUN6 = []string{fakeSTUN(t, 6, "::1", 0)}
	env.NATPMP = newFakeNATPMP(t, "127.0.0.1", nil).addr
	env.Interfaces = func() ([]Interface, error) {
		return []Interface{{Name: "lo", Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8"), netip.MustParsePrefix("::1/128")}}}, nil
	}
	return env
}

func TestRunWithAnsweringFakes(t *testing.T) {
	env := answeringEnv(t)
	var mu sync.Mutex
	var inside atomic.Int32
	started, finished := map[string]bool{}, map[string]bool{}
	progress := func(e Event) {
		if inside.Add(1) != 1 {
			t.Error("progress called concurrently")
		}
		time.Sleep(time.Millisecond) // widen the window a concurrent call would hit
		mu.Lock()
		if e.Kind == EventStart {
			started[e.ID] = true
		} else {
			if !started[e.ID] || e.Result == nil || e.Result.ID != e.ID {
				t.Errorf("finish before start or without result: %+v", e)
			}
			finished[e.ID] = true
		}
		mu.Unlock()
		inside.Add(-1)
	}
	start := time.Now()
	rep := Run(context.Background(), env, Options{LocalCA: true, SelfFetch: true, SelfFetchPort: testkit.FreePort(t)}, progress)
	if d := time.Since(start); d > time.Second {
		t.Errorf("took %v with answering fakes; the budget is 1s", d)
	}
	if len(rep.Results) != 10 || len(finished) != 10 {
		t.Fatalf("%d results, %d finished", len(rep.Results), len(finished))
	}
	want := map[string]Status{
		IDPublic4: StatusOK, IDPublic6: StatusOK, IDInterfaces: StatusOK,
		IDPorts: StatusWarn, IDPrivilege: StatusOK, IDWebServers: StatusOK,
		IDFirewall: StatusWarn, IDSelfFetch: StatusOK, IDAddress: StatusOK,
	}
	for _, r := range rep.Results {
		if w, ok := want[r.ID]; ok && r.Status != w {
			t.Errorf("%s: %s, want %s: %+v", r.ID, r.Status, w, r)
		}
	}
	if rep.Offline || rep.Verdict != StatusWarn {
		t.Errorf("offline %v verdict %s", rep.Offline, rep.Verdict)
	}
	if got := rep.Addrs; len(got) != 2 || got[0] != netip.MustParseAddr("127.0.0.1") {
		t.Errorf("addrs %v", got)
	}
	if sf, _ := rep.Result(IDSelfFetch); !sf.Advisory || !strings.Contains(strings.Join(sf.Evidence, "\n"), "the token came back") {
		t.Errorf("self-fetch %+v", sf)
	}
	if len(rep.WebServers) == 0 || rep.WebServers[0].WebRoot != "/var/www/html" {
		t.Errorf("web servers %+v", rep.WebServers)
	}
	// The JSON form carries the documented top-level fields.
	b, err := json.Marshal(rep)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for _, k := range []string{"schema", "verdict", "offline", "addrs", "public", "interfaces", "nat", "ports", "privilege", "web_servers", "firewall", "results"} {
		if _, ok := m[k]; !ok {
			t.Errorf("JSON lacks %q", k)
		}
	}
}

func TestRunOfflineIsBounded(t *testing.T) {
	env := offlineEnv(t)
	// Every endpoint black-holed: the slowest case.
	env.Echo4 = []string{"http://" + blackholeTCP(t, 4), "http://" + deadTCP(t, 4)}
	env.DNS4 = []DNSSource{{Server: blackholeUDP(t, 4), QName: "a.", QType: "A"}}
	env.STUN4 = []string{blackholeUDP(t, 4)}
	env.Echo6 = []string{"http://" + blackholeTCP(t, 6)}
	env.STUN6 = []string{blackholeUDP(t, 6)}
	env.NATPMP = blackholeUDP(t, 4)
	env.SourceTimeout = 0 // the default
	start := time.Now()
	rep := Run(context.Background(), env, Options{Timeout: 3 * time.Second}, nil)
	if d := time.Since(start); d > 3500*time.Millisecond {
		t.Errorf("took %v; the run is bounded by 3s", d)
	}
	if !rep.Offline || rep.Verdict != StatusFail {
		t.Errorf("offline %v verdict %s", rep.Offline, rep.Verdict)
	}
	if r, _ := rep.Result(IDPublic4); r.Status != StatusFail || !strings.Contains(r.Summary, "no internet") {
		t.Errorf("%+v", r)
	}
}

func TestRunOnlyAndCheckTimeout(t *testing.T) {
	env := offlineEnv(t)
	env.Echo4 = []string{"http://" + blackholeTCP(t, 4)}
	env.SourceTimeout = 5 * time.Second
	start := time.Now()
	rep := Run(context.Background(), env, Options{Only: []string{IDPublic4, IDPrivilege}, CheckTimeout: 300 * time.Millisecond}, nil)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v", d)
	}
	if len(rep.Results) != 2 || rep.Results[0].ID != IDPublic4 || rep.Results[1].ID != IDPrivilege {
		t.Fatalf("%+v", rep.Results)
	}
}

func TestChecksListAndStandaloneRun(t *testing.T) {
	env := offlineEnv(t)
	opts := Options{IPs: []netip.Addr{netip.MustParseAddr("8.8.4.4")}}.withDefaults()
	cs := newState(context.Background(), env.withDefaults(), opts, &Report{}).checks()
	want := []string{IDPublic4, IDPublic6, IDInterfaces, IDNAT, IDPorts, IDPrivilege, IDWebServers, IDFirewall, IDSelfFetch, IDAddress}
	if len(cs) != len(want) {
		t.Fatalf("%d checks", len(cs))
	}
	for i, c := range cs {
		if c.ID() != want[i] || c.Title() == "" {
			t.Errorf("check %d: %s %q", i, c.ID(), c.Title())
		}
	}
	if r := cs[len(cs)-1].Run(context.Background(), env); r.Status != StatusOK {
		t.Errorf("address check alone: %+v", r)
	}
}

// A token that does not come back is only a warning, and advisory: from
// inside a LAN it may mean no hairpin NAT.
func TestSelfFetchNotBackIsAdvisoryWarning(t *testing.T) {
	env := offlineEnv(t)
	env.Listen = loopbackListen // 127.0.0.1 only: 127.0.0.2 is refused
	st := &state{opts: Options{SelfFetch: true, SelfFetchPort: testkit.FreePort(t), IPs: []netip.Addr{netip.MustParseAddr("127.0.0.2")}}.withDefaults(), report: &Report{}}
	r := st.checkSelfFetch(context.Background(), env.withDefaults())
	if r.Status != StatusWarn || !r.Advisory || !strings.Contains(r.Summary, "hairpin") {
		t.Errorf("%+v", r)
	}
}

// TestRunOnlyLocalChecksAsksNoOne: `preflight --only ports` (any --only
// without the public-address checks) must not look up the public address:
// it once sent DNS and STUN queries anyway.
func TestRunOnlyLocalChecksAsksNoOne(t *testing.T) {
	var asked atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Add(1)
		io.WriteString(w, "192.0.2.1")
	}))
	t.Cleanup(srv.Close)
	env := offlineEnv(t)
	env.Echo4 = []string{srv.URL}
	rep := Run(context.Background(), env, Options{Only: []string{IDPorts, IDPrivilege, IDFirewall, IDWebServers}}, nil)
	if n := asked.Load(); n != 0 {
		t.Fatalf("the public-address source was asked %d times for local checks only", n)
	}
	if len(rep.Results) != 4 {
		t.Fatalf("%+v", rep.Results)
	}
	// The address checks do ask.
	Run(context.Background(), env, Options{Only: []string{IDPublic4}}, nil)
	if asked.Load() == 0 {
		t.Fatal("the public-address check did not ask the source: the test proves nothing")
	}
}

// TestAddressTitleNamesTheCA: the address check is titled after the CA
// that validates: Let's Encrypt only when it is Let's Encrypt.
func TestAddressTitleNamesTheCA(t *testing.T) {
	env := offlineEnv(t)
	for _, tc := range []struct {
		opts Options
		want string
	}{
		{Options{}, "The address Let's Encrypt will validate"},
		{Options{OwnCA: true}, "The address the CA will validate"},
		{Options{LocalCA: true}, "The address the CA will validate"},
	} {
		rep := Run(context.Background(), env, Options{IPs: []netip.Addr{netip.MustParseAddr("10.0.0.5")}, OwnCA: tc.opts.OwnCA, LocalCA: tc.opts.LocalCA, Only: []string{IDAddress}}, nil)
		if len(rep.Results) != 1 || rep.Results[0].Title != tc.want {
			t.Errorf("%+v: %+v, want the title %q", tc.opts, rep.Results, tc.want)
		}
	}
}
