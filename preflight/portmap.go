package preflight

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/huin/goupnp"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/untrusted"
)

// Port mappings held for an issuance (ipcert issue/renew --map-ports):
// unlike the preflight check, which maps and removes at once, these stay
// while the CA validates and are removed afterwards. Each carries a lease,
// so a run that dies leaves nothing on the router for longer than that.

// HoldLease is the lease of a held mapping: longer than any validation,
// short enough that a crashed run's mapping soon expires on the router.
const HoldLease = 15 * time.Minute

// mapTimeout bounds each protocol's attempt.
const mapTimeout = 2 * time.Second

// PortRequest asks for tcp External on the router to reach this machine's
// Internal port.
type PortRequest struct{ External, Internal int }

// Held is what the router granted. Remove it when done.
type Held struct {
	Proto    string     // upnp or nat-pmp
	Router   netip.Addr // the router's external address, when it said
	Local    netip.Addr // this machine's LAN address the ports reach
	Mappings []Mapping
	remove   func(ctx context.Context) error
}

// Remove deletes the mappings from the router.
func (h *Held) Remove(ctx context.Context) error {
	if h == nil || h.remove == nil {
		return nil
	}
	return h.remove(ctx)
}

// MapPorts asks the router, over UPnP IGD and then NAT-PMP (whichever
// answers first in that order), to forward each request to this machine,
// and checks that it granted exactly that: the CA's validator connects
// only to 80 and 443. Anything less is removed again and is an error that
// says what the router did and what to do by hand.
func MapPorts(ctx context.Context, env Env, reqs []PortRequest) (*Held, error) {
	env = env.withDefaults()
	local, err := lanIPv4(env)
	if err != nil {
		return nil, err
	}
	// Each protocol has its own time: a LAN without a UPnP gateway makes
	// the SSDP search wait out its whole window.
	var notes []string
	if env.DiscoverIGD != nil {
		uctx, cancel := context.WithTimeout(ctx, mapTimeout)
		h, err := holdUPnP(uctx, env, local, reqs)
		cancel()
		if err == nil {
			return h, nil
		}
		notes = append(notes, "UPnP: "+err.Error())
	}
	if env.NATPMP != "off" && env.NATPMP != "" {
		nctx, cancel := context.WithTimeout(ctx, mapTimeout)
		h, err := holdNATPMP(nctx, env, local, reqs)
		cancel()
		if err == nil {
			return h, nil
		}
		notes = append(notes, "NAT-PMP: "+err.Error())
	}
	if len(notes) == 0 {
		notes = append(notes, "UPnP and NAT-PMP are both off")
	}
	return nil, fmt.Errorf("the router did not forward %s to %s (%s); forward %s to %s by hand in the router's settings",
		portsText(reqs, true), local, strings.Join(notes, "; "), portsText(reqs, true), local)
}

func portsText(reqs []PortRequest, external bool) string {
	var s []string
	for _, r := range reqs {
		if external {
			s = append(s, fmt.Sprintf("tcp %d", r.External))
		} else {
			s = append(s, fmt.Sprintf("tcp %d->%d", r.External, r.Internal))
		}
	}
	return strings.Join(s, " and ")
}

// lanIPv4 is this machine's private (or shared) IPv4 address on an
// interface that is up: the address the router forwards to.
func lanIPv4(env Env) (netip.Addr, error) {
	ifs, err := env.Interfaces()
	if err != nil {
		return netip.Addr{}, err
	}
	for _, i := range ifs {
		for _, p := range i.Addrs {
			a := p.Addr()
			c, _ := acmeflow.Classify(a)
			if a.Is4() && i.Up && (c == acmeflow.ClassPrivate || c == acmeflow.ClassCGNAT) {
				return a, nil
			}
		}
	}
	return netip.Addr{}, errors.New("this machine has no private IPv4 address on an interface, so there is no router to map ports on")
}

