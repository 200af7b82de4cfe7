package preflight

import (
	"context"
	"net/netip"
	"strings"
	"testing"
	"time"
)

// The addresses the fakes answer with are only text in the answers: no
// traffic goes to them.
const (
	pubA = "8.8.4.4"
	pubB = "9.9.9.9"
	pub6 = "2a00:1450:4001::1"
)

func TestDetectPublicAgreeing(t *testing.T) {
	env := offlineEnv(t)
	env.Echo4 = []string{fakeEcho(t, 4, pubA+"\n", 0), fakeEcho(t, 4, "fl=1\nip="+pubA+"\nts=1\n", 0), fakeEcho(t, 4, pubA, 0)}
	env.DNS4 = []DNSSource{
		{Name: "opendns", Server: fakeDNS(t, 4, pubA, 0), QName: "myip.opendns.com.", QType: "A"},
		{Name: "cloudflare", Server: fakeDNS(t, 4, pubA, 0), QName: "whoami.cloudflare.", QType: "TXT", QClass: "CH"},
	}
	env.STUN4 = []string{fakeSTUN(t, 4, pubA, 0)}
	env.Echo6 = []string{fakeEcho(t, 6, pub6, 0)}
	env.DNS6 = []DNSSource{{Server: fakeDNS(t, 6, pub6, 0), QName: "myip.opendns.com.", QType: "AAAA"}}
	env.STUN6 = []string{fakeSTUN(t, 6, pub6, 0)}

	p := DetectPublic(context.Background(), env)
	if p.V4.Addr != netip.MustParseAddr(pubA) || p.V4.Votes != 6 || p.V4.Answered != 6 || p.V4.Disagree {
		t.Fatalf("v4 = %+v", p.V4)
	}
	if p.V6.Addr != netip.MustParseAddr(pub6) || p.V6.Votes != 3 || p.V6.Disagree {
		t.Fatalf("v6 = %+v", p.V6)
	}
	kinds := map[string]int{}
	for _, s := range p.V4.Sources {
		if s.Error != "" {
			t.Errorf("source %s: %s", s.Source, s.Error)
		}
		kinds[s.Kind]++
	}
	if kinds["https"] != 3 || kinds["dns"] != 2 || kinds["stun"] != 1 {
		t.Errorf("kinds = %v", kinds)
	}
	if got := p.Addrs(); len(got) != 2 || got[0].String() != pubA {
		t.Errorf("Addrs = %v", got)
	}
}

func TestDetectPublicDisagreeing(t *testing.T) {
	env := offlineEnv(t)
	env.Echo4 = []string{fakeEcho(t, 4, pubA, 0), fakeEcho(t, 4, pubB, 0), fakeEcho(t, 4, pubA, 0)}
	env.DNS4 = []DNSSource{{Server: fakeDNS(t, 4, pubB, 0), QName: "x.", QType: "A"}}
	env.STUN4 = []string{fakeSTUN(t, 4, pubA, 0)}
	p := DetectPublic(context.Background(), env)
	if p.V4.Addr.String() != pubA || p.V4.Votes != 3 || !p.V4.Disagree || p.V4.Answered != 5 {
		t.Fatalf("v4 = %+v", p.V4)
	}
	st := &state{public: func() PublicAddrs { return p }}
	r := st.checkPublic(context.Background(), 4)
	if r.Status != StatusWarn || !strings.Contains(strings.Join(r.Evidence, "\n"), pubB) {
		t.Fatalf("result = %+v", r)
	}

	// A tie has no majority: no address, a warning.
	env.Echo4 = []string{fakeEcho(t, 4, pubA, 0), fakeEcho(t, 4, pubB, 0)}
	env.DNS4, env.STUN4 = nil, nil
	p = DetectPublic(context.Background(), env)
	if p.V4.Addr.IsValid() || !p.V4.Disagree {
		t.Fatalf("tie: v4 = %+v", p.V4)
	}
}

func TestDetectPublicSlowAndDead(t *testing.T) {
	env := offlineEnv(t)
	env.SourceTimeout = 300 * time.Millisecond
	env.Echo4 = []string{
		fakeEcho(t, 4, pubA, 0),
		fakeEcho(t, 4, pubB, 5*time.Second), // slow: cut off
		"http://" + deadTCP(t, 4),           // dead: refused
		"http://" + blackholeTCP(t, 4),      // accepts, never answers
	}
	env.DNS4 = []DNSSource{{Server: blackholeUDP(t, 4), QName: "x.", QType: "A"}}
	env.STUN4 = []string{blackholeUDP(t, 4), fakeSTUN(t, 4, pubA, 0)}
	start := time.Now()
	p := DetectPublic(context.Background(), env)
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("took %v; every source is bounded by %v", d, env.SourceTimeout)
	}
	if p.V4.Addr.String() != pubA || p.V4.Answered != 2 || p.V4.Asked != 7 || p.V4.Disagree {
		t.Fatalf("v4 = %+v", p.V4)
	}
	var timedOut, refused int
	for _, s := range p.V4.Sources {
		switch {
		case strings.Contains(s.Error, "timed out"):
			timedOut++
		case strings.Contains(s.Error, "refused"):
			refused++
		}
	}
	if timedOut != 4 || refused != 1 {
		t.Errorf("timed out %d, refused %d: %+v", timedOut, refused, p.V4.Sources)
	}
}

func TestDetectPublicWrongFamilyAnswer(t *testing.T) {
	env := offlineEnv(t)
	env.Echo4 = []string{fakeEcho(t, 4, pub6, 0), fakeEcho(t, 4, "<html>hello</html>", 0)}
	p := DetectPublic(context.Background(), env)
	if p.V4.Answered != 0 {
		t.Fatalf("v4 = %+v", p.V4)
	}
	if !strings.Contains(p.V4.Sources[0].Error, "not an IPv4") || !strings.Contains(p.V4.Sources[1].Error, "no address") {
		t.Errorf("errors: %+v", p.V4.Sources)
	}
}

func TestDetectPublicAllDead(t *testing.T) {
	env := offlineEnv(t)
	env.Echo4 = []string{"http://" + deadTCP(t, 4)}
	env.DNS4 = []DNSSource{{Server: deadTCP(t, 4), QName: "x.", QType: "A"}}
	env.STUN4 = []string{deadTCP(t, 4)}
	p := DetectPublic(context.Background(), env)
	if p.V4.Answered != 0 || p.V4.Addr.IsValid() {
		t.Fatalf("v4 = %+v", p.V4)
	}
	st := &state{public: func() PublicAddrs { return p }}
	if r := st.checkPublic(context.Background(), 4); r.Status != StatusFail || r.Fix == "" {
		t.Fatalf("result = %+v", r)
	}
}
