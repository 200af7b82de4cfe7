package preflight

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"strings"
	"time"

	"github.com/huin/goupnp"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/netlimit"
	"github.com/ipcert/ipcert/internal/untrusted"
)

// NATKind is how this machine is reached from the internet.
type NATKind string

const (
	NATDirect      NATKind = "direct"     // the public address is on an interface
	NATCloud       NATKind = "cloud-1to1" // a cloud VM behind its provider's 1:1 NAT
	NATHome        NATKind = "home-nat"   // behind a router whose external address is the public one
	NATCGNAT       NATKind = "cgnat"      // the router's external address is in 100.64/10
	NATDouble      NATKind = "double-nat" // the router's external address is private or not the public one
	NATBehind      NATKind = "nat"        // behind NAT, router not asked or not answering
	NATUnknown     NATKind = "unknown"    // no public address known
	natTimeout             = 1500 * time.Millisecond
	natPMPPort             = 5351 // RFC 6886 section 3
	mapLeaseSecs           = 300
	mapDescription         = "ipcert preflight"
)

// NATInfo is what the NAT check found.
type NATInfo struct {
	Kind NATKind `json:"kind"`
	// Cloud is the provider DMI names (aws, gcp, azure, oracle, ...).
	Cloud string `json:"cloud,omitempty"`
	// CloudPublic is the public address the metadata service gave.
	CloudPublic netip.Addr `json:"cloud_public,omitzero"`
	// Router is the router's external address, from UPnP IGD or NAT-PMP.
	Router       netip.Addr `json:"router_external,omitzero"`
	RouterSource string     `json:"router_source,omitempty"` // upnp or nat-pmp
	// Mappings are the port mappings tried with --map-ports.
	Mappings []Mapping `json:"mappings,omitempty"`
}

// Mapping is one port mapping the router was asked for.
type Mapping struct {
	Proto     string `json:"proto"` // upnp or nat-pmp
	Internal  int    `json:"internal"`
	Requested int    `json:"requested"`
	Granted   int    `json:"granted"` // the external port the router really gave (0: refused)
	Removed   bool   `json:"removed"`
	Error     string `json:"error,omitempty"`
}

// cloudDMI names each cloud by what its VMs put in DMI
// (/sys/class/dmi/id). Matching is on lower-cased substrings.
var cloudDMI = []struct {
	cloud string
	file  string
	sub   string
}{
	{"aws", "sys_vendor", "amazon ec2"},
	{"aws", "bios_vendor", "amazon ec2"},
	{"gcp", "product_name", "google compute engine"},
	{"azure", "chassis_asset_tag", "7783-7084-3265-9085-8269-3286-77"},
	{"oracle", "chassis_asset_tag", "oraclecloud.com"},
	{"digitalocean", "sys_vendor", "digitalocean"},
	{"hetzner", "sys_vendor", "hetzner"},
	{"scaleway", "sys_vendor", "scaleway"},
	{"vultr", "sys_vendor", "vultr"},
	{"linode", "sys_vendor", "linode"},
	{"alibaba", "sys_vendor", "alibaba cloud"},
	{"openstack", "product_name", "openstack"},
}

// DetectCloud reads DMI under Env.Root and names the cloud, or "".
func DetectCloud(env Env) (string, []string) {
	env = env.withDefaults()
	var ev []string
	vals := map[string]string{}
	for _, f := range []string{"sys_vendor", "product_name", "chassis_asset_tag", "bios_vendor"} {
		b, err := os.ReadFile(env.path("sys/class/dmi/id/" + f))
		if err != nil {
			continue
		}
		v := strings.TrimSpace(string(b))
		vals[f] = strings.ToLower(v)
		if v != "" {
			ev = append(ev, "DMI "+f+": "+v)
		}
	}
	for _, c := range cloudDMI {
		if strings.Contains(vals[c.file], c.sub) {
			return c.cloud, ev
		}
	}
	return "", ev
}

