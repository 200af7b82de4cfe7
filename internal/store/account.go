package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Account is accounts/<ca-host>/<id>/account.json. The key lives beside it
// in key.pem (0600) and never in this struct's JSON.
type Account struct {
	URI       string    `json:"uri"` // the account URL (kid)
	Directory string    `json:"directory"`
	Email     string    `json:"email,omitempty"`
	Created   time.Time `json:"created"`
}

// CAKey names a CA's folder under accounts/: the directory's host and port,
// with ':' turned into '_' so the name is safe everywhere. caName overrides
// it (the local test CA listens on a new port every run).
func CAKey(directory, caName string) string {
	if caName != "" {
		return caName
	}
	u, err := url.Parse(directory)
	if err != nil || u.Host == "" {
		return "unknown"
	}
	h := strings.NewReplacer(":", "_", "[", "", "]", "").Replace(u.Host)
	if ValidName(h) != nil {
		return "unknown"
	}
	return h
}

func (s *Store) accountDir(caKey, id string) string {
	return filepath.Join(s.root, "accounts", caKey, id)
}

// LoadAccount returns the stored account and its PEM key, or an error
// wrapping os.ErrNotExist when there is none yet.
func (s *Store) LoadAccount(caKey, id string) (*Account, []byte, error) {
	if err := ValidName(caKey); err != nil {
		return nil, nil, err
	}
	if err := ValidName(id); err != nil {
		return nil, nil, err
	}
	dir := s.accountDir(caKey, id)
	s.acct.RLock()
	defer s.acct.RUnlock()
	data, err := s.readTrusted(filepath.Join(dir, "account.json"))
	if err != nil {
		return nil, nil, err
	}
	key, err := s.readTrusted(filepath.Join(dir, "key.pem"))
	if err != nil {
		return nil, nil, err
	}
	var a Account
	if err := json.Unmarshal(data, &a); err != nil {
		return nil, nil, fmt.Errorf("%s: not valid JSON (%v); move the folder away and ipcert registers a new account", filepath.Join(dir, "account.json"), err)
	}
	if _, err := ParseKey(key); err != nil {
		return nil, nil, fmt.Errorf("%s: %v; move the folder away and ipcert registers a new account", filepath.Join(dir, "key.pem"), err)
	}
	if a.URI == "" {
		return nil, nil, fmt.Errorf("%s: no account URL: %w", filepath.Join(dir, "account.json"), os.ErrNotExist)
	}
	return &a, key, nil
}

// SaveAccount writes the key first, then account.json, each atomically: an
// interrupted run leaves either no account or a complete one (a key without
// account.json is ignored and replaced next time).
func (s *Store) SaveAccount(caKey, id string, a *Account, keyPEM []byte) error {
	if err := ValidName(caKey); err != nil {
		return err
	}
	if err := ValidName(id); err != nil {
		return err
	}
	if a.URI == "" {
		return errors.New("account without URL")
	}
	dir := s.accountDir(caKey, id)
	s.acct.Lock()
	defer s.acct.Unlock()
	if err := mkdirPrivate(filepath.Dir(dir)); err != nil {
		return err
	}
	if err := mkdirPrivate(dir); err != nil {
		return err
	}
	if err := writeFile(filepath.Join(dir, "key.pem"), keyPEM, fileMode); err != nil {
		return err
	}
	data, err := json.MarshalIndent(a, "", "  ")
	if err != nil {
		return err
	}
	return writeFile(filepath.Join(dir, "account.json"), append(data, '\n'), fileMode)
}

// WriteFile writes an arbitrary file under the state directory atomically
// with mode (for callers such as the local CA root or HAProxy bundles).
func (s *Store) WriteFile(rel string, data []byte, mode os.FileMode) error {
	path := filepath.Join(s.root, rel)
	if !strings.HasPrefix(path, s.root+string(filepath.Separator)) {
		return fmt.Errorf("%q is outside the state directory", rel)
	}
	if err := mkdirPrivate(filepath.Dir(path)); err != nil {
		return err
	}
	return writeFile(path, data, mode)
}

// QuarantineAccount moves an unreadable account folder aside (to
// <id>.broken-<unix time>) instead of overwriting it: a hand-damaged file
// may still hold the only copy of an account key someone wants back.
func (s *Store) QuarantineAccount(caKey, id string, now time.Time) (string, error) {
	if err := ValidName(caKey); err != nil {
		return "", err
	}
	if err := ValidName(id); err != nil {
		return "", err
	}
	dir := s.accountDir(caKey, id)
	s.acct.Lock()
	defer s.acct.Unlock()
	dest := fmt.Sprintf("%s.broken-%d", dir, now.Unix())
	if err := os.Rename(dir, dest); err != nil {
		return "", err
	}
	return dest, syncDir(filepath.Dir(dir))
}
