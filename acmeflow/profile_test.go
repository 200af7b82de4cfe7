package acmeflow

import (
	"errors"
	"testing"

	"github.com/go-acme/lego/v4/acme"
)

// TestChooseProfile: Let's Encrypt must offer shortlived; a CA that
// advertises no profiles at all (step-ca) is ordered from without one; a
// CA that advertises profiles but not the one asked for is refused.
func TestChooseProfile(t *testing.T) {
	none := acme.Directory{}
	le := acme.Directory{Meta: acme.Meta{Profiles: map[string]string{"classic": "90 days", "shortlived": "160 hours"}}}
	noShort := acme.Directory{Meta: acme.Meta{Profiles: map[string]string{"default": "1 year"}}}
	for _, c := range []struct {
		name    string
		dir     acme.Directory
		req     Request
		want    string
		refused bool
	}{
		{"le", le, Request{PublicCA: true}, ProfileShortlived, false},
		{"le without profiles", none, Request{PublicCA: true}, "", true},
		{"private without profiles", none, Request{}, "", false},
		{"private without profiles, renewal.json says shortlived", none, Request{Profile: ProfileShortlived}, "", false},
		{"private without profiles, another profile asked", none, Request{Profile: "tlsserver"}, "", true},
		{"private with profiles but no shortlived", noShort, Request{}, "", true},
		{"private with shortlived", le, Request{}, ProfileShortlived, false},
	} {
		got, err := chooseProfile(c.dir, c.req)
		if got != c.want || (err != nil) != c.refused || (err != nil && !errors.Is(err, ErrNoShortlived)) {
			t.Errorf("%s: got %q, %v; want %q, refused %v", c.name, got, err, c.want, c.refused)
		}
	}
}
