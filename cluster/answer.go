package cluster

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
)

// Answerer serves the CA's validators from the cluster's store: whichever
// machine a validator reaches answers with the key authorization the
// issuing machine published (http-01 by token, tls-alpn-01 by the address
// in the SNI). It holds nothing of its own: no answer outlives its lease
// in etcd.
type Answerer struct {
	Store *Store
	// Seen is told of every validator request (nil: nobody).
	Seen func(remote, what string, answered bool)
}

const (
	acmePath = "/.well-known/acme-challenge/"
	// Bounds on what a validator (or anyone on the internet) can make the
	// agent hold: a request line and headers, the time to send them, and
	// a handshake.
	maxHeaderBytes   = 8 << 10
	readHeaderLimit  = 10 * time.Second
	handshakeLimit   = 10 * time.Second
	storeQueryLimit  = 5 * time.Second
	acmeTLSALPNProto = "acme-tls/1"
)

// ServeHTTP answers http-01 from the store.
func (a *Answerer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	token, ok := strings.CutPrefix(r.URL.Path, acmePath)
	if !ok || r.Method != http.MethodGet && r.Method != http.MethodHead {
		http.NotFound(w, r)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), storeQueryLimit)
	defer cancel()
	ka, found, err := a.Store.Challenge(ctx, "http-01", token)
	a.seen(r.RemoteAddr, "http-01 "+token, found && err == nil)
	if err != nil {
		// The store is away: say so to the validator as a server error,
		// which Let's Encrypt reports as such (never a wrong answer).
		http.Error(w, "challenge store unavailable", http.StatusServiceUnavailable)
		return
	}
	if !found {
		http.NotFound(w, r)
		return
	}
	w.Header().Set("Content-Type", "text/plain")
	_, _ = w.Write([]byte(ka))
}

func (a *Answerer) seen(remote, what string, answered bool) {
	if a.Seen != nil {
		a.Seen(remote, what, answered)
	}
}

// TLSConfig answers tls-alpn-01 from the store; other handshakes fail.
func (a *Answerer) TLSConfig() *tls.Config {
	return &tls.Config{
		NextProtos: []string{acmeTLSALPNProto},
		GetCertificate: func(hi *tls.ClientHelloInfo) (*tls.Certificate, error) {
			acme := false
			for _, p := range hi.SupportedProtos {
				if p == acmeTLSALPNProto {
					acme = true
				}
			}
			addr, ok := acmeflow.AddrFromReverseName(strings.TrimSuffix(strings.ToLower(hi.ServerName), "."))
			if !acme || !ok {
				return nil, errors.New("not a tls-alpn-01 validation")
			}
			ctx, cancel := context.WithTimeout(hi.Context(), storeQueryLimit)
			defer cancel()
			ka, found, err := a.Store.Challenge(ctx, "tls-alpn-01", addr.String())
			remote := ""
			if hi.Conn != nil {
				remote = hi.Conn.RemoteAddr().String()
			}
			a.seen(remote, "tls-alpn-01 "+addr.String(), found && err == nil)
			if err != nil || !found {
				return nil, errors.New("no answer published for " + addr.String())
			}
			return acmeflow.TLSALPNCertificate(addr, ka)
		},
		MinVersion: tls.VersionTLS12,
	}
}

// Serve answers on the given listeners until ctx ends: httpL for
// http-01 (nil: none), tlsL for tls-alpn-01 (nil: none).
func (a *Answerer) Serve(ctx context.Context, httpL, tlsL net.Listener) error {
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	if httpL != nil {
		srv := &http.Server{Handler: a, ReadHeaderTimeout: readHeaderLimit, ReadTimeout: readHeaderLimit,
			WriteTimeout: storeQueryLimit + time.Second, IdleTimeout: 30 * time.Second, MaxHeaderBytes: maxHeaderBytes}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(httpL); err != nil && !errors.Is(err, http.ErrServerClosed) {
				errs <- err
			}
		}()
		go func() { <-ctx.Done(); _ = srv.Close() }()
	}
	if tlsL != nil {
		cfg := a.TLSConfig()
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				c, err := tlsL.Accept()
				if err != nil {
					if ctx.Err() == nil {
						errs <- err
					}
					return
				}
				go func() {
					defer c.Close()
					_ = c.SetDeadline(time.Now().Add(handshakeLimit))
					tc := tls.Server(c, cfg)
					// The validator only needs the handshake (RFC 8737
					// section 3): it closes the connection after it.
					_ = tc.HandshakeContext(ctx)
				}()
			}
		}()
		go func() { <-ctx.Done(); _ = tlsL.Close() }()
	}
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}
