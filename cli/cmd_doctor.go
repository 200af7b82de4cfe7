package cli

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/diagnosis"
	"github.com/ipcert/ipcert/doctor"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/preflight"
)

const doctorHelp = `
ipcert doctor explains why an issuance or renewal failed, re-runs the checks
that bear on it, and can test reachability for real with an order on Let's
Encrypt STAGING (never production).

Usage:
  ipcert doctor [NAME|ADDR] [--probe] [--json]

  (no argument)  every certificate whose last attempt failed, and every
                 failed first issuance (the wizard's rehearsals too), the
                 newest first with its time and CA: the stored diagnosis,
                 then the checks again and a fresh diagnosis; a failure at
                 the CA (its name, a refusal, TLS, a timeout) is re-checked:
                 the name resolved, a connection, the directory fetched
  NAME           that certificate
  ADDR           the checks for that address (and its certificate, if any)

Examples:
  ipcert doctor                          why did the last renewal fail?
  ipcert doctor 203.0.113.7 --offline    local checks only, no network
  sudo ipcert doctor 203.0.113.7 --probe --agree-tos
                                         a real staging order: which of Let's
                                         Encrypt's validators reach this machine

--probe places an order on Let's Encrypt staging for the address, answers the
challenge with ipcert's own responder (or the certificate's web root), and
reports every validator request that arrived and from where. Staging's rate
limits are generous and its certificates are thrown away: nothing in the
store changes except the staging account. A certificate of your own ACME CA
(issued with --ca URL) is probed at that CA instead, trusting its --ca-root,
and judged by that CA's rules, not Let's Encrypt's.

Exit codes: 0 nothing wrong found; 1 a failure is stored, a check failed or
the probe failed (the output says why and what to do); 2 bad flags;
130 interrupted.
`

func init() {
	register(command{name: "doctor", summary: "explain the last failure, re-check, probe from Let's Encrypt staging", run: runDoctor})
}

type doctorFlags struct {
	commonFlags
	probe      bool
	offline    bool
	agreeTOS   bool
	challenge  string
	webroot    string
	httpListen string
	tlsListen  string
	timeout    time.Duration
	probeCA    string // hidden: IPCERT_DOCTOR_PROBE_CA=local points --probe at the local test CA
}

type doctorReport struct {
	Targets []*doctor.Target `json:"targets"`
	OK      bool             `json:"ok"`
}