// cloudMetadata asks the cloud's metadata service for the VM's public
// IPv4. Only called when DMI named the cloud: on other machines
// 169.254.169.254 may be anything on the LAN.
func cloudMetadata(ctx context.Context, env Env, cloud string) (netip.Addr, error) {
	base := strings.TrimSuffix(env.MetadataURL, "/")
	if base == "" {
		return netip.Addr{}, errors.New("no metadata URL")
	}
	c := env.httpClient("tcp4", natTimeout)
	get := func(path string, hdr map[string]string, method string) (string, error) {
		req, err := http.NewRequestWithContext(ctx, method, base+path, nil)
		if err != nil {
			return "", err
		}
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := c.Do(req)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		// A token or an address: 4 KiB is plenty (issue 22).
		b, err := netlimit.ReadAll(resp.Body, maxEchoBody, "the metadata service at "+req.URL.Host, "answer")
		if resp.StatusCode != http.StatusOK {
			return "", fmt.Errorf("%s: HTTP %s", path, resp.Status)
		}
		if err != nil {
			return "", err
		}
		return strings.TrimSpace(string(b)), nil
	}
	var s string
	var err error
	switch cloud {
	case "aws":
		// IMDSv2: a session token first (many instances refuse IMDSv1).
		tok, terr := get("/latest/api/token", map[string]string{"X-aws-ec2-metadata-token-ttl-seconds": "60"}, http.MethodPut)
		if terr != nil {
			return netip.Addr{}, terr
		}
		s, err = get("/latest/meta-data/public-ipv4", map[string]string{"X-aws-ec2-metadata-token": tok}, http.MethodGet)
	case "gcp":
		s, err = get("/computeMetadata/v1/instance/network-interfaces/0/access-configs/0/external-ip", map[string]string{"Metadata-Flavor": "Google"}, http.MethodGet)
	case "azure":
		s, err = get("/metadata/instance/network/interface/0/ipv4/ipAddress/0/publicIpAddress?api-version=2021-02-01&format=text", map[string]string{"Metadata": "true"}, http.MethodGet)
	case "digitalocean":
		s, err = get("/metadata/v1/interfaces/public/0/ipv4/address", nil, http.MethodGet)
	case "hetzner":
		s, err = get("/hetzner/v1/metadata/public-ipv4", nil, http.MethodGet)
	default:
		return netip.Addr{}, fmt.Errorf("the %s metadata service does not give the public address", cloud)
	}
	if err != nil {
		return netip.Addr{}, err
	}
	return netip.ParseAddr(s)
}

// securityGroupHint says where a cloud's inbound rules live.
func securityGroupHint(cloud string) string {
	switch cloud {
	case "aws":
		return "open tcp 80 and 443 from 0.0.0.0/0 and ::/0 in the instance's security group (EC2 console > Security Groups > Inbound rules)"
	case "gcp":
		return "allow tcp:80,443 from 0.0.0.0/0 in a VPC firewall rule that targets this VM (gcloud compute firewall-rules create ... --allow tcp:80,tcp:443)"
	case "azure":
		return "add inbound rules for tcp 80 and 443 to the VM's network security group"
	case "oracle":
		return "add ingress rules for tcp 80 and 443 (source 0.0.0.0/0) to the subnet's security list or the VNIC's network security group; Oracle images also REJECT in iptables after port 22 (see the firewall check)"
	case "hetzner":
		return "if a Hetzner Cloud Firewall is attached, allow inbound tcp 80 and 443"
	case "digitalocean":
		return "if a DigitalOcean Cloud Firewall is attached, allow inbound tcp 80 and 443"
	}
	return "allow inbound tcp 80 and 443 from anywhere in the provider's firewall or security group"
}

