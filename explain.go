package main

import (
	"fmt"
	"io"
)

// explainFailure prints what a person should do about a failed issuance.
// The diagnosis catalogue (acmeflow.Diagnose) refines this.
func explainFailure(w io.Writer, err error) {
	fmt.Fprintln(w, "Run \"ipcert doctor\" for an explanation and a re-check, or \"ipcert preflight\" to test ports, NAT and firewalls.")
}