func runDoctor(ctx context.Context, args []string, s stdio) error {
	// doctor replays what renewal.json kept from the network and what the
	// checks read: nothing of it may reach the terminal as control codes.
	s.Out, s.Err = termSafe(s.Out), termSafe(s.Err)
	var f doctorFlags
	fs := newFlagSet("doctor", doctorHelp, s.Out, s.Err)
	f.commonFlags.register(fs)
	fs.BoolVar(&f.probe, "probe", false, "make a real order on Let's Encrypt staging and report every validator request that arrives")
	fs.BoolVar(&f.offline, "offline", false, "only local checks: no packet leaves the machine (no public-address, NAT or router check; the validation port is probed only on addresses of this machine)")
	fs.BoolVar(&f.agreeTOS, "agree-tos", false, "with --probe: agree to the staging CA's terms of service (to register a staging account)")
	fs.StringVar(&f.challenge, "challenge", "", "with --probe for an address: http-01 (default) or tls-alpn-01")
	fs.StringVar(&f.webroot, "webroot", "", "with --probe for an address: answer http-01 through this web root")
	fs.StringVar(&f.httpListen, "http-listen", "", "with --probe: address:port of the http-01 responder (default :80)")
	fs.StringVar(&f.tlsListen, "tls-listen", "", "with --probe: address:port of the tls-alpn-01 responder (default :443)")
	fs.DurationVar(&f.timeout, "timeout", 3*time.Minute, "with --probe: give up after this long")
	// Flags may follow the NAME or ADDR: ipcert doctor 203.0.113.7 --probe.
	pos, err := parseArgs(fs, args, s.Env)
	if err != nil {
		return err
	}
	var target string
	var extra []string
	if len(pos) > 0 {
		target, extra = pos[0], pos[1:]
	}
	f.probeCA = s.Env("IPCERT_DOCTOR_PROBE_CA")
	if f.probeCA == "" {
		f.probeCA = cachoice.Staging
	}
	if f.probeCA != cachoice.Staging && f.probeCA != cachoice.Local {
		// The probe is a rehearsal: it must never spend production's rate
		// limits or create a trusted certificate (docs/letsencrypt.md: staging first).
		return usageErr("IPCERT_DOCTOR_PROBE_CA=%q: the probe runs only against staging (or the local test CA)", f.probeCA)
	}
	if len(extra) > 0 {
		return usageErr("one NAME or ADDR at most, got %q and %q", target, extra)
	}
	if f.challenge != "" && spec.Challenge(f.challenge).Check() != nil {
		return usageErr("--challenge %q: use http-01 or tls-alpn-01", f.challenge)
	}
	closeLog := setupDebugLog(f.debug, s.Err)
	defer closeLog()
	st, err := f.openStore(s.Env)
	if err != nil {
		return failure("%v", err)
	}

	targets, err := doctor.Targets(st, target, f.probe, func(err error) { fmt.Fprintf(s.Err, "ipcert doctor: %v\n", err) })
	if err != nil {
		var ue *doctor.UsageError
		if errors.As(err, &ue) {
			return usageErr("%v", err)
		}
		return failure("%v", err)
	}
	if len(targets) == 0 {
		if f.jsonOut {
			return writeJSON(s.Out, doctorReport{Targets: []*doctor.Target{}, OK: true})
		}
		fmt.Fprintln(s.Out, "No failures stored: the last attempt of every certificate succeeded.")
		fmt.Fprintln(s.Out, "To test an address: ipcert doctor ADDR (local checks), ipcert doctor ADDR --probe (a real staging order).")
		return nil
	}

	// The public-address sources as for "ipcert issue --ip auto"
	// (IPCERT_ECHO4 and the like replace the built-in lists).
	penv, err := publicEnv(s.Env)
	if err != nil {
		return usageErr("%v", err)
	}
	opts := doctor.DoctorOptions{
		Env:       &penv,
		Challenge: spec.Challenge(f.challenge), WebRoot: f.webroot, HTTPListen: f.httpListen, TLSListen: f.tlsListen,
		Offline: f.offline, ProbeCA: spec.CAChoice(f.probeCA), AgreeTOS: f.agreeTOS, Timeout: f.timeout,
		UserAgent: "ipcert/" + version + " (doctor probe)", Log: debugWriter(), StateDir: st.Root(),
	}
	rep := doctorReport{Targets: targets, OK: true}
	for _, t := range targets {
		if ctx.Err() != nil {
			break
		}
		t.Examine(ctx, &opts, s.Err)
		if f.probe {
			t.Order = t.ProbeOrder(ctx, st, &opts, s.Err)
		}
		if !t.OK() {
			rep.OK = false
		}
	}
	if ctx.Err() != nil {
		return exitWith(exitInterrupted, "interrupted")
	}
	if f.jsonOut {
		printJSON(s.Out, rep)
	} else {
		for _, t := range targets {
			printDoctorTarget(s.Out, t)
		}
	}
	if !rep.OK {
		return exitCode(exitFailure)
	}
	return nil
}

