// Package safefs holds the file-system primitives ipcert uses where root
// works in places another user may control: opening directories beneath a
// root without following symbolic links (openat2 RESOLVE_BENEATH |
// RESOLVE_NO_SYMLINKS, or an O_NOFOLLOW walk on kernels before 5.6), and an
// ownership check of a path and its parents in the spirit of sshd's
// StrictModes. docs/security.md says what is trusted and why.
package safefs

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"

	"golang.org/x/sys/unix"
)

// LinkError is a symbolic link (or another non-directory) met where ipcert
// refuses to follow one.
type LinkError struct {
	Path   string // the link, as a path for people
	Target string // where it points (empty when unreadable or not a link)
	NotDir bool   // the entry is not a link but not a directory either
}

func (e *LinkError) Error() string {
	if e.NotDir {
		return fmt.Sprintf("%s is not a directory", e.Path)
	}
	t := ""
	if e.Target != "" {
		t = " (to " + strconv.Quote(e.Target) + ")"
	}
	return fmt.Sprintf("%s is a symbolic link%s; ipcert does not follow links inside the web root, because whoever owns the web root could point them anywhere: replace it with a real directory", e.Path, t)
}

// noOpenat2 is set once openat2(2) turned out to be missing (ENOSYS: a
// kernel before 5.6; EPERM: a seccomp filter): from then on every
// component is opened with openat(2) and O_NOFOLLOW.
var noOpenat2 atomic.Bool

// OpenDirAt opens the directory name (one path component) beneath the
// directory dirfd without following a symbolic link. shown is how the entry
// is named in errors. The returned descriptor is O_RDONLY|O_DIRECTORY.
func OpenDirAt(dirfd int, name, shown string) (int, error) {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return -1, fmt.Errorf("%s: %q is not a single file name", shown, name)
	}
	flags := unix.O_RDONLY | unix.O_DIRECTORY | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := openat2(dirfd, name, flags, 0)
	if err != nil {
		return -1, describe(dirfd, name, shown, err)
	}
	return fd, nil
}

// CreateFileAt creates name beneath dirfd with mode, failing if anything
// (a file, a link) is already there: O_CREAT|O_EXCL|O_NOFOLLOW. The mode is
// set on the open descriptor too, so no umask narrows it and nothing is
// ever changed by path.
func CreateFileAt(dirfd int, name, shown string, mode uint32) (*os.File, error) {
	if name == "" || name == "." || name == ".." || strings.Contains(name, "/") {
		return nil, fmt.Errorf("%s: %q is not a single file name", shown, name)
	}
	flags := unix.O_WRONLY | unix.O_CREAT | unix.O_EXCL | unix.O_NOFOLLOW | unix.O_CLOEXEC
	fd, err := openat2(dirfd, name, flags, mode)
	if err != nil {
		return nil, fmt.Errorf("create %s: %w", shown, err)
	}
	if err := unix.Fchmod(fd, mode); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("create %s: %w", shown, err)
	}
	return os.NewFile(uintptr(fd), shown), nil
}

// openat2 opens name beneath dirfd with RESOLVE_BENEATH|RESOLVE_NO_SYMLINKS
// where the kernel has it, else with plain openat (the callers pass single
// components and O_NOFOLLOW, which then refuses a link just the same).
func openat2(dirfd int, name string, flags int, mode uint32) (int, error) {
	if !noOpenat2.Load() {
		how := &unix.OpenHow{Flags: uint64(flags), Mode: uint64(mode), Resolve: unix.RESOLVE_BENEATH | unix.RESOLVE_NO_SYMLINKS}
		for {
			fd, err := unix.Openat2(dirfd, name, how)
			if err == unix.EINTR || err == unix.EAGAIN {
				continue
			}
			// ENOSYS: no openat2 in this kernel. EPERM: a seccomp filter
			// that does not know it (SystemCallErrorNumber=EPERM, older
			// container runtimes); a real EPERM comes back from openat too.
			if err == unix.ENOSYS || err == unix.EPERM {
				noOpenat2.Store(true)
				break
			}
			return fd, err
		}
	}
	for {
		fd, err := unix.Openat(dirfd, name, flags, mode)
		if err == unix.EINTR {
			continue
		}
		return fd, err
	}
}

// describe turns ELOOP / ENOTDIR / EXDEV into a LinkError naming the link.
func describe(dirfd int, name, shown string, err error) error {
	if !errors.Is(err, unix.ELOOP) && !errors.Is(err, unix.ENOTDIR) && !errors.Is(err, unix.EXDEV) {
		return &os.PathError{Op: "open", Path: shown, Err: err}
	}
	var st unix.Stat_t
	if unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Mode&unix.S_IFMT != unix.S_IFLNK {
		return &LinkError{Path: shown, NotDir: true}
	}
	buf := make([]byte, 4096)
	n, rerr := unix.Readlinkat(dirfd, name, buf)
	target := ""
	if rerr == nil {
		target = string(buf[:n])
	}
	return &LinkError{Path: shown, Target: target}
}

