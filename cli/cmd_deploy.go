package cli

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ipcert/ipcert/deploy"
	"github.com/ipcert/ipcert/internal/store"
)

const deployHelp = `
ipcert deploy: run the deploy step for the current certificate again,
without issuing a new one: the deploy hooks (renewal.json deploy_hooks,
including ipcert's own copy for servers that read as their own user), the
web server reload, then the check of the verify address. This is what to
run after "ipcert renew" reported "the new certificate is current, but"
a hook, the reload or the check failed, once the cause is fixed.

Usage:
  ipcert deploy [NAME|ADDR] [flags]

NAME (or an address of it) may be left out when there is one certificate.

Examples:
  sudo ipcert deploy 203.0.113.7

Exit codes: 0 the deploy step succeeded (a stored deploy failure is
cleared); 1 it failed again (the message says which part); 2 bad
arguments; 4 another ipcert run holds the state lock.
`

func init() {
	register(command{name: "deploy", summary: "run the deploy hooks, reload and verify again, without a new certificate", run: runDeploy})
}

func runDeploy(ctx context.Context, args []string, s stdio) int {
	var cf commonFlags
	fs := newFlagSet("deploy", deployHelp, s.Out, s.Err)
	cf.register(fs)
	pos, done, code := parseArgs(fs, args, s.Env, s.Err)
	if done {
		return code
	}
	if len(pos) > 1 {
		fmt.Fprintf(s.Err, "ipcert deploy: unexpected argument %q; give one certificate name or address\n", pos[1])
		return exitUsage
	}
	closeLog := setupDebugLog(cf.debug, s.Err)
	defer closeLog()
	st, err := cf.openStore(s.Env)
	if err != nil {
		fmt.Fprintf(s.Err, "ipcert deploy: %v\n", err)
		return exitFailure
	}
	arg := ""
	if len(pos) == 1 {
		arg = pos[0]
	}
	name, err := deployPickName(st, arg, "deploy")
	if err != nil {
		fmt.Fprintf(s.Err, "ipcert deploy: %v\n", err)
		return exitUsage
	}
	// The same lock as renew: a renewal swapping current meanwhile would
	// make the check compare with the wrong version.
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	unlock, err := st.Lock(lctx, true)
	if err != nil {
		fmt.Fprintf(s.Err, "ipcert deploy: %v\n", err)
		if errors.Is(err, store.ErrLocked) {
			return exitLocked
		}
		return exitFailure
	}
	defer unlock()
	r, err := st.LoadRenewal(name)
	if err != nil {
		fmt.Fprintf(s.Err, "ipcert deploy: %v\n", err)
		return exitFailure
	}
	v, err := st.CurrentVersion(name)
	if err != nil {
		fmt.Fprintf(s.Err, "ipcert deploy: %v\n", err)
		return exitFailure
	}
	if len(r.DeployHooks) == 0 && r.Reload == "" && r.VerifyAddr == "" {
		fmt.Fprintf(s.Out, "%s has no deploy hooks, reload or verify address; nothing to do (ipcert snippet --write or ipcert issue --reload/--deploy-hook/--verify set them).\n", name)
		return exitOK
	}
	var failed error
	if len(r.DeployHooks) > 0 || r.Reload != "" {
		if err := (deploy.RenewalHooks{}).Deploy(ctx, r, st.CurrentDir(name)); err != nil {
			failed = fmt.Errorf("deploy hook: %w", err)
		} else {
			what := "Ran the deploy hooks of"
			if r.Reload != "" {
				what = "Ran the deploy hooks and reloaded " + r.Reload + " for"
			}
			fmt.Fprintf(s.Out, "%s %s (version %d).\n", what, name, v.N)
		}
	}
	if failed == nil && r.VerifyAddr != "" {
		if err := (deploy.ServedCheck{}).Verify(ctx, r.VerifyAddr, v.Leaf); err != nil {
			failed = fmt.Errorf("verify %s: %w", r.VerifyAddr, err)
		} else {
			fmt.Fprintf(s.Out, "%s serves version %d.\n", r.VerifyAddr, v.N)
		}
	}
	if failed != nil {
		fmt.Fprintf(s.Err, "ipcert deploy: %s: %v\n", name, failed)
		return exitFailure
	}
	if r.LastError != nil && r.LastError.Step == "deploy" {
		r.LastError = nil
		if err := st.SaveRenewal(r); err != nil {
			fmt.Fprintf(s.Err, "ipcert deploy: the deploy step worked, but clearing its stored failure did not: %v\n", err)
			return exitFailure
		}
		fmt.Fprintf(s.Out, "Cleared the stored deploy failure.\n")
	}
	return exitOK
}