func printDoctorTarget(w io.Writer, t *doctor.Target) {
	head := strings.Join(t.Identifiers, ", ")
	if t.Name != "" {
		head = fmt.Sprintf("Certificate %q (%s)", t.Name, head)
	} else {
		head = "Address " + head
	}
	fmt.Fprintln(w, head)
	if t.Revoked != nil {
		fmt.Fprintf(w, "  REVOKED       the current certificate was revoked (%s, %s); replace it now: %s\n", t.Revoked.Reason, t.Revoked.At.Local().Format("2006-01-02 15:04 MST"), t.RenewCommand)
	}
	if t.LastError != nil {
		fmt.Fprintf(w, "  last attempt failed %s", t.LastError.Time.Local().Format("2006-01-02 15:04:05 MST"))
		if ca := cmp.Or(t.LastError.CA, t.CA); ca != "" {
			fmt.Fprintf(w, " on %s", caName(ca))
		}
		if t.Failures > 1 {
			fmt.Fprintf(w, " (%d failures in a row)", t.Failures)
		}
		fmt.Fprintln(w)
		if t.Stored != nil {
			fmt.Fprint(w, "\nAt the time:")
			diagnosis.Write(w, *t.Stored)
		} else {
			fmt.Fprintf(w, "  %s step: %s\n", t.LastError.Step, t.LastError.Detail)
		}
	} else if t.Name != "" {
		fmt.Fprintln(w, "  no failure stored: the last attempt succeeded")
	}
	if len(t.Checks) > 0 || len(t.Probes) > 0 {
		fmt.Fprintln(w, "\nChecks now:")
		for _, r := range t.Checks {
			fmt.Fprintf(w, "  %s %s: %s\n", r.Status.Mark(), r.Title, r.Summary)
			if r.Fix != "" && (r.Status == preflight.StatusFail || r.Status == preflight.StatusWarn) {
				fmt.Fprintf(w, "         fix: %s\n", r.Fix)
			}
		}
		for _, p := range t.Probes {
			fmt.Fprintf(w, "  [probe] %s: %s (from this machine; hairpin NAT can make it differ from the internet's view)\n", p.Target, p.Detail)
		}
	}
	if c := t.CACheck; c != nil {
		fmt.Fprintf(w, "\nThe CA again (%s):\n", c.Directory)
		for _, s := range c.Steps {
			mark := "[FAIL]"
			if s.OK {
				mark = "[ ok ]"
			}
			fmt.Fprintf(w, "  %s %s: %s\n", mark, s.Name, s.Detail)
		}
		if c.OK {
			fmt.Fprintln(w, "  The CA answers now: the cause has passed; run the command again.")
		}
	}
	if t.Now != nil && (t.Stored == nil || t.Now.Code != t.Stored.Code || t.Now.Cause != t.Stored.Cause) {
		fmt.Fprint(w, "\nWith today's evidence:")
		diagnosis.Write(w, *t.Now)
	}
	if o := t.Order; o != nil {
		fmt.Fprintf(w, "\nProbe order on %s (%d ms): ", o.CA, o.DurationMS)
		if o.OK {
			fmt.Fprintln(w, "validation SUCCEEDED: the CA's validators reach this machine.")
		} else {
			fmt.Fprintln(w, "validation FAILED.")
		}
		fmt.Fprintf(w, "  %d validator request(s) reached our responder", len(o.Validators))
		switch {
		case len(o.Validators) == 0 && o.WebRoot != "":
			fmt.Fprintf(w, ": none can be seen, your web server answered from %s.\n", o.WebRoot)
		case len(o.Validators) == 0 && !o.OK:
			fmt.Fprintln(w, ": none at all means the packets never arrived (or another server took them).")
		case len(o.Validators) == 0:
			fmt.Fprintln(w, ".")
		default:
			fmt.Fprintln(w, ":")
		}
		for _, v := range o.Validators {
			fmt.Fprintf(w, "    %s %s\n", v.Time.UTC().Format("15:04:05.000"), v)
		}
		if o.Diagnosis != nil {
			diagnosis.Write(w, *o.Diagnosis)
		}
	}
	fmt.Fprintln(w)
}

// caName names a CA choice briefly: Let's Encrypt staging or production,
// the local test CA, or the URL.
func caName(ca spec.CAChoice) string {
	switch ca {
	case cachoice.Staging:
		return "Let's Encrypt staging"
	case cachoice.Production:
		return "Let's Encrypt production"
	case cachoice.Local:
		return "the local test CA"
	}
	return string(ca)
}
