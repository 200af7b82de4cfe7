// Package netlimit bounds what ipcert reads from the network: every body
// (an ACME CA's, a UPnP router's, a public-address service's) is read
// through a reader that stops at a cap and fails with an error naming the
// peer and the cap, so a peer that never stops talking costs at most the
// cap, not memory until the timeout (issue 22).
package netlimit

import (
	"errors"
	"fmt"
	"io"
	"net/http"
)

// TooLargeError is a body that went past its cap.
type TooLargeError struct {
	Peer  string // host[:port] of the peer
	What  string // "response", "device description", ...
	Limit int64  // bytes
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("%s sent more than %s in one %s; ipcert stopped reading there (a real one is far smaller: check that %s is the service you meant)",
		e.Peer, Size(e.Limit), e.What, e.Peer)
}

// Size is a byte count for people: 4096 -> "4 KiB", 1<<20 -> "1 MiB".
func Size(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// IsTooLarge says err is (or wraps) a TooLargeError.
func IsTooLarge(err error) bool {
	var e *TooLargeError
	return errors.As(err, &e)
}

// Reader reads r up to limit bytes; one byte more fails with a
// *TooLargeError instead of a silent truncation.
type Reader struct {
	r    io.Reader
	left int64 // bytes still allowed, +1 to notice the excess
	err  *TooLargeError
}

// NewReader caps r at limit bytes.
func NewReader(r io.Reader, limit int64, peer, what string) *Reader {
	return &Reader{r: r, left: limit + 1, err: &TooLargeError{Peer: peer, What: what, Limit: limit}}
}

func (l *Reader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		return 0, l.err
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	if l.left <= 0 {
		// The byte past the cap arrived: drop it and fail.
		return n - 1, l.err
	}
	return n, err
}

// ReadAll reads r whole, failing past limit bytes.
func ReadAll(r io.Reader, limit int64, peer, what string) ([]byte, error) {
	return io.ReadAll(NewReader(r, limit, peer, what))
}

type body struct {
	*Reader
	c io.Closer
}

func (b body) Close() error { return b.c.Close() }

// Body caps a response body; Close closes the original.
func Body(rc io.ReadCloser, limit int64, peer, what string) io.ReadCloser {
	return body{NewReader(rc, limit, peer, what), rc}
}

// Transport caps the body of every response that passes through it.
type Transport struct {
	Base  http.RoundTripper // nil: http.DefaultTransport
	Limit int64
	What  string // what a body is, for the error: "response"
	// Peer names the peer in the error; nil: the request's host.
	Peer func(*http.Request) string
}

// RoundTrip implements http.RoundTripper.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	resp, err := base.RoundTrip(req)
	if err != nil {
		return nil, err
	}
	peer := req.URL.Host
	if t.Peer != nil {
		peer = t.Peer(req)
	}
	what := t.What
	if what == "" {
		what = "response"
	}
	if resp.ContentLength > t.Limit {
		// Announced too large: fail before reading a byte.
		resp.Body.Close()
		return nil, &TooLargeError{Peer: peer, What: what, Limit: t.Limit}
	}
	resp.Body = Body(resp.Body, t.Limit, peer, what)
	return resp, nil
}

// CloseIdleConnections passes on to the base transport, so
// http.Client.CloseIdleConnections reaches it.
func (t *Transport) CloseIdleConnections() {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if c, ok := base.(interface{ CloseIdleConnections() }); ok {
		c.CloseIdleConnections()
	}
}
