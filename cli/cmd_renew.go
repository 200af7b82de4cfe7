package cli

import (
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/cluster"
	"github.com/ipcert/ipcert/deploy"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/monitor"
	"github.com/ipcert/ipcert/renew"
)

// Exit codes of `ipcert renew` beyond the shared ones. "Renewed" is not 0
// so that a script can tell "a new certificate is in place" from "nothing
// happened"; the systemd unit lists it in SuccessExitStatus.
const (
	exitRenewNothing = 0  // nothing was due
	exitRenewRenewed = 10 // at least one certificate renewed, none failed
)

const renewHelp = `
ipcert renew: renew the managed certificates that are due; what the timer
runs every hour (ipcert timer install).

Usage:
  ipcert renew [--force] [--dry-run] [--wait DURATION] [--timeout DURATION] [NAME...]

A certificate is due at a random moment inside the renewal window its CA
suggests (ARI, RFC 9773; asked at most as often as the CA's Retry-After
allows, about every 6 hours), or at half of its lifetime when the CA has no
window. After a failure it waits 1 minute, 10 minutes, 100 minutes, then a
day between attempts. A renewal repeats the first issuance (same addresses,
CA, challenge, key type), tells the CA which certificate it replaces, and
makes the new version current only when it is complete; then it runs the
certificate's deploy hooks and reload, and verifies the served certificate
when an address to verify is configured. Certificates issued with --ip auto
follow the machine's public address when it changed.

With nothing due, renew reads renewal.json files only: no network, no lock,
a few milliseconds.

Examples:
  sudo ipcert renew                       what the timer runs
  sudo ipcert renew --force 203.0.113.7   renew this one now
  sudo ipcert renew --dry-run             rehearse every renewal against Let's
                                          Encrypt staging (local certificates:
                                          a fresh local CA); the store is not touched

Exit codes:
  0   nothing was due (or --dry-run: every rehearsal worked)
  10  at least one certificate was renewed, and none failed
  1   at least one renewal (or its deploy hook / verification) failed; the
      error is kept in renewal.json for "ipcert status" and "ipcert doctor"
  2   bad flags or unknown certificate name
  4   another ipcert run held the state lock for longer than --wait
  130 interrupted
`

func init() {
	register(command{name: "renew", summary: "renew the certificates that are due (what the timer runs)", run: runRenew})
}

