package cli

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"sync"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/preflight"
	"github.com/ipcert/ipcert/renew"
)

// --map-ports on issue and renew: with the user's consent the router
// (UPnP IGD or NAT-PMP) forwards the validation port to this machine while
// the CA validates, and the mapping is removed afterwards (its lease ends
// it anyway if ipcert dies).

const mapPortsUsage = "ask the router (UPnP IGD / NAT-PMP) to forward the validation port (80, or 443 for tls-alpn-01) to this machine while the CA validates; removed afterwards"

// mapRequest is the router mapping a challenge needs: the CA connects to
// 80 (http-01) or 443 (tls-alpn-01), and the responder or web server
// listens on its own port.
func mapRequest(challenge spec.Challenge, webroot, httpListen, tlsListen string, webPort int) preflight.PortRequest {
	port := challenge.Port() // where the CA connects
	switch {
	case challenge == spec.TLSALPN01:
		return preflight.PortRequest{External: port, Internal: portOr(tlsListen, port)}
	case webroot != "":
		if webPort == 0 {
			webPort = port // the web server on the port the CA knocks on
		}
		return preflight.PortRequest{External: port, Internal: webPort}
	}
	return preflight.PortRequest{External: port, Internal: portOr(httpListen, port)}
}

func portOr(listen string, def int) int {
	if p := acmeflow.PortOf(listen); p > 0 {
		return p
	}
	return def
}

// holdPorts maps pr on the router and returns the function that removes
// the mapping, saying so on w.
func holdPorts(ctx context.Context, pr preflight.PortRequest, w io.Writer) (func(), error) {
	held, err := preflight.MapPorts(ctx, preflight.DefaultEnv(), []preflight.PortRequest{pr})
	if err != nil {
		return nil, err
	}
	via := held.Proto
	if held.Router.IsValid() {
		via += ", external address " + held.Router.String()
	}
	fmt.Fprintf(w, "  -> The router forwards tcp %d to %s:%d (%s) while the CA validates\n", pr.External, held.Local, pr.Internal, via)
	return func() {
		rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		if err := held.Remove(rctx); err != nil {
			fmt.Fprintf(w, "  !  could not remove the router's mapping of tcp %d (%v); it expires by itself within %s\n", pr.External, err, preflight.HoldLease)
			return
		}
		fmt.Fprintf(w, "  -> Removed the router's mapping of tcp %d\n", pr.External)
	}, nil
}

// mappingIssuer holds the router mapping around each renewal that asks
// for one: all of them with renew --map-ports, else those issued with
// --map-ports (renewal.json's map_ports: the consent, kept, so that the
// timer's renewals map too). One at a time: two renewals would ask for
// the same external port.
type mappingIssuer struct {
	renew.Issuer
	w   io.Writer
	all bool
	mu  sync.Mutex
}

func (m *mappingIssuer) Issue(ctx context.Context, r *store.Renewal, idents []netip.Addr, replaces string) (*store.Renewal, error) {
	if !m.all && !r.MapPorts {
		return m.Issuer.Issue(ctx, r, idents, replaces)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	release, err := holdPorts(ctx, mapRequest(r.Challenge, r.WebRoot, r.HTTPListen, r.TLSListen, r.WebRootPort), m.w)
	if err != nil {
		return nil, fmt.Errorf("--map-ports: %w", err)
	}
	defer release()
	return m.Issuer.Issue(ctx, r, idents, replaces)
}