func holdUPnP(ctx context.Context, env Env, local netip.Addr, reqs []PortRequest) (*Held, error) {
	locs, err := env.DiscoverIGD(ctx)
	if err != nil || len(locs) == 0 {
		if err == nil {
			err = errors.New("no Internet Gateway Device answered")
		}
		return nil, errors.New(shortErr(err))
	}
	var c igdClient
	for _, loc := range locs {
		root, err := goupnp.DeviceByURLCtx(ctx, loc)
		if err != nil {
			continue
		}
		if cs := igdClients(root, loc); len(cs) > 0 {
			c = cs[0]
			break
		}
	}
	if c == nil {
		return nil, errors.New("no WAN connection service on the gateway")
	}
	h := &Held{Proto: "upnp", Local: local}
	if s, err := c.GetExternalIPAddressCtx(ctx); err == nil {
		if a, err := netip.ParseAddr(strings.TrimSpace(s)); err == nil && !a.IsUnspecified() {
			h.Router = a
		}
	}
	var added []PortRequest
	h.remove = func(ctx context.Context) error {
		var errs []error
		for i, r := range added {
			dctx, cancel := cleanupCtx(ctx)
			err := c.DeletePortMappingCtx(dctx, "", uint16(r.External), "TCP")
			cancel()
			if err != nil {
				errs = append(errs, fmt.Errorf("remove tcp %d: %s", r.External, shortErr(err)))
				continue
			}
			h.Mappings[i].Removed = true
		}
		return errors.Join(errs...)
	}
	for _, r := range reqs {
		m := Mapping{Proto: "upnp", Internal: r.Internal, Requested: r.External}
		if err := c.AddPortMappingCtx(ctx, "", uint16(r.External), "TCP", uint16(r.Internal), local.String(), true, "ipcert issue", uint32(HoldLease/time.Second)); err != nil {
			_ = h.remove(ctx)
			return nil, fmt.Errorf("tcp %d: %s", r.External, shortErr(err))
		}
		added = append(added, r)
		ip, client, _, _, _, err := c.GetSpecificPortMappingEntryCtx(ctx, "", uint16(r.External), "TCP")
		client = untrusted.Text(client) // the gateway's words
		switch {
		case err != nil:
			m.Error = "mapping not found after adding it: " + shortErr(err)
		case client != local.String() || int(ip) != r.Internal:
			m.Error = fmt.Sprintf("the router forwards tcp %d to %s:%d, not to %s:%d", r.External, client, ip, local, r.Internal)
		}
		h.Mappings = append(h.Mappings, m)
		if m.Error != "" {
			_ = h.remove(ctx)
			return nil, errors.New(m.Error)
		}
		h.Mappings[len(h.Mappings)-1].Granted = r.External
	}
	return h, nil
}

func holdNATPMP(ctx context.Context, env Env, local netip.Addr, reqs []PortRequest) (*Held, error) {
	server, err := natpmpAddr(env)
	if err != nil {
		return nil, err
	}
	h := &Held{Proto: "nat-pmp", Local: local}
	if resp, err := natpmpCall(ctx, env, server, []byte{0, 0}, 0, 12); err == nil {
		if a := netip.AddrFrom4([4]byte(resp[8:12])); !a.IsUnspecified() {
			h.Router = a
		}
	}
	request := func(ctx context.Context, internal, external int, lease uint32) (int, error) {
		req := make([]byte, 12)
		req[1] = 2 // map TCP
		binary.BigEndian.PutUint16(req[4:6], uint16(internal))
		binary.BigEndian.PutUint16(req[6:8], uint16(external))
		binary.BigEndian.PutUint32(req[8:12], lease)
		resp, err := natpmpCall(ctx, env, server, req, 2, 16)
		if err != nil {
			return 0, err
		}
		return int(binary.BigEndian.Uint16(resp[10:12])), nil
	}
	h.remove = func(ctx context.Context) error {
		var errs []error
		for i, m := range h.Mappings {
			if m.Granted == 0 || m.Removed {
				continue
			}
			// A lifetime of 0 and external port 0 delete the mapping
			// (RFC 6886 section 3.4).
			dctx, cancel := cleanupCtx(ctx)
			_, err := request(dctx, m.Internal, 0, 0)
			cancel()
			if err != nil {
				errs = append(errs, fmt.Errorf("remove tcp %d: %s", m.Requested, shortErr(err)))
				continue
			}
			h.Mappings[i].Removed = true
		}
		return errors.Join(errs...)
	}
	for _, r := range reqs {
		m := Mapping{Proto: "nat-pmp", Internal: r.Internal, Requested: r.External}
		granted, err := request(ctx, r.Internal, r.External, uint32(HoldLease/time.Second))
		if err != nil {
			_ = h.remove(ctx)
			return nil, fmt.Errorf("tcp %d: %s", r.External, shortErr(err))
		}
		m.Granted = granted
		h.Mappings = append(h.Mappings, m)
		if granted != r.External {
			_ = h.remove(ctx)
			return nil, fmt.Errorf("the router granted external port %d instead of %d, and the CA validates only on %d", granted, r.External, r.External)
		}
	}
	return h, nil
}
