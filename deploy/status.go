package deploy

import (
	"errors"
	"fmt"
	"time"

	"github.com/ipcert/ipcert/acmeflow/renew"
	"github.com/ipcert/ipcert/acmeflow/store"
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
}

// Status reads every certificate in the store, at time now. A broken
// certificate is reported with its Problem, never skipped: status is what
// people run when something is wrong.
func Status(st *store.Store, now time.Time, probe TimerProbe) (StatusReport, error) {
	rep := StatusHeader(st, probe)
	err := StatusEach(st, now, StatusOptions{VerifyKeys: true}, func(c CertStatus) {
		rep.Certificates = append(rep.Certificates, c)
	})
	return rep, err
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
// of thousands of certificates keeps one in memory at a time).
func StatusEach(st *store.Store, now time.Time, opts StatusOptions, each func(CertStatus)) error {
	names := opts.Names
	if names == nil {
		var err error
		if names, err = st.Names(); err != nil {
			return fmt.Errorf("list certificates in %s: %w", st.Root(), err)
		}
	}
	for _, name := range names {
		each(certStatus(st, name, now, opts.VerifyKeys))
	}
	return nil
}

func certStatus(st *store.Store, name string, now time.Time, verifyKeys bool) CertStatus {
	cs := CertStatus{Name: name, LastResult: "never"}
	r, err := st.LoadRenewal(name)
	if err != nil {
		cs.Problem = err.Error()
		return cs
	}
	cs.Identifiers, cs.CA, cs.Directory, cs.Challenge = r.Identifiers, r.CA, r.Directory, r.Challenge
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
		return cs
	}
	leaf := v.Leaf
	cs.Version = v.N
	cs.Serial = fmt.Sprintf("%x", leaf.SerialNumber)
	cs.NotBefore, cs.NotAfter = leaf.NotBefore.UTC(), leaf.NotAfter.UTC()
	cs.ValidFor = leaf.NotAfter.Sub(now)
	cs.Expired = cs.ValidFor <= 0
	cs.NextRenewal, cs.NextRenewalWhy = nextRenewal(r, v.N, leaf.NotBefore, leaf.NotAfter, now)
	return cs
}

// nextRenewal is renew's own decision (renew.Next), so that status never
// contradicts what the next `ipcert renew` does. The validity comes from
// the certificate itself: renewal.json may lag behind a hand-made change.
func nextRenewal(r *store.Renewal, version int, notBefore, notAfter, now time.Time) (time.Time, string) {
	c := *r
	c.Current, c.NotBefore, c.NotAfter = version, notBefore, notAfter
	return renew.Next(&c, now)
}
