package deploy

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"slices"
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
//	ipcert:copy-for GROUP DIR [FORMAT]
//
// FORMAT is the shape of the files (CopyFormats): pem (the default:
// fullchain.pem and privkey.pem), cockpit (ipcert-NAME.cert and
// ipcert-NAME.key in Cockpit's ws-certs.d), pkcs12 (NAME.p12: key,
// certificate and chain, no password, for Technitium and Jellyfin), or
// keypem (NAME.pem: key, then certificate and chain, for Pi-hole v6).

// CopyHookPrefix starts the built-in deploy hook that refreshes the copy.
const CopyHookPrefix = "ipcert:copy-for "

// CopyFormat is the shape of the files of a copy.
type CopyFormat string

// The formats a copy can take.
const (
	CopyPEM     CopyFormat = "pem"
	CopyCockpit CopyFormat = "cockpit"
	CopyPKCS12  CopyFormat = "pkcs12"
	CopyKeyPEM  CopyFormat = "keypem"
)

// CopyFormats lists them.
var CopyFormats = []CopyFormat{CopyPEM, CopyCockpit, CopyPKCS12, CopyKeyPEM}

// CopyHook is the deploy hook that keeps dir's copy for group fresh.
func CopyHook(group, dir string) string { return CopyHookPrefix + group + " " + dir }

// CopyHookAs is CopyHook for a format other than pem.
func CopyHookAs(group, dir string, f CopyFormat) string {
	if f == "" || f == CopyPEM {
		return CopyHook(group, dir)
	}
	return CopyHook(group, dir) + " " + string(f)
}

// parseCopyHook reads a CopyHook; ok is false for any other command.
func parseCopyHook(cmd string) (group, dir string, format CopyFormat, ok bool, err error) {
	rest, found := strings.CutPrefix(cmd, CopyHookPrefix)
	if !found {
		return "", "", "", false, nil
	}
	f := strings.Fields(rest)
	if len(f) != 2 && len(f) != 3 {
		return "", "", "", true, fmt.Errorf("%q: the built-in hook takes a group, a directory and a format: %sGROUP DIR [pem|cockpit|pkcs12|keypem]", cmd, CopyHookPrefix)
	}
	format = CopyPEM
	if len(f) == 3 {
		format = CopyFormat(f[2])
		if !slices.Contains(CopyFormats, format) {
			return "", "", "", true, fmt.Errorf("%q: unknown format %q; use pem, cockpit, pkcs12 or keypem", cmd, f[2])
		}
	}
	return f[0], f[1], format, true, nil
}

// CopyFiles are the names a copy in format f holds for certificate name.
func CopyFiles(f CopyFormat, name string) []string {
	switch f {
	case CopyCockpit:
		return []string{CockpitStem(name) + ".key", CockpitStem(name) + ".cert"}
	case CopyPKCS12:
		return []string{name + ".p12"}
	case CopyKeyPEM:
		return []string{name + ".pem"}
	}
	return []string{"privkey.pem", "fullchain.pem"}
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
	return CopyAs(paths, dir, group, CopyPEM)
}

// CopyAs is CopyForGroup in format f (CopyFiles names the files). For
// Cockpit's directory, which belongs to its package, the directory's own
// owner and mode are left as they are.
func CopyAs(paths CertPaths, dir, group string, f CopyFormat) (created bool, err error) {
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
	if f != CopyCockpit || created {
		if err := os.Lchown(dir, os.Geteuid(), gid); err != nil {
			return created, err
		}
		if err := os.Chmod(dir, 0o750); err != nil {
			return created, err
		}
	}
	key, err := os.ReadFile(paths.Key)
	if err != nil {
		return created, err
	}
	chain, err := os.ReadFile(paths.FullChain)
	if err != nil {
		return created, err
	}
	var contents [][]byte
	switch f {
	case CopyPKCS12:
		p12, err := PKCS12(key, chain)
		if err != nil {
			return created, err
		}
		contents = [][]byte{p12}
	case CopyKeyPEM:
		contents = [][]byte{append(append([]byte{}, key...), chain...)}
	default:
		// Key first, so a server reloaded in between reads the old
		// chain with the old key, or fails and keeps its old config.
		contents = [][]byte{key, chain}
	}
	for i, name := range CopyFiles(f, paths.Name) {
		if err := store.WriteFileAtomicGroup(filepath.Join(dir, name), contents[i], 0o640, gid); err != nil {
			return created, fmt.Errorf("copy %s for group %s: %w", name, group, err)
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
