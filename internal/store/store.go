// Package store keeps ipcert's state on disk: ACME accounts, certificate
// versions, the "current" link and what a later renewal needs.
//
// Layout (docs/ARCHITECTURE.md):
//
//	accounts/<ca-host>/<id>/      account.json, key.pem (0600)
//	certs/<name>/versions/<n>/    cert.pem chain.pem fullchain.pem privkey.pem [root.pem] [combined.pem]
//	certs/<name>/current ->       versions/<n>, swapped with rename(2)
//	certs/<name>/renewal.json     identifiers, CA, challenge, hooks, last result, ARI state
//
// A version directory is written completely under a temporary name, fsynced
// and renamed into place before current may point at it, so current always
// names a certificate and the key that belongs to it.
package store

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
)

// Store is one state directory.
type Store struct {
	root string
	idx  indexState
	// acct makes an account's two files (account.json, key.pem) change
	// and be read as one: parallel renewals share the Store.
	acct sync.RWMutex
	// reg lets one of them register a missing account while the others
	// wait for it (LockRegistration).
	reg sync.Mutex
}

// LockRegistration is held while an account is registered, so that
// parallel issuances from one Store that all find no account register
// one, not one each (Let's Encrypt allows 10 new accounts per address
// in 3 hours). Call the returned function to release it.
func (s *Store) LockRegistration() (unlock func()) {
	s.reg.Lock()
	return s.reg.Unlock
}

// Open makes sure root exists with mode 0700 and returns the store.
func Open(root string) (*Store, error) {
	if root == "" {
		return nil, errors.New("no state directory given; use --state-dir DIR or IPCERT_STATE_DIR")
	}
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, err
	}
	// Checked before anything is created or chmod'ed (the path may be a
	// planted link), and again after: a missing directory may have been
	// created by someone else meanwhile.
	if err := checkRoot(abs); err != nil {
		return nil, err
	}
	if err := mkdirPrivate(abs); err != nil {
		return nil, explainFS(abs, fmt.Errorf("state directory %s: %w", abs, err))
	}
	if err := checkRoot(abs); err != nil {
		return nil, err
	}
	s := &Store{root: abs}
	for _, sub := range []string{"accounts", "certs"} {
		p := filepath.Join(abs, sub)
		if err := s.checkInside(p); err != nil {
			return nil, err
		}
		if err := mkdirPrivate(p); err != nil {
			return nil, explainFS(abs, fmt.Errorf("state directory %s: %w", abs, err))
		}
	}
	return s, nil
}

// Root is the state directory's absolute path.
func (s *Store) Root() string { return s.root }

// DefaultRoot is /etc/ipcert for root, else $XDG_STATE_HOME/ipcert
// (~/.local/state/ipcert). IPCERT_STATE_DIR wins over both; the caller
// passes --state-dir through the same variable.
func DefaultRoot(getenv func(string) string, uid int) string {
	if d := getenv("IPCERT_STATE_DIR"); d != "" {
		return d
	}
	if uid == 0 {
		return "/etc/ipcert"
	}
	if d := getenv("XDG_STATE_HOME"); d != "" {
		return filepath.Join(d, "ipcert")
	}
	if h := getenv("HOME"); h != "" {
		return filepath.Join(h, ".local", "state", "ipcert")
	}
	return filepath.Join(os.TempDir(), fmt.Sprintf("ipcert-%d", uid))
}

// ValidName reports whether name is safe as a directory name and inside
// shell globs and config files: letters, digits, '.', '_' and '-', not
// starting with '.' or '-', at most 100 bytes.
func ValidName(name string) error {
	if name == "" {
		return errors.New("empty certificate name")
	}
	if len(name) > 100 {
		return fmt.Errorf("certificate name %.20q... is longer than 100 characters", name)
	}
	if name[0] == '.' || name[0] == '-' {
		return fmt.Errorf("certificate name %q must not start with %q", name, name[0])
	}
	for _, r := range name {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-'
		if !ok {
			return fmt.Errorf("certificate name %q has %q; use only letters, digits, '.', '_' and '-'", name, r)
		}
	}
	return nil
}

