package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// CheckCurrent is the cheap check that certs/<name>/current points at a
// version whose certificate and key are there: a readlink and two stats,
// so that renew can afford it for every certificate on every run (the
// full check, parsing and matching, is CurrentVersion). A broken current
// makes the certificate due at once: web servers read through it.
func (s *Store) CheckCurrent(name string) error {
	dir := s.CurrentDir(name)
	link, err := os.Readlink(dir)
	if err != nil {
		if os.IsNotExist(err) {
			return fmt.Errorf("%s is missing", dir)
		}
		return fmt.Errorf("%s is not a link to a version: %v", dir, err)
	}
	for _, f := range []string{FullChainFile, KeyFile} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			return fmt.Errorf("%s points at %s, which has no %s", dir, link, f)
		}
	}
	return nil
}

// CurrentChecker is CheckCurrent for many certificates in a row: the
// same checks, from one descriptor of the certs folder instead of the
// whole path each time (renew checks hundreds per run at thousands of
// certificates). A failure is checked again by CheckCurrent, for its
// message. Call done when finished.
func (s *Store) CurrentChecker() (check func(name string) error, done func()) {
	fd, err := unix.Open(filepath.Join(s.root, "certs"), unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return s.CheckCurrent, func() {}
	}
	buf := make([]byte, 256)
	check = func(name string) error {
		var st unix.Stat_t
		cur := name + "/current"
		if ValidName(name) != nil {
			return s.CheckCurrent(name)
		}
		if _, err := unix.Readlinkat(fd, cur, buf); err != nil {
			return s.CheckCurrent(name)
		}
		for _, f := range []string{FullChainFile, KeyFile} {
			if unix.Fstatat(fd, cur+"/"+f, &st, 0) != nil {
				return s.CheckCurrent(name)
			}
		}
		return nil
	}
	return check, func() { unix.Close(fd) }
}

// CurrentLeaf is CurrentVersion without reading the key: the certificate
// is parsed, the key only looked at (there, a regular file). `status`
// uses it so that a store of thousands of certificates is not re-verified
// key by key on every call; CurrentVersion (or status --verify-keys)
// checks that the key matches.
func (s *Store) CurrentLeaf(name string) (Version, error) {
	n, err := s.currentN(name)
	if err != nil {
		return Version{}, err
	}
	dir := filepath.Join(s.certDir(name), "versions", strconv.Itoa(n))
	certPEM, err := os.ReadFile(filepath.Join(dir, CertFile))
	if err != nil {
		return Version{}, err
	}
	leaf, err := ParseLeaf(certPEM)
	if err != nil {
		return Version{}, fmt.Errorf("%s: %w", filepath.Join(dir, CertFile), err)
	}
	if fi, err := os.Stat(filepath.Join(dir, KeyFile)); err != nil {
		return Version{}, err
	} else if !fi.Mode().IsRegular() {
		return Version{}, fmt.Errorf("%s is not a regular file", filepath.Join(dir, KeyFile))
	}
	return Version{N: n, Dir: dir, Leaf: leaf}, nil
}

// currentN is the version number current points at.
func (s *Store) currentN(name string) (int, error) {
	link, err := os.Readlink(s.CurrentDir(name))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return 0, fmt.Errorf("%s: %w", name, ErrNoCurrent)
		}
		return 0, err
	}
	n, err := strconv.Atoi(strings.TrimPrefix(filepath.ToSlash(link), "versions/"))
	if err != nil {
		return 0, fmt.Errorf("%s: current points at %q, not at a version; ipcert renew --force %s makes a new one", name, link, name)
	}
	return n, nil
}