// routerExternal reads the router's external IPv4 through UPnP IGD, then
// NAT-PMP, each with a short timeout.
func routerExternal(ctx context.Context, env Env, mapPorts bool, ports []int, local netip.Addr) (netip.Addr, string, []Mapping, []string) {
	var ev []string
	ctx, cancel := context.WithTimeout(ctx, natTimeout)
	defer cancel()
	type res struct {
		addr  netip.Addr
		src   string
		maps  []Mapping
		notes []string
	}
	ch := make(chan res, 2)
	n := 0
	if env.DiscoverIGD != nil {
		n++
		go func() {
			a, m, notes := upnpExternal(ctx, env, mapPorts, ports, local)
			ch <- res{a, "upnp", m, notes}
		}()
	} else {
		ev = append(ev, "UPnP: off")
	}
	if env.NATPMP != "off" && env.NATPMP != "" {
		n++
		go func() {
			a, m, notes := natpmpExternal(ctx, env, mapPorts, ports)
			ch <- res{a, "nat-pmp", m, notes}
		}()
	} else {
		ev = append(ev, "NAT-PMP: off")
	}
	var best res
	var maps []Mapping
	for range n {
		r := <-ch
		ev = append(ev, r.notes...)
		maps = append(maps, r.maps...)
		// A router that answers but has no external address (0.0.0.0)
		// counts only when no other protocol gave a real one.
		if r.addr.IsValid() && (!best.addr.IsValid() || best.addr.IsUnspecified() && !r.addr.IsUnspecified()) {
			best = r
		}
	}
	return best.addr, best.src, maps, ev
}

type hopRes struct {
	target netip.Addr
	hops   []netip.Addr
	err    error
}

// igdClient is what WANIPConnection1/2 and WANPPPConnection1 share.
type igdClient interface {
	GetExternalIPAddressCtx(ctx context.Context) (string, error)
	AddPortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string, internalPort uint16, internalClient string, enabled bool, description string, leaseDuration uint32) error
	DeletePortMappingCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string) error
	GetSpecificPortMappingEntryCtx(ctx context.Context, remoteHost string, externalPort uint16, protocol string) (internalPort uint16, internalClient string, enabled bool, description string, leaseDuration uint32, err error)
}

func upnpExternal(ctx context.Context, env Env, mapPorts bool, ports []int, local netip.Addr) (netip.Addr, []Mapping, []string) {
	locs, err := env.DiscoverIGD(ctx)
	if err != nil || len(locs) == 0 {
		msg := "no Internet Gateway Device answered"
		if err != nil {
			msg = shortErr(err)
		}
		return netip.Addr{}, nil, []string{"UPnP: " + msg}
	}
	var notes []string
	for _, loc := range locs {
		root, err := goupnp.DeviceByURLCtx(ctx, loc)
		if err != nil {
			notes = append(notes, "UPnP "+loc.String()+": "+shortErr(err))
			continue
		}
		clients := igdClients(root, loc)
		for _, c := range clients {
			s, err := c.GetExternalIPAddressCtx(ctx)
			if err != nil {
				notes = append(notes, "UPnP "+loc.Host+": "+shortErr(err))
				continue
			}
			s = strings.TrimSpace(s)
			if s == "" || s == "0.0.0.0" {
				// miniupnpd (and many routers) answer so when their own WAN
				// address is private or shared: another NAT is in front.
				notes = append(notes, "UPnP "+loc.Host+": the router reports no external address (its own WAN address is private or shared, or it is offline)")
				return netip.IPv4Unspecified(), nil, notes
			}
			a, err := netip.ParseAddr(s)
			if err != nil {
				notes = append(notes, fmt.Sprintf("UPnP %s: bad external address %q", loc.Host, s))
				continue
			}
			notes = append(notes, "UPnP "+loc.Host+": router's external address "+a.String())
			var maps []Mapping
			if mapPorts && local.IsValid() {
				maps = upnpMap(ctx, c, ports, local)
			}
			return a, maps, notes
		}
	}
	return netip.Addr{}, nil, notes
}

