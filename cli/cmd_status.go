package cli

import (
	"bufio"
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/cluster"
	"github.com/ipcert/ipcert/deploy"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/internal/untrusted"
	"github.com/ipcert/ipcert/monitor"
	"github.com/ipcert/ipcert/renew"
)

const statusHelp = `
ipcert status: every managed certificate: its addresses, CA, how long it is
still valid, when it will be renewed, how the last attempt went, and whether
the renewal timer is installed.

Usage:
  ipcert status [NAME|ADDR] [--json] [flags]

With a certificate name or an address, only that certificate is shown (the
one verify, snippet and doctor would pick for it).

Examples:
  ipcert status
  ipcert status 203.0.113.7
  sudo ipcert status --json | jq '.certificates[] | {name, not_after}'

With --check, one line for Nagios-style monitoring and its exit codes: 0 OK,
1 WARNING, 2 CRITICAL, 3 UNKNOWN (docs/monitoring.md). --prometheus FILE also
writes node_exporter textfile metrics.

Exit codes: 0 all is well; 1 a certificate is expired, unreadable, or its
last renewal failed, or a first issuance failed (details on stdout), or the
state cannot be read.
`

func init() {
	register(command{name: "status", summary: "certificates, expiry, next renewal, timer", run: runStatus})
}

func runStatus(ctx context.Context, args []string, s stdio) error {
	var cf commonFlags
	fs := newFlagSet("status", statusHelp, s.Out, s.Err)
	cf.register(fs)
	unitDir := fs.String("unit-dir", "", "where the renewal timer's systemd units are looked for (default "+deploy.TimerDefaultUnitDir+")")
	cronDir := fs.String("cron-dir", "", "where the renewal job's cron file is looked for (default "+deploy.TimerDefaultCronDir+")")
	check := fs.Bool("check", false, "Nagios-style check: one line with perfdata; exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN")
	warn := fs.Duration("warn", monitor.DefaultThresholds.Warn, "with --check: WARNING when a certificate has less than this left")
	crit := fs.Duration("crit", monitor.DefaultThresholds.Crit, "with --check: CRITICAL when a certificate has less than this left")
	promFile := fs.String("prometheus", "", "also write node_exporter textfile metrics to this .prom file (atomically)")
	verifyKeys := fs.Bool("verify-keys", false, "also check that every current private key matches its certificate (slower with thousands)")
	pos, err := parseArgs(fs, args, s.Env)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageErr("unexpected argument %q; give at most one certificate name or address", pos[1])
	}
	st, err := cf.openStore(s.Env)
	if err != nil {
		return failure("%v", err)
	}
	probe := func() (deploy.TimerState, error) {
		return deploy.TimerStatus(ctx, deploy.TimerOptions{UnitDir: *unitDir, CronDir: *cronDir})
	}
	now := time.Now()
	rep := deploy.StatusHeader(st, probe)
	opts := deploy.StatusOptions{VerifyKeys: *verifyKeys}
	if len(pos) == 1 {
		f, err := st.Find(store.Query{Arg: pos[0]})
		if err != nil {
			return usageErr("%v", err)
		}
		if f.Name == "" {
			return usageErr("no stored certificate covers %s; ipcert status lists them all", f.Addr.Addr())
		}
		opts.Names = []string{f.Name}
		if f.Ambiguous() {
			fmt.Fprintf(s.Err, "Several certificates cover %s (%s); showing them all.\n", f.Addr.Addr(), strings.Join(f.Candidates, ", "))
			opts.Names = f.Candidates
		}
	}
	if *check || *promFile != "" {
		return statusMonitor(ctx, st, now, rep, opts, *check, *promFile, monitor.Thresholds{Warn: *warn, Crit: *crit, FailuresCrit: monitor.DefaultThresholds.FailuresCrit}, s)
	}
	// Printed as they come: thousands of certificates are never all in
	// memory at once.
	out := bufio.NewWriterSize(s.Out, 64<<10) // status --json of 10,000 is 8 MB
	defer out.Flush()
	code := exitOK
	n := 0
	var js *statusJSON
	if cf.jsonOut {
		js = startStatusJSON(out, rep.StateDir)
	}
	if js != nil {
		// Certificates that did not change are copied out of the status
		// index as they were encoded (deploy.StatusEachJSON).
		err = deploy.StatusEachJSON(st, now, opts, func(l deploy.StatusLine) {
			if l.Bad {
				code = exitFailure
			}
			js.cert(l.JSON)
		})
	} else {
		err = deploy.StatusEach(st, now, opts, func(c deploy.CertStatus) {
			if c.Problem != "" || c.Expired || c.LastResult == "failed" {
				code = exitFailure
			}
			statusPrintCert(out, c, n, rep.StateDir, now)
			n++
		})
	}
	if err != nil {
		return failure("%v", err)
	}
	if len(rep.NotIssued) > 0 && len(opts.Names) == 0 {
		code = exitFailure
	}
	if js != nil {
		js.end(rep)
		return exitCode(code)
	}
	statusPrintTail(out, rep, n)
	return exitCode(code)
}

