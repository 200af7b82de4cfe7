package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// Explain adds what to do to a file-system error met while writing the
// state directory: the three usual causes are a full disk, a read-only
// mount and a directory that belongs to someone else.
func (s *Store) Explain(err error) error {
	if err == nil {
		return nil
	}
	return explainFS(s.root, err)
}

func explainFS(root string, err error) error {
	switch {
	case errors.Is(err, syscall.ENOSPC), errors.Is(err, syscall.EDQUOT):
		return fmt.Errorf("%w; the disk holding %s is full: free some space (df -h %s) and run again; the current certificate was not touched", err, root, root)
	case errors.Is(err, syscall.EROFS):
		return fmt.Errorf("%w; %s is on a read-only file system: remount it read-write, or choose a writable state directory with --state-dir", err, root)
	case errors.Is(err, fs.ErrPermission):
		return fmt.Errorf("%w; %s is not writable by this user (uid %d): run as its owner (often root: sudo), or choose another state directory with --state-dir", err, root, os.Getuid())
	}
	return err
}