func runRenew(ctx context.Context, args []string, s stdio) error {
	started := time.Now()
	var cf commonFlags
	fs := newFlagSet("renew", renewHelp, s.Out, s.Err)
	cf.register(fs)
	force := fs.Bool("force", false, "renew now, whether due or not (also ignores the backoff)")
	dryRun := fs.Bool("dry-run", false, "rehearse against Let's Encrypt staging (or a fresh local CA) without touching the store")
	wait := fs.Duration("wait", 60*time.Second, "how long to wait for another ipcert run's lock before giving up (exit 4)")
	timeout := fs.Duration("timeout", 20*time.Minute, "give up after this long, renewals, hooks and waits included (under the timer unit's 30 min limit)")
	parallel := fs.Int("parallel", renew.DefaultParallel, "renew up to this many due certificates at once (never two on the same responder port)")
	promFile := fs.String("prometheus", "", "after the run, write node_exporter textfile metrics of every certificate to this .prom file (atomically)")
	mapPorts := fs.Bool("map-ports", false, mapPortsUsage)
	quiet := fs.Bool("quiet", false, "log only warnings and errors; print only certificates that were renewed or failed (the timer uses this)")
	if err := parseFlags(fs, args, s.Env); err != nil {
		return err
	}
	if err := validateRenewFlags(fs, &cf, s); err != nil { // cmd_validate.go
		return err
	}
	if *force && *dryRun {
		return usageErr("--force and --dry-run do not go together: --dry-run already rehearses every certificate")
	}
	for _, n := range fs.Args() {
		if err := store.ValidName(n); err != nil {
			return usageErr("%v", err)
		}
	}
	if *promFile != "" && !strings.HasSuffix(*promFile, ".prom") {
		return usageErr("--prometheus %s: node_exporter's textfile collector reads only files ending in .prom", *promFile)
	}
	if *parallel < 1 || *parallel > 64 {
		return usageErr("--parallel %d: give 1 to 64", *parallel)
	}
	if *timeout <= 0 {
		return usageErr("--timeout %s: give a positive duration, such as 20m", *timeout)
	}
	closeLog := setupDebugLog(cf.debug, s.Err)
	defer closeLog()
	// One bound on the whole run: a CA that stalls or asks to wait an hour
	// must not keep the lock (and the next hourly runs) waiting.
	ctx, cancelTimeout := context.WithTimeout(ctx, *timeout)
	defer cancelTimeout()
	st, err := cf.openStore(s.Env)
	if err != nil {
		return failure("%v", err)
	}
	for _, n := range fs.Args() {
		if !st.Exists(n) {
			return usageErr("no certificate named %q in %s (ipcert status lists them)", n, st.Root())
		}
	}

	lg := &renewLogger{w: s.Err, quiet: *quiet}
	cas := &renew.CAs{Store: st, UserAgent: "ipcert/" + version, Log: debugWriter(), Events: lg.engineEvent}
	defer cas.Close()
	cas.ValidationHooks = func(r *store.Renewal) func(context.Context) (func(), error) {
		name := r.Name
		return deploy.ValidationHooks(r.PreHooks, r.PostHooks, func(line string) {
			kind := acmeflow.EventInfo
			if strings.Contains(line, " failed") {
				kind = acmeflow.EventWarning
			}
			lg.engineEvent(name, acmeflow.Event{Time: time.Now(), Kind: kind, Step: acmeflow.StepResponder, Message: line})
		})
	}
	if _, inCluster, _ := cluster.LoadConfig(st.Root()); inCluster {
		// Certificates issued with --cluster renew through the cluster
		// (renewal.json's "cluster"); the store is opened only when one is
		// due.
		rs := &renewShared{st: st}
		defer rs.close()
		cas.Shared = rs.share
	}
	rn := &renew.Runner{
		Store:     st,
		Issuer:    renew.NewIssuer(cas),
		Rehearsal: renew.NewRehearsal(cas),
		ARI:       renew.NewARI(cas),
		Deploy:    deploy.RenewalHooks{},
		Verify: deploy.ServedCheck{Served: func(addr string, leaf *x509.Certificate, took time.Duration) {
			lg.event(renew.Event{Time: time.Now(), Level: renew.LevelInfo, Name: addr,
				Message: fmt.Sprintf("serves the new certificate (serial %x), %s after the deploy step", leaf.SerialNumber, took.Round(time.Millisecond))})
		}},
		PublicAddrs: func(ctx context.Context) ([]netip.Addr, error) { return detectPublicAddrs(ctx, s) },
		Events:      lg.event,
		LockWait:    *wait,
		Parallel:    *parallel,
	}
	rn.Issuer = &mappingIssuer{Issuer: rn.Issuer, w: s.Err, all: *mapPorts}
	// --quiet prints and keeps (renew-last.json) only the certificates
	// that were renewed or failed: the others need not be listed.
	res, err := rn.Run(ctx, renew.Options{Names: fs.Args(), Force: *force, DryRun: *dryRun, OmitNotDue: *quiet && !cf.jsonOut})
	code := renewExitCode(ctx, res, err)
	msg := renewRunMessage(ctx, err, *timeout)
	if !*dryRun {
		renew.SaveLastRun(st, renew.LastRun{Started: started.UTC(), Duration: time.Since(started), ExitCode: code, Result: res, Error: errString(err)})
		if *promFile != "" {
			if err := renewWriteMetrics(context.WithoutCancel(ctx), st, *promFile); err != nil {
				if msg == "" {
					fmt.Fprintf(s.Err, "ipcert renew: --prometheus: %v\n", err)
				} else {
					// One message, in the order the two happened.
					msg += fmt.Sprintf("\nipcert renew: --prometheus: %v", err)
				}
			}
		}
	}
	ret := exitCode(code)
	if msg != "" {
		ret = exitWith(code, "%s", msg)
	}
	if res == nil {
		return ret
	}
	if cf.jsonOut {
		printJSON(s.Out, res)
		return ret
	}
	renewPrintResult(s.Out, res, *quiet)
	return ret
}

// renewRunMessage is what renew says about a run that ended early (err,
// or the context's --timeout), after "ipcert renew: "; "" for none.
func renewRunMessage(ctx context.Context, err error, timeout time.Duration) string {
	if err != nil {
		switch {
		case errors.Is(err, store.ErrLocked):
			return fmt.Sprintf("skipped: %v", err)
		case errors.Is(ctx.Err(), context.DeadlineExceeded):
			return fmt.Sprintf("gave up after --timeout %s; current certificates are unchanged", timeout)
		case ctx.Err() != nil:
			return "interrupted; current certificates are unchanged"
		default:
			return err.Error()
		}
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Sprintf("gave up after --timeout %s; current certificates are unchanged, the next run tries again", timeout)
	}
	return ""
}

