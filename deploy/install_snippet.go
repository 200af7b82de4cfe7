package deploy

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"

	"github.com/ipcert/ipcert/internal/safefs"
	"github.com/ipcert/ipcert/internal/store"
)

// InstallSnippetOptions tunes InstallSnippet.
type InstallSnippetOptions struct {
	// Reload the service after the install (only when the service
	// manager says it is active), and after every renewal.
	Reload bool
	// EnableModules lets the install enable what the snippet needs
	// (Debian's apache2 ships without mod_ssl): "snippet --write" is the
	// user's go-ahead; the wizard asks first.
	EnableModules bool
	// Notes receives a line for each file made on the way (combined.pem,
	// the copy for a service's group); nil drops them.
	Notes io.Writer
}

// InstallSnippet is "ipcert snippet KIND NAME --write", shared with the
// wizard: combined.pem first (HAProxy's config test reads it), the install
// of snip for srv with a reload only when the system service is active,
// and renewal.json's settings (reload, combined, the copy hook) only once
// the install succeeded, so a refused or rolled-back install changes
// nothing.
func InstallSnippet(ctx context.Context, st *store.Store, name string, srv Server, snip []byte, opts InstallSnippetOptions) (InstallResult, ServiceState, error) {
	errw := opts.Notes
	if errw == nil {
		errw = io.Discard
	}
	reload := opts.Reload
	layout := srv.Layout(name)
	res := InstallResult{Path: layout.ConfigPath}
	if srv.Kind == HAProxy {
		if err := RecordSnippet(ctx, st, name, srv.Kind, SnippetSettings{}, errw); err != nil {
			return res, ServiceState{Unit: layout.Unit}, err
		}
	}
	ch := SnippetSettings{Combined: srv.Kind == HAProxy, Reload: reload}
	unit := layout.Unit
	if !srv.Systemd {
		unit = layout.Service.SysVName()
	}
	if srv.Kind == Cockpit {
		// No config file: the files in Cockpit's directory are the
		// install, checked by cockpit-certificate-ensure.
		svc := ServiceStatus(ctx, ExecRunner{}, unit, srv.Systemd, "/")
		in := Installer{Layout: layout, Runner: ExecRunner{}}
		if reload && svc.Active {
			in.Reload = layout.ApplyCmd(srv.Systemd)
		}
		res, err := InstallFiles(ctx, in, CertPathsIn(name, nil, st.CurrentDir(name)))
		if err != nil {
			return res, svc, err
		}
		ch.CopyHook = CopyHookAs("root", layout.CopyDir, CopyCockpit)
		return res, svc, RecordSnippet(ctx, st, name, srv.Kind, ch, errw)
	}
	if layout.CopyDir != "" {
		// The server reads as its own user: the copy must exist before
		// its config test (run as that user) reads it.
		if err := safefs.MkdirAll(filepath.Dir(layout.CopyDir), safefs.WriteOptions{Strict: true}); err != nil {
			return res, ServiceState{Unit: layout.Unit}, err
		}
		created, err := CopyForGroup(CertPathsIn(name, nil, st.CurrentDir(name)), layout.CopyDir, layout.Group)
		if err != nil {
			return res, ServiceState{Unit: layout.Unit}, fmt.Errorf("%s reads the certificate as user %s: %w", srv.Kind, layout.User, err)
		}
		if created {
			fmt.Fprintf(errw, "Made %s: a copy of the certificate and key readable by group %s; renewals refresh it.\n", layout.CopyDir, layout.Group)
			defer func() {
				if ch.CopyHook == "" || res.RolledBack {
					os.RemoveAll(layout.CopyDir)
				}
			}()
		}
		ch.CopyHook = CopyHook(layout.Group, layout.CopyDir)
	}
	in := Installer{Layout: layout, Content: snip, BackupDir: filepath.Join(st.Root(), "backups"), Runner: ExecRunner{}, EnableModules: opts.EnableModules}
	// Only the service manager knows whether the system service runs: a
	// process called nginx may be a private instance that a service
	// reload never reaches, and Debian's init scripts report success for
	// a reload of a stopped service. A reload that cannot work is not run.
	svc := ServiceStatus(ctx, ExecRunner{}, unit, srv.Systemd, "/")
	if reload && svc.Active {
		in.Reload = layout.ApplyCmd(srv.Systemd)
	}
	res, err := Install(ctx, in)
	if err != nil {
		ch.CopyHook = ""
		return res, svc, err
	}
	return res, svc, RecordSnippet(ctx, st, name, srv.Kind, ch, errw)
}

// SnippetSettings is what a snippet changes in renewal.json.
type SnippetSettings struct {
	Combined bool   // keep combined.pem (HAProxy)
	Reload   bool   // reload this server after renewals
	CopyHook string // CopyHook to run first after renewals
}

// RecordSnippet makes combined.pem for HAProxy's current version and
// records ch in renewal.json, under the store lock so a running renew
// does not write renewal.json at the same time. A line saying so goes to
// notes when combined.pem was made.
func RecordSnippet(ctx context.Context, st *store.Store, name string, kind Kind, ch SnippetSettings, notes io.Writer) error {
	return st.UpdateRenewal(ctx, name, func(r *store.Renewal) (bool, error) {
		changed := false
		if kind == HAProxy {
			path, created, err := st.EnsureCombined(name)
			if err != nil {
				return false, fmt.Errorf("HAProxy needs combined.pem: %w", err)
			}
			if created && notes != nil {
				fmt.Fprintf(notes, "Wrote %s (certificate chain and key in one file, for HAProxy); renewals keep it.\n", path)
			}
		}
		if ch.Combined && !r.Combined {
			r.Combined, changed = true, true
		}
		if ch.Reload && r.Reload != string(kind) {
			r.Reload, changed = string(kind), true
		}
		if ch.CopyHook != "" && !slices.Contains(r.DeployHooks, ch.CopyHook) {
			// First: the user's hooks and the reload see the fresh copy.
			r.DeployHooks, changed = append([]string{ch.CopyHook}, r.DeployHooks...), true
		}
		return changed, nil
	})
}
