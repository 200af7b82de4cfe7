package deploy

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	"github.com/ipcert/ipcert/internal/store"
)

// A server that reads its certificate as its own user (Debian's
// caddy.service runs User=caddy) cannot read ipcert's state: directories
// 0700 and keys 0600, owned by root. ipcert keeps a copy for it instead:
// DIR/fullchain.pem and DIR/privkey.pem, mode 0640, group GROUP, in a
// directory 0750 root:GROUP. The state itself stays private.
//
// The copy is refreshed after every renewal by a built-in deploy hook,
// kept in renewal.json's deploy_hooks like the user's own commands (so
// status shows it and it runs before the reload):
//
//	ipcert:copy-for GROUP DIR

// CopyHookPrefix starts the built-in deploy hook that refreshes the copy.
const CopyHookPrefix = "ipcert:copy-for "

// CopyHook is the deploy hook that keeps dir's copy for group fresh.
func CopyHook(group, dir string) string { return CopyHookPrefix + group + " " + dir }

// parseCopyHook reads a CopyHook; ok is false for any other command.
func parseCopyHook(cmd string) (group, dir string, ok bool, err error) {
	rest, found := strings.CutPrefix(cmd, CopyHookPrefix)
	if !found {
		return "", "", false, nil
	}
	f := strings.Fields(rest)
	if len(f) != 2 {
		return "", "", true, fmt.Errorf("%q: the built-in hook takes a group and a directory: %sGROUP DIR", cmd, CopyHookPrefix)
	}
	return f[0], f[1], true, nil
}

// CopyForGroup copies the certificate chain and key of paths into dir,
// readable by group (0640 files in a 0750 directory, owned by this user,
// normally root), each file replaced atomically (key first, so a server
// reloaded in between reads the old chain with the old key, or fails and
// keeps its old config). created says dir did not exist before.
//
// dir's parent must belong to this user (or root) and be writable by no
// one else: root never writes through a path another user could swap.
func CopyForGroup(paths CertPaths, dir, group string) (created bool, err error) {
	if err := checkPath("copy directory", dir); err != nil {
		return false, err
	}
	if err := checkValue("group", group); err != nil {
		return false, err
	}
	g, err := user.LookupGroup(group)
	if err != nil {
		return false, fmt.Errorf("group %s does not exist (is the web server installed?): %w", group, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return false, fmt.Errorf("group %s: %w", group, err)
	}
	parent := filepath.Dir(dir)
	if err := safeOwnedDir(parent, false); err != nil {
		return false, err
	}
	fi, err := os.Lstat(dir)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.Mkdir(dir, 0o700); err != nil {
			return false, err
		}
		created = true
	case err != nil:
		return false, err
	case fi.Mode()&os.ModeSymlink != 0 || !fi.IsDir():
		return false, fmt.Errorf("%s is not a directory (a symlink?); ipcert will not write through it: remove it", dir)
	}
	if err := safeOwnedDir(dir, true); err != nil {
		return created, err
	}
	// dir is ours and its parent is only ours: no one can swap it now.
	if err := os.Lchown(dir, os.Geteuid(), gid); err != nil {
		return created, err
	}
	if err := os.Chmod(dir, 0o750); err != nil {
		return created, err
	}
	for _, f := range []struct{ src, name string }{{paths.Key, "privkey.pem"}, {paths.FullChain, "fullchain.pem"}} {
		data, err := os.ReadFile(f.src)
		if err != nil {
			return created, err
		}
		if err := store.WriteFileAtomicGroup(filepath.Join(dir, f.name), data, 0o640, gid); err != nil {
			return created, fmt.Errorf("copy %s for group %s: %w", f.name, group, err)
		}
	}
	return created, nil
}

// safeOwnedDir checks that dir is a real directory owned by this user (or
// root), writable by no one else; groupOK allows a group (the copy's
// directory itself, which ipcert then sets).
func safeOwnedDir(dir string, groupOK bool) error {
	fi, err := os.Lstat(dir)
	if err != nil {
		return err
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok || !fi.IsDir() || fi.Mode()&os.ModeSymlink != 0 {
		return fmt.Errorf("%s is not a directory", dir)
	}
	if int(st.Uid) != os.Geteuid() && st.Uid != 0 {
		return fmt.Errorf("%s belongs to uid %d; ipcert writes the copy only below directories of root (or its own user)", dir, st.Uid)
	}
	if perm := fi.Mode().Perm(); perm&0o002 != 0 || !groupOK && perm&0o020 != 0 {
		return fmt.Errorf("%s is writable by others (mode %o); ipcert will not write below it: chmod go-w %s", dir, perm, dir)
	}
	return nil
}
