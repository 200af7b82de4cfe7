package store

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// The renewal index (<state>/renew-index) keeps, for every certificate,
// the few fields of renewal.json that the due decision reads (renew.Plan),
// so that the hourly `ipcert renew` with nothing due reads one small file
// instead of parsing every renewal.json: a host with thousands of IP
// certificates stays in milliseconds.
//
// It is kept in step with renewal.json without ever being later than it:
// before a renewal.json changes, the flag file .renew-index.stale is made
// (and fsynced); the index is rewritten, and the flag removed, when the
// store lock is released after the changes (or by the next renew run that
// finds the flag, which then reads every renewal.json once). A reader that
// sees the flag, no index, or a damaged one, falls back to renewal.json.
const (
	indexFile   = "renew-index"
	indexStale  = ".renew-index.stale"
	indexHeader = "ipcert-renew-index 1"
)

// IndexEntry is what the index keeps of one renewal.json.
type IndexEntry struct {
	Name           string
	Current        int
	NotBefore      time.Time
	NotAfter       time.Time
	RenewAt        time.Time
	NextAttempt    time.Time
	Failures       int
	HasCertID      bool
	LocalCA        bool
	ARINextCheck   time.Time
	ARIWindowStart time.Time
	ARIWindowEnd   time.Time
	HasARI         bool
}

// EntryOf projects r onto the fields the due decision reads.
func EntryOf(r *Renewal) IndexEntry {
	e := IndexEntry{Name: r.Name, Current: r.Current, NotBefore: r.NotBefore, NotAfter: r.NotAfter,
		RenewAt: r.RenewAt, NextAttempt: r.NextAttempt, Failures: r.Failures,
		HasCertID: r.CertID != "", LocalCA: r.CA == "local"}
	if r.ARI != nil {
		e.HasARI = true
		e.ARINextCheck, e.ARIWindowStart, e.ARIWindowEnd = r.ARI.NextCheck, r.ARI.WindowStart, r.ARI.WindowEnd
	}
	return e
}

// Renewal rebuilds the part of renewal.json the due decision reads. It is
// enough to plan (renew.Plan) but not to renew: load the whole file for
// that.
func (e IndexEntry) Renewal() *Renewal {
	r := &Renewal{Schema: RenewalSchema, Name: e.Name, Current: e.Current, NotBefore: e.NotBefore, NotAfter: e.NotAfter,
		RenewAt: e.RenewAt, NextAttempt: e.NextAttempt, Failures: e.Failures, CA: "production"}
	if e.LocalCA {
		r.CA = "local"
	}
	if e.HasCertID {
		r.CertID = "(in renewal.json)"
	}
	if e.HasARI {
		r.ARI = &ARIState{NextCheck: e.ARINextCheck, WindowStart: e.ARIWindowStart, WindowEnd: e.ARIWindowEnd}
	}
	return r
}

func unixNano(t time.Time) string {
	if t.IsZero() {
		return "0"
	}
	return strconv.FormatInt(t.UnixNano(), 10)
}

func fromUnixNano(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	if n == 0 {
		return time.Time{}, nil
	}
	return time.Unix(0, n).UTC(), nil
}

func (e IndexEntry) line() string {
	flags := ""
	for _, f := range []struct {
		on bool
		c  string
	}{{e.HasCertID, "c"}, {e.LocalCA, "l"}, {e.HasARI, "a"}} {
		if f.on {
			flags += f.c
		}
	}
	if flags == "" {
		flags = "-"
	}
	return strings.Join([]string{e.Name, strconv.Itoa(e.Current), unixNano(e.NotBefore), unixNano(e.NotAfter),
		unixNano(e.RenewAt), unixNano(e.NextAttempt), strconv.Itoa(e.Failures), flags,
		unixNano(e.ARINextCheck), unixNano(e.ARIWindowStart), unixNano(e.ARIWindowEnd)}, "\t")
}

func parseIndexLine(l string) (IndexEntry, error) {
	f := strings.Split(l, "\t")
	if len(f) != 11 {
		return IndexEntry{}, fmt.Errorf("%d fields", len(f))
	}
	e := IndexEntry{Name: f[0]}
	if err := ValidName(e.Name); err != nil {
		return e, err
	}
	var err error
	if e.Current, err = strconv.Atoi(f[1]); err != nil {
		return e, err
	}
	if e.Failures, err = strconv.Atoi(f[6]); err != nil {
		return e, err
	}
	times := []*time.Time{&e.NotBefore, &e.NotAfter, &e.RenewAt, &e.NextAttempt}
	for i, p := range times {
		if *p, err = fromUnixNano(f[2+i]); err != nil {
			return e, err
		}
	}
	for i, p := range []*time.Time{&e.ARINextCheck, &e.ARIWindowStart, &e.ARIWindowEnd} {
		if *p, err = fromUnixNano(f[8+i]); err != nil {
			return e, err
		}
	}
	e.HasCertID = strings.Contains(f[7], "c")
	e.LocalCA = strings.Contains(f[7], "l")
	e.HasARI = strings.Contains(f[7], "a")
	return e, nil
}

