package deploy

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/renew"
)

// TimerProbe reports whether the renewal job is installed (TimerStatus
// with the caller's options, usually).
type TimerProbe func() (TimerState, error)

// CertStatus is one managed certificate as `ipcert status` shows it.
type CertStatus struct {
	Name        string   `json:"name"`
	Identifiers []string `json:"identifiers"`
	CA          string   `json:"ca"`
	Directory   string   `json:"directory,omitempty"`
	Challenge   string   `json:"challenge,omitempty"`
	Version     int      `json:"version,omitempty"`
	Serial      string   `json:"serial,omitempty"`
	// Validity of the current certificate (read from the certificate
	// itself, not from renewal.json).
	NotBefore time.Time     `json:"not_before,omitzero"`
	NotAfter  time.Time     `json:"not_after,omitzero"`
	ValidFor  time.Duration `json:"valid_for_ns"` // negative: expired
	Expired   bool          `json:"expired"`
	// NextRenewal is when the renewal job will renew it; Why says where
	// that time comes from.
	NextRenewal    time.Time `json:"next_renewal,omitzero"`
	NextRenewalWhy string    `json:"next_renewal_reason,omitempty"`
	// SPKIPin is the key's pin-sha256 (what DNS-over-TLS clients pin, RFC
	// 7858), PinSince since when (renewal.json), ReuseKey whether renewals
	// keep it.
	SPKIPin  string    `json:"spki_pin,omitempty"`
	PinSince time.Time `json:"pin_since,omitzero"`
	ReuseKey bool      `json:"reuse_key,omitempty"`
	// ARINextCheck is when the CA's renewal window is asked for again.
	ARINextCheck time.Time `json:"ari_next_check,omitzero"`
	// LastResult is "ok", "failed" or "never".
	LastResult  string         `json:"last_result"`
	LastSuccess time.Time      `json:"last_success,omitzero"`
	LastAttempt time.Time      `json:"last_attempt,omitzero"`
	Failures    int            `json:"consecutive_failures,omitempty"`
	LastError   *store.Failure `json:"last_error,omitempty"`
	Reload      string         `json:"reload,omitempty"`
	DeployHooks []string       `json:"deploy_hooks,omitempty"`
	// VerifyAddr is where renewals check that the new certificate is
	// served (renewal.json verify_addr, set by issue --verify).
	VerifyAddr string `json:"verify_addr,omitempty"`
	// Problem says why the certificate cannot be used or renewed as is
	// (unreadable renewal.json, no current version).
	Problem string `json:"problem,omitempty"`
}

// StatusReport is every managed certificate plus the renewal job.
type StatusReport struct {
	StateDir       string       `json:"state_dir"`
	Certificates   []CertStatus `json:"certificates"`
	Timer          TimerState   `json:"timer"`
	TimerInstalled bool         `json:"timer_installed"`
	TimerError     string       `json:"timer_error,omitempty"`
	// NotIssued are first issuances that failed: no certificate of that
	// name yet (store.FirstFailures), for doctor to explain.
	NotIssued []store.FirstFailure `json:"not_issued,omitempty"`
}

// StatusOptions tune Status.
type StatusOptions struct {
	// VerifyKeys checks every current key against its certificate; by
	// default the key is only looked at (a new version's key is checked
	// when it is stored), so that status stays quick at thousands of
	// certificates.
	VerifyKeys bool
	// Names limits the report to these certificates (nil: all).
	Names []string
	// clock is the wall clock the status index's racy check reads
	// (tests: a later one); nil: time.Now.
	clock func() time.Time
}

// StatusHeader is the report without certificates: the state directory
// and the renewal job.
func StatusHeader(st *store.Store, probe TimerProbe) StatusReport {
	rep := StatusReport{StateDir: st.Root(), Certificates: []CertStatus{}}
	rep.NotIssued, _ = st.FirstFailures()
	if probe != nil {
		ts, err := probe()
		rep.Timer = ts
		rep.TimerInstalled = ts.Mode != ""
		if err != nil {
			rep.TimerError = err.Error()
		}
	}
	return rep
}