// Identity is a file's device and inode, to remove only what we created.
type Identity struct{ Dev, Ino uint64 }

// IdentityOf is the identity of an open file.
func IdentityOf(fd int) (Identity, error) {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return Identity{}, err
	}
	return Identity{uint64(st.Dev), st.Ino}, nil
}

// RemoveIfSame removes name beneath dirfd only when it is still the file
// (or, with dir, the empty directory) of identity id: whoever else controls
// the directory may have put something else there meanwhile, and that is
// theirs. unlinkat(2) never follows a link, so at worst it removes a link
// in a directory the other user owns anyway.
func RemoveIfSame(dirfd int, name string, id Identity, dir bool) error {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err
	}
	if uint64(st.Dev) != id.Dev || st.Ino != id.Ino {
		return fmt.Errorf("%s was replaced by something else; left alone", name)
	}
	flags := 0
	if dir {
		flags = unix.AT_REMOVEDIR
	}
	return unix.Unlinkat(dirfd, name, flags)
}

// UntrustedError says a path root was about to rely on can be changed by
// another user.
type UntrustedError struct {
	Path   string // the offending component
	Target string // the path the caller asked about
	Uid    int
	Mode   os.FileMode
	Link   bool   // Path is a symbolic link owned by another user
	Fix    string // what to run
}

func (e *UntrustedError) Error() string {
	var why string
	switch {
	case e.Link:
		why = fmt.Sprintf("is a symbolic link owned by %s", userName(e.Uid))
	case e.Uid != 0:
		why = fmt.Sprintf("belongs to %s, not root", userName(e.Uid))
	default:
		why = fmt.Sprintf("is writable by group or others (mode %04o)", e.Mode.Perm())
	}
	where := e.Path
	if e.Path != e.Target {
		where = fmt.Sprintf("%s (a parent of %s)", e.Path, e.Target)
	}
	return fmt.Sprintf("refusing %s: %s %s, so another user could change what root runs or writes; fix: %s", e.Target, where, why, e.Fix)
}

func userName(uid int) string {
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		return fmt.Sprintf("user %s (uid %d)", u.Username, uid)
	}
	return fmt.Sprintf("uid %d", uid)
}

// CheckOwned makes sure that nobody but root can change path: path and
// every directory above it (symbolic links resolved one by one, and the
// links themselves) must belong to root and not be writable by group or
// others, like sshd's StrictModes. A world-writable directory with the
// sticky bit (/tmp) is allowed above path, because there only an entry's
// owner may rename or remove it. A path that does not exist yet is fine
// up to the first missing component (root creates the rest). fix is the
// advice for path itself; a bad parent gets its own.
func CheckOwned(path, fix string) error {
	abs, err := filepath.Abs(path)
	if err != nil {
		return err
	}
	todo := strings.Split(strings.TrimPrefix(filepath.Clean(abs), "/"), "/")
	cur := "/"
	if err := checkOne(cur, abs, false, fix); err != nil {
		return err
	}
	for hops := 0; len(todo) > 0; {
		comp := todo[0]
		todo = todo[1:]
		if comp == "" || comp == "." {
			continue
		}
		if comp == ".." {
			cur = filepath.Dir(cur)
			continue
		}
		next := filepath.Join(cur, comp)
		fi, err := os.Lstat(next)
		if errors.Is(err, os.ErrNotExist) {
			return nil
		}
		if err != nil {
			return err
		}
		last := len(todo) == 0
		if fi.Mode()&os.ModeSymlink != 0 {
			if uid := ownerOf(fi); uid != 0 {
				return &UntrustedError{Path: next, Target: abs, Uid: uid, Link: true, Fix: "remove the link (rm " + next + ") or point ipcert at the real path"}
			}
			hops++
			if hops > 40 {
				return fmt.Errorf("%s: too many levels of symbolic links", abs)
			}
			t, err := os.Readlink(next)
			if err != nil {
				return err
			}
			if filepath.IsAbs(t) {
				cur = "/"
			}
			todo = append(strings.Split(t, "/"), todo...)
			continue
		}
		if err := checkOne(next, abs, last, fix); err != nil {
			return err
		}
		cur = next
	}
	return nil
}

func checkOne(p, target string, last bool, fix string) error {
	fi, err := os.Lstat(p)
	if err != nil {
		return err
	}
	uid := ownerOf(fi)
	m := fi.Mode()
	sticky := m.IsDir() && m&os.ModeSticky != 0 && !last
	if uid == 0 && (m.Perm()&0o022 == 0 || sticky) {
		return nil
	}
	f := fix
	if p != target && !last {
		f = fmt.Sprintf("%s; every directory above it must belong to root and be writable only by root, and %s is not", fix, p)
	}
	return &UntrustedError{Path: p, Target: target, Uid: uid, Mode: m, Fix: f}
}

func ownerOf(fi os.FileInfo) int {
	if st, ok := fi.Sys().(*syscall.Stat_t); ok {
		return int(st.Uid)
	}
	return -1
}
