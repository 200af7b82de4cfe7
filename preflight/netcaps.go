package preflight

import (
	"net/http"
	"net/url"
	"time"

	"github.com/huin/goupnp"
	"github.com/huin/goupnp/dcps/internetgateway2"
	"github.com/ipcert/ipcert/internal/netlimit"
)

// What preflight reads from the network is capped (issue 22): a router or
// a public-address service that never stops talking costs at most these.
const (
	// maxHeaderBytes caps the response headers of every HTTP answer
	// preflight reads (Go's default is 10 MB).
	maxHeaderBytes = 64 << 10
	// maxUPnPBody caps a UPnP body: a gateway's device description is 2-10
	// KB on real routers (miniupnpd: 4 KB), a SOAP answer a few hundred
	// bytes. 256 KiB leaves room for the most verbose firmware.
	maxUPnPBody = 256 << 10
	// maxGateways caps the SSDP answers taken: a LAN has one gateway,
	// rarely two or three.
	maxGateways = 8
)

// upnpTransport is the HTTP of every UPnP request: bodies capped, headers
// capped, no proxy (the gateway is on the LAN), no idle connections kept.
var upnpTransport = &netlimit.Transport{
	Base: &http.Transport{
		Proxy:                  nil,
		DisableKeepAlives:      true,
		MaxResponseHeaderBytes: maxHeaderBytes,
		ResponseHeaderTimeout:  5 * time.Second,
	},
	Limit: maxUPnPBody,
	What:  "UPnP answer",
	Peer:  func(r *http.Request) string { return "the UPnP gateway at " + r.URL.Host },
}

func init() {
	// goupnp fetches device descriptions through this client (its default
	// is http.DefaultClient, read without a cap by an xml.Decoder).
	goupnp.HTTPClientDefault = &http.Client{Transport: upnpTransport, Timeout: 10 * time.Second}
}

// capSOAP routes a service client's SOAP calls through upnpTransport.
func capSOAP(sc *goupnp.ServiceClient) {
	if sc != nil && sc.SOAPClient != nil {
		sc.SOAPClient.HTTPClient = http.Client{Transport: upnpTransport, Timeout: 10 * time.Second}
	}
}

// igdClients are the WAN connection services of a gateway, best first
// (WANIPConnection2, WANIPConnection1, WANPPPConnection1), each talking
// through upnpTransport.
func igdClients(root *goupnp.RootDevice, loc *url.URL) []igdClient {
	var out []igdClient
	if cs, err := internetgateway2.NewWANIPConnection2ClientsFromRootDevice(root, loc); err == nil {
		for _, c := range cs {
			capSOAP(&c.ServiceClient)
			out = append(out, c)
		}
	}
	if cs, err := internetgateway2.NewWANIPConnection1ClientsFromRootDevice(root, loc); err == nil {
		for _, c := range cs {
			capSOAP(&c.ServiceClient)
			out = append(out, c)
		}
	}
	if cs, err := internetgateway2.NewWANPPPConnection1ClientsFromRootDevice(root, loc); err == nil {
		for _, c := range cs {
			capSOAP(&c.ServiceClient)
			out = append(out, c)
		}
	}
	return out
}