// StatusEach calls each with every certificate's status in name order, one
// at a time, so that a caller can print them as they come (status --json
// of thousands of certificates keeps one in memory at a time). With every
// certificate and without VerifyKeys, the ones that did not change come
// from the status index (status_index.go).
func StatusEach(st *store.Store, now time.Time, opts StatusOptions, each func(CertStatus)) error {
	return statusWalk(st, now, opts, func(c *CertStatus, e *statusEntry) {
		if c != nil {
			each(*c)
			return
		}
		cs, err := e.status(now)
		if err != nil {
			cs, _ = certStatus(st, e.name, now, false)
		}
		each(cs)
	})
}

// StatusLine is one certificate for status --json: its JSON, as
// json.MarshalIndent(CertStatus, StatusJSONPrefix, "  ") writes it, and
// whether it makes status fail (a problem, expired, the last renewal
// failed).
type StatusLine struct {
	Name string
	JSON []byte
	Bad  bool
}

// StatusEachJSON is StatusEach for status --json: a certificate from the
// index is copied out without being decoded. The line's JSON is only
// valid during the call.
func StatusEachJSON(st *store.Store, now time.Time, opts StatusOptions, each func(StatusLine)) error {
	var buf []byte
	return statusWalk(st, now, opts, func(c *CertStatus, e *statusEntry) {
		if e == nil {
			b, err := json.MarshalIndent(c, StatusJSONPrefix, "  ")
			if err != nil {
				return
			}
			each(StatusLine{Name: c.Name, JSON: b, Bad: c.Problem != "" || c.Expired || c.LastResult == "failed"})
			return
		}
		buf = e.appendJSON(buf[:0], now)
		each(StatusLine{Name: e.name, JSON: buf, Bad: e.failed || !now.Before(e.notAfter())})
	})
}

// statusWalk hands every selected certificate to emit in name order: read
// from its files (c), or an index entry still valid (e), or both (read
// now, and its entry made).
func statusWalk(st *store.Store, now time.Time, opts StatusOptions, emit func(c *CertStatus, e *statusEntry)) error {
	if opts.Names != nil || opts.VerifyKeys {
		names := opts.Names
		if names == nil {
			var err error
			if names, err = st.Names(); err != nil {
				return fmt.Errorf("list certificates in %s: %w", st.Root(), err)
			}
		}
		for _, name := range names {
			c, _ := certStatus(st, name, now, opts.VerifyKeys)
			emit(&c, nil)
		}
		return nil
	}
	certs := filepath.Join(st.Root(), "certs")
	d, err := os.Open(certs)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("list certificates in %s: %w", st.Root(), err)
	}
	defer d.Close()
	var dirSys unix.Stat_t
	if err := unix.Fstat(int(d.Fd()), &dirSys); err != nil {
		return fmt.Errorf("list certificates in %s: %w", st.Root(), err)
	}
	// A folder changed within racyWindow of this moment is not cached
	// (status_index.go); taken before any folder is looked at.
	racy := time.Now
	if opts.clock != nil {
		racy = opts.clock
	}
	fresh := racy().Add(-racyWindow).UnixNano()
	old := readStatusIndex(st)
	// No folder added or removed since the index was written (and not
	// just now): its names are the folders.
	var names []string
	if mt := dirSys.Mtim.Nano(); old != nil && old.certsMtime != 0 && mt == old.certsMtime {
		names = old.names()
	} else {
		if names, err = d.Readdirnames(-1); err != nil {
			return fmt.Errorf("list certificates in %s: %w", st.Root(), err)
		}
		slices.Sort(names)
	}
	kept := make([]*statusEntry, 0, len(names))
	dirty := false
	fd := int(d.Fd())
	at := 0
	for _, name := range names {
		if store.ValidName(name) != nil {
			continue
		}
		e := old.get(name, &at)
		// The folder's stamp before anything in it is read: a change
		// after this moment gives the entry another stamp.
		var sys unix.Stat_t
		if err := unix.Fstatat(fd, name, &sys, unix.AT_SYMLINK_NOFOLLOW); err != nil || sys.Mode&unix.S_IFMT != unix.S_IFDIR {
			dirty = dirty || e != nil
			continue
		}
		var rsys unix.Stat_t
		rp := &rsys
		if unix.Fstatat(fd, name+"/renewal.json", rp, unix.AT_SYMLINK_NOFOLLOW) != nil {
			rp = nil
		}
		stamp := stampOf(&sys, rp)
		if e != nil && e.usable(stamp, now) {
			kept = append(kept, e)
			emit(nil, e)
			continue
		}
		dirty = dirty || e == nil || e.cached
		// Listed, and cached only if it is a certificate (a folder with a
		// renewal.json, as store.Names has it) that may be.
		ne := &statusEntry{name: name}
		if unix.Fstatat(fd, name+"/renewal.json", &sys, 0) == nil {
			c, until := certStatus(st, name, now, false)
			ce, ok := newStatusEntry(c, stamp, now, until)
			if !ok {
				emit(&c, nil)
			} else {
				emit(&c, &ce) // its JSON is made once, for the index and the output
				if stamp.older(fresh) {
					ne, dirty = &ce, true
				}
			}
		}
		kept = append(kept, ne)
	}
	// The certs folder's time is kept only when it was not changed just
	// now: a folder made in the same clock tick could be missing from
	// this listing.
	mt := dirSys.Mtim.Nano()
	if mt >= fresh {
		mt = 0
	}
	if dirty || (old != nil && (len(kept) != len(old.entries) || old.certsMtime != mt)) {
		writeStatusIndex(st, mt, kept)
	}
	return nil
}

