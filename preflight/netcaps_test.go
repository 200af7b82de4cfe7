package preflight

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"
)

// endless is a server whose answers never end (up to maxSent bytes, so the
// test is bounded too); it counts what it managed to send.
type endless struct {
	srv  *httptest.Server
	mu   sync.Mutex
	sent int
}

const endlessMax = 64 << 20

// newEndless serves head, then filler until the client stops reading, for
// the paths that want() picks; the others get ok.
func newEndless(t *testing.T, want func(*http.Request) bool, head, filler string, ok func(http.ResponseWriter, *http.Request)) *endless {
	t.Helper()
	e := &endless{}
	e.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !want(r) {
			ok(w, r)
			return
		}
		w.Header().Set("Content-Type", "text/xml")
		io.WriteString(w, head)
		chunk := strings.Repeat(filler, (32<<10)/len(filler))
		for n := 0; n < endlessMax; n += len(chunk) {
			if _, err := io.WriteString(w, chunk); err != nil {
				return
			}
			e.mu.Lock()
			e.sent += len(chunk)
			e.mu.Unlock()
		}
	}))
	t.Cleanup(e.srv.Close)
	return e
}

func (e *endless) total() int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.sent
}

// A gateway whose device description never ends (issue 22: read whole by
// goupnp's XML decoder) is cut at maxUPnPBody, and the note names it.
func TestUPnPEndlessDescription(t *testing.T) {
	e := newEndless(t, func(*http.Request) bool { return true },
		`<?xml version="1.0"?><root xmlns="urn:schemas-upnp-org:device-1-0"><device><friendlyName>`, "A", nil)
	env := offlineEnv(t)
	u, _ := url.Parse(e.srv.URL + "/desc.xml")
	env.DiscoverIGD = func(context.Context) ([]*url.URL, error) { return []*url.URL{u}, nil }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, notes := upnpExternal(ctx, env.withDefaults(), false, nil, netip.Addr{})
	text := strings.Join(notes, "\n")
	if !strings.Contains(text, "256 KiB") || !strings.Contains(text, u.Host) {
		t.Errorf("notes do not name the gateway and the cap:\n%s", text)
	}
	// Stopped reading at the cap: what was sent is the cap and the
	// sockets' buffers, not the whole 64 MB.
	if n := e.total(); n >= endlessMax/4 {
		t.Errorf("the gateway got %d bytes out before ipcert stopped reading", n)
	}
}

// The same for a SOAP answer.
func TestUPnPEndlessSOAPAnswer(t *testing.T) {
	e := newEndless(t, func(r *http.Request) bool { return r.Method == http.MethodPost },
		`<?xml version="1.0"?><s:Envelope xmlns:s="http://schemas.xmlsoap.org/soap/envelope/"><s:Body><u:GetExternalIPAddressResponse xmlns:u="urn:schemas-upnp-org:service:WANIPConnection:1"><NewExternalIPAddress>1`, "1",
		func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/xml")
			io.WriteString(w, igdDescription)
		})
	env := offlineEnv(t)
	u, _ := url.Parse(e.srv.URL + "/desc.xml")
	env.DiscoverIGD = func(context.Context) ([]*url.URL, error) { return []*url.URL{u}, nil }
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, _, notes := upnpExternal(ctx, env.withDefaults(), false, nil, netip.Addr{})
	text := strings.Join(notes, "\n")
	if !strings.Contains(text, "256 KiB") {
		t.Errorf("notes do not name the cap:\n%s", text)
	}
	if n := e.total(); n >= endlessMax/4 {
		t.Errorf("the gateway got %d bytes out before ipcert stopped reading", n)
	}
}

// A public-address service whose answer never ends is cut at 4 KiB, and
// the error names it.
func TestEchoEndlessAnswer(t *testing.T) {
	e := newEndless(t, func(*http.Request) bool { return true }, "203.0.113.7", " ", nil)
	c := offlineEnv(t).withDefaults().httpClient("tcp4", 10*time.Second)
	_, err := askEcho(context.Background(), c, e.srv.URL)
	host := strings.TrimPrefix(e.srv.URL, "http://")
	if err == nil || !strings.Contains(err.Error(), "4 KiB") || !strings.Contains(err.Error(), host) {
		t.Fatalf("got %v, want an error naming %s and 4 KiB", err, host)
	}
}

// An SSDP answerer that never stops (a new location each time) gets at
// most maxGateways locations taken, and the search ends there.
func TestSSDPSearchTakesFewGateways(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 2048)
		n, from, err := pc.ReadFrom(buf)
		if err != nil || n == 0 {
			return
		}
		for i := range 1000 {
			msg := fmt.Sprintf("HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nLOCATION: http://127.0.0.1:1/%d.xml\r\n\r\n", i)
			if _, err := pc.WriteTo([]byte(msg), from); err != nil {
				return
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	locs, err := ssdpSearch(ctx, pc.LocalAddr().(*net.UDPAddr), []string{"urn:schemas-upnp-org:device:InternetGatewayDevice:1"})
	if err != nil || len(locs) == 0 || len(locs) > maxGateways {
		t.Fatalf("got %d locations (%v), want 1..%d", len(locs), err, maxGateways)
	}
}