// ReadIndex returns the index, or ok false when it cannot be trusted (the
// stale flag is set, it is missing or damaged): then read renewal.json.
func (s *Store) ReadIndex() (map[string]IndexEntry, bool) {
	if _, err := os.Lstat(filepath.Join(s.root, indexStale)); !errors.Is(err, os.ErrNotExist) {
		return nil, false
	}
	idx, err := s.loadIndexFile()
	return idx, err == nil
}

func (s *Store) loadIndexFile() (map[string]IndexEntry, error) {
	data, err := os.ReadFile(filepath.Join(s.root, indexFile))
	if err != nil {
		return nil, err
	}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	if !sc.Scan() || sc.Text() != indexHeader {
		return nil, errors.New("not a renewal index")
	}
	out := map[string]IndexEntry{}
	for sc.Scan() {
		e, err := parseIndexLine(sc.Text())
		if err != nil {
			return nil, err
		}
		out[e.Name] = e
	}
	return out, sc.Err()
}

// indexState is the store's record of renewal.json writes since the lock
// was taken, for the index rewrite when it is released.
type indexState struct {
	mu      sync.Mutex
	locked  bool                  // this Store holds the lock
	dirty   bool                  // the stale flag was there when the lock was taken: a run died mid-write
	marked  bool                  // this holder set the stale flag
	changed map[string]IndexEntry // renewal.json files written under the lock
}

func (s *Store) holdsLock() bool {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	return s.idx.locked
}

// markStale sets the stale flag (durably) before a renewal.json changes.
func (s *Store) markStale() error {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	if s.idx.marked {
		return nil
	}
	path := filepath.Join(s.root, indexStale)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|syscall.O_NOFOLLOW, fileMode)
	if err != nil {
		return fmt.Errorf("mark the renewal index stale: %w", err)
	}
	serr := f.Sync()
	if cerr := f.Close(); serr == nil {
		serr = cerr
	}
	if serr == nil {
		serr = syncDir(s.root)
	}
	if serr != nil {
		return fmt.Errorf("mark the renewal index stale: %w", serr)
	}
	s.idx.marked = true
	return nil
}

// noteSaved records a renewal.json just written, for the index rewrite.
func (s *Store) noteSaved(r *Renewal) {
	s.idx.mu.Lock()
	defer s.idx.mu.Unlock()
	if s.idx.changed == nil {
		s.idx.changed = map[string]IndexEntry{}
	}
	s.idx.changed[r.Name] = EntryOf(r)
}

func (s *Store) lockTaken() {
	_, err := os.Lstat(filepath.Join(s.root, indexStale))
	s.idx.mu.Lock()
	s.idx.locked, s.idx.marked, s.idx.changed = true, false, nil
	s.idx.dirty = !errors.Is(err, os.ErrNotExist)
	s.idx.mu.Unlock()
}

// lockReleasing rewrites the index after renewal.json changes made under
// the lock: the entries changed, merged into the index as it was, or,
// when a run had died mid-write, from every renewal.json. Failing, it
// leaves the stale flag, which only makes the next run read every
// renewal.json.
func (s *Store) lockReleasing() {
	s.idx.mu.Lock()
	changed, dirty := s.idx.changed, s.idx.dirty
	s.idx.locked, s.idx.marked, s.idx.dirty, s.idx.changed = false, false, false, nil
	s.idx.mu.Unlock()
	if len(changed) == 0 && !dirty {
		return
	}
	if dirty {
		_ = s.RebuildIndex(nil)
		return
	}
	base, err := s.loadIndexFile()
	if err != nil {
		_ = s.RebuildIndex(nil)
		return
	}
	for n, e := range changed {
		base[n] = e
	}
	_ = s.writeIndex(base)
}

// RebuildIndex writes the index from every renewal.json (or from loaded,
// when the caller has just read them all) and clears the stale flag. Call
// it holding the store lock.
func (s *Store) RebuildIndex(loaded []*Renewal) error {
	names, err := s.Names()
	if err != nil {
		return err
	}
	have := map[string]*Renewal{}
	for _, r := range loaded {
		if r != nil {
			have[r.Name] = r
		}
	}
	entries := map[string]IndexEntry{}
	for _, n := range names {
		r := have[n]
		if r == nil {
			if r, err = s.LoadRenewal(n); err != nil {
				continue // a damaged renewal.json stays out: renew reads it itself
			}
		}
		entries[n] = EntryOf(r)
	}
	return s.writeIndex(entries)
}

func (s *Store) writeIndex(entries map[string]IndexEntry) error {
	var b strings.Builder
	b.WriteString(indexHeader + "\n")
	for _, e := range entries {
		b.WriteString(e.line())
		b.WriteByte('\n')
	}
	if err := writeFile(filepath.Join(s.root, indexFile), []byte(b.String()), fileMode); err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(s.root, indexStale)); err != nil && !errors.Is(err, os.ErrNotExist) {
		return err
	}
	return syncDir(s.root)
}