// upnpMap maps each port, reads back what the router really holds for it
// (a router may take the request and map another client or port), and
// removes the mapping again.
func upnpMap(ctx context.Context, c igdClient, ports []int, local netip.Addr) []Mapping {
	var out []Mapping
	for _, p := range ports {
		m := Mapping{Proto: "upnp", Internal: p, Requested: p}
		err := c.AddPortMappingCtx(ctx, "", uint16(p), "TCP", uint16(p), local.String(), true, mapDescription, mapLeaseSecs)
		if err != nil {
			m.Error = shortErr(err)
			out = append(out, m)
			continue
		}
		ip, client, _, _, _, err := c.GetSpecificPortMappingEntryCtx(ctx, "", uint16(p), "TCP")
		client = untrusted.Text(client) // the gateway's words
		switch {
		case err != nil:
			m.Error = "mapping not found after adding it: " + shortErr(err)
		case client != local.String():
			m.Error = fmt.Sprintf("the router maps port %d to %s, not to this machine", p, client)
		default:
			m.Granted = int(ip)
			if int(ip) != p {
				m.Error = fmt.Sprintf("the router forwards to internal port %d", ip)
			}
		}
		dctx, cancel := cleanupCtx(ctx)
		m.Removed = c.DeletePortMappingCtx(dctx, "", uint16(p), "TCP") == nil
		cancel()
		out = append(out, m)
	}
	return out
}

func addrOr(a netip.Addr, def string) string {
	if !a.IsValid() {
		return def
	}
	return a.String()
}

// cleanupCtx outlives ctx so that a mapping is removed even when the
// check's time ran out, but is bounded itself: a router that stopped
// answering must not hold the run.
func cleanupCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), time.Second)
}

// natpmpAddr is the NAT-PMP server: Env.NATPMP, or the default gateway
// from /proc/net/route on port 5351.
func natpmpAddr(env Env) (string, error) {
	if env.NATPMP != "gateway" {
		return env.NATPMP, nil
	}
	b, err := os.ReadFile(env.path("proc/net/route"))
	if err != nil {
		return "", err
	}
	for _, line := range strings.Split(string(b), "\n")[1:] {
		f := strings.Fields(line)
		if len(f) < 3 || f[1] != "00000000" {
			continue
		}
		g, err := hex.DecodeString(f[2])
		if err != nil || len(g) != 4 {
			continue
		}
		// /proc/net/route prints addresses in host (little-endian) order.
		gw := netip.AddrFrom4([4]byte{g[3], g[2], g[1], g[0]})
		if gw.IsUnspecified() {
			continue
		}
		return netip.AddrPortFrom(gw, natPMPPort).String(), nil
	}
	return "", errors.New("no default IPv4 gateway")
}

// natpmpCall sends one NAT-PMP request and waits for its answer,
// retransmitting from 250 ms on, doubling (RFC 6886 section 3.1).
func natpmpCall(ctx context.Context, env Env, server string, req []byte, op byte, size int) ([]byte, error) {
	return udpExchange(ctx, env, "udp4", server, req, 250*time.Millisecond, 64, func(b []byte) (bool, error) {
		if len(b) < size || b[0] != 0 || b[1] != 128+op {
			return false, nil
		}
		if rc := binary.BigEndian.Uint16(b[2:4]); rc != 0 {
			return false, natpmpResult(rc)
		}
		return true, nil
	})
}

// natpmpResult is a NAT-PMP result code other than success (RFC 6886
// section 3.5).
type natpmpResult uint16

func (r natpmpResult) Error() string {
	switch r {
	case 2:
		return "NAT-PMP result code 2 (not authorized: mapping is switched off on the router)"
	case 3:
		return "NAT-PMP result code 3 (network failure: the router has no usable external address)"
	case 4:
		return "NAT-PMP result code 4 (out of resources)"
	}
	return fmt.Sprintf("NAT-PMP result code %d", uint16(r))
}

