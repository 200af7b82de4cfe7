package safefs

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// Writing as root outside the state directory (issue 22): the debug log,
// man pages, the node_exporter textfile, web-server snippets and backups,
// renewal units and cron entries. The folder is reached by a walk from /
// that opens each component with O_NOFOLLOW and follows only links that
// root owns (or, for a user's own run, that user), so a link another user
// planted on the way, or a folder they swapped for one, is refused with
// its owner named, never followed; the file itself is created beside its
// final name and renamed over it (rename replaces a link, never follows
// it), or, for a log, opened with O_NOFOLLOW and kept only when root owns
// it.

// WriteOptions says how a folder root writes in is reached.
type WriteOptions struct {
	// Strict: every folder on the way must belong to root and be
	// writable only by root (a sticky folder such as /tmp is allowed
	// above the last). For what root later runs or serves: units, cron
	// entries, web-server configs and their backups.
	Strict bool
	// Create makes missing folders (0755, or 0700 with Private).
	Create  bool
	Private bool
	// Fix is the advice when the folder itself is refused.
	Fix string
}

func strictOwner() bool { return os.Geteuid() == 0 }

// OpenDir opens the folder path as the options say. The walk never
// follows a link another user owns.
func OpenDir(path string, o WriteOptions) (*os.File, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	abs = filepath.Clean(abs)
	root := strictOwner()
	me := os.Geteuid()
	fd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	cur := "/"
	todo := strings.Split(strings.TrimPrefix(abs, "/"), "/")
	hops := 0
	fail := func(e error) (*os.File, error) {
		unix.Close(fd)
		return nil, e
	}
	for len(todo) > 0 {
		comp := todo[0]
		todo = todo[1:]
		if comp == "" || comp == "." {
			continue
		}
		last := len(todo) == 0
		next := filepath.Join(cur, comp)
		var st unix.Stat_t
		err := unix.Fstatat(fd, comp, &st, unix.AT_SYMLINK_NOFOLLOW)
		if errors.Is(err, unix.ENOENT) && o.Create {
			mode := uint32(0o755)
			if o.Private {
				mode = 0o700
			}
			if err := unix.Mkdirat(fd, comp, mode); err != nil && !errors.Is(err, unix.EEXIST) {
				return fail(&os.PathError{Op: "mkdir", Path: next, Err: err})
			}
			err = unix.Fstatat(fd, comp, &st, unix.AT_SYMLINK_NOFOLLOW)
		}
		if err != nil {
			return fail(&os.PathError{Op: "open", Path: next, Err: err})
		}
		if st.Mode&unix.S_IFMT == unix.S_IFLNK {
			if int(st.Uid) != 0 && (root || int(st.Uid) != me) {
				return fail(&UntrustedError{Path: next, Target: abs, Uid: int(st.Uid), Link: true,
					Fix: fmt.Sprintf("remove the link (rm %s) or give the real path", next)})
			}
			hops++
			if hops > 40 {
				return fail(fmt.Errorf("%s: too many levels of symbolic links", abs))
			}
			buf := make([]byte, 4096)
			n, err := unix.Readlinkat(fd, comp, buf)
			if err != nil {
				return fail(&os.PathError{Op: "readlink", Path: next, Err: err})
			}
			t := string(buf[:n])
			if strings.HasPrefix(t, "/") {
				nfd, err := unix.Open("/", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
				if err != nil {
					return fail(err)
				}
				unix.Close(fd)
				fd, cur = nfd, "/"
			}
			todo = append(strings.Split(t, "/"), todo...)
			continue
		}
		nfd, err := unix.Openat(fd, comp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			// Swapped for a link since the look: refused the same way.
			var lst unix.Stat_t
			if errors.Is(err, unix.ELOOP) && unix.Fstatat(fd, comp, &lst, unix.AT_SYMLINK_NOFOLLOW) == nil && lst.Mode&unix.S_IFMT == unix.S_IFLNK {
				return fail(&UntrustedError{Path: next, Target: abs, Uid: int(lst.Uid), Link: true,
					Fix: fmt.Sprintf("remove the link (rm %s) or give the real path", next)})
			}
			return fail(&os.PathError{Op: "open", Path: next, Err: err})
		}
		unix.Close(fd)
		fd = nfd
		if comp == ".." {
			cur = filepath.Dir(cur)
		} else {
			cur = next
		}
		if o.Strict && root {
			if err := unix.Fstat(fd, &st); err != nil {
				return fail(err)
			}
			perm := os.FileMode(st.Mode & 0o7777)
			sticky := st.Mode&unix.S_ISVTX != 0 && !last
			if st.Uid != 0 || (perm&0o022 != 0 && !sticky) {
				f := fmt.Sprintf("make %s root's and writable only by root (chown root:root %s && chmod go-w %s), or choose a folder only root can change", cur, cur, cur)
				if last && o.Fix != "" {
					f = o.Fix
				}
				if !last {
					f += "; every folder above one root writes in must belong to root and be writable only by root"
				}
				return fail(&UntrustedError{Path: cur, Target: abs, Uid: int(st.Uid), Mode: perm, Fix: f})
			}
		}
	}
	return os.NewFile(uintptr(fd), abs), nil
}

// MkdirAll makes the folder path (and its parents) the way OpenDir
// reaches it.
func MkdirAll(path string, o WriteOptions) error {
	o.Create = true
	d, err := OpenDir(path, o)
	if err != nil {
		return err
	}
	return d.Close()
}

// WriteFile writes data to path atomically: a temporary file created
// beside it (O_EXCL|O_NOFOLLOW) with mode (and group gid, unless -1),
// fsynced, renamed over path within the folder opened once, and the
// folder fsynced. A reader sees the old file or the whole new one; a link
// at path is replaced, never followed.
func WriteFile(path string, data []byte, mode os.FileMode, gid int, o WriteOptions) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	dir, base := filepath.Split(abs)
	if base == "" || base == "." || base == ".." {
		return fmt.Errorf("%s: not a file name", path)
	}
	d, err := OpenDir(dir, o)
	if err != nil {
		return err
	}
	defer d.Close()
	dfd := int(d.Fd())
	var rnd [6]byte
	rand.Read(rnd[:])
	tmp := "." + base + "." + hex.EncodeToString(rnd[:]) + ".tmp"
	f, err := CreateFileAt(dfd, tmp, filepath.Join(dir, tmp), uint32(mode.Perm()))
	if err != nil {
		return err
	}
	ok := false
	defer func() {
		if !ok {
			f.Close()
			unix.Unlinkat(dfd, tmp, 0)
		}
	}()
	if gid >= 0 {
		if err := f.Chown(-1, gid); err != nil {
			return err
		}
		// chown may clear set-id bits; the mode is set again.
		if err := f.Chmod(mode); err != nil {
			return err
		}
	}
	if _, err := f.Write(data); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := unix.Renameat(dfd, tmp, dfd, base); err != nil {
		return &os.LinkError{Op: "rename", Old: filepath.Join(dir, tmp), New: abs, Err: err}
	}
	ok = true
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// OpenAppend opens path for appending, creating it with mode: the folder
// as OpenDir reaches it, the file itself with O_NOFOLLOW. Run as root,
// only a regular file root owns with no other name is kept: appending to
// another user's file, or to a hard link they made, is what a planted
// path is for.
func OpenAppend(path string, mode os.FileMode, o WriteOptions) (*os.File, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, err
	}
	if !strictOwner() {
		// A user's own run: their files, their links.
		return os.OpenFile(abs, os.O_WRONLY|os.O_APPEND|os.O_CREATE, mode)
	}
	dir, base := filepath.Split(abs)
	if base == "" || base == "." || base == ".." {
		return nil, fmt.Errorf("%s: not a file name", path)
	}
	d, err := OpenDir(dir, o)
	if err != nil {
		return nil, err
	}
	defer d.Close()
	fd, err := unix.Openat(int(d.Fd()), base, unix.O_WRONLY|unix.O_APPEND|unix.O_CREAT|unix.O_NOFOLLOW|unix.O_CLOEXEC, uint32(mode.Perm()))
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			var st unix.Stat_t
			if unix.Fstatat(int(d.Fd()), base, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
				return nil, &UntrustedError{Path: abs, Target: abs, Uid: int(st.Uid), Link: true,
					Fix: fmt.Sprintf("remove the link (rm %s) or give the real path", abs)}
			}
		}
		return nil, &os.PathError{Op: "open", Path: abs, Err: err}
	}
	f := os.NewFile(uintptr(fd), abs)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		f.Close()
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		f.Close()
		return nil, fmt.Errorf("%s is not a regular file", abs)
	}
	if strictOwner() && (st.Uid != 0 || st.Nlink != 1) {
		f.Close()
		if st.Uid != 0 {
			return nil, &UntrustedError{Path: abs, Target: abs, Uid: int(st.Uid), Mode: os.FileMode(st.Mode & 0o777),
				Fix: fmt.Sprintf("root appends only to its own files: remove it (rm %s) or give another path", abs)}
		}
		return nil, fmt.Errorf("refusing %s: it has %d names (hard links), so appending could change another file; fix: remove it (rm %s) or give another path", abs, st.Nlink, abs)
	}
	return f, nil
}
