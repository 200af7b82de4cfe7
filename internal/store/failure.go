package store

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
)

// FirstFailure is a failed first issuance: there is no certificate of
// that name yet, so no renewal.json to keep the failure in (and none may
// be written: renew would then try to issue it on every run). It lives in
// <state>/failures/<name>.json until the name is issued, so that doctor
// and status can explain the last attempt.
type FirstFailure struct {
	Name        string   `json:"name"`
	Identifiers []string `json:"identifiers,omitempty"`
	LastError   *Failure `json:"last_error"`
}

const failuresDir = "failures"

func (s *Store) failurePath(name string) string {
	return filepath.Join(s.root, failuresDir, name+".json")
}

// IdentifiersOfName reads the identifiers back from a default name
// (NameFor); nil when the name is not one.
func IdentifiersOfName(name string) []string {
	var out []string
	for _, p := range strings.Split(name, "_") {
		if strings.Contains(p, "-") {
			p = strings.ReplaceAll(p, "-", ":")
		}
		a, err := netip.ParseAddr(p)
		if err != nil {
			return nil
		}
		out = append(out, a.String())
	}
	return out
}

// SaveFirstFailure keeps f as the last failure of the not yet issued
// name. Names already managed keep their failures in renewal.json.
func (s *Store) SaveFirstFailure(name string, f Failure) error {
	if err := ValidName(name); err != nil {
		return err
	}
	ff := FirstFailure{Name: name, Identifiers: IdentifiersOfName(name), LastError: &f}
	data, err := json.MarshalIndent(ff, "", "  ")
	if err != nil {
		return err
	}
	if err := mkdirPrivate(filepath.Join(s.root, failuresDir)); err != nil {
		return err
	}
	return writeFile(s.failurePath(name), append(data, '\n'), fileMode)
}

// ClearFirstFailure forgets a first failure (the name is issued now).
func (s *Store) ClearFirstFailure(name string) error {
	if ValidName(name) != nil {
		return nil
	}
	err := os.Remove(s.failurePath(name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	return err
}

// FirstFailures lists the stored first failures of names that are still
// not managed, by name.
func (s *Store) FirstFailures() ([]FirstFailure, error) {
	entries, err := os.ReadDir(filepath.Join(s.root, failuresDir))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []FirstFailure
	var tooLarge error
	for _, e := range entries {
		name, ok := strings.CutSuffix(e.Name(), ".json")
		if !ok || !e.Type().IsRegular() || ValidName(name) != nil || s.Exists(name) {
			continue
		}
		if info, err := e.Info(); err == nil && info.Size() > MaxFailureRecord {
			// Written by an ipcert that kept every validator request (issue
			// 22: 507 MB, and every status took seconds to read it).
			if tooLarge == nil {
				tooLarge = fmt.Errorf("%s is %d MB, larger than any failure record ipcert writes now; it is not read: rm %s", s.failurePath(name), info.Size()>>20, s.failurePath(name))
			}
			continue
		}
		data, err := os.ReadFile(s.failurePath(name))
		if err != nil {
			return out, err
		}
		var ff FirstFailure
		if err := json.Unmarshal(data, &ff); err != nil || ff.LastError == nil {
			return out, fmt.Errorf("%s: not a failure record: %v", s.failurePath(name), err)
		}
		ff.Name = name
		ff.LastError.Escape()
		out = append(out, ff)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, tooLarge
}

// MaxFailureRecord is the largest failure record read back. The responders
// keep a bounded record (acmeflow/responder_limits.go), so one is a few KB
// (25 addresses validated from every perspective: some tens of KB).
const MaxFailureRecord = 1 << 20
