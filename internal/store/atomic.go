package store

import (
	"fmt"
	"github.com/ipcert/ipcert/internal/safefs"
	"os"
	"path/filepath"
)

// File and directory modes. Keys and account data are secrets: 0600 files in
// 0700 directories, set explicitly so that no umask can loosen them.
const (
	dirMode  os.FileMode = 0o700
	fileMode os.FileMode = 0o600
	certMode os.FileMode = 0o644
)

// WriteFileAtomic writes data to path so that a reader (ipcert, or a web
// server reading its config) sees either the old file or the complete new
// one, never a torn write: temp file in the same directory, fsync,
// rename(2), fsync of the directory. The temp name starts with '.' and ends
// in ".tmp", so no include glob (*.conf, *.pem) picks it up meanwhile.
//
// Outside the state directory (web-server configs and their backups, the
// group-readable copies) and run as root, the folder is reached without
// following another user's link and must be root's and writable only by
// root, parents too (safefs.WriteFile, Strict); a link at path is
// replaced, never followed.
func WriteFileAtomic(path string, data []byte, mode os.FileMode) error {
	return safefs.WriteFile(path, data, mode, -1, safefs.WriteOptions{Strict: true})
}

// WriteFileAtomicGroup is WriteFileAtomic with the file's group set to gid
// (on the open file, before it is visible): a copy a service reads as its
// own user (deploy's group-readable copies).
func WriteFileAtomicGroup(path string, data []byte, mode os.FileMode, gid int) error {
	return safefs.WriteFile(path, data, mode, gid, safefs.WriteOptions{Strict: true})
}

func writeFile(path string, data []byte, mode os.FileMode) error {
	return writeFileOwned(path, data, mode, -1)
}

func writeFileOwned(path string, data []byte, mode os.FileMode, gid int) error {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*.tmp")
	if err != nil {
		return err
	}
	tmp := f.Name()
	ok := false
	defer func() {
		if !ok {
			f.Close()
			os.Remove(tmp)
		}
	}()
	if gid >= 0 {
		if err := f.Chown(-1, gid); err != nil {
			return err
		}
	}
	if err := f.Chmod(mode); err != nil {
		return err
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
	if err := os.Rename(tmp, path); err != nil {
		return err
	}
	ok = true
	return syncDir(dir)
}

// writeNew creates path with mode and data, fsynced; it fails if path
// exists. Used inside directories that are not yet visible to readers.
func writeNew(path string, data []byte, mode os.FileMode) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
	if err != nil {
		return err
	}
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("fsync %s: %w", dir, err)
	}
	return nil
}

// mkdirPrivate creates dir (and parents) and makes sure dir itself is 0700.
func mkdirPrivate(dir string) error {
	// Already right: no write at all, so reading a state directory on a
	// read-only mount (status, verify) still works.
	if st, err := os.Stat(dir); err == nil && st.IsDir() && st.Mode().Perm() == dirMode {
		return nil
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	return os.Chmod(dir, dirMode)
}
