package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/ipcert/ipcert/internal/safefs"
	"github.com/ipcert/ipcert/internal/store"
)

// Installer puts a snippet in place.
type Installer struct {
	Layout  Layout
	Content []byte // the snippet; must start with Marker
	// BackupDir keeps the files Install replaces (in the state directory,
	// not beside the config, where an include glob could pick them up).
	BackupDir string
	// Reload is run after a passing config test; an empty Path only
	// installs and tests.
	Reload Cmd
	Runner Runner           // default ExecRunner
	Now    func() time.Time // names backups; default time.Now
	// EnableModules lets Install turn on the modules the snippet needs
	// (Layout.EnableModules: Debian's a2enmod) instead of refusing; a
	// rolled-back install turns them off again.
	EnableModules bool
}

// InstallResult says what Install did.
type InstallResult struct {
	Path    string `json:"path"`
	Changed bool   `json:"changed"` // the file was written (false: it already had this content, or nothing was done)
	Backup  string `json:"backup,omitempty"`
	// LinkCreated: EnableLink was created (Debian apache2 sites-enabled).
	LinkCreated bool   `json:"link_created,omitempty"`
	Tested      bool   `json:"tested"`
	TestOutput  string `json:"test_output,omitempty"`
	Reloaded    bool   `json:"reloaded"`
	// ModulesEnabled are the modules Install turned on (a2enmod).
	ModulesEnabled []string `json:"modules_enabled,omitempty"`
	// ReloadOutput is what the reload printed.
	ReloadOutput string `json:"reload_output,omitempty"`
	// RolledBack: the test failed after writing and the previous state was
	// restored.
	RolledBack bool `json:"rolled_back,omitempty"`
	// IncludeNeeded: the server's main config does not read the file yet;
	// the user adds IncludeLine to IncludeFile (ipcert never edits files
	// it did not write), then reloads.
	IncludeNeeded bool   `json:"include_needed,omitempty"`
	IncludeFile   string `json:"include_file,omitempty"`
	IncludeLine   string `json:"include_line,omitempty"`
}

