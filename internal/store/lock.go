package store

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ErrLocked is returned (wrapped in *LockedError) when another run holds the
// store's lock.
var ErrLocked = errors.New("state directory is locked by another ipcert run")

// LockedError says who holds the lock.
type LockedError struct {
	Path string
	PID  int
}

func (e *LockedError) Error() string {
	who := "another ipcert run"
	if e.PID > 0 {
		who = fmt.Sprintf("another ipcert run (pid %d)", e.PID)
	}
	return fmt.Sprintf("%s is working on this state (lock %s); wait for it to finish, or check it with: ps -p %d", who, e.Path, e.PID)
}

func (e *LockedError) Is(target error) bool { return target == ErrLocked }

// Lock takes the store-wide lock (flock(2) on <root>/.lock, released by the
// kernel if the process dies, so a SIGKILLed run never leaves a stale lock).
// With wait false it fails at once with *LockedError; with wait true it
// retries until ctx ends.
func (s *Store) Lock(ctx context.Context, wait bool) (unlock func(), err error) {
	path := filepath.Join(s.root, ".lock")
	// Never through a link, and only our own regular file: root truncates
	// it (issue 12: a planted .lock link made root truncate its target).
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|syscall.O_NOFOLLOW|syscall.O_CLOEXEC, fileMode)
	if err != nil {
		if errors.Is(err, syscall.ELOOP) {
			return nil, fmt.Errorf("lock file %s is a symbolic link; ipcert never makes one: remove it (rm %s) and check who made it", path, path)
		}
		return nil, explainFS(s.root, fmt.Errorf("open lock file: %w", err))
	}
	if err := checkLockFile(f, path, s.root); err != nil {
		f.Close()
		return nil, err
	}
	for {
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			f.Close()
			return nil, fmt.Errorf("lock %s: %w", path, err)
		}
		if !wait {
			pid := readPID(f)
			f.Close()
			return nil, &LockedError{Path: path, PID: pid}
		}
		select {
		case <-ctx.Done():
			pid := readPID(f)
			f.Close()
			return nil, fmt.Errorf("%w (gave up waiting: %v)", &LockedError{Path: path, PID: pid}, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
	// The pid is only for the message another run shows; a stale pid left by
	// a killed run is harmless because flock, not the pid, is the lock.
	_ = f.Truncate(0)
	_, _ = f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	s.lockTaken()
	s.removeStaleHourly(time.Now())
	return func() {
		s.lockReleasing()
		_ = f.Truncate(0)
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		f.Close()
	}, nil
}

func readPID(f *os.File) int {
	buf := make([]byte, 32)
	n, _ := f.ReadAt(buf, 0)
	pid, _ := strconv.Atoi(strings.TrimSpace(string(buf[:n])))
	return pid
}

// checkLockFile makes sure the opened lock is a regular file of ours with
// a single name: not a hard link to some other file.
func checkLockFile(f *os.File, path, root string) error {
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	st, _ := fi.Sys().(*syscall.Stat_t)
	switch {
	case !fi.Mode().IsRegular():
		return fmt.Errorf("lock file %s is not a regular file; remove it (rm %s)", path, path)
	case st != nil && st.Nlink > 1:
		return fmt.Errorf("lock file %s has %d names (a hard link to another file); remove it (rm %s) and check who made it", path, st.Nlink, path)
	case st != nil && strictOwner() && (st.Uid != 0 || fi.Mode().Perm()&0o022 != 0):
		return fmt.Errorf("lock file %s belongs to uid %d or is writable by others (mode %04o); fix: %s", path, st.Uid, fi.Mode().Perm(), stateFix(root))
	}
	return nil
}
