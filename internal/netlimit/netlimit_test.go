package netlimit

import (
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestReadAllAtAndPastTheCap(t *testing.T) {
	for _, c := range []struct {
		n       int
		tooLong bool
	}{{0, false}, {99, false}, {100, false}, {101, true}, {100000, true}} {
		b, err := ReadAll(strings.NewReader(strings.Repeat("x", c.n)), 100, "peer:1", "answer")
		if c.tooLong {
			var tl *TooLargeError
			if !errors.As(err, &tl) || tl.Peer != "peer:1" || tl.Limit != 100 || len(b) > 100 {
				t.Errorf("%d bytes: got %d bytes, %v; want a TooLargeError after at most 100", c.n, len(b), err)
			}
			if !strings.Contains(err.Error(), "peer:1 sent more than 100 bytes in one answer") {
				t.Errorf("message: %v", err)
			}
			continue
		}
		if err != nil || len(b) != c.n {
			t.Errorf("%d bytes: got %d bytes, %v", c.n, len(b), err)
		}
	}
}

func TestSize(t *testing.T) {
	for n, want := range map[int64]string{4096: "4 KiB", 1 << 20: "1 MiB", 256 << 10: "256 KiB", 1000: "1000 bytes"} {
		if got := Size(n); got != want {
			t.Errorf("Size(%d) = %q, want %q", n, got, want)
		}
	}
}

// The transport refuses a body announced too large before reading it, and
// cuts one that is not announced.
func TestTransport(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/announced" {
			w.Header().Set("Content-Length", "5000")
		}
		w.Write([]byte(strings.Repeat("y", 5000)))
	}))
	defer srv.Close()
	c := &http.Client{Transport: &Transport{Limit: 1000, What: "response"}}
	if _, err := c.Get(srv.URL + "/announced"); !IsTooLarge(err) {
		t.Errorf("announced 5000 bytes: %v", err)
	}
	resp, err := c.Get(srv.URL + "/chunked")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if !IsTooLarge(err) || len(b) > 1000 {
		t.Errorf("unannounced 5000 bytes: read %d, %v", len(b), err)
	}
}