// NameFor derives a certificate name from canonical IP identifiers. IPv6
// colons become '-' (2001:db8::1 -> 2001-db8--1) so that the name is safe in
// paths, shell globs, scp targets and PATH-like lists; several identifiers
// are sorted and joined with '_', so the order of --ip flags does not matter.
func NameFor(identifiers []string) string {
	ids := append([]string(nil), identifiers...)
	sort.Strings(ids)
	parts := make([]string, len(ids))
	for i, id := range ids {
		p := strings.ReplaceAll(id, ":", "-")
		// "::1" would start with '-', which commands read as an option;
		// "0::1" is the same address, so "0--1" stays readable.
		if strings.HasPrefix(p, "-") {
			p = "0" + p
		}
		parts[i] = p
	}
	name := strings.Join(parts, "_")
	if len(name) > 100 {
		name = name[:100]
	}
	return strings.TrimRight(name, "_-.")
}

func (s *Store) certDir(name string) string { return filepath.Join(s.root, "certs", name) }

// CertDir is certs/<name>.
func (s *Store) CertDir(name string) string { return s.certDir(name) }

// CurrentDir is the path of the current link, certs/<name>/current; web
// server configs point here so that a renewal needs only a reload.
func (s *Store) CurrentDir(name string) string { return filepath.Join(s.certDir(name), "current") }

// Names lists the managed certificates: every certs/<name> with a
// renewal.json, sorted.
func (s *Store) Names() ([]string, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, "certs"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var names []string
	for _, e := range entries {
		if !e.IsDir() || ValidName(e.Name()) != nil {
			continue
		}
		if _, err := os.Stat(filepath.Join(s.certDir(e.Name()), renewalFile)); err == nil {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	return names, nil
}

// Exists reports whether a certificate of that name is managed.
func (s *Store) Exists(name string) bool {
	_, err := os.Stat(filepath.Join(s.certDir(name), renewalFile))
	return err == nil
}

// maxVersion is the highest version number ipcert writes or reads.
const maxVersion = 1 << 30

// versionNumbers lists versions/<n> numbers, ascending.
func (s *Store) versionNumbers(name string) ([]int, error) {
	entries, err := os.ReadDir(filepath.Join(s.certDir(name), "versions"))
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	var ns []int
	for _, e := range entries {
		// A name beyond maxVersion is not ipcert's (a renewal every 80
		// hours would need millions of years to reach it): counting from
		// it, say from versions/9223372036854775807, would overflow and
		// make every later renewal fail (issue 12).
		if n, err := strconv.Atoi(e.Name()); err == nil && n > 0 && n <= maxVersion && e.IsDir() {
			ns = append(ns, n)
		}
	}
	sort.Ints(ns)
	return ns, nil
}

// Paths are the files of one version directory (CurrentDir for the live
// one), as issue --json, the wizard and the printed summary name them.
type Paths struct {
	Dir       string `json:"-"`
	FullChain string `json:"fullchain"`
	Cert      string `json:"cert"`
	Chain     string `json:"chain"`
	Key       string `json:"privkey"`
	// Root is the local test CA's root, stored beside its certificates.
	Root string `json:"root,omitempty"`
}

// PathsIn names the files in dir; withRoot adds the test CA's root.
func PathsIn(dir string, withRoot bool) Paths {
	p := Paths{
		Dir:       dir,
		FullChain: filepath.Join(dir, FullChainFile),
		Cert:      filepath.Join(dir, CertFile),
		Chain:     filepath.Join(dir, ChainFile),
		Key:       filepath.Join(dir, KeyFile),
	}
	if withRoot {
		p.Root = filepath.Join(dir, RootFile)
	}
	return p
}
