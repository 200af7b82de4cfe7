package preflight

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"
)

// TestSSDPSearchReturnsAtFirstAnswer: the search must not wait out its
// context (goupnp's did, and left no time to read the device), and must
// skip answers for other device types.
func TestSSDPSearchReturnsAtFirstAnswer(t *testing.T) {
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			req := string(buf[:n])
			if !strings.HasPrefix(req, "M-SEARCH * HTTP/1.1\r\n") || !strings.Contains(req, "MAN: \"ssdp:discover\"") {
				continue
			}
			_, _ = pc.WriteTo([]byte("HTTP/1.1 200 OK\r\nST: urn:schemas-upnp-org:device:MediaServer:1\r\nLOCATION: http://127.0.0.1:1/other.xml\r\n\r\n"), from)
			if strings.Contains(req, "ST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\n") {
				_, _ = pc.WriteTo([]byte("HTTP/1.1 200 OK\r\nCACHE-CONTROL: max-age=120\r\nST: urn:schemas-upnp-org:device:InternetGatewayDevice:1\r\nLOCATION: http://127.0.0.1:5000/rootDesc.xml\r\n\r\n"), from)
			}
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	start := time.Now()
	locs, err := ssdpSearch(ctx, pc.LocalAddr().(*net.UDPAddr), []string{"urn:schemas-upnp-org:device:InternetGatewayDevice:1", "urn:schemas-upnp-org:device:InternetGatewayDevice:2"})
	if err != nil {
		t.Fatal(err)
	}
	if len(locs) != 1 || locs[0].String() != "http://127.0.0.1:5000/rootDesc.xml" {
		t.Fatalf("locations %v", locs)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("the search took %s: it waited for its context instead of returning after the answer", d)
	}

	// Nobody answers: the context's end, as an error.
	silent, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	ctx2, cancel2 := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel2()
	if locs, err := ssdpSearch(ctx2, silent.LocalAddr().(*net.UDPAddr), []string{"urn:schemas-upnp-org:device:InternetGatewayDevice:1"}); err == nil || len(locs) != 0 {
		t.Fatalf("no answer: got %v, %v", locs, err)
	}
}
