package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/ipcert/ipcert/internal/safefs"
)

// Root never acts on what another user controls (issue 12, docs/security.md).
// A state directory holds deploy hooks that renew runs as root, account
// keys and a lock file root truncates: run as root, ipcert refuses a state
// directory (or anything in it) that another user owns or may write, and
// every directory above it too, as sshd's StrictModes does for
// authorized_keys. Run as another user, the files are that user's own
// business and the kernel's permissions apply.

// strictOwner reports whether the ownership checks apply.
func strictOwner() bool { return os.Geteuid() == 0 }

// stateFix is the fix for a state directory root must not use.
func stateFix(root string) string {
	return fmt.Sprintf("if the files are yours to keep, chown -R root: %s; chmod 700 %s; else choose a directory only root can write with --state-dir (default /etc/ipcert)", root, root)
}

// checkRoot checks the state directory and its parents.
func checkRoot(abs string) error {
	if !strictOwner() {
		return nil
	}
	return safefs.CheckOwned(abs, stateFix(abs))
}

// checkInside checks path below the state directory, and every directory
// between them: owned by root, not writable by group or others, no links.
// A missing file is left to the caller.
func (s *Store) checkInside(path string) error {
	if !strictOwner() {
		return nil
	}
	rel, err := filepath.Rel(s.root, path)
	if err != nil || rel == ".." || strings.HasPrefix(rel, "../") {
		return fmt.Errorf("%s is outside the state directory %s", path, s.root)
	}
	cur := s.root
	for _, comp := range strings.Split(rel, string(filepath.Separator)) {
		if comp == "." || comp == "" {
			continue
		}
		cur = filepath.Join(cur, comp)
		fi, err := os.Lstat(cur)
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		if err := trustedInfo(cur, fi, s.root); err != nil {
			return err
		}
	}
	return nil
}

func trustedInfo(p string, fi os.FileInfo, root string) error {
	st, _ := fi.Sys().(*syscall.Stat_t)
	uid := -1
	if st != nil {
		uid = int(st.Uid)
	}
	switch {
	case fi.Mode()&fs.ModeSymlink != 0:
		return &safefs.UntrustedError{Path: p, Target: p, Uid: uid, Link: true, Fix: "ipcert never puts a link there: remove it (rm " + p + ") and check who made it"}
	case uid != 0 || fi.Mode().Perm()&0o022 != 0:
		return &safefs.UntrustedError{Path: p, Target: p, Uid: uid, Mode: fi.Mode(), Fix: stateFix(root)}
	}
	return nil
}

// openRegular opens path without following a link and checks that the
// opened file is a regular one and, when trusted is set, that root may
// trust it (trustedInfo): what is checked is what is read.
func (s *Store) openRegular(path string, trusted bool) (*os.File, os.FileInfo, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, nil, err
	}
	fi, err := f.Stat()
	if err == nil && !fi.Mode().IsRegular() {
		err = fmt.Errorf("%s is not a regular file", path)
	}
	if err == nil && trusted {
		err = trustedInfo(path, fi, s.root)
	}
	if err != nil {
		f.Close()
		return nil, nil, err
	}
	return f, fi, nil
}

// readTrusted reads a file of the state directory after checking it and
// its directories; with strict checks on, it opens without following a
// link and checks the opened file itself, so nothing can be swapped in
// between.
func (s *Store) readTrusted(path string) ([]byte, error) {
	if err := s.checkInside(path); err != nil {
		return nil, err
	}
	if !strictOwner() {
		return os.ReadFile(path)
	}
	f, _, err := s.openRegular(path, true)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var b strings.Builder
	// renewal.json and account files are small; cap what a planted file
	// can make us read.
	buf := make([]byte, 32<<10)
	for {
		n, err := f.Read(buf)
		b.Write(buf[:n])
		if b.Len() > 16<<20 {
			return nil, fmt.Errorf("%s is larger than 16 MB; ipcert never writes such a file", path)
		}
		if err != nil {
			break
		}
	}
	return []byte(b.String()), nil
}