func errString(err error) string {
	if err == nil {
		return ""
	}
	return err.Error()
}

func renewExitCode(ctx context.Context, res *renew.Result, err error) int {
	switch {
	case err != nil && errors.Is(err, store.ErrLocked):
		return exitLocked
	case errors.Is(ctx.Err(), context.DeadlineExceeded):
		// --timeout: the job failed, it was not stopped by a person.
		return exitFailure
	case ctx.Err() != nil:
		return exitInterrupted
	case err != nil:
		return exitFailure
	}
	renewed, failed := res.Counts()
	switch {
	case failed > 0:
		return exitFailure
	case renewed > 0 && res.Certs != nil && !res.AllRehearsed():
		return exitRenewRenewed
	}
	return exitRenewNothing
}

// renewPrintResult is one line per certificate on stdout.
func renewPrintResult(w io.Writer, res *renew.Result, quiet bool) {
	if len(res.Certs) == 0 && !quiet {
		fmt.Fprintln(w, "No managed certificates; get one with: ipcert issue --ip ADDR --ca staging")
		return
	}
	for _, c := range res.Certs {
		switch c.Outcome {
		case renew.NotDue:
			if quiet {
				continue
			}
			fmt.Fprintf(w, "%s: not due; %s\n", c.Name, c.Reason)
		case renew.Renewed:
			fmt.Fprintf(w, "%s: renewed, version %d for %s, valid until %s\n", c.Name, c.Version, strings.Join(c.Addresses, ", "), c.NotAfter.Local().Format("2006-01-02 15:04 MST"))
			if len(c.AddressChanged) > 0 {
				fmt.Fprintf(w, "%s: NOTE the public address changed from %s to %s\n", c.Name, strings.Join(c.AddressChanged, ", "), strings.Join(c.Addresses, ", "))
			}
			if c.DeployError != "" {
				fmt.Fprintf(w, "%s: but: %s\n", c.Name, c.DeployError)
			}
		case renew.Rehearsed:
			fmt.Fprintf(w, "%s: dry run OK: the CA issued a certificate for %s (valid until %s) and it was discarded\n", c.Name, strings.Join(c.Addresses, ", "), c.NotAfter.Local().Format("2006-01-02 15:04 MST"))
		case renew.Failed:
			next := ""
			if !c.Next.IsZero() {
				next = "; next attempt at " + c.Next.Local().Format("2006-01-02 15:04 MST")
			}
			fmt.Fprintf(w, "%s: FAILED: %s%s (ipcert doctor %s explains)\n", c.Name, c.Error, next, c.Name)
		}
	}
}

// renewLogger writes the renewal log on stderr: one line per event, which
// the journal (or cron's mail) keeps.
type renewLogger struct {
	mu    sync.Mutex
	w     io.Writer
	quiet bool
}

func (l *renewLogger) event(ev renew.Event) {
	if l.quiet && ev.Level == renew.LevelInfo {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	prefix := ""
	switch ev.Level {
	case renew.LevelWarn:
		prefix = "warning: "
	case renew.LevelError:
		prefix = "error: "
	}
	fmt.Fprintf(l.w, "%s%s: %s\n", prefix, ev.Name, ev.Message)
}

func (l *renewLogger) engineEvent(name string, ev acmeflow.Event) {
	switch ev.Kind {
	case acmeflow.EventStep, acmeflow.EventWarning:
	default:
		return
	}
	level := renew.LevelInfo
	if ev.Kind == acmeflow.EventWarning {
		level = renew.LevelWarn
	}
	l.event(renew.Event{Time: ev.Time, Level: level, Name: name, Message: ev.Message})
}

// renewWriteMetrics writes the textfile metrics after a run: every
// certificate's state, the served checks, and this run.
func renewWriteMetrics(ctx context.Context, st *store.Store, path string) error {
	var certs []deploy.CertStatus
	if err := deploy.StatusEach(st, time.Now(), deploy.StatusOptions{}, func(c deploy.CertStatus) { certs = append(certs, c) }); err != nil {
		return err
	}
	last, _ := renew.LoadLastRun(st)
	return monitor.WriteTextfile(path, monitor.Metrics(certs, monitor.CheckServed(ctx, certs, 5*time.Second), last))
}
