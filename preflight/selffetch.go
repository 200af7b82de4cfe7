package preflight

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
)

// selfFetchPath is outside /.well-known/acme-challenge/ so that a web
// server's challenge location never serves it by mistake.
const selfFetchPath = "/.well-known/ipcert-preflight/"

// checkSelfFetch serves a random token on the self-fetch port and fetches
// it through each public address. It is advisory: from inside a LAN,
// hairpin NAT makes the answer prove nothing either way (docs/letsencrypt.md); only an
// outside validator is authoritative.
func (st *state) checkSelfFetch(ctx context.Context, env Env) Result {
	r := Result{Advisory: true}
	if !st.opts.SelfFetch {
		r.Status, r.Summary = StatusSkipped, "not asked (--self-fetch)"
		return r
	}
	addrs := st.addrs()
	if len(addrs) == 0 {
		r.Status, r.Summary = StatusSkipped, "no public address to fetch through"
		return r
	}
	buf := make([]byte, 16)
	_, _ = rand.Read(buf)
	token := hex.EncodeToString(buf)
	port := st.opts.SelfFetchPort
	var served []string
	var lns []net.Listener
	for _, network := range []string{"tcp4", "tcp6"} {
		ln, err := env.Listen(ctx, network, net.JoinHostPort(map[string]string{"tcp4": "0.0.0.0", "tcp6": "::"}[network], strconv.Itoa(port)))
		if err != nil {
			r.Evidence = append(r.Evidence, fmt.Sprintf("listen %s port %d: %s", network, port, shortErr(err)))
			continue
		}
		lns = append(lns, ln)
		served = append(served, ln.Addr().String())
	}
	if len(lns) == 0 {
		r.Status, r.Summary = StatusSkipped, fmt.Sprintf("cannot listen on port %d (held, or no privilege)", port)
		return r
	}
	hits := make(chan string, 16)
	srv := &http.Server{
		ReadHeaderTimeout: 2 * time.Second,
		Handler: http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
			select {
			case hits <- req.RemoteAddr:
			default:
			}
			if req.URL.Path != selfFetchPath+token {
				http.NotFound(w, req)
				return
			}
			_, _ = io.WriteString(w, token)
		}),
	}
	for _, ln := range lns {
		go func() { _ = srv.Serve(ln) }()
	}
	defer srv.Close()
	r.Evidence = append(r.Evidence, "serving a token on "+strings.Join(served, ", "))
	ok := 0
	for _, a := range addrs {
		network := "tcp4"
		if a.Is6() {
			network = "tcp6"
		}
		u := "http://" + netip.AddrPortFrom(a, uint16(port)).String() + selfFetchPath + token
		err := fetchToken(ctx, env.httpClient(network, 2*time.Second), u, token)
		if err != nil {
			r.Evidence = append(r.Evidence, u+": "+shortErr(err))
			continue
		}
		ok++
		r.Evidence = append(r.Evidence, u+": the token came back")
	}
	select {
	case from := <-hits:
		r.Evidence = append(r.Evidence, "first request came from "+from)
	default:
	}
	switch {
	case ok == len(addrs):
		r.Status = StatusOK
		r.Summary = "the token came back through " + acmeflow.JoinAddrs(addrs) + " (from inside: proves nothing about the outside, hairpin NAT)"
	default:
		r.Status = StatusWarn
		r.Summary = fmt.Sprintf("%d of %d addresses did not return the token; from inside a LAN that may only mean the router does no hairpin NAT", len(addrs)-ok, len(addrs))
		r.Fix = "the authoritative test is from outside: " + RehearsalCommand(addrs)
	}
	return r
}

func fetchToken(ctx context.Context, c *http.Client, u, token string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 256))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %s (another server answered)", resp.Status)
	}
	if strings.TrimSpace(string(b)) != token {
		return errors.New("a different body came back (another server answered)")
	}
	return nil
}