// certStatus reads one certificate's status from its files, and until
// when its next renewal stays as shown (zero: not to be cached).
func certStatus(st *store.Store, name string, now time.Time, verifyKeys bool) (CertStatus, time.Time) {
	cs := CertStatus{Name: name, LastResult: "never"}
	r, err := st.LoadRenewal(name)
	if err != nil {
		cs.Problem = err.Error()
		return cs, time.Time{}
	}
	cs.Identifiers, cs.CA, cs.Directory, cs.Challenge = r.Identifiers, string(r.CA), r.Directory, string(r.Challenge)
	cs.Reload, cs.DeployHooks, cs.VerifyAddr = r.Reload, r.DeployHooks, r.VerifyAddr
	cs.LastSuccess, cs.LastAttempt, cs.Failures, cs.LastError = r.LastSuccess, r.LastAttempt, r.Failures, r.LastError
	switch {
	case r.LastError != nil && !r.LastError.Time.Before(r.LastSuccess):
		cs.LastResult = "failed"
	case !r.LastSuccess.IsZero():
		cs.LastResult = "ok"
	}
	if r.ARI != nil {
		cs.ARINextCheck = r.ARI.NextCheck
	}
	current := st.CurrentLeaf
	if verifyKeys {
		current = st.CurrentVersion
	}
	v, err := current(name)
	if err != nil {
		if errors.Is(err, store.ErrNoCurrent) {
			cs.Problem = "no certificate yet: the last issuance did not finish; run ipcert issue again (ipcert doctor explains the failure)"
		} else {
			cs.Problem = fmt.Sprintf("the current certificate cannot be read: %v", err)
		}
		return cs, time.Time{}
	}
	leaf := v.Leaf
	cs.Version = v.N
	cs.Serial = fmt.Sprintf("%x", leaf.SerialNumber)
	cs.SPKIPin, cs.ReuseKey = acmeflow.SPKIPin(leaf), r.ReuseKey
	if cs.SPKIPin == r.SPKIPin {
		cs.PinSince = r.PinSince
	}
	cs.NotBefore, cs.NotAfter = leaf.NotBefore.UTC(), leaf.NotAfter.UTC()
	cs.ValidFor = leaf.NotAfter.Sub(now)
	cs.Expired = cs.ValidFor <= 0
	var until time.Time
	cs.NextRenewal, cs.NextRenewalWhy, until = nextRenewal(r, v.N, leaf.NotBefore, leaf.NotAfter, now)
	return cs, until
}

// nextRenewal is renew's own decision (renew.Next), so that status never
// contradicts what the next `ipcert renew` does. The validity comes from
// the certificate itself: renewal.json may lag behind a hand-made change.
func nextRenewal(r *store.Renewal, version int, notBefore, notAfter, now time.Time) (time.Time, string, time.Time) {
	c := *r
	c.Current, c.NotBefore, c.NotAfter = version, notBefore, notAfter
	return renew.NextUntil(&c, now)
}