// statusJSON writes the report of `status --json` piece by piece, in the
// shape printJSON(deploy.StatusReport) has (docs/deploy.md).
type statusJSON struct {
	w     io.Writer
	first bool
}

func startStatusJSON(w io.Writer, stateDir string) *statusJSON {
	dir, _ := json.Marshal(stateDir)
	fmt.Fprintf(w, "{\n  \"state_dir\": %s,\n  \"certificates\": [", dir)
	return &statusJSON{w: w, first: true}
}

// cert writes one certificate, b as json.MarshalIndent(c,
// deploy.StatusJSONPrefix, "  ") writes it.
func (j *statusJSON) cert(b []byte) {
	if !j.first {
		io.WriteString(j.w, ",")
	}
	j.first = false
	io.WriteString(j.w, "\n    ")
	j.w.Write(b)
}

func (j *statusJSON) end(rep deploy.StatusReport) {
	if !j.first {
		io.WriteString(j.w, "\n  ")
	}
	timer, _ := json.MarshalIndent(rep.Timer, "  ", "  ")
	fmt.Fprintf(j.w, "],\n  \"timer\": %s,\n  \"timer_installed\": %t", timer, rep.TimerInstalled)
	if rep.TimerError != "" {
		e, _ := json.Marshal(rep.TimerError)
		fmt.Fprintf(j.w, ",\n  \"timer_error\": %s", e)
	}
	if len(rep.NotIssued) > 0 {
		e, _ := json.MarshalIndent(rep.NotIssued, "  ", "  ")
		fmt.Fprintf(j.w, ",\n  \"not_issued\": %s", e)
	}
	io.WriteString(j.w, "\n}\n")
}

func statusPrintCert(w io.Writer, c deploy.CertStatus, i int, stateDir string, now time.Time) {
	const when = "2006-01-02 15:04 MST"
	if i > 0 {
		fmt.Fprintln(w)
	}
	fmt.Fprintf(w, "%s\n", c.Name)
	if c.Problem != "" && c.Version == 0 && len(c.Identifiers) == 0 {
		fmt.Fprintf(w, "  PROBLEM       %s\n", c.Problem)
		return
	}
	fmt.Fprintf(w, "  addresses     %s\n", strings.Join(c.Identifiers, ", "))
	fmt.Fprintf(w, "  CA            %s\n", statusCA(spec.CAChoice(c.CA)))
	if c.Problem != "" {
		fmt.Fprintf(w, "  PROBLEM       %s\n", c.Problem)
	} else {
		state := "valid until  "
		if c.Expired {
			state = "EXPIRED      "
		}
		fmt.Fprintf(w, "  %s %s (%s)\n", state, c.NotAfter.Local().Format(when), statusLeft(c.ValidFor))
		fmt.Fprintf(w, "  next renewal  %s (%s; %s)\n", c.NextRenewal.Local().Format(when), statusIn(c.NextRenewal.Sub(now)), c.NextRenewalWhy)
	}
	if c.SPKIPin != "" {
		keeps := "a new key at every renewal: the pin changes"
		if c.ReuseKey {
			keeps = "renewals keep this key (--reuse-key)"
		}
		since := ""
		if !c.PinSince.IsZero() {
			since = ", since " + c.PinSince.Local().Format(when)
		}
		fmt.Fprintf(w, "  key pin       pin-sha256 %s (%s%s)\n", c.SPKIPin, keeps, since)
	}
	switch c.LastResult {
	case "ok":
		fmt.Fprintf(w, "  last result   ok, %s\n", c.LastSuccess.Local().Format(when))
	case "failed":
		fmt.Fprintf(w, "  last result   FAILED %s", c.LastError.Time.Local().Format(when))
		if c.Failures > 0 {
			fmt.Fprintf(w, " (%d in a row)", c.Failures)
		}
		fmt.Fprintf(w, ": %s\n                ipcert doctor %s%s explains it\n", statusOneLine(c.LastError.Detail), c.Name, userStateFlag(stateDir))
	default:
		fmt.Fprintf(w, "  last result   no renewal yet\n")
	}
	if c.Reload != "" || len(c.DeployHooks) > 0 {
		var parts []string
		if c.Reload != "" {
			parts = append(parts, "reload "+c.Reload)
		}
		parts = append(parts, c.DeployHooks...)
		fmt.Fprintf(w, "  after renewal %s\n", strings.Join(parts, "; "))
	}
	if c.VerifyAddr != "" {
		fmt.Fprintf(w, "  verify at     %s (after each renewal)\n", c.VerifyAddr)
	}
}

