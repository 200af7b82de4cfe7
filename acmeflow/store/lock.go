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
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, fileMode)
	if err != nil {
		return nil, explainFS(s.root, fmt.Errorf("open lock file: %w", err))
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
