package cli

import (
	"context"
	"fmt"
	"time"

	"github.com/ipcert/ipcert/deploy"
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

func runDeploy(ctx context.Context, args []string, s stdio) error {
	var cf commonFlags
	fs := newFlagSet("deploy", deployHelp, s.Out, s.Err)
	cf.register(fs)
	pos, err := parseArgs(fs, args, s.Env)
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		return usageErr("unexpected argument %q; give one certificate name or address", pos[1])
	}
	closeLog := setupDebugLog(cf.debug, s.Err)
	defer closeLog()
	st, err := cf.openStore(s.Env)
	if err != nil {
		return failure("%v", err)
	}
	arg := ""
	if len(pos) == 1 {
		arg = pos[0]
	}
	name, err := deployPickName(st, arg, "deploy")
	if err != nil {
		return usageErr("%v", err)
	}
	// The same lock as renew: a renewal swapping current meanwhile would
	// make the check compare with the wrong version.
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	unlock, err := st.Lock(lctx, true)
	if err != nil {
		return lockFailure(err)
	}
	defer unlock()
	r, err := st.LoadRenewal(name)
	if err != nil {
		return failure("%v", err)
	}
	v, err := st.CurrentVersion(name)
	if err != nil {
		return failure("%v", err)
	}
	if len(r.DeployHooks) == 0 && r.Reload == "" && r.VerifyAddr == "" {
		fmt.Fprintf(s.Out, "%s has no deploy hooks, reload or verify address; nothing to do (ipcert snippet --write or ipcert issue --reload/--deploy-hook/--verify set them).\n", name)
		return nil
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
		return failure("%s: %v", name, failed)
	}
	if r.LastError != nil && r.LastError.Step == "deploy" {
		r.LastError = nil
		if err := st.SaveRenewal(r); err != nil {
			return failure("the deploy step worked, but clearing its stored failure did not: %v", err)
		}
		fmt.Fprintf(s.Out, "Cleared the stored deploy failure.\n")
	}
	return nil
}