func statusPrintTail(w io.Writer, rep deploy.StatusReport, n int) {
	for _, f := range rep.NotIssued {
		when, what := "", "failed"
		if e := f.LastError; e != nil {
			when = " " + e.Time.Local().Format("2006-01-02 15:04 MST")
			what = cmp.Or(e.Title, statusOneLine(e.Detail))
		}
		fmt.Fprintf(w, "\n%s (%s)\n  NOT ISSUED    the first attempt%s failed: %s\n                ipcert doctor %s%s explains it\n",
			f.Name, strings.Join(f.Identifiers, ", "), when, what, f.Name, userStateFlag(rep.StateDir))
	}
	if n == 0 && len(rep.NotIssued) == 0 {
		fmt.Fprintf(w, "No certificates in %s yet. Get one: sudo ipcert issue --ip auto --ca staging --agree-tos%s\n", rep.StateDir, sudoStateFlag(rep.StateDir))
	}
	fmt.Fprintln(w)
	switch {
	case rep.TimerInstalled:
		fmt.Fprintf(w, "Renewal timer: installed (%s: %s)", rep.Timer.Mode, strings.Join(rep.Timer.Files, ", "))
		if rep.Timer.NextRun != "" {
			fmt.Fprintf(w, ", next run %s", rep.Timer.NextRun)
		}
		fmt.Fprintln(w)
	default:
		fmt.Fprintln(w, "Renewal timer: NOT installed; certificates last only 160 hours: sudo ipcert timer install"+sudoStateFlag(rep.StateDir))
	}
	if rep.TimerError != "" {
		fmt.Fprintf(w, "  (could not ask systemd about it: %s)\n", rep.TimerError)
	}
}

func statusLeft(d time.Duration) string {
	if d <= 0 {
		return humanDuration(d)
	}
	return humanDuration(d) + " left"
}

func statusIn(d time.Duration) string {
	if d <= 0 {
		return "due now"
	}
	return "in " + humanDuration(d)
}

func statusOneLine(s string) string {
	s = strings.Join(strings.Fields(s), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// statusCA names the CA briefly; cachoice.Describe is the long form.
func statusCA(choice spec.CAChoice) string {
	switch choice {
	case cachoice.Staging:
		return cachoice.Short(choice) + " (not trusted by browsers)"
	case cachoice.Local:
		return cachoice.Short(choice) + " (trusted only with its root)"
	}
	return cachoice.Short(choice)
}

// statusMonitor is status --check and --prometheus: the certificates'
// state, the served certificates (a handshake to each verify address),
// then the Nagios line and exit code and/or the textfile.
func statusMonitor(ctx context.Context, st *store.Store, now time.Time, rep deploy.StatusReport, opts deploy.StatusOptions, check bool, promFile string, t monitor.Thresholds, s stdio) error {
	if t.Warn <= t.Crit {
		return exitWith(monitorUsage(check), "--warn (%s) must be longer than --crit (%s)", t.Warn, t.Crit)
	}
	var certs []deploy.CertStatus
	if err := deploy.StatusEach(st, now, opts, func(c deploy.CertStatus) { certs = append(certs, c) }); err != nil {
		if check {
			fmt.Fprintf(s.Out, "IPCERT UNKNOWN - %v\n", err)
			return exitCode(monitor.Unknown)
		}
		return failure("%v", err)
	}
	served := monitor.CheckServed(ctx, certs, 5*time.Second)
	if promFile != "" {
		last, _ := renew.LoadLastRun(st)
		if err := monitor.WriteTextfile(promFile, monitor.Metrics(certs, served, last)); err != nil {
			if !check {
				return failure("--prometheus: %v", err)
			}
			// --check's state is the exit code; this is said on the way.
			fmt.Fprintf(s.Err, "ipcert status: --prometheus: %v\n", err)
		}
	}
	if !check {
		return nil
	}
	state, line := monitor.Check(certs, served, t, now)
	for _, f := range rep.NotIssued {
		state = max(state, monitor.Warning)
		line = strings.Replace(line, " - ", fmt.Sprintf(" - %s: first issuance failed; ", f.Name), 1)
	}
	// In a cluster, a store that does not answer is a warning while the
	// certificates last: renewals fail closed until it is back
	// (docs/cluster.md).
	if c, in, err := cluster.LoadConfig(st.Root()); in && err == nil {
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		cs, cerr := cluster.Connect(cctx, c)
		cancel()
		if cerr != nil {
			state = max(state, monitor.Warning)
			line = strings.Replace(line, " - ", " - cluster store unreachable, renewals fail until it is back ("+untrusted.Text(cerr.Error())+"); ", 1)
		} else {
			cs.Close()
		}
	}
	fmt.Fprintln(s.Out, line)
	return exitCode(state)
}

func monitorUsage(check bool) int {
	if check {
		return monitor.Unknown
	}
	return exitUsage
}