func natpmpExternal(ctx context.Context, env Env, mapPorts bool, ports []int) (netip.Addr, []Mapping, []string) {
	server, err := natpmpAddr(env)
	if err != nil {
		return netip.Addr{}, nil, []string{"NAT-PMP: " + err.Error()}
	}
	resp, err := natpmpCall(ctx, env, server, []byte{0, 0}, 0, 12)
	var rc natpmpResult
	if errors.As(err, &rc) && rc == 3 {
		// miniupnpd answers so when its WAN address is private or
		// shared: the router is there, but behind another NAT.
		return netip.IPv4Unspecified(), nil, []string{"NAT-PMP " + server + ": " + rc.Error()}
	}
	if err != nil {
		return netip.Addr{}, nil, []string{"NAT-PMP " + server + ": " + shortErr(err)}
	}
	a := netip.AddrFrom4([4]byte(resp[8:12]))
	notes := []string{"NAT-PMP " + server + ": router's external address " + a.String()}
	var maps []Mapping
	if mapPorts {
		for _, p := range ports {
			m := Mapping{Proto: "nat-pmp", Internal: p, Requested: p}
			req := make([]byte, 12)
			req[1] = 2 // map TCP
			binary.BigEndian.PutUint16(req[4:6], uint16(p))
			binary.BigEndian.PutUint16(req[6:8], uint16(p))
			binary.BigEndian.PutUint32(req[8:12], mapLeaseSecs)
			resp, err := natpmpCall(ctx, env, server, req, 2, 16)
			if err != nil {
				m.Error = shortErr(err)
				maps = append(maps, m)
				continue
			}
			// The router may grant another external port (RFC 6886
			// section 3.3): Let's Encrypt only ever connects to 80/443.
			m.Granted = int(binary.BigEndian.Uint16(resp[10:12]))
			if m.Granted != p {
				m.Error = fmt.Sprintf("the router granted external port %d instead of %d", m.Granted, p)
			}
			// A lifetime of 0 and external port 0 delete the mapping.
			binary.BigEndian.PutUint16(req[6:8], 0)
			binary.BigEndian.PutUint32(req[8:12], 0)
			dctx, cancel := cleanupCtx(ctx)
			_, derr := natpmpCall(dctx, env, server, req, 2, 16)
			cancel()
			m.Removed = derr == nil
			maps = append(maps, m)
		}
	}
	return a, maps, notes
}

