package store

import (
	"strings"
	"testing"

	"github.com/ipcert/ipcert/internal/spec"
)

func TestFind(t *testing.T) {
	s, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Find(Query{}); err == nil || !strings.Contains(err.Error(), "no certificates") {
		t.Errorf("empty store: %v", err)
	}
	add := func(name, verify string, serials ...int64) {
		t.Helper()
		for _, sn := range serials {
			n, err := s.SaveVersion(name, testPair(t, sn))
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Activate(name, n); err != nil {
				t.Fatal(err)
			}
		}
		r := &Renewal{Issuance: spec.Issuance{Identifiers: []string{"127.0.0.1"}, CA: "local", Challenge: "http-01", VerifyAddr: verify}, Name: name, Directory: "https://127.0.0.1/dir"}
		if err := s.SaveRenewal(r); err != nil {
			t.Fatal(err)
		}
	}
	add("alpn", "", 1)
	if f, err := s.Find(Query{}); err != nil || f.Name != "alpn" || f.By != "only certificate" {
		t.Errorf("only one: %+v %v", f, err)
	}
	add("ren2", "127.0.0.1:18449", 2, 3)
	leaf := func(name string, n int) Query {
		v, err := s.LoadVersion(name, n)
		if err != nil {
			t.Fatal(err)
		}
		return Query{Arg: "127.0.0.1:18449", Served: v.Leaf}
	}
	for _, c := range []struct {
		q        Query
		name, by string
	}{
		{Query{Arg: "ren2"}, "ren2", "name"},
		{Query{Arg: "127.0.0.1:18449"}, "ren2", "verify address"},
		{Query{Arg: "127.0.0.1", Port: 18449}, "ren2", "verify address"},
		{Query{Arg: "127.0.0.1"}, "alpn", "address"},    // :443, named by neither
		{leaf("alpn", 1), "alpn", "served certificate"}, // served beats the verify address
		{leaf("ren2", 1), "ren2", "earlier version"},
		{Query{Arg: "::1"}, "", ""},
	} {
		f, err := s.Find(c.q)
		if err != nil || f.Name != c.name || f.By != c.by {
			t.Errorf("%+v: got %+v %v, want %s by %q", c.q, f, err, c.name, c.by)
		}
	}
	if f, _ := s.Find(Query{Arg: "127.0.0.1"}); !f.Ambiguous() || strings.Join(f.Candidates, ",") != "alpn,ren2" {
		t.Errorf("ambiguous: %+v", f)
	}
	for arg, want := range map[string]string{"nope": "no certificate named", "a;b": "neither a certificate name"} {
		if _, err := s.Find(Query{Arg: arg}); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: %v", arg, err)
		}
	}
	if _, err := s.Find(Query{}); err == nil || !strings.Contains(err.Error(), "alpn, ren2") {
		t.Errorf("several, no argument: %v", err)
	}
}
