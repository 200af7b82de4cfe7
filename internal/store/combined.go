package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// EnsureCombined makes sure the current version of name has combined.pem
// (fullchain + key, 0600), which HAProxy needs because it reads the
// certificate and its key from one file. Versions issued with
// Renewal.Combined set already have it; this fills it in for a version
// issued before. created is false when it was already there.
func (s *Store) EnsureCombined(name string) (path string, created bool, err error) {
	v, err := s.CurrentVersion(name)
	if err != nil {
		return "", false, err
	}
	path = filepath.Join(v.Dir, CombinedFile)
	if _, err := os.Stat(path); err == nil {
		return path, false, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return "", false, err
	}
	full, err := os.ReadFile(filepath.Join(v.Dir, FullChainFile))
	if err != nil {
		return "", false, err
	}
	key, err := os.ReadFile(filepath.Join(v.Dir, KeyFile))
	if err != nil {
		return "", false, err
	}
	// LoadVersion (through CurrentVersion) checked that key and leaf
	// match; check the full chain starts with that same leaf.
	leaf, err := ParseLeaf(full)
	if err != nil || !leaf.Equal(v.Leaf) {
		return "", false, fmt.Errorf("%s: %s does not start with %s's certificate; issue again with ipcert renew --force %s", name, FullChainFile, CertFile, name)
	}
	if err := writeFile(path, append(append([]byte{}, full...), key...), fileMode); err != nil {
		return "", false, fmt.Errorf("write %s: %w", path, err)
	}
	return path, true, nil
}
