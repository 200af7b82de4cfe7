package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ipcert/ipcert/deploy"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/renew"
)

const timerHelp = `
ipcert timer: schedule "ipcert renew" every hour.

Usage:
  ipcert timer install [--mode systemd|cron] [--binary PATH] [--webroot DIR ...]
  ipcert timer remove
  ipcert timer status [--json]

Where systemd is the init system, install writes ipcert-renew.service and
ipcert-renew.timer to /etc/systemd/system and enables the timer: hourly at a
random but fixed minute for this machine, catching up after downtime
(Persistent=true). The service is sandboxed: the file system is read-only
except the state directory and the web roots of certificates validated
through --webroot, and its only capability is binding ports 80/443. Elsewhere
install writes /etc/cron.d/ipcert-renew, hourly at a random minute, logging
through syslog (logger -t ipcert-renew).

status shows the schedule and how the last renew run ended (from systemd
when it runs the job, and from renew-last.json in the state directory).

Examples:
  sudo ipcert timer install
  sudo ipcert timer status
  ipcert timer install --unit-dir /tmp/units     write the units only (no systemctl)

Exit codes: 0 done; 1 failed; 2 bad flags; status: 3 no timer installed.
`

const exitTimerNotInstalled = 3

func init() {
	register(command{name: "timer", summary: "install, remove or check the hourly renewal timer (systemd or cron)", run: runTimer})
}

func runTimer(ctx context.Context, args []string, s stdio) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			// The help with the flags, as every command's.
			args = []string{"install", "--help"}
		} else {
			return usageErr("say install, remove or status (ipcert timer --help)")
		}
	}
	action := args[0]
	var cf commonFlags
	fs := newFlagSet("timer "+action, timerHelp, s.Out, s.Err)
	cf.register(fs)
	unitDir := fs.String("unit-dir", "", "write the systemd units here instead of /etc/systemd/system (then systemctl is not called)")
	cronDir := fs.String("cron-dir", "", "write the cron entry here instead of /etc/cron.d")
	mode := fs.String("mode", "", "systemd or cron (default: systemd when it is the init system)")
	binary := fs.String("binary", "", "path of the ipcert binary the job runs (default: this one)")
	var webroots multiFlag
	fs.Var(&webroots, "webroot", "another directory the job may write (repeatable; the web roots of managed certificates are added by themselves)")
	if err := parseFlags(fs, args[1:], s.Env); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return withPrefix("ipcert timer "+action, usageErr("unexpected argument %q", fs.Arg(0)))
	}
	o := deploy.TimerOptions{Mode: deploy.TimerMode(*mode), UnitDir: *unitDir, CronDir: *cronDir}
	if o.Mode != deploy.TimerAuto && o.Mode != deploy.TimerSystemd && o.Mode != deploy.TimerCron {
		return usageErr("--mode %q: use systemd or cron", *mode)
	}
	switch action {
	case "install":
		// The binary first: a refused one must leave nothing behind.
		bin, err := timerBinary(*binary)
		if err != nil {
			return withPrefix("ipcert timer install", usageErr("%v", err))
		}
		st, err := cf.openStore(s.Env)
		if err != nil {
			return withPrefix("ipcert timer install", failure("%v", err))
		}
		o.Config = deploy.TimerConfig{Binary: bin, StateDir: st.Root(), WritablePaths: timerWebroots(st, webroots), Minute: -1}
		res, err := deploy.TimerInstall(ctx, o)
		if err != nil {
			return withPrefix("ipcert timer install", failure("%v%s", err, timerPermissionHint(err)))
		}
		if cf.jsonOut {
			return writeJSON(s.Out, res)
		}
		verb := "Installed"
		if res.Unchanged {
			verb = "Already installed (unchanged)"
		}
		fmt.Fprintf(s.Out, "%s: the %s renewal job running %s renew every hour\n", verb, res.Mode, bin)
		for _, f := range res.Files {
			fmt.Fprintf(s.Out, "  %s\n", f)
		}
		for _, c := range res.Commands {
			fmt.Fprintf(s.Out, "  ran: %s\n", c)
		}
		if res.Mode == deploy.TimerSystemd && len(res.Commands) == 0 {
			fmt.Fprintln(s.Out, "Units written only (not the running systemd's directory, or no systemd): copy them to /etc/systemd/system and run\n  systemctl daemon-reload && systemctl enable --now ipcert-renew.timer")
		}
		fmt.Fprintln(s.Out, "Check it with: ipcert timer status; rehearse a renewal with: ipcert renew --dry-run")
		return nil
	case "remove":
		res, err := deploy.TimerRemove(ctx, o)
		if err != nil {
			return withPrefix("ipcert timer remove", failure("%v%s", err, timerPermissionHint(err)))
		}
		if cf.jsonOut {
			return writeJSON(s.Out, res)
		}
		if res.Unchanged {
			fmt.Fprintln(s.Out, "No renewal job was installed; nothing removed.")
			return nil
		}
		fmt.Fprintln(s.Out, "Removed the renewal job; certificates will no longer be renewed by themselves.")
		for _, f := range res.Files {
			fmt.Fprintf(s.Out, "  %s\n", f)
		}
		return nil
	case "status":
		return timerStatus(ctx, o, &cf, s)
	}
	return usageErr("unknown action %q; use install, remove or status", action)
}

