package store

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"
)

// A run killed with SIGKILL (or by a power cut) leaves its temporary
// files: .key.pem.*.tmp and .renewal.json.*.tmp of the atomic writes, the
// current link's .current.tmp-PID, a half-written versions/.tmp-*, the
// .renew-last-* report, and a dry run's /tmp/ipcert-dry-run-* store. They
// are 0600 and harmless, but they pile up: the next run that takes the
// lock removes those older than these ages (a live run's files are
// younger: the lock keeps other issuing runs out, and the lock-free
// writers finish in milliseconds).
const (
	staleTempAge   = 10 * time.Minute
	staleDryRunAge = 6 * time.Hour
)

// staleTemp reports whether name is one of ipcert's temporary names.
func staleTemp(name string) bool {
	switch {
	case strings.HasPrefix(name, ".") && strings.HasSuffix(name, ".tmp"):
		return true
	case strings.HasPrefix(name, ".current.tmp-"), strings.HasPrefix(name, ".tmp-"), strings.HasPrefix(name, ".renew-last-"):
		return true
	}
	return false
}

// RemoveStale removes the leftovers of killed runs (see above) and
// returns how many it removed. Lock calls it once the lock is held.
func (s *Store) RemoveStale(now time.Time) int {
	removed := 0
	_ = filepath.WalkDir(s.root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || path == s.root {
			return nil
		}
		if !staleTemp(d.Name()) {
			return nil
		}
		info, err := d.Info()
		if err != nil || now.Sub(info.ModTime()) < staleTempAge {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() {
			if os.RemoveAll(path) == nil {
				removed++
			}
			return filepath.SkipDir
		}
		if os.Remove(path) == nil {
			removed++
		}
		return nil
	})
	return removed + removeStaleDryRuns(os.TempDir(), now)
}

// removeStaleDryRuns removes old rehearsal stores of this user from dir
// (/tmp). Only real directories owned by us: in a sticky /tmp nobody else
// can rename or replace them, and RemoveAll never follows a link.
func removeStaleDryRuns(dir string, now time.Time) int {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return 0
	}
	removed := 0
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "ipcert-dry-run-") || !e.IsDir() {
			continue
		}
		p := filepath.Join(dir, e.Name())
		fi, err := os.Lstat(p)
		if err != nil || !fi.IsDir() || now.Sub(fi.ModTime()) < staleDryRunAge {
			continue
		}
		if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Geteuid() {
			continue
		}
		if os.RemoveAll(p) == nil {
			removed++
		}
	}
	return removed
}

// cleanedFile's modification time is when RemoveStale last walked the
// state: the walk visits every certificate's folders, which at thousands
// of certificates would cost every lock (and every renewal.json write)
// a good fraction of a second, so it runs at most once an hour.
const (
	cleanedFile   = ".cleaned"
	cleanInterval = time.Hour
)

// removeStaleHourly is RemoveStale unless it ran within cleanInterval.
func (s *Store) removeStaleHourly(now time.Time) {
	path := filepath.Join(s.root, cleanedFile)
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() && now.Sub(fi.ModTime()) < cleanInterval && !fi.ModTime().After(now) {
		return
	}
	s.RemoveStale(now)
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|syscall.O_NOFOLLOW, fileMode)
	if err == nil {
		f.Close()
		_ = os.Chtimes(path, now, now)
	}
}
