package store

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
)

// Every renewal.json write is noted, by name, in <state>/.renew-changed
// before the file itself changes (and fsynced): the renewal index that
// `ipcert renew` keeps (renew, renew-index) then knows which of
// its entries to read again, so a run with nothing due parses no
// renewal.json at thousands of certificates, and an index never lags
// behind a change, even one cut short by a crash. Writes happen under the
// store lock (SaveRenewal takes it when the caller does not hold it), so
// renew can fold the notes into its index and clear them without losing
// one.
const changedFile = ".renew-changed"

// indexState tracks the store lock of this Store value and the names
// noted while it is held.
type indexState struct {
	mu     sync.Mutex
	locked bool
	noted  map[string]bool
}

func (s *Store) holdsLock() bool {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	return s.idx.locked
}

func (s *Store) lockTaken() {
	s.idx.mu.Lock()
	s.idx.locked, s.idx.noted = true, nil
	s.idx.mu.Unlock()
}

func (s *Store) lockReleasing() {
	s.idx.mu.Lock()
	s.idx.locked, s.idx.noted = false, nil
	s.idx.mu.Unlock()
}

// noteChange appends name to the change notes, durably, once per lock.
func (s *Store) noteChange(name string) error {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	if s.idx.noted[name] {
		return nil
	}
	f, err := os.OpenFile(filepath.Join(s.root, changedFile), os.O_WRONLY|os.O_APPEND|os.O_CREATE|syscall.O_NOFOLLOW, fileMode)
	if err != nil {
		return fmt.Errorf("note the change of %s for the renewal index: %w", name, err)
	}
	_, werr := f.WriteString(name + "\n")
	serr := f.Sync()
	if err := errors.Join(werr, serr, f.Close()); err != nil {
		return fmt.Errorf("note the change of %s for the renewal index: %w", name, err)
	}
	if s.idx.noted == nil {
		s.idx.noted = map[string]bool{}
	}
	s.idx.noted[name] = true
	return nil
}

// Changed lists the certificates whose renewal.json changed since the
// notes were last cleared (ClearChanged), each once.
func (s *Store) Changed() ([]string, error) {
	data, err := os.ReadFile(filepath.Join(s.root, changedFile))
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	seen := map[string]bool{}
	var out []string
	for l := range strings.SplitSeq(string(bytes.TrimSpace(data)), "\n") {
		if l != "" && !seen[l] && ValidName(l) == nil {
			seen[l] = true
			out = append(out, l)
		}
	}
	return out, nil
}

// ClearChanged forgets the notes, once the caller's index has taken them
// in. Call it holding the store lock, after the index is written.
func (s *Store) ClearChanged() error {
	err := os.Remove(filepath.Join(s.root, changedFile))
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return syncDir(s.root)
}

// CertNames lists the certificate folders by name alone, without looking
// into them (Names checks each has a renewal.json): for a caller that
// knows the names from elsewhere (renew's index) and only wants to see
// folders added or removed.
func (s *Store) CertNames() ([]string, error) {
	f, err := os.Open(filepath.Join(s.root, "certs"))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		return nil, err
	}
	defer f.Close()
	all, err := f.Readdirnames(-1)
	if err != nil {
		return nil, err
	}
	out := all[:0]
	for _, n := range all {
		if ValidName(n) == nil {
			out = append(out, n)
		}
	}
	return out, nil
}

// WriteState writes a small file of the state directory atomically
// (renew's index): temp file, fsync, rename.
func (s *Store) WriteState(name string, data []byte) error {
	return writeFile(filepath.Join(s.root, name), data, fileMode)
}

// ReadState reads such a file. It is opened without following a link and
// must be a regular file; run as root, one that root does not own or that
// others may write is refused (these are caches, which their readers
// rebuild, but what is in them is shown and acted on).
func (s *Store) ReadState(name string) ([]byte, error) {
	f, fi, err := s.openRegular(filepath.Join(s.root, name), strictOwner())
	if err != nil {
		return nil, err
	}
	defer f.Close()
	data := make([]byte, 0, fi.Size()+1)
	for {
		n, err := f.Read(data[len(data):cap(data)])
		data = data[:len(data)+n]
		if err == io.EOF {
			return data, nil
		}
		if err != nil {
			return nil, err
		}
		if len(data) == cap(data) {
			data = append(data, 0)[:len(data)]
		}
	}
}

// ReadStateString is ReadState as a string, read into it directly: one
// allocation the size of the file and no copy (the renewal index of
// 10,000 certificates is read by every hourly run).
func (s *Store) ReadStateString(name string) (string, error) {
	f, fi, err := s.openRegular(filepath.Join(s.root, name), strictOwner())
	if err != nil {
		return "", err
	}
	defer f.Close()
	var b strings.Builder
	b.Grow(int(fi.Size()) + 1)
	if _, err := io.Copy(&b, f); err != nil {
		return "", err
	}
	return b.String(), nil
}

// CertsMtime is the modification time of the certs folder in ns: it
// changes when a certificate folder is added or removed.
func (s *Store) CertsMtime() (int64, error) {
	fi, err := os.Stat(filepath.Join(s.root, "certs"))
	if err != nil {
		return 0, err
	}
	return fi.ModTime().UnixNano(), nil
}
