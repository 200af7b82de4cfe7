package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// explainFailure prints what a person should do about a failed issuance.
// The diagnosis catalogue (acmeflow.Diagnose) refines this.
func explainFailure(w io.Writer, err error) {
	fmt.Fprintln(w, "Run \"ipcert doctor\" for an explanation and a re-check, or \"ipcert preflight\" to test ports, NAT and firewalls.")
}

// detectPublicAddrs finds this machine's public addresses for --ip auto.
func detectPublicAddrs(ctx context.Context, s stdio) ([]netip.Addr, error) {
	return nil, errors.New("public address detection is not available yet; give the address with --ip ADDR")
}
