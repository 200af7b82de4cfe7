package deploy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/ipcert/ipcert/deploy/catalog"
	"github.com/ipcert/ipcert/internal/untrusted"
)

// InstallFiles is Install for a service configured by its files alone
// (Cockpit: ipcert-NAME.cert and .key in ws-certs.d): it copies the
// certificate into Layout.CopyDir in the service's format, runs the
// service's check, and restores the previous files (or removes the new
// ones) when the check fails; then in.Reload. in.Content is not used.
func InstallFiles(ctx context.Context, in Installer, paths CertPaths) (InstallResult, error) {
	l := in.Layout
	res := InstallResult{Path: l.ConfigPath}
	run := in.Runner
	if run == nil {
		run = ExecRunner{}
	}
	if l.Service.Files != catalog.FilesCockpit || l.CopyDir == "" {
		return res, fmt.Errorf("install: %s is configured by a config file, not by its files alone", l.Kind)
	}
	if fi, err := os.Stat(l.CopyDir); err != nil || !fi.IsDir() {
		return res, fmt.Errorf("%s does not exist: is %s installed? (Debian: apt-get install cockpit-ws)", l.CopyDir, l.Service.Title)
	}
	// No check before: Cockpit's fails on a fresh install (no
	// certificate yet), which is what ipcert is about to fix.
	names := CopyFiles(CopyCockpit, paths.Name)
	old := make([][]byte, len(names))
	existed := make([]bool, len(names))
	for i, n := range names {
		b, err := os.ReadFile(filepath.Join(l.CopyDir, n))
		switch {
		case err == nil:
			old[i], existed[i] = b, true
		case !errors.Is(err, fs.ErrNotExist):
			return res, err
		}
	}
	if _, err := CopyAs(paths, l.CopyDir, "root", CopyCockpit); err != nil {
		return res, err
	}
	res.Changed = true
	if l.Test.Path != "" {
		out, err := run.Run(ctx, l.Test)
		res.Tested, res.TestOutput = true, programOutput(out)
		if err != nil {
			var errs []error
			for i, n := range names {
				errs = append(errs, restore(filepath.Join(l.CopyDir, n), old[i], existed[i], 0o640, 0))
			}
			what := "the previous files were restored"
			if rerr := errors.Join(errs...); rerr != nil {
				what = fmt.Sprintf("restoring the previous files FAILED (%v); remove %s by hand", rerr, strings.Join(names, " and "))
			} else {
				res.RolledBack = true
			}
			return res, fmt.Errorf("the %s certificate check failed with the new files (%s), so nothing was restarted and %s:\n%s", l.Kind, l.Test, what, res.TestOutput)
		}
		// "Would use certificate DIR/FILE": Cockpit takes the last
		// file in alphabetical order, which must be ipcert's.
		if want := filepath.Join(l.CopyDir, names[1]); !strings.Contains(res.TestOutput, want) {
			var errs []error
			for i, n := range names {
				errs = append(errs, restore(filepath.Join(l.CopyDir, n), old[i], existed[i], 0o640, 0))
			}
			res.RolledBack = errors.Join(errs...) == nil
			return res, fmt.Errorf("%s would not use ipcert's certificate (%s) but another file of %s, which sorts after it; move that file away, then try again (nothing was changed):\n%s", l.Service.Title, want, l.CopyDir, res.TestOutput)
		}
	}
	if in.Reload.Path == "" {
		return res, nil
	}
	out, err := run.Run(ctx, in.Reload)
	res.ReloadOutput = programOutput(out)
	if err != nil {
		return res, fmt.Errorf("the new files passed the check and are installed, but %s failed (%v); start it by hand:\n%s", in.Reload, err, res.ReloadOutput)
	}
	res.Reloaded = true
	return res, nil
}

// ApplyCmd is what makes the running service read a changed config (a
// new snippet): the pickup of a renewal, except for dnsdist, whose console
// reloads certificates but not listeners: a restart.
func (l Layout) ApplyCmd(systemd bool) Cmd {
	if l.Kind == Dnsdist {
		svc := l.Service
		svc.Pickup = catalog.PickupRestart
		args := svc.PickupArgs(systemd)
		return Cmd{Path: args[0], Args: args[1:]}
	}
	return l.ReloadCmd(systemd)
}

// programOutput is what a config test or reload printed, made safe to
// print (it may quote files and names another user chose).
func programOutput(b []byte) string { return untrusted.Lines(strings.TrimSpace(string(b))) }
