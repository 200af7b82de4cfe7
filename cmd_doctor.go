package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/acmeflow/store"
	"github.com/ipcert/ipcert/preflight"
)

const doctorHelp = `
ipcert doctor explains why an issuance or renewal failed, re-runs the checks
that bear on it, and can test reachability for real with an order on Let's
Encrypt STAGING (never production).

Usage:
  ipcert doctor [NAME|ADDR] [--probe] [--json]

  (no argument)  every certificate whose last attempt failed: the stored
                 diagnosis, then the checks again and a fresh diagnosis
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
store changes except the staging account.

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

// doctorTarget is one thing to examine: a stored certificate, an address,
// or both.
type doctorTarget struct {
	Name        string         `json:"name,omitempty"`
	Identifiers []string       `json:"identifiers"`
	CA          string         `json:"ca,omitempty"`
	LastError   *store.Failure `json:"last_error,omitempty"`
	Failures    int            `json:"consecutive_failures,omitempty"`
	// Stored is the diagnosis made when the failure happened.
	Stored *acmeflow.Diagnosis `json:"stored_diagnosis,omitempty"`
	// Now is the same failure diagnosed again with today's evidence.
	Now    *acmeflow.Diagnosis `json:"diagnosis,omitempty"`
	Checks []preflight.Result  `json:"checks,omitempty"`
	Probes []acmeflow.Probe    `json:"local_probes,omitempty"`
	Order  *doctorOrder        `json:"probe_order,omitempty"`

	renewal *store.Renewal
	addrs   []netip.Addr
}

// doctorOrder is the outcome of --probe.
type doctorOrder struct {
	CA         string                      `json:"ca"`
	OK         bool                        `json:"ok"`
	Validators []acmeflow.ValidatorRequest `json:"validators"`
	Diagnosis  *acmeflow.Diagnosis         `json:"diagnosis,omitempty"`
	DurationMS int64                       `json:"duration_ms"`
	WebRoot    string                      `json:"webroot,omitempty"`
}

type doctorReport struct {
	Targets []*doctorTarget `json:"targets"`
	OK      bool            `json:"ok"`
}

func runDoctor(ctx context.Context, args []string, s stdio) int {
	// doctor replays what renewal.json kept from the network and what the
	// checks read: nothing of it may reach the terminal as control codes.
	s.Out, s.Err = termSafe(s.Out), termSafe(s.Err)
	var f doctorFlags
	fs := newFlagSet("doctor", doctorHelp, s.Out, s.Err)
	f.commonFlags.register(fs)
	fs.BoolVar(&f.probe, "probe", false, "make a real order on Let's Encrypt staging and report every validator request that arrives")
	fs.BoolVar(&f.offline, "offline", false, "only local checks: skip the public-address, NAT and router checks that use the network")
	fs.BoolVar(&f.agreeTOS, "agree-tos", false, "with --probe: agree to the staging CA's terms of service (to register a staging account)")
	fs.StringVar(&f.challenge, "challenge", "", "with --probe for an address: http-01 (default) or tls-alpn-01")
	fs.StringVar(&f.webroot, "webroot", "", "with --probe for an address: answer http-01 through this web root")
	fs.StringVar(&f.httpListen, "http-listen", "", "with --probe: address:port of the http-01 responder (default :80)")
	fs.StringVar(&f.tlsListen, "tls-listen", "", "with --probe: address:port of the tls-alpn-01 responder (default :443)")
	fs.DurationVar(&f.timeout, "timeout", 3*time.Minute, "with --probe: give up after this long")
	if done, code := parseFlags(fs, args, s.Env, s.Err); done {
		return code
	}
	// Flags may follow the NAME or ADDR: ipcert doctor 203.0.113.7 --probe.
	var target string
	var extra []string
	if fs.NArg() > 0 {
		target = fs.Arg(0)
		if rest := fs.Args()[1:]; len(rest) > 0 {
			if done, code := parseFlags(fs, rest, s.Env, s.Err); done {
				return code
			}
			extra = fs.Args()
		}
	}
	f.probeCA = s.Env("IPCERT_DOCTOR_PROBE_CA")
	if f.probeCA == "" {
		f.probeCA = cachoice.Staging
	}
	if f.probeCA != cachoice.Staging && f.probeCA != cachoice.Local {
		// The probe is a rehearsal: it must never spend production's rate
		// limits or create a trusted certificate (FACTS.md: staging first).
		fmt.Fprintf(s.Err, "ipcert doctor: IPCERT_DOCTOR_PROBE_CA=%q: the probe runs only against staging (or the local test CA)\n", f.probeCA)
		return exitUsage
	}
	if len(extra) > 0 {
		fmt.Fprintf(s.Err, "ipcert doctor: one NAME or ADDR at most, got %q and %q\n", target, extra)
		return exitUsage
	}
	if f.challenge != "" && f.challenge != acmeflow.ChallengeHTTP01 && f.challenge != acmeflow.ChallengeTLSALPN01 {
		fmt.Fprintf(s.Err, "ipcert doctor: --challenge %q: use http-01 or tls-alpn-01\n", f.challenge)
		return exitUsage
	}
	closeLog := setupDebugLog(f.debug, s.Err)
	defer closeLog()
	st, err := f.openStore(s.Env)
	if err != nil {
		fmt.Fprintf(s.Err, "ipcert doctor: %v\n", err)
		return exitFailure
	}

	targets, code := doctorTargets(st, target, f.probe, s)
	if code != exitOK {
		return code
	}
	if len(targets) == 0 {
		if f.jsonOut {
			return printJSON(s.Out, doctorReport{Targets: []*doctorTarget{}, OK: true})
		}
		fmt.Fprintln(s.Out, "No failures stored: the last attempt of every certificate succeeded.")
		fmt.Fprintln(s.Out, "To test an address: ipcert doctor ADDR (local checks), ipcert doctor ADDR --probe (a real staging order).")
		return exitOK
	}

	rep := doctorReport{Targets: targets, OK: true}
	for _, t := range targets {
		if ctx.Err() != nil {
			break
		}
		doctorExamine(ctx, t, &f, s)
		if f.probe {
			t.Order = doctorProbeOrder(ctx, st, t, &f, s)
		}
		if !doctorTargetOK(t) {
			rep.OK = false
		}
	}
	if ctx.Err() != nil {
		fmt.Fprintln(s.Err, "ipcert doctor: interrupted")
		return exitInterrupted
	}
	if f.jsonOut {
		printJSON(s.Out, rep)
	} else {
		for _, t := range targets {
			printDoctorTarget(s.Out, t)
		}
	}
	if !rep.OK {
		return exitFailure
	}
	return exitOK
}

// doctorTargets resolves the argument: nothing (every certificate with a
// stored failure), a certificate name, or an address.
func doctorTargets(st *store.Store, arg string, probe bool, s stdio) ([]*doctorTarget, int) {
	names, err := st.Names()
	if err != nil {
		fmt.Fprintf(s.Err, "ipcert doctor: %v\n", err)
		return nil, exitFailure
	}
	load := func(name string) (*doctorTarget, error) {
		r, err := st.LoadRenewal(name)
		if err != nil {
			return nil, err
		}
		t := &doctorTarget{Name: name, Identifiers: r.Identifiers, CA: r.CA, LastError: r.LastError, Failures: r.Failures, renewal: r}
		for _, id := range r.Identifiers {
			if a, err := netip.ParseAddr(id); err == nil {
				t.addrs = append(t.addrs, a)
			}
		}
		return t, nil
	}
	// First issuances that failed have no renewal.json; the store keeps
	// their failure under the name they would have had.
	firsts, err := st.FirstFailures()
	if err != nil {
		fmt.Fprintf(s.Err, "ipcert doctor: %v\n", err)
	}
	first := func(ff store.FirstFailure) *doctorTarget {
		t := &doctorTarget{Name: ff.Name, Identifiers: ff.Identifiers, LastError: ff.LastError, Failures: 1}
		for _, id := range ff.Identifiers {
			if a, err := netip.ParseAddr(id); err == nil {
				t.addrs = append(t.addrs, a)
			}
		}
		return t
	}
	if arg == "" {
		var out []*doctorTarget
		for _, n := range names {
			t, err := load(n)
			if err != nil {
				fmt.Fprintf(s.Err, "ipcert doctor: %s: %v\n", n, err)
				continue
			}
			if t.LastError != nil {
				out = append(out, t)
			}
		}
		for _, ff := range firsts {
			out = append(out, first(ff))
		}
		if len(out) == 0 && probe {
			fmt.Fprintln(s.Err, "ipcert doctor: --probe needs an address or a certificate name: ipcert doctor ADDR --probe")
			return nil, exitUsage
		}
		return out, exitOK
	}
	// The same lookup as verify, snippet and status (store.Find): a name,
	// else the certificate for the address.
	found, ferr := st.Find(store.Query{Arg: arg})
	if ferr == nil && found.By == "name" {
		t, err := load(found.Name)
		if err != nil {
			fmt.Fprintf(s.Err, "ipcert doctor: %v\n", err)
			return nil, exitFailure
		}
		return []*doctorTarget{t}, exitOK
	}
	for _, ff := range firsts {
		if ff.Name == arg {
			return []*doctorTarget{first(ff)}, exitOK
		}
	}
	a, err := acmeflow.ParseIP(arg)
	if err != nil {
		fmt.Fprintf(s.Err, "ipcert doctor: %q is neither a certificate in %s nor an IP address (%v)\n", arg, st.Root(), err)
		return nil, exitUsage
	}
	// An address: its certificate's stored failure too, when one names it.
	if ferr == nil && found.Name != "" {
		if t, err := load(found.Name); err == nil {
			t.addrs = []netip.Addr{a}
			return []*doctorTarget{t}, exitOK
		}
	}
	for _, ff := range firsts {
		if slices.Contains(ff.Identifiers, a.String()) {
			t := first(ff)
			t.addrs = []netip.Addr{a}
			return []*doctorTarget{t}, exitOK
		}
	}
	return []*doctorTarget{{Identifiers: []string{a.String()}, addrs: []netip.Addr{a}}}, exitOK
}

// doctorSettings are the challenge settings of a target: its renewal.json,
// overridden by flags.
func doctorSettings(t *doctorTarget, f *doctorFlags) (challenge, webroot, httpListen, tlsListen string, local bool) {
	if r := t.renewal; r != nil {
		challenge, webroot, httpListen, tlsListen = r.Challenge, r.WebRoot, r.HTTPListen, r.TLSListen
		local = r.CA == cachoice.Local
	} else {
		// A bare address is judged for the CA the probe would use.
		local = f.probeCA == cachoice.Local
	}
	if f.challenge != "" {
		challenge = f.challenge
	}
	if f.webroot != "" {
		webroot = f.webroot
	}
	if f.httpListen != "" {
		httpListen = f.httpListen
	}
	if f.tlsListen != "" {
		tlsListen = f.tlsListen
	}
	if challenge == "" {
		challenge = acmeflow.ChallengeHTTP01
	}
	return
}

// doctorPorts are where the validator knocks: 80/443 for Let's Encrypt,
// the responder's own ports for the local test CA.
func doctorPorts(local bool, httpListen, tlsListen string) (int, int) {
	httpPort, tlsPort := 80, 443
	if local {
		if p := acmeflow.PortOf(httpListen); p != 0 {
			httpPort = p
		}
		if p := acmeflow.PortOf(tlsListen); p != 0 {
			tlsPort = p
		}
	}
	return httpPort, tlsPort
}

// doctorExamine re-runs the checks that bear on the target's failure and
// diagnoses it again with what they found.
func doctorExamine(ctx context.Context, t *doctorTarget, f *doctorFlags, s stdio) {
	challenge, webroot, httpListen, tlsListen, local := doctorSettings(t, f)
	httpPort, tlsPort := doctorPorts(local, httpListen, tlsListen)
	if le := t.LastError; le != nil && le.Challenge != "" && f.challenge == "" && f.webroot == "" {
		// Check what the failed attempt used, not what the certificate
		// was first issued with.
		challenge, webroot = le.Challenge, le.WebRoot
		if le.Port != 0 && challenge == acmeflow.ChallengeTLSALPN01 {
			tlsPort = le.Port
		} else if le.Port != 0 {
			httpPort = le.Port
		}
	}
	port := httpPort
	if challenge == acmeflow.ChallengeTLSALPN01 {
		port = tlsPort
	}
	fmt.Fprintf(s.Err, "Checking %s (%s on port %d)...\n", strings.Join(t.Identifiers, ", "), challenge, port)
	rep := doctorPreflight(ctx, t.addrs, local, httpPort, tlsPort, f.offline)
	for _, r := range rep.Results {
		if r.Status != preflight.StatusSkipped || r.Summary != "" {
			t.Checks = append(t.Checks, r)
		}
	}
	ev := acmeflow.Evidence{Challenge: challenge, WebRoot: webroot, HTTPPort: httpPort, TLSPort: tlsPort, CA: t.CA, Now: time.Now()}
	doctorFillEvidence(&ev, rep, challenge, port)
	for _, a := range t.addrs {
		p := acmeflow.ProbeValidationPort(ctx, a, port, challenge)
		t.Probes = append(t.Probes, p)
		if ev.Probe == nil {
			ev.Probe = &t.Probes[len(t.Probes)-1]
		}
	}
	if t.LastError == nil {
		return
	}
	if t.LastError.Code != "" {
		stored := storedDiagnosis(*t.LastError)
		if len(t.Identifiers) == 1 {
			stored.Identifier = t.Identifiers[0]
		}
		t.Stored = &stored
	}
	err := acmeflow.ErrorFromFailure(*t.LastError)
	if t.LastError.Code != "" {
		// The record says what our responder saw; without a code it is an
		// old record that did not keep it, and the absence means nothing.
		ev.SeenKnown = true
		ev.Seen = acmeflow.ValidatorsFromFailure(*t.LastError)
	}
	if len(t.Identifiers) == 1 {
		err.Identifier = t.Identifiers[0]
	}
	d := acmeflow.Diagnose(err, ev)
	t.Now = &d
}

// storedDiagnosis turns the record kept in renewal.json back into the
// diagnosis that was printed at the time.
func storedDiagnosis(f store.Failure) acmeflow.Diagnosis {
	d := acmeflow.Diagnosis{
		Code: f.Code, Title: f.Title, Step: acmeflow.Step(f.Step), Cause: f.Cause, Fix: f.Fix, Command: f.Command,
		Retryable: f.Retryable, Evidence: f.Evidence, RetryAt: f.RetryAt,
		Challenge: f.Challenge, WebRoot: f.WebRoot, Port: f.Port,
	}
	switch {
	case !f.RetryAt.IsZero():
		d.Retry = "not before " + f.RetryAt.UTC().Format("2006-01-02 15:04:05 UTC")
	case f.Retryable:
		d.Retry = "the cause looked transient"
	default:
		d.Retry = "after the fix"
	}
	if e := acmeflow.ErrorFromFailure(f); e.Problem != nil {
		d.Problem = e.Problem
	} else {
		d.Error = f.Detail
	}
	return d
}

// doctorPreflight runs the preflight checks that bear on validation for
// the addresses. It is the one place doctor calls preflight.
func doctorPreflight(ctx context.Context, addrs []netip.Addr, local bool, httpPort, tlsPort int, offline bool) preflight.Report {
	only := []string{preflight.IDInterfaces, preflight.IDPorts, preflight.IDPrivilege, preflight.IDWebServers, preflight.IDFirewall, preflight.IDAddress}
	if !offline {
		only = append(only, preflight.IDNAT)
	}
	opts := preflight.Options{IPs: addrs, LocalCA: local, HTTPPort: httpPort, TLSPort: tlsPort, Only: only}
	return preflight.Run(ctx, preflight.DefaultEnv(), opts, nil)
}

// doctorFillEvidence copies the preflight findings that decide between
// causes into the diagnosis evidence: NAT kind, firewall rules that block
// the validation port, and who holds the port.
func doctorFillEvidence(ev *acmeflow.Evidence, rep preflight.Report, challenge string, port int) {
	ev.NAT, ev.Cloud = string(rep.NAT.Kind), rep.NAT.Cloud
	for _, v := range rep.Firewall.Verdict {
		if v.Port == port && !v.Allowed {
			ev.Firewall = append(ev.Firewall, fmt.Sprintf("%s %s port %d: %s", v.Tool, v.Family, v.Port, v.Rule))
		}
	}
	for _, p := range rep.Ports {
		if p.Port == port && !p.Free {
			who := p.Process
			if who == "" {
				who = "a process"
			}
			ev.PortOwner = fmt.Sprintf("%s (pid %d) on %s", who, p.PID, p.Local)
			break
		}
	}
}

// doctorProbeOrder places a real order on staging (or the local test CA in
// tests) for the target's addresses and records every validator request.
// It never uses production and never stores the certificate.
func doctorProbeOrder(ctx context.Context, st *store.Store, t *doctorTarget, f *doctorFlags, s stdio) *doctorOrder {
	challenge, webroot, httpListen, tlsListen, _ := doctorSettings(t, f)
	if f.probeCA == cachoice.Local {
		// The local CA knocks on the responder's port, never on 80/443.
		if httpListen == "" || strings.HasPrefix(httpListen, ":") {
			httpListen = "127.0.0.1:0"
		}
		if tlsListen == "" || strings.HasPrefix(tlsListen, ":") {
			tlsListen = "127.0.0.1:0"
		}
	}
	out := &doctorOrder{CA: f.probeCA, Validators: []acmeflow.ValidatorRequest{}, WebRoot: webroot}
	ca, err := cachoice.Open(f.probeCA, cachoice.Options{HTTPListen: httpListen, TLSListen: tlsListen, Log: debugWriter()})
	if err != nil {
		d := acmeflow.Diagnose(err, acmeflow.Evidence{})
		out.Diagnosis = &d
		return out
	}
	defer ca.Close()
	req := acmeflow.Request{
		Identifiers: t.addrs, Challenge: challenge, WebRoot: webroot, HTTPListen: httpListen, TLSListen: tlsListen,
		AgreeTOS: f.agreeTOS,
	}
	ca.Apply(&req)
	var mu sync.Mutex
	req.Events = func(ev acmeflow.Event) {
		switch ev.Kind {
		case acmeflow.EventValidator:
			mu.Lock()
			out.Validators = append(out.Validators, *ev.Validator)
			mu.Unlock()
			fmt.Fprintf(s.Err, "     %s\n", ev.Validator)
		case acmeflow.EventStep:
			fmt.Fprintf(s.Err, "  -> %s\n", ev.Message)
		}
	}
	fmt.Fprintf(s.Err, "Probe: a real order for %s on %s\n", strings.Join(t.Identifiers, ", "), cachoice.Describe(f.probeCA))
	pctx, cancel := context.WithTimeout(ctx, f.timeout)
	defer cancel()
	start := time.Now()
	eng := &acmeflow.Engine{Store: st, UserAgent: "ipcert/" + version + " (doctor probe)"}
	_, err = eng.Obtain(pctx, req)
	out.DurationMS = time.Since(start).Milliseconds()
	mu.Lock()
	defer mu.Unlock()
	if err == nil {
		out.OK = true
		return out
	}
	ev := issueEvidence(&req, ca)
	d := acmeflow.Diagnose(err, ev)
	out.Diagnosis = &d
	return out
}

func doctorTargetOK(t *doctorTarget) bool {
	if t.Order != nil {
		// A real validation is authoritative over everything else.
		return t.Order.OK
	}
	if t.LastError != nil {
		return false
	}
	for _, r := range t.Checks {
		if r.Status == preflight.StatusFail && !r.Advisory {
			return false
		}
	}
	return true
}

func printDoctorTarget(w io.Writer, t *doctorTarget) {
	head := strings.Join(t.Identifiers, ", ")
	if t.Name != "" {
		head = fmt.Sprintf("Certificate %q (%s)", t.Name, head)
	} else {
		head = "Address " + head
	}
	fmt.Fprintln(w, head)
	if t.LastError != nil {
		fmt.Fprintf(w, "  last attempt failed %s", t.LastError.Time.Local().Format("2006-01-02 15:04 MST"))
		if t.Failures > 1 {
			fmt.Fprintf(w, " (%d failures in a row)", t.Failures)
		}
		fmt.Fprintln(w)
		if t.Stored != nil {
			fmt.Fprint(w, "\nAt the time:")
			printDiagnosis(w, *t.Stored)
		} else {
			fmt.Fprintf(w, "  %s step: %s\n", t.LastError.Step, t.LastError.Detail)
		}
	} else if t.Name != "" {
		fmt.Fprintln(w, "  no failure stored: the last attempt succeeded")
	}
	if len(t.Checks) > 0 || len(t.Probes) > 0 {
		fmt.Fprintln(w, "\nChecks now:")
		mark := map[preflight.Status]string{preflight.StatusOK: "[ ok ]", preflight.StatusWarn: "[warn]", preflight.StatusFail: "[FAIL]", preflight.StatusSkipped: "[skip]"}
		for _, r := range t.Checks {
			fmt.Fprintf(w, "  %s %s: %s\n", mark[r.Status], r.Title, r.Summary)
			if r.Fix != "" && (r.Status == preflight.StatusFail || r.Status == preflight.StatusWarn) {
				fmt.Fprintf(w, "         fix: %s\n", r.Fix)
			}
		}
		for _, p := range t.Probes {
			fmt.Fprintf(w, "  [probe] %s: %s (from this machine; hairpin NAT can make it differ from the internet's view)\n", p.Target, p.Detail)
		}
	}
	if t.Now != nil && (t.Stored == nil || t.Now.Code != t.Stored.Code || t.Now.Cause != t.Stored.Cause) {
		fmt.Fprint(w, "\nWith today's evidence:")
		printDiagnosis(w, *t.Now)
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
			printDiagnosis(w, *o.Diagnosis)
		}
	}
	fmt.Fprintln(w)
}
