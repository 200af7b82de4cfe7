package acmeflow

import (
	"context"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"

	"github.com/ipcert/ipcert/internal/testkit"
)

func TestPrintable(t *testing.T) {
	for in, want := range map[string]string{
		"/.well-known/acme-challenge/abc_-": "/.well-known/acme-challenge/abc_-",
		"/\x1b]0;owned\x07\x1b[2J":          `/\x1b]0;owned\x07\x1b[2J`,
		"line\nforged: ok":                  `line\x0aforged: ok`,
		"csi \u009b2J":                      `csi \u009b2J`,
		"rtl \u202eevil":                    `rtl \u202eevil`,
		"bad \xff utf8":                     `bad \xff utf8`,
		"café 127.0.0.1":                    "café 127.0.0.1",
		"del \x7f":                          `del \x7f`,
	} {
		if got := Printable(in); got != want {
			t.Errorf("Printable(%q) = %q, want %q", in, got, want)
		}
	}
	if got := PrintableLines("a\n\tb\x1b[2J"); got != "a\n\tb\\x1b[2J" {
		t.Errorf("PrintableLines = %q", got)
	}
	v := ValidatorRequest{Challenge: ChallengeTLSALPN01, Remote: "1.2.3.4:5", Local: "x", SNI: "\x1b[2J", ALPN: []string{"acme-tls/1", "\x1b]0;t\x07"}}
	if s := v.String(); strings.ContainsAny(s, "\x1b\x07") || !strings.Contains(s, `ALPN ["acme-tls/1" "\x1b]0;t\a"]`) {
		t.Errorf("tls-alpn-01 request printed as %q", s)
	}
	v = ValidatorRequest{Challenge: ChallengeHTTP01, Remote: "1.2.3.4:5", Path: "/\x1b]0;owned\x07", Host: "h\x1b[2J", Status: 404}
	if s := v.String(); strings.ContainsAny(s, "\x1b\x07") || !strings.Contains(s, `GET /\x1b]0;owned\x07 (Host h\x1b[2J) -> 404`) {
		t.Errorf("http-01 request printed as %q", s)
	}
}

// What a client sends is escaped where it is recorded, so the wizard's
// screen, which formats the fields itself, gets safe text too.
func TestResponderRecordsEscapedRequests(t *testing.T) {
	var got []Event
	seen := &seenLog{emit: func(e Event) { got = append(got, e) }}
	listen := net.JoinHostPort("127.0.0.1", strconv.Itoa(testkit.FreePort(t)))
	r, err := startHTTPResponder(context.Background(), listen, []netip.Addr{netip.MustParseAddr("127.0.0.1")}, seen)
	if err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("tcp", listen)
	if err != nil {
		t.Fatal(err)
	}
	io.WriteString(c, "GET /%1b]0;owned%07%1b[2J%e2%80%ae HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
	io.ReadAll(c)
	c.Close()
	r.close()
	reqs := seen.snapshot()
	if len(reqs) != 1 {
		t.Fatalf("%d requests recorded", len(reqs))
	}
	if p := reqs[0].Path; strings.ContainsAny(p, "\x1b\x07\u202e") || !strings.Contains(p, `\x1b]0;owned\x07`) {
		t.Errorf("recorded path %q", p)
	}
	if len(got) != 1 || got[0].Validator == nil || strings.ContainsAny(got[0].Validator.Path, "\x1b\x07") {
		t.Errorf("event: %+v", got)
	}
}
