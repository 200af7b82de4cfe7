package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
)

// issueEvidence is what `ipcert issue` knows about its own run: the
// challenge, the web root, and the ports the CA's validator knocks on.
func issueEvidence(req *acmeflow.Request, ca *cachoice.CA) acmeflow.Evidence {
	ev := acmeflow.Evidence{Challenge: req.Challenge, WebRoot: req.WebRoot, HTTPPort: 80, TLSPort: 443, Now: time.Now()}
	if ca != nil {
		ev.CA = ca.Choice
		if ca.Local {
			// The local CA validates on the responder's ports; with --webroot
			// it knocks on --webroot-port, which the CA value does not carry.
			ev.HTTPPort, ev.TLSPort = acmeflow.PortOf(ca.HTTPListen), acmeflow.PortOf(ca.TLSListen)
			if req.WebRoot != "" {
				ev.HTTPPort = 0
			}
		}
	}
	return ev
}

// explainFailure prints the diagnosis of a failed issuance on w (stderr)
// and returns it, so the caller can keep it in renewal.json. When the
// validator could not talk to the port, it first probes the port from here
// (our responder is closed by now, so the probe meets whatever else holds
// it): that tells a refused port, plain HTTP and a TLS proxy apart.
func explainFailure(w io.Writer, err error, ev acmeflow.Evidence) acmeflow.Diagnosis {
	var ae *acmeflow.Error
	if errors.As(err, &ae) && (ae.Step == acmeflow.StepChallenge && ae.Problem != nil || ae.Step == acmeflow.StepResponder) {
		explainLocalEvidence(&ev, ae)
	}
	d := acmeflow.Diagnose(err, ev)
	printDiagnosis(w, d)
	if !strings.HasPrefix(d.Command, "ipcert doctor") {
		fmt.Fprintln(w, "Run \"ipcert doctor\" to re-check this later, or \"ipcert doctor ADDR --probe\" for a real test from Let's Encrypt staging.")
	}
	return d
}

// explainLocalEvidence gathers, right after a failure, the local facts
// that decide between causes: the host firewall's verdict and the owner of
// the validation port (preflight's local checks only, no network), and a
// probe of the port for challenge failures.
func explainLocalEvidence(ev *acmeflow.Evidence, ae *acmeflow.Error) {
	port := ev.HTTPPort
	if ev.Challenge == acmeflow.ChallengeTLSALPN01 {
		port = ev.TLSPort
	}
	if port == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var addrs []netip.Addr
	a, perr := netip.ParseAddr(ae.Identifier)
	if perr == nil {
		addrs = append(addrs, a)
	}
	rep := doctorPreflight(ctx, addrs, ev.CA == cachoice.Local, ev.HTTPPort, ev.TLSPort, true)
	doctorFillEvidence(ev, rep, ev.Challenge, port)
	if ev.Probe == nil && perr == nil && ae.Step == acmeflow.StepChallenge {
		p := acmeflow.ProbeValidationPort(ctx, a, port, ev.Challenge)
		ev.Probe = &p
	}
}

// printDiagnosis writes a diagnosis for people: what, why, the evidence,
// the fix and the command, and when to retry.
func printDiagnosis(w io.Writer, d acmeflow.Diagnosis) {
	where := ""
	if d.Step != "" {
		where = fmt.Sprintf(" (at the %s step", d.Step)
		if d.Identifier != "" {
			where += ", " + d.Identifier
		}
		where += ")"
	}
	fmt.Fprintf(w, "\nDiagnosis: %s%s [%s]\n", d.Title, where, d.Code)
	if d.Problem != nil {
		fmt.Fprintf(w, "  CA said:  %s\n", d.Problem.String())
	} else if d.Error != "" {
		fmt.Fprintf(w, "  error:    %s\n", d.Error)
	}
	fmt.Fprintf(w, "  cause:    %s\n", d.Cause)
	for i, e := range d.Evidence {
		label := "evidence: "
		if i > 0 {
			label = "          "
		}
		fmt.Fprintf(w, "  %s%s\n", label, e)
	}
	fmt.Fprintf(w, "  fix:      %s\n", d.Fix)
	if d.Command != "" {
		fmt.Fprintf(w, "  command:  %s\n", d.Command)
	}
	retry := "no: " + d.Retry
	if d.Retryable {
		retry = "yes, " + d.Retry
	}
	fmt.Fprintf(w, "  retry:    %s\n", retry)
}
