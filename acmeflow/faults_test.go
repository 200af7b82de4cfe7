package acmeflow

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ipcert/ipcert/internal/localca"
	"github.com/ipcert/ipcert/internal/store"
)

// faultyCA is a TLS proxy in front of Pebble that can fail on demand: the
// faults of a real CA or of the network in between.
type faultyCA struct {
	mode  atomic.Value // "ok", "503", "stall", "html502"
	srv   *httptest.Server
	ca    *testCA
	count atomic.Int64
}

func newFaultyCA(t *testing.T) *faultyCA {
	t.Helper()
	f := &faultyCA{ca: startCA(t, localca.Options{})}
	f.mode.Store("ok")
	target, _ := url.Parse(f.ca.DirectoryURL())
	origin := target.Scheme + "://" + target.Host
	rp := &httputil.ReverseProxy{
		Rewrite: func(r *httputil.ProxyRequest) {
			r.SetURL(&url.URL{Scheme: target.Scheme, Host: target.Host})
			// Pebble checks the JWS "url" against the Host it was asked for.
			r.Out.Host = r.In.Host
		},
		Transport: f.ca.HTTPClient().Transport,
		ModifyResponse: func(resp *http.Response) error {
			// Pebble's documents and headers name its own origin; point
			// them at the proxy so every request passes through it.
			self := f.srv.URL
			for _, h := range []string{"Location", "Link"} {
				for i, v := range resp.Header.Values(h) {
					resp.Header[h][i] = strings.ReplaceAll(v, origin, self)
				}
			}
			body, err := io.ReadAll(resp.Body)
			resp.Body.Close()
			if err != nil {
				return err
			}
			body = bytes.ReplaceAll(body, []byte(origin), []byte(self))
			resp.Body = io.NopCloser(bytes.NewReader(body))
			resp.ContentLength = int64(len(body))
			resp.Header.Set("Content-Length", strconv.Itoa(len(body)))
			return nil
		},
	}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.count.Add(1)
		switch f.mode.Load().(string) {
		case "503":
			w.Header().Set("Retry-After", "120")
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusServiceUnavailable)
			io.WriteString(w, "<html><body><h1>503 Service Temporarily Unavailable</h1></body></html>")
			return
		case "stall":
			<-r.Context().Done()
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *faultyCA) request(idents []netip.Addr) Request {
	req := f.ca.request(idents, ChallengeHTTP01)
	req.Directory = f.srv.URL + "/dir"
	hc := f.srv.Client()
	hc.Timeout = 2 * time.Second
	req.HTTPClient = hc
	return req
}

func TestFaultCA503ThenRecovers(t *testing.T) {
	f := newFaultyCA(t)
	e := newEngine(t)
	idents := mustAddrs("127.0.0.1")
	if _, err := e.Issue(context.Background(), f.request(idents), IssueOptions{}); err != nil {
		t.Fatalf("through the proxy: %v", err)
	}
	before, _ := e.Store.CurrentVersion("127.0.0.1")

	f.mode.Store("503")
	_, err := e.Issue(context.Background(), f.request(idents), IssueOptions{})
	p := ProblemOf(err)
	if p == nil || p.Status != 503 || p.RetryAfter != 120*time.Second || !strings.Contains(p.Detail, "503") {
		t.Fatalf("want a 503 problem with Retry-After 120s, got %v (%#v)", err, p)
	}
	if after, _ := e.Store.CurrentVersion("127.0.0.1"); after.N != before.N {
		t.Fatalf("current moved during the outage")
	}

	f.mode.Store("ok")
	if _, err := e.Issue(context.Background(), f.request(idents), IssueOptions{}); err != nil {
		t.Fatalf("after the outage: %v", err)
	}
}

func TestFaultCAStallsIsBounded(t *testing.T) {
	f := newFaultyCA(t)
	e := newEngine(t)
	f.mode.Store("stall")
	start := time.Now()
	_, err := e.Issue(context.Background(), f.request(mustAddrs("127.0.0.1")), IssueOptions{})
	if err == nil {
		t.Fatal("a stalled CA must fail")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("took %v with a 2 s client timeout", d)
	}
	var ae *Error
	if !errors.As(err, &ae) || ae.Step != StepDirectory {
		t.Fatalf("want a directory-step error, got %v", err)
	}
}

func TestFaultCAUnreachable(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close() // nothing listens here now
	e := newEngine(t)
	_, err = e.Issue(context.Background(), Request{
		Identifiers: mustAddrs("127.0.0.1"), Directory: "https://" + addr + "/dir",
		Challenge: ChallengeHTTP01, AgreeTOS: true,
	}, IssueOptions{})
	var ae *Error
	if !errors.As(err, &ae) || ae.Step != StepDirectory || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("got %v", err)
	}
	if _, err := e.Store.CurrentVersion("127.0.0.1"); !errors.Is(err, store.ErrNoCurrent) {
		t.Fatalf("unexpected current: %v", err)
	}
}

// TestPollRetryAfterCapped: a poll's Retry-After of an hour is waited for
// at most MaxRetryAfterSleep at a time (renew --force once slept on it
// for the hour, holding the lock).
func TestPollRetryAfterCapped(t *testing.T) {
	p := newPoller()
	if d := p.delay(time.Hour); d != MaxRetryAfterSleep {
		t.Fatalf("Retry-After 1h: waited %s, want %s", d, MaxRetryAfterSleep)
	}
	if d := p.delay(2 * time.Second); d != 2*time.Second {
		t.Fatalf("Retry-After 2s: waited %s", d)
	}
}