// Install writes the snippet to Layout.ConfigPath and puts it in service:
// config test first (an already broken config is refused untouched), a
// backup of the file it replaces, the write, the test again, and a reload
// only when that passes. When the second test fails, the previous file (or
// its absence) is restored and nothing is reloaded. It only ever replaces
// files that start with Marker.
func Install(ctx context.Context, in Installer) (InstallResult, error) {
	l := in.Layout
	res := InstallResult{Path: l.ConfigPath}
	run := in.Runner
	if run == nil {
		run = ExecRunner{}
	}
	now := time.Now
	if in.Now != nil {
		now = in.Now
	}
	if !IsOurs(in.Content) {
		return res, errors.New("install: the content is not an ipcert snippet")
	}
	if l.ConfigPath == "" || !filepath.IsAbs(l.ConfigPath) {
		return res, fmt.Errorf("install: no absolute config path for %s", l.Kind)
	}
	var missing []string
	for _, f := range l.Requires {
		if _, err := os.Stat(f); err != nil {
			missing = append(missing, f)
		}
	}
	enable := len(missing) > 0 && in.EnableModules && l.EnableModules.Path != ""
	if len(missing) > 0 && !enable {
		return res, fmt.Errorf("the %s snippet needs modules that are not enabled (missing %s); run: %s, then try again (nothing was changed)", l.Kind, strings.Join(missing, " and "), l.RequiresFix)
	}
	old, err := os.ReadFile(l.ConfigPath)
	existed := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return res, fmt.Errorf("read %s: %w", l.ConfigPath, err)
	}
	mode := os.FileMode(0o644)
	if st, err := os.Stat(l.ConfigPath); err == nil {
		mode = st.Mode().Perm()
	}
	gid := -1
	if l.ConfigGroup != "" {
		// The file holds a secret (dnsdist's console key) and the
		// service reads it as its own user: 0640, that group.
		g, err := user.LookupGroup(l.ConfigGroup)
		if err != nil {
			return res, fmt.Errorf("group %s does not exist (is %s installed?): %w", l.ConfigGroup, l.Kind, err)
		}
		if gid, err = strconv.Atoi(g.Gid); err != nil {
			return res, fmt.Errorf("group %s: %w", l.ConfigGroup, err)
		}
		mode = 0o640
	}
	if existed && !IsOurs(old) {
		return res, fmt.Errorf("%s exists and was not written by ipcert (it does not start with %q); ipcert never replaces such files: move it away, or merge the snippet into it by hand", l.ConfigPath, Marker)
	}
	needLink := false
	if l.EnableLink != "" {
		target, err := os.Readlink(l.EnableLink)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			needLink = true
		case err != nil:
			return res, fmt.Errorf("%s exists and is not a symlink; ipcert will not replace it: move it away", l.EnableLink)
		case target != l.ConfigPath && filepath.Join(filepath.Dir(l.EnableLink), target) != l.ConfigPath:
			return res, fmt.Errorf("%s points at %s, not at %s; ipcert will not replace it: remove it and try again", l.EnableLink, target, l.ConfigPath)
		}
	}
	if inc, err := l.Included(); err != nil || !inc {
		res.IncludeNeeded, res.IncludeFile, res.IncludeLine = true, l.IncludeFile, l.IncludeLine
	}
	if existed && bytes.Equal(old, in.Content) && !needLink && !enable {
		return res, nil
	}

	// The directory first: a test that names it (haproxy -f DIR) fails
	// when it does not exist yet, which says nothing about the config.
	dir := filepath.Dir(l.ConfigPath)
	_, err = os.Stat(dir)
	newDir := errors.Is(err, fs.ErrNotExist)
	if err := safefs.MkdirAll(dir, safefs.WriteOptions{Strict: true}); err != nil {
		return res, fmt.Errorf("create %s: %w", dir, err)
	}
	if l.Test.Path != "" {
		if out, err := run.Run(ctx, l.TestCmd()); err != nil {
			if newDir {
				os.Remove(dir)
			}
			return res, fmt.Errorf("the %s config already fails its test before ipcert changed anything, so nothing was written; fix it first (%s):\n%s", l.Kind, l.TestCmd(), programOutput(out))
		}
	}
	if enable {
		var mods []string
		for _, f := range missing {
			mods = append(mods, strings.TrimSuffix(filepath.Base(f), ".load"))
		}
		c := l.EnableModules
		c.Args = append(append([]string{}, c.Args...), mods...)
		if out, err := run.Run(ctx, c); err != nil {
			return res, fmt.Errorf("enabling the modules the %s snippet needs failed (%s), so nothing was written:\n%s", l.Kind, c, programOutput(out))
		}
		res.ModulesEnabled = mods
	}
	if existed {
		if err := safefs.MkdirAll(in.BackupDir, safefs.WriteOptions{Strict: true, Private: true}); err != nil {
			return res, fmt.Errorf("backup directory: %w", err)
		}
		b := filepath.Join(in.BackupDir, filepath.Base(l.ConfigPath)+"."+now().UTC().Format("20060102T150405.000000000Z"))
		if err := store.WriteFileAtomic(b, old, 0o600); err != nil {
			return res, fmt.Errorf("back up %s: %w", l.ConfigPath, err)
		}
		res.Backup = b
	}
	if err := store.WriteFileAtomicGroup(l.ConfigPath, in.Content, mode, gid); err != nil {
		return res, fmt.Errorf("write %s: %w", l.ConfigPath, err)
	}
	res.Changed = true
	if needLink {
		if err := os.Symlink(l.ConfigPath, l.EnableLink); err != nil {
			rerr := restore(l.ConfigPath, old, existed, mode, gid)
			return res, errors.Join(fmt.Errorf("enable %s: %w", l.EnableLink, err), rerr)
		}
		res.LinkCreated = true
	}
	rollback := func() error {
		var errs []error
		if res.LinkCreated {
			if err := os.Remove(l.EnableLink); err != nil {
				errs = append(errs, err)
			}
		}
		if err := restore(l.ConfigPath, old, existed, mode, gid); err != nil {
			errs = append(errs, err)
		}
		if len(res.ModulesEnabled) > 0 && l.DisableModules.Path != "" {
			c := l.DisableModules
			c.Args = append(append([]string{}, c.Args...), res.ModulesEnabled...)
			if out, err := run.Run(ctx, c); err != nil {
				errs = append(errs, fmt.Errorf("%s: %v: %s", c, err, programOutput(out)))
			} else {
				res.ModulesEnabled = nil
			}
		}
		res.RolledBack = len(errs) == 0
		return errors.Join(errs...)
	}
	if l.Test.Path != "" {
		out, err := run.Run(ctx, l.TestCmd())
		res.Tested, res.TestOutput = true, programOutput(out)
		if err != nil {
			rerr := rollback()
			what := "the previous file was restored"
			if !existed {
				what = "the new file was removed"
			}
			if rerr != nil {
				what = fmt.Sprintf("restoring the previous state FAILED (%v); restore %s by hand", rerr, l.ConfigPath)
				if res.Backup != "" {
					what += " from " + res.Backup
				}
			}
			return res, fmt.Errorf("the %s config test failed with the new snippet (%s), so nothing was reloaded and %s:\n%s", l.Kind, l.TestCmd(), what, res.TestOutput)
		}
	}
	if res.IncludeNeeded || in.Reload.Path == "" {
		return res, nil
	}
	out, err := run.Run(ctx, in.Reload)
	res.ReloadOutput = programOutput(out)
	if err != nil {
		// The service refused what its own test passed (a port it
		// cannot bind, a file its user cannot read): put the previous
		// config back and run the same command again, so a service a
		// failed restart left down comes back as it was.
		what := "the previous config was restored"
		if rerr := rollback(); rerr != nil {
			what = fmt.Sprintf("restoring the previous state FAILED (%v); restore %s by hand", rerr, l.ConfigPath)
			if res.Backup != "" {
				what += " from " + res.Backup
			}
		} else if out2, err2 := run.Run(ctx, in.Reload); err2 != nil {
			what += fmt.Sprintf(", but %s failed again with it (%v), so %s may be down: %s", in.Reload, err2, l.Unit, programOutput(out2))
		} else {
			what += " and " + in.Reload.String() + " ran again with it"
		}
		return res, fmt.Errorf("the new config passed its test, but %s failed (%v), so %s:\n%s", in.Reload, err, what, res.ReloadOutput)
	}
	res.Reloaded = true
	return res, nil
}

// restore puts back the previous content of path, or removes it when there
// was none.
func restore(path string, old []byte, existed bool, mode os.FileMode, gid int) error {
	if !existed {
		if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	return store.WriteFileAtomicGroup(path, old, mode, gid)
}
