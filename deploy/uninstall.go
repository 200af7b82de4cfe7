package deploy

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// UninstallResult says what Uninstall did.
type UninstallResult struct {
	Path       string `json:"path"`
	Removed    bool   `json:"removed"`           // the snippet was taken out of the config
	KeptAs     string `json:"kept_as,omitempty"` // where the file went
	Reloaded   bool   `json:"reloaded"`
	RolledBack bool   `json:"rolled_back,omitempty"`
}

// Uninstall takes an ipcert snippet back out of a server's configuration:
// the file (and its enable link) move into keep, the config is tested and
// the server reloaded; when the test or the reload fails, the file is put
// back and nothing else changes. A file ipcert did not write, or none,
// is left alone (Removed false).
func Uninstall(ctx context.Context, l Layout, reload Cmd, run Runner, keep string) (UninstallResult, error) {
	res := UninstallResult{Path: l.ConfigPath}
	if run == nil {
		run = ExecRunner{}
	}
	old, err := os.ReadFile(l.ConfigPath)
	if errors.Is(err, fs.ErrNotExist) {
		return res, nil
	}
	if err != nil {
		return res, fmt.Errorf("read %s: %w", l.ConfigPath, err)
	}
	if !IsOurs(old) {
		return res, nil
	}
	if err := os.MkdirAll(keep, 0o700); err != nil {
		return res, err
	}
	res.KeptAs = filepath.Join(keep, filepath.Base(l.ConfigPath))
	link := ""
	if l.EnableLink != "" {
		if t, err := os.Readlink(l.EnableLink); err == nil && (t == l.ConfigPath || filepath.Join(filepath.Dir(l.EnableLink), t) == l.ConfigPath) {
			link = t
		}
	}
	if err := moveFile(l.ConfigPath, res.KeptAs); err != nil {
		return res, fmt.Errorf("move %s aside: %w", l.ConfigPath, err)
	}
	if link != "" {
		_ = os.Remove(l.EnableLink)
	}
	putBack := func() {
		_ = moveFile(res.KeptAs, l.ConfigPath)
		if link != "" {
			_ = os.Symlink(link, l.EnableLink)
		}
		res.RolledBack, res.KeptAs = true, ""
	}
	if l.Test.Path != "" {
		if out, err := run.Run(ctx, l.TestCmd()); err != nil {
			putBack()
			return res, fmt.Errorf("the %s config fails its test without ipcert's snippet (%s), so the snippet was put back:\n%s", l.Kind, l.TestCmd(), programOutput(out))
		}
	}
	if reload.Path != "" {
		rctx, cancel := context.WithTimeout(ctx, DefaultHookTimeout)
		out, err := run.Run(rctx, reload)
		cancel()
		if err != nil {
			putBack()
			// The server runs the config it had: reload it with the
			// snippet back, as before.
			_, _ = run.Run(ctx, reload)
			return res, fmt.Errorf("%s failed without ipcert's snippet (%v), so the snippet was put back:\n%s", reload, err, programOutput(out))
		}
		res.Reloaded = true
	}
	res.Removed = true
	return res, nil
}

// keepName is a folder name for what a removal keeps: NAME-20261207T140501Z.
func keepName(name string, now time.Time) string {
	return name + "-" + now.UTC().Format("20060102T150405Z")
}

// KeepDir is where a removal of name at now keeps its files, under the
// state directory root.
func KeepDir(root, name string, now time.Time) string {
	return filepath.Join(root, "removed", keepName(name, now))
}

// moveFile renames, or copies and removes across file systems (the state
// directory and /etc need not share one).
func moveFile(from, to string) error {
	err := os.Rename(from, to)
	if err == nil || !errors.Is(err, syscall.EXDEV) {
		return err
	}
	b, err := os.ReadFile(from)
	if err != nil {
		return err
	}
	st, err := os.Stat(from)
	if err != nil {
		return err
	}
	if err := os.WriteFile(to, b, st.Mode().Perm()); err != nil {
		return err
	}
	return os.Remove(from)
}
