package cli

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/deploy"
)

const removeHelp = `
ipcert remove: stop managing a certificate (the address was given back, the
machine is going away).

Usage:
  ipcert remove NAME|ADDR [--revoke] [--reason REASON]

It takes back what ipcert installed for the certificate (each server's
snippet and the copy it reads as its own user: the config tested and the
server reloaded without it, put back if that fails), then moves the
certificate's folder out of certs/, so renewals stop, into
STATE/removed/NAME-TIME: nothing is deleted, and the output says where.
With --revoke it first asks the CA to revoke the current certificate
(reason cessationOfOperation unless --reason says otherwise): an address
that is someone else's now should not keep a valid certificate of yours.

Examples:
  sudo ipcert remove 203.0.113.7 --revoke
  sudo ipcert remove old-vm

Exit codes: 0 removed; 1 a step failed (the message says which; what was
done stays done, what was not is listed); 2 bad flags, or no such
certificate.
`

func init() {
	register(command{name: "remove", summary: "stop managing a certificate: take back its configs, keep its files aside (optionally revoke)", run: runRemove})
}

func runRemove(ctx context.Context, args []string, s stdio) error {
	var cf commonFlags
	var revoke bool
	var reason string
	fs := newFlagSet("remove", removeHelp, s.Out, s.Err)
	cf.register(fs)
	fs.BoolVar(&revoke, "revoke", false, "ask the CA to revoke the current certificate first")
	fs.StringVar(&reason, "reason", "cessationOfOperation", "with --revoke: why ("+acmeflow.ReasonNames()+")")
	rest, err := parseArgs(fs, args, s.Env)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usageErr("give the certificate: ipcert remove NAME|ADDR (ipcert status lists them)")
	}
	if _, ok := acmeflow.RevocationReasons[reason]; !ok {
		return usageErr("--reason %q is not one of %s", reason, acmeflow.ReasonNames())
	}
	st, found, err := findManaged(cf, rest[0], s.Env)
	if err != nil {
		return err
	}
	name := found.Name
	unlock, err := st.Lock(ctx, false)
	if err != nil {
		return failure("%v (another ipcert run works on the state; try again when it is done)", err)
	}
	defer unlock()
	r, rerr := st.LoadRenewal(name)

	if revoke {
		if rerr != nil {
			return failure("%s: cannot revoke without renewal.json (%v); remove without --revoke", name, rerr)
		}
		if r.CA == cachoice.Local {
			fmt.Fprintf(s.Err, "  -  %s is from the local test CA: nothing to revoke\n", name)
		} else if !r.RevokedCurrent() {
			if err := revokeCurrent(ctx, st, name, r, reason, reason == "keyCompromise", 2*time.Minute, s.Err); err != nil {
				return failure("%s: revocation failed, nothing was removed: %v", name, err)
			}
			fmt.Fprintf(s.Out, "Revoked %s (serial %s, reason %s).\n", name, r.Serial, reason)
		}
	}

	now := time.Now()
	keep := deploy.KeepDir(st.Root(), name, now)
	// The servers first: a config that still names the files must not
	// find them gone.
	distro := deploy.DetectDistro("/")
	servers := deploy.DetectServers(ctx, deploy.Env{})
	var failed []string
	for _, k := range deploy.Kinds {
		var srv *deploy.Server
		for i := range servers {
			if servers[i].Kind == k {
				srv = &servers[i]
			}
		}
		layout := deploy.LayoutFor(k, distro, name)
		if srv != nil {
			layout = srv.Layout(name)
		}
		if layout.ConfigPath == "" {
			continue
		}
		var reload deploy.Cmd
		if srv != nil {
			unit := layout.Unit
			if !srv.Systemd {
				unit = layout.Service.SysVName()
			}
			if svc := deploy.ServiceStatus(ctx, deploy.ExecRunner{}, unit, srv.Systemd, "/"); svc.Active {
				reload = layout.ApplyCmd(srv.Systemd)
			}
		}
		res, err := deploy.Uninstall(ctx, layout, reload, deploy.ExecRunner{}, filepath.Join(keep, "config"))
		switch {
		case err != nil:
			failed = append(failed, fmt.Sprintf("%s: %v", k, err))
		case res.Removed:
			what := "not reloaded (not running)"
			if res.Reloaded {
				what = "reloaded"
			}
			fmt.Fprintf(s.Out, "Took back the %s snippet %s (kept as %s); %s %s.\n", k, res.Path, res.KeptAs, k, what)
		}
		// A copy folder of this certificate's own (.../ipcert/NAME); a
		// shared folder (Cockpit's ws-certs.d) is never moved.
		if layout.CopyDir != "" && filepath.Base(layout.CopyDir) == name && filepath.Base(filepath.Dir(layout.CopyDir)) == "ipcert" {
			if _, err := os.Stat(layout.CopyDir); err == nil {
				dst := filepath.Join(keep, "copies", filepath.Base(layout.CopyDir))
				if err := os.MkdirAll(filepath.Dir(dst), 0o700); err == nil && os.Rename(layout.CopyDir, dst) == nil {
					fmt.Fprintf(s.Out, "Took back the copy %s that %s read (kept as %s).\n", layout.CopyDir, k, dst)
				}
			}
		}
	}
	if len(failed) > 0 {
		return failure("not removed, since a server still uses it: %s", strings.Join(failed, "; "))
	}
	if err := os.MkdirAll(keep, 0o700); err != nil {
		return failure("%v", err)
	}
	dst := filepath.Join(keep, "cert")
	if err := os.Rename(st.CertDir(name), dst); err != nil {
		return failure("moving %s aside: %v", st.CertDir(name), err)
	}
	// Cockpit's files of this certificate (ws-certs.d/ipcert-NAME.*): the
	// folder is Cockpit's own, only ipcert's files go.
	for _, ext := range []string{".cert", ".key"} {
		f := filepath.Join("/etc/cockpit/ws-certs.d", "ipcert-"+name+ext)
		if _, err := os.Lstat(f); err == nil {
			dst := filepath.Join(keep, "copies", filepath.Base(f))
			if err := os.MkdirAll(filepath.Dir(dst), 0o700); err == nil && os.Rename(f, dst) == nil {
				fmt.Fprintf(s.Out, "Took back %s (kept as %s); Cockpit uses its own certificate after a restart (systemctl restart cockpit).\n", f, dst)
			}
		}
	}
	// The failure record of a first issuance and the index entries go
	// with it: status and renew no longer see the name.
	_ = st.ClearFirstFailure(name)
	fmt.Fprintf(s.Out, "Removed %s: renewals stop. Its files are kept in %s (delete the folder when you no longer need them).\n", name, keep)
	if r != nil && len(r.DeployHooks) > 0 {
		fmt.Fprintf(s.Out, "Its deploy hooks ran after each renewal and will not run again: %s\n", strings.Join(r.DeployHooks, "; "))
	}
	return nil
}
