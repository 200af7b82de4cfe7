package cli

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	"github.com/ipcert/ipcert/preflight"
)

// detectPublicAddrs finds this machine's public addresses for --ip auto,
// with the same sources as `ipcert preflight` (overridable through the
// IPCERT_ECHO4/ECHO6/DNS4/DNS6/STUN4/STUN6 variables, comma-separated).
// Sources that disagree stop the run: certifying the wrong address wastes
// a rate-limited order (docs/letsencrypt.md), so the user must choose.
func detectPublicAddrs(ctx context.Context, s stdio) ([]netip.Addr, error) {
	env, err := publicEnv(s.Env)
	if err != nil {
		return nil, err
	}
	pub := preflight.DetectPublic(ctx, env)
	var out []netip.Addr
	for _, f := range []preflight.FamilyResult{pub.V4, pub.V6} {
		if f.Disagree {
			var said []string
			for _, a := range f.Sources {
				if a.Addr.IsValid() {
					said = append(said, fmt.Sprintf("%s says %s", a.Source, a.Addr))
				}
			}
			return nil, fmt.Errorf("the %s sources disagree about this machine's public address (%s); give the right one with --ip ADDR", f.Family, strings.Join(said, "; "))
		}
		if f.Addr.IsValid() {
			out = append(out, f.Addr)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no public address found: no echo, DNS or STUN source answered (is this machine offline?); run ipcert preflight to see each source, or give the address with --ip ADDR")
	}
	return out, nil
}

// publicEnv is preflight's environment with the public-address sources
// overridden by the IPCERT_ECHO4/ECHO6/DNS4/DNS6/STUN4/STUN6 variables
// (comma-separated), as --ip auto and the wizard read them.
func publicEnv(getenv func(string) string) (preflight.Env, error) {
	env := preflight.DefaultEnv()
	split := func(k string) multiFlag {
		var m multiFlag
		for _, v := range strings.Split(getenv(k), ",") {
			if v = strings.TrimSpace(v); v != "" {
				m = append(m, v)
			}
		}
		return m
	}
	err := overrideEndpoints(&env, endpointFlags{
		split("IPCERT_ECHO4"), split("IPCERT_ECHO6"), split("IPCERT_DNS4"),
		split("IPCERT_DNS6"), split("IPCERT_STUN4"), split("IPCERT_STUN6"),
	})
	return env, err
}
