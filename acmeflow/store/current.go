package store

import (
	"fmt"
	"os"
	"path/filepath"
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