// timerBinary is the absolute, symlink-free path of the binary to run.
func timerBinary(flagValue string) (string, error) {
	p := flagValue
	if p == "" {
		exe, err := os.Executable()
		if err != nil {
			return "", fmt.Errorf("cannot tell where this ipcert binary is (%v); give it with --binary PATH", err)
		}
		p = exe
	}
	abs, err := filepath.Abs(p)
	if err != nil {
		return "", err
	}
	if r, err := filepath.EvalSymlinks(abs); err == nil {
		abs = r
	}
	fi, err := os.Stat(abs)
	if err != nil || fi.IsDir() || fi.Mode()&0o111 == 0 {
		return "", fmt.Errorf("%s is not an executable file; give the installed ipcert with --binary PATH", abs)
	}
	if strings.HasPrefix(abs, os.TempDir()+string(filepath.Separator)) {
		return "", fmt.Errorf("%s is a temporary file (go run?); install ipcert (e.g. to /usr/local/bin) and pass --binary", abs)
	}
	// Run as root every hour: refuse a file another user could swap.
	if err := deploy.TimerCheckBinary(abs); err != nil {
		return "", err
	}
	return abs, nil
}

// timerWebroots are the extra writable paths: the flags plus the web roots
// of every managed certificate (http-01 answers are written there).
func timerWebroots(st *store.Store, extra []string) []string {
	out := slices.Clone([]string(extra))
	names, _ := st.Names()
	for _, n := range names {
		if r, err := st.LoadRenewal(n); err == nil && r.WebRoot != "" {
			out = append(out, r.WebRoot)
		}
	}
	slices.Sort(out)
	return slices.Compact(out)
}

type timerStatusOut struct {
	deploy.TimerState
	LastRun *renew.LastRun `json:"last_run,omitempty"`
}

func timerStatus(ctx context.Context, o deploy.TimerOptions, cf *commonFlags, s stdio) error {
	state, err := deploy.TimerStatus(ctx, o)
	out := timerStatusOut{TimerState: state}
	if st, serr := cf.openStore(s.Env); serr == nil {
		if lr, err := renew.LoadLastRun(st); err == nil {
			out.LastRun = lr
		}
	}
	if cf.jsonOut {
		printJSON(s.Out, out)
	} else {
		timerPrintStatus(s.Out, out, time.Now())
	}
	code := exitOK
	switch {
	case state.Mode == "":
		code = exitTimerNotInstalled
	case err != nil:
		code = exitFailure
	}
	if err != nil {
		return withPrefix("ipcert timer status", exitWith(code, "%v", err))
	}
	return exitCode(code)
}

func timerPrintStatus(w io.Writer, o timerStatusOut, now time.Time) {
	switch o.Mode {
	case "":
		fmt.Fprintln(w, "No renewal job is installed: certificates are NOT renewed by themselves. Install it with: sudo ipcert timer install")
	case deploy.TimerSystemd:
		fmt.Fprintf(w, "Renewal job: systemd timer %s (%s)\n", deploy.TimerTimerName, strings.Join(o.Files, ", "))
		if o.Active != "" {
			fmt.Fprintf(w, "  timer state  %s\n", o.Active)
			fmt.Fprintf(w, "  last run     %s\n", timerOr(o.LastTrigger, "never"))
			fmt.Fprintf(w, "  next run     %s\n", timerOr(o.NextRun, "not scheduled"))
			fmt.Fprintf(w, "  last result  %s (exit status %s)\n", timerOr(o.LastResult, "none"), timerOr(o.LastExit, "-"))
			fmt.Fprintln(w, "  log          journalctl -u "+deploy.TimerServiceName)
		}
	case deploy.TimerCron:
		// The job logs through logger: to the journal where journald
		// runs, else to syslog's files.
		log := "/var/log/syslog (or /var/log/messages), tag ipcert-renew"
		if _, err := os.Stat("/run/systemd/journal"); err == nil {
			log = "journalctl -t ipcert-renew"
		}
		fmt.Fprintf(w, "Renewal job: cron, every hour at minute %d (%s); log: %s\n", o.CronMinute, strings.Join(o.Files, ", "), log)
		if !cronRuns("/proc") {
			fmt.Fprintln(w, "  Warning: no cron daemon runs on this machine: the job does not run until one does (Debian: sudo apt install cron).")
		}
	}
	if lr := o.LastRun; lr != nil {
		renewed, failed := 0, 0
		if lr.Result != nil {
			renewed, failed = lr.Result.Counts()
		}
		what := map[int]string{exitRenewNothing: "nothing was due", exitRenewRenewed: "renewed", exitFailure: "some renewal FAILED", exitLocked: "skipped: another run held the lock", exitInterrupted: "interrupted"}[lr.ExitCode]
		if what == "" {
			what = "failed"
		}
		fmt.Fprintf(w, "Last renew run: %s (%s ago), took %s: exit %d, %s (%d renewed, %d failed)\n",
			lr.Started.Local().Format("2006-01-02 15:04:05 MST"), humanDuration(now.Sub(lr.Started)), lr.Duration.Round(time.Millisecond), lr.ExitCode, what, renewed, failed)
		if lr.Error != "" {
			fmt.Fprintf(w, "  error: %s\n", lr.Error)
		}
		if lr.LastChecked.Sub(lr.Started.Add(lr.Duration)) > time.Second {
			fmt.Fprintf(w, "  runs since then found the same (%d certificate(s) checked); the last at %s\n", lr.Checked, lr.LastChecked.Local().Format("2006-01-02 15:04:05 MST"))
		}
		if lr.Result != nil {
			for _, c := range lr.Result.Certs {
				if c.Outcome == "failed" {
					fmt.Fprintf(w, "  %s: %s (ipcert doctor %s)\n", c.Name, c.Error, c.Name)
				}
			}
		}
	} else {
		fmt.Fprintln(w, "Last renew run: none recorded in this state directory yet")
	}
}

func timerOr(s, def string) string {
	if s == "" || s == "n/a" {
		return def
	}
	return s
}

func timerPermissionHint(err error) string {
	if errors.Is(err, os.ErrPermission) {
		return "; the system's timers and cron entries belong to root: run it with sudo"
	}
	return ""
}
