package preflight

import (
	"context"
	"net/netip"
	"strings"
	"testing"
)

// TestNATRouterWithoutExternalAddress: miniupnpd answers UPnP with an
// empty external address when its own WAN address is private or shared:
// the router is there, but behind another NAT.
func TestNATRouterWithoutExternalAddress(t *testing.T) {
	igd := newFakeIGD(t, "")
	env := offlineEnv(t)
	env.DiscoverIGD = igd.discover
	st := natState(env, Options{}, pubA, "192.168.1.20/24")
	r := st.checkNAT(context.Background(), env.withDefaults())
	nat := st.report.NAT
	if nat.Kind != NATDouble || r.Status != StatusFail || nat.Router.IsValid() || nat.RouterSource != "upnp" {
		t.Fatalf("%+v / %+v", nat, r)
	}
	if !strings.Contains(r.Fix, "IPv6") || !strings.Contains(strings.Join(r.Evidence, "\n"), "reports no external address") {
		t.Errorf("result %+v", r)
	}
}

// TestNATCGNATFromHop: a shared address as the second hop is the ISP's
// carrier-grade NAT, even when the router says nothing about its WAN.
func TestNATCGNATFromHop(t *testing.T) {
	igd := newFakeIGD(t, "")
	env := offlineEnv(t)
	env.DiscoverIGD = igd.discover
	env.STUN4 = []string{"198.51.100.9:3478"}
	var asked netip.Addr
	env.Hops = func(ctx context.Context, dst netip.Addr, max int) ([]netip.Addr, error) {
		asked = dst
		return []netip.Addr{netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("100.64.0.1"), {}}, nil
	}
	st := natState(env, Options{}, pubA, "192.168.1.20/24")
	r := st.checkNAT(context.Background(), env.withDefaults())
	if st.report.NAT.Kind != NATCGNAT || r.Status != StatusFail || !strings.Contains(r.Summary, "hop 2") || !strings.Contains(r.Summary, "100.64.0.1") {
		t.Fatalf("%+v / %+v", st.report.NAT, r)
	}
	if asked.String() != "198.51.100.9" {
		t.Errorf("probed towards %s, want the STUN source", asked)
	}
	// A private first hop is only this network's own router.
	env.Hops = func(ctx context.Context, dst netip.Addr, max int) ([]netip.Addr, error) {
		return []netip.Addr{netip.MustParseAddr("100.64.0.1")}, nil
	}
	st = natState(env, Options{}, pubA, "192.168.1.20/24")
	if r := st.checkNAT(context.Background(), env.withDefaults()); st.report.NAT.Kind == NATCGNAT {
		t.Errorf("a first hop in 100.64/10 was taken for the ISP's: %+v", r)
	}
}

// TestMapPortsHoldsUntilRemoved: the mapping stays while the caller
// works, then is removed.
func TestMapPortsHoldsUntilRemoved(t *testing.T) {
	igd := newFakeIGD(t, "203.0.113.7")
	env := offlineEnv(t)
	env.DiscoverIGD = igd.discover
	env.Interfaces = func() ([]Interface, error) {
		return []Interface{{Name: "eth0", Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("192.168.1.20/24")}}}, nil
	}
	h, err := MapPorts(context.Background(), env, []PortRequest{{External: 80, Internal: 80}})
	if err != nil {
		t.Fatal(err)
	}
	igd.mu.Lock()
	held, deleted := igd.mappings["80"], len(igd.deleted)
	igd.mu.Unlock()
	if h.Proto != "upnp" || h.Router.String() != "203.0.113.7" || held != "192.168.1.20" || deleted != 0 {
		t.Fatalf("held %+v, igd %q, deleted %d", h, held, deleted)
	}
	if err := h.Remove(context.Background()); err != nil {
		t.Fatal(err)
	}
	igd.mu.Lock()
	defer igd.mu.Unlock()
	if len(igd.deleted) != 1 || igd.deleted[0] != "80" || !h.Mappings[0].Removed {
		t.Errorf("deleted %v, mappings %+v", igd.deleted, h.Mappings)
	}
}
