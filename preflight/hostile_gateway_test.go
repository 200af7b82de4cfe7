package preflight

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"testing"

	"github.com/ipcert/ipcert/internal/untrusted"
)

// What a hostile gateway can put in XML (ESC and BEL are not XML
// characters; these are): a forged line, a C1 CSI, a bidi override, an
// invisible character, and a very long string.
var hostileXML = "x&#10;ipcert: mapped OK \u009b31m \u202eexe.txt \u200b" + strings.Repeat("L", 20000)

// hostileIGD answers GetSpecificPortMappingEntry with a hostile client,
// or AddPortMapping with a SOAP fault full of hostile text.
func hostileIGD(t *testing.T, fault bool) *url.URL {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/desc.xml" {
			w.Header().Set("Content-Type", "text/xml")
			io.WriteString(w, strings.Replace(igdDescription, "fake router", hostileXML, 1))
			return
		}
		io.Copy(io.Discard, r.Body)
		_, action, _ := strings.Cut(strings.Trim(r.Header.Get("SOAPAction"), `"`), "#")
		w.Header().Set("Content-Type", `text/xml; charset="utf-8"`)
		if fault && action == "AddPortMapping" {
			w.WriteHeader(http.StatusInternalServerError)
			fmt.Fprintf(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><s:Fault><faultcode>s:Client</faultcode><faultstring>%s</faultstring><detail><UPnPError xmlns="urn:schemas-upnp-org:control-1-0"><errorCode>718</errorCode><errorDescription>%s</errorDescription></UPnPError></detail></s:Fault></s:Body></s:Envelope>`, hostileXML, hostileXML)
			return
		}
		inner := ""
		switch action {
		case "GetExternalIPAddress":
			inner = "<NewExternalIPAddress>203.0.113.7</NewExternalIPAddress>"
		case "GetSpecificPortMappingEntry":
			inner = "<NewInternalPort>80</NewInternalPort><NewInternalClient>" + hostileXML + "</NewInternalClient><NewEnabled>1</NewEnabled><NewPortMappingDescription>x</NewPortMappingDescription><NewLeaseDuration>300</NewLeaseDuration>"
		}
		fmt.Fprintf(w, `<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/" s:encodingStyle="http://schemas.xmlsoap.org/soap/encoding/"><s:Body><u:%sResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1">%s</u:%sResponse></s:Body></s:Envelope>`, action, inner, action)
	}))
	t.Cleanup(srv.Close)
	u, _ := url.Parse(srv.URL + "/desc.xml")
	return u
}

func assertSafe(t *testing.T, what, s string) {
	t.Helper()
	for _, r := range s {
		if !untrusted.Safe(r) {
			t.Errorf("%s: %U raw in %.300q", what, r, s)
			return
		}
	}
	if len(s) > 4*untrusted.MaxText {
		t.Errorf("%s: %d bytes", what, len(s))
	}
}

// issue --map-ports and the preflight NAT check with a gateway whose
// answers are hostile: what ipcert says of them is escaped and bounded.
func TestHostileGatewayTextEscaped(t *testing.T) {
	for _, fault := range []bool{false, true} {
		u := hostileIGD(t, fault)
		env := offlineEnv(t)
		env.DiscoverIGD = func(context.Context) ([]*url.URL, error) { return []*url.URL{u}, nil }
		env.Interfaces = func() ([]Interface, error) {
			return []Interface{{Name: "eth0", Up: true, Addrs: []netip.Prefix{netip.MustParsePrefix("192.168.1.20/24")}}}, nil
		}
		_, err := MapPorts(context.Background(), env, []PortRequest{{External: 80, Internal: 80}})
		if err == nil {
			t.Fatalf("fault %v: the hostile gateway's mapping was taken", fault)
		}
		assertSafe(t, fmt.Sprintf("MapPorts error (fault %v)", fault), err.Error())

		// The preflight run (what the text report, --json and the
		// wizard show).
		rep := Run(context.Background(), env, Options{Only: []string{IDNAT}, IPs: []netip.Addr{netip.MustParseAddr("203.0.113.7")}}, nil)
		for _, r := range rep.Results {
			assertSafe(t, r.ID+" summary", r.Summary)
			assertSafe(t, r.ID+" fix", r.Fix)
			for _, e := range r.Evidence {
				assertSafe(t, r.ID+" evidence", e)
			}
		}
	}
}