func (st *state) checkNAT(ctx context.Context, env Env) Result {
	ifaces, _ := st.ifaces()
	cloud, dmi := DetectCloud(env)
	// Without a public IPv4 on an interface and outside a cloud, the
	// router will be asked: ask it now, while the public address is still
	// being found, so the two waits overlap instead of adding up.
	type routerRes struct {
		addr netip.Addr
		src  string
		maps []Mapping
		ev   []string
	}
	var routerCh chan routerRes
	hasPublic4 := false
	for _, i := range ifaces {
		hasPublic4 = hasPublic4 || (i.Addr.Is4() && i.Up && i.Class == acmeflow.ClassPublic)
	}
	if !hasPublic4 && cloud == "" {
		routerCh = make(chan routerRes, 1)
		var local netip.Addr
		for _, i := range ifaces {
			if i.Addr.Is4() && i.Up && (i.Class == acmeflow.ClassPrivate || i.Class == acmeflow.ClassCGNAT) && !local.IsValid() {
				local = i.Addr
			}
		}
		go func() {
			a, src, maps, ev := routerExternal(ctx, env, st.opts.MapPorts, []int{st.opts.HTTPPort, st.opts.TLSPort}, local)
			routerCh <- routerRes{a, src, maps, ev}
		}()
	}
	var hopsCh chan hopRes
	if target, ok := hopTarget(env); ok && env.Hops != nil && !hasPublic4 && cloud == "" {
		hopsCh = make(chan hopRes, 1)
		go func() {
			hops, err := env.Hops(ctx, target, hopMax)
			hopsCh <- hopRes{target, hops, err}
		}()
	}
	pub := st.public()
	info := NATInfo{Kind: NATUnknown}
	var r Result
	onIface := func(a netip.Addr) bool {
		for _, i := range ifaces {
			if i.Addr == a {
				return true
			}
		}
		return false
	}
	var localV4 netip.Addr
	for _, i := range ifaces {
		if i.Addr.Is4() && i.Up && (i.Class == acmeflow.ClassPrivate || i.Class == acmeflow.ClassCGNAT) && !localV4.IsValid() {
			localV4 = i.Addr
		}
	}
	want := st.addrs()
	for _, a := range want {
		if onIface(a) {
			r.Evidence = append(r.Evidence, a.String()+" is on a local interface")
		} else {
			r.Evidence = append(r.Evidence, a.String()+" is not on any local interface")
		}
	}
	r.Evidence = append(r.Evidence, dmi...)
	info.Cloud = cloud
	pub4 := pub.V4.Addr
	if len(st.opts.IPs) > 0 {
		pub4 = netip.Addr{}
		for _, a := range st.opts.IPs {
			if a.Is4() {
				pub4 = a
				break
			}
		}
	}
	direct := len(want) > 0
	for _, a := range want {
		direct = direct && onIface(a)
	}
	switch {
	case direct:
		info.Kind = NATDirect
		r.Status = StatusOK
		r.Summary = "direct: the public address is on an interface (no NAT)"
	case !pub4.IsValid() && len(want) == 0:
		r.Status = StatusSkipped
		r.Summary = "no public address known, so the NAT cannot be judged"
	case cloud != "":
		info.Kind = NATCloud
		if a, err := cloudMetadata(ctx, env, cloud); err == nil {
			info.CloudPublic = a
			r.Evidence = append(r.Evidence, "metadata service: public IPv4 "+a.String())
		} else {
			r.Evidence = append(r.Evidence, "metadata service: "+shortErr(err))
		}
		r.Status = StatusWarn
		r.Summary = "a " + cloud + " VM behind the provider's 1:1 NAT: fine if the provider's firewall lets 80/443 in, which cannot be seen from inside"
		r.Fix = securityGroupHint(cloud)
		if info.CloudPublic.IsValid() && pub4.IsValid() && info.CloudPublic != pub4 {
			r.Summary += "; the metadata service's address " + info.CloudPublic.String() + " differs from " + pub4.String()
		}
	default:
		var rr routerRes
		if routerCh != nil {
			rr = <-routerCh
		} else {
			rr.addr, rr.src, rr.maps, rr.ev = routerExternal(ctx, env, st.opts.MapPorts, []int{st.opts.HTTPPort, st.opts.TLSPort}, localV4)
		}
		router, src, maps, ev := rr.addr, rr.src, rr.maps, rr.ev
		r.Evidence = append(r.Evidence, ev...)
		info.Router, info.RouterSource, info.Mappings = router, src, maps
		noExternal := router.IsValid() && router.IsUnspecified()
		if noExternal {
			info.Router = netip.Addr{}
		}
		var hopCGNAT netip.Addr
		hopN := 0
		if hopsCh != nil {
			h := <-hopsCh
			for i, a := range h.hops {
				if !a.IsValid() {
					continue
				}
				// The first hop is this network's own router; a shared
				// or private address after it is another NAT (the ISP's
				// carrier-grade NAT for 100.64/10). Public hops say
				// nothing, and are left out of the evidence.
				c, _ := acmeflow.Classify(a)
				if i == 0 || c == acmeflow.ClassPublic {
					continue
				}
				r.Evidence = append(r.Evidence, fmt.Sprintf("hop %d towards %s: %s (%s)", i+1, h.target, a, c))
				if c == acmeflow.ClassCGNAT && !hopCGNAT.IsValid() {
					hopCGNAT, hopN = a, i+1
				}
			}
			if h.err != nil {
				r.Evidence = append(r.Evidence, "hop probe towards "+h.target.String()+": "+shortErr(h.err))
			}
		}
		for _, m := range maps {
			s := fmt.Sprintf("%s map tcp %d: ", m.Proto, m.Requested)
			if m.Granted != 0 {
				s += fmt.Sprintf("granted external port %d", m.Granted)
			} else {
				s += "refused"
			}
			if m.Error != "" {
				s += " (" + m.Error + ")"
			}
			s += fmt.Sprintf(", removed: %v", m.Removed)
			r.Evidence = append(r.Evidence, s)
		}
		class, _ := acmeflow.Classify(router)
		pubClass := acmeflow.ClassPublic
		if pub4.IsValid() {
			pubClass, _ = acmeflow.Classify(pub4)
		}
		// An interface in 100.64/10 with no router in between: this
		// machine sits directly on the carrier's shared address space.
		var cgnatAddr netip.Addr
		switch {
		case pubClass == acmeflow.ClassCGNAT:
			cgnatAddr = pub4
		case router.IsValid() && class == acmeflow.ClassCGNAT:
			cgnatAddr = router
		case !router.IsValid() && localV4.IsValid():
			if c, _ := acmeflow.Classify(localV4); c == acmeflow.ClassCGNAT {
				cgnatAddr = localV4
			}
		}
		switch {
		case !cgnatAddr.IsValid() && hopCGNAT.IsValid():
			info.Kind = NATCGNAT
			r.Status = StatusFail
			r.Summary = fmt.Sprintf("carrier-grade NAT: hop %d on the way out, %s, is shared address space (100.64/10, RFC 6598), so the router's WAN sits behind the ISP's NAT; nothing from the internet reaches this machine over IPv4", hopN, hopCGNAT)
			r.Fix = "use IPv6 if this machine has a public IPv6 address, ask the ISP for a public IPv4 address, or use a VPS"
		case cgnatAddr.IsValid():
			info.Kind = NATCGNAT
			r.Status = StatusFail
			r.Summary = "carrier-grade NAT: " + cgnatAddr.String() + " is shared address space (100.64/10, RFC 6598); nothing from the internet reaches this machine over IPv4"
			r.Fix = "use IPv6 if this machine has a public IPv6 address, ask the ISP for a public IPv4 address, or use a VPS"
		case noExternal:
			info.Kind = NATDouble
			r.Status = StatusFail
			r.Summary = "the router answers (" + src + ") but has no public address itself: its WAN is behind another NAT (a second router, or the ISP's carrier-grade NAT)"
			r.Fix = "use IPv6 if this machine has a public IPv6 address; ask the ISP for a public IPv4 address, or forward ports 80/443 on every router on the way (or put the first one in bridge mode); or use a VPS"
		case router.IsValid() && class != acmeflow.ClassPublic:
			info.Kind = NATDouble
			r.Status = StatusFail
			r.Summary = "double NAT: the router's external address " + router.String() + " is " + string(class) + ", so another router sits in front of it"
			r.Fix = "forward ports 80/443 on both routers, or put the first router in bridge mode; or use IPv6"
		case router.IsValid() && pub4.IsValid() && router != pub4:
			info.Kind = NATDouble
			r.Status = StatusFail
			r.Summary = "the router's external address " + router.String() + " is not the public address " + pub4.String() + ": another NAT (the ISP's, or a second router) is in front of it"
			r.Fix = "forward ports 80/443 on every router on the way, or use IPv6, or a VPS"
		case router.IsValid():
			info.Kind = NATHome
			r.Status = StatusWarn
			r.Summary = "home NAT: the router reports (" + src + ") the public address " + router.String() + "; ports 80/443 must be forwarded to this machine"
			r.Fix = "forward tcp 80 (and 443) on the router to " + addrOr(localV4, "this machine") + ", or let ipcert map them: " + PreflightCommand(st.opts.IPs, "--map-ports")
		default:
			info.Kind = NATBehind
			r.Status = StatusWarn
			r.Summary = "behind NAT: the public address is not on any interface and the router does not answer UPnP or NAT-PMP"
			r.Fix = "forward tcp 80 (and 443) on the router to this machine (" + addrOr(localV4, "its LAN address") + "); the self-fetch cannot prove it from inside, a staging run can: " + RehearsalCommand(st.opts.IPs)
		}
		for _, m := range maps {
			if m.Error != "" || m.Granted != m.Requested {
				r.Fix = strings.TrimPrefix(r.Fix+"; ", "; ") + "the router did not map the validation ports as asked: forward them by hand in its web interface"
				break
			}
		}
	}
	if pub.V6.Addr.IsValid() && onIface(pub.V6.Addr) && info.Kind != NATDirect {
		r.Evidence = append(r.Evidence, "IPv6 "+pub.V6.Addr.String()+" is on an interface: IPv6 reaches this machine without NAT")
		if r.Status == StatusFail {
			r.Status = StatusWarn
			r.Fix = "issue for the IPv6 address " + pub.V6.Addr.String() + " (--ip " + pub.V6.Addr.String() + "); " + r.Fix
		}
	}
	st.set(func(rep *Report) { rep.NAT = info })
	return r
}
