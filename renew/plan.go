// Package renew decides when each managed certificate is due and renews
// it: ARI windows (RFC 9773), half-life without ARI, backoff after
// failures, `replaces`, certificates that follow the public address, and
// the deploy hooks after a success. The decision (Plan, Backoff, ApplyARI)
// is pure and takes the time as a value; the Runner does the I/O through
// small interfaces (Issuer, ARISource, Deployer, Verifier) so that tests
// drive days of hourly runs with a simulated clock.
//
// The cheap path matters: the timer runs `ipcert renew` every hour, and
// almost every run has nothing to do. Everything Plan needs (the chosen
// renewal moment, when ARI may be asked next, the backoff) is kept in
// renewal.json, so such a run reads a few small files, takes no lock and
// makes no network request.
package renew

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/internal/store"
)

// Action is what Plan says to do with one certificate now.
type Action int

const (
	// Wait: nothing to do before Decision.At.
	Wait Action = iota
	// CheckARI: ask the CA's renewalInfo first (the stored answer is stale
	// or missing), then plan again with ApplyARI's result.
	CheckARI
	// Renew now.
	Renew
)

func (a Action) String() string {
	switch a {
	case Wait:
		return "wait"
	case CheckARI:
		return "check-ari"
	case Renew:
		return "renew"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Decision is Plan's answer.
type Decision struct {
	Action Action
	Reason string
	// At is, for Wait, when the next action is due (a renewal, an ARI
	// check, the end of a backoff); for Renew, the moment it became due.
	At time.Time
	// RenewAt is the chosen renewal moment; Picked says it is new and must
	// be stored in Renewal.RenewAt (so that the random choice inside an ARI
	// window is made once, not every hour).
	RenewAt time.Time
	Picked  bool
	// Basis says where RenewAt comes from (the ARI window, or half-life).
	Basis string
	// Broken is set (by the Runner, which can look at the files) when the
	// current link is broken but a backoff holds the repair back.
	Broken string
}

// Backoff is the wait after the n-th consecutive failure: 1 min, 10 min,
// 100 min, then daily (Let's Encrypt's integration guide, docs/letsencrypt.md
// "Renewal").
func Backoff(failures int) time.Duration {
	switch {
	case failures <= 0:
		return 0
	case failures == 1:
		return time.Minute
	case failures == 2:
		return 10 * time.Minute
	case failures == 3:
		return 100 * time.Minute
	}
	return 24 * time.Hour
}

// ARI check intervals. RFC 9773 section 4.3: honour Retry-After, but clamp
// it to a sane range; Let's Encrypt sends about 6 h.
const (
	ARIDefaultInterval = 6 * time.Hour      // when the CA sent no Retry-After
	ARIMinInterval     = time.Minute        // a smaller Retry-After is raised to this
	ARIMaxInterval     = 24 * time.Hour     // a larger one is lowered to this
	ARIErrorInterval   = time.Hour          // after a failed check (the CA is down, or the network)
	ARIAbsentInterval  = 7 * 24 * time.Hour // the CA has no renewalInfo at all
)

// UsesARI says whether the certificate's CA can be asked about it. The
// local test CA is a new Pebble on every run that never saw the old
// certificate, and a certificate without an ARI identifier cannot be named.
func UsesARI(r *store.Renewal) bool {
	return r.CertID != "" && r.CA != cachoice.Local
}

// HalfLife is the renewal moment without ARI: half of the lifetime
// (docs/letsencrypt.md: LE's advice for short-lived certificates).
func HalfLife(r *store.Renewal) time.Time {
	return r.NotBefore.Add(r.NotAfter.Sub(r.NotBefore) / 2)
}

// MaxMargin is how long before expiry a certificate must be renewed at the
// latest: past Deadline, no backoff and no Retry-After delays an attempt
// any more, every run tries, and a run that does not renew it fails
// (issue: renewals stopped while the certificate expired).
const MaxMargin = 24 * time.Hour

// Margin is the safety margin before expiry for r: a day, or a quarter of
// the lifetime for certificates shorter than four days (a private CA's
// 24-hour certificate gets 6 hours, not all of its life).
func Margin(r *store.Renewal) time.Duration {
	return min(MaxMargin, r.NotAfter.Sub(r.NotBefore)/4)
}

// Deadline is the last safe moment to renew r (NotAfter minus Margin).
func Deadline(r *store.Renewal) time.Time {
	return r.NotAfter.Add(-Margin(r))
}

// Urgent says r is past its Deadline (or expired) at now: every run must
// try to renew it, and a run that leaves it unrenewed fails.
func Urgent(r *store.Renewal, now time.Time) bool {
	return !r.NotAfter.IsZero() && !now.Before(Deadline(r))
}

// Plan decides what to do with the certificate r at now. It reads only r:
// no clock, no network. rnd picks the moment inside an ARI window; force is
// --force.
func Plan(r *store.Renewal, now time.Time, rnd *rand.Rand, force bool) Decision {
	switch {
	case force:
		return Decision{Action: Renew, Reason: "forced (--force)", At: now}
	case r.NotAfter.IsZero() || r.Current == 0:
		return Decision{Action: Renew, Reason: "renewal.json names no current certificate", At: now}
	case r.RevokedCurrent() && r.Failures == 0:
		return Decision{Action: Renew, Reason: "the current certificate was revoked (" + r.Revoked.Reason + ")", At: now}
	case Urgent(r, now):
		return Decision{Action: Renew, At: Deadline(r), Reason: urgentReason(r, now)}
	case r.Failures > 0 && now.Before(r.NextAttempt):
		at := r.NextAttempt
		if dl := Deadline(r); dl.Before(at) {
			at = dl
		}
		why := r.NextAttemptReason
		if why == "" {
			why = fmt.Sprintf("backing off after %d failed attempt(s)", r.Failures)
		}
		return Decision{Action: Wait, At: at,
			Reason: fmt.Sprintf("%s; next attempt at %s", why, at.UTC().Format(time.RFC3339))}
	case r.Failures > 0:
		return Decision{Action: Renew, At: r.NextAttempt, Reason: fmt.Sprintf("retrying after %d failed attempt(s)", r.Failures)}
	case UsesARI(r) && (r.ARI == nil || !now.Before(r.ARI.NextCheck)):
		return Decision{Action: CheckARI, At: now, Reason: "the CA's renewal window (ARI) is due to be checked"}
	}
	at, why, picked := renewMoment(r, rnd)
	d := Decision{RenewAt: at, Picked: picked, Basis: why}
	if !now.Before(at) {
		d.Action, d.At, d.Reason = Renew, at, "due: "+why
		return d
	}
	d.Action, d.At, d.Reason = Wait, at, "not due until "+at.UTC().Format(time.RFC3339)+" ("+why+")"
	if UsesARI(r) && r.ARI != nil && r.ARI.NextCheck.Before(at) {
		d.At = r.ARI.NextCheck
	}
	return d
}

func urgentReason(r *store.Renewal, now time.Time) string {
	if !now.Before(r.NotAfter) {
		return fmt.Sprintf("EXPIRED at %s: every run tries until a renewal succeeds", r.NotAfter.UTC().Format(time.RFC3339))
	}
	return fmt.Sprintf("expires at %s, less than %s away: every run tries until a renewal succeeds, whatever the backoff",
		r.NotAfter.UTC().Format(time.RFC3339), Margin(r))
}

// NextAttempt is when to try again after the failures-th failure in a row
// at now, given the CA's Retry-After (0: none), and why: the backoff or
// Retry-After, whichever is later, but never later than Deadline, and
// every run once past it.
func NextAttempt(r *store.Renewal, failures int, retryAfter time.Duration, now time.Time) (time.Time, string) {
	wait := Backoff(failures)
	why := fmt.Sprintf("backing off %s after %d failed attempt(s) (1 min, 10 min, 100 min, then daily)", wait, failures)
	if retryAfter > wait {
		wait = retryAfter
		why = fmt.Sprintf("the CA asked to wait %s (Retry-After)", retryAfter.Round(time.Second))
	}
	at := now.Add(wait)
	if r.NotAfter.IsZero() {
		return at.UTC(), why
	}
	dl := Deadline(r)
	switch {
	case !now.Before(dl):
		return now.UTC(), fmt.Sprintf("less than %s before expiry: every run retries (%s)", Margin(r), why)
	case at.After(dl):
		return dl.UTC(), fmt.Sprintf("%s, but no later than %s before expiry", why, Margin(r))
	}
	return at.UTC(), why
}

// Next is when the renewal job will act on r next, and why, as Plan
// decides it, for `status` and the wizard's summary: the one answer to
// "when is it renewed" (renew, status and the summary must not disagree).
// A moment that Plan would still draw at random inside an ARI window is
// shown as the window.
func Next(r *store.Renewal, now time.Time) (time.Time, string) {
	d := Plan(r, now, rand.New(rand.NewPCG(0, 0)), false)
	switch d.Action {
	case Renew:
		return now.UTC(), "due now: the next run of ipcert renew renews it (" + d.Reason + ")"
	case CheckARI:
		at, why, _ := renewMoment(r, rand.New(rand.NewPCG(0, 0)))
		if w := r.ARI; w != nil && validWindow(r, w) && (r.RenewAt.IsZero() || !at.Equal(r.RenewAt)) {
			at, why = w.WindowStart, "at a random moment "+why
		}
		return at.UTC(), why + "; the CA's renewal window (ARI) is asked again on the next run"
	}
	if r.Failures > 0 || d.RenewAt.IsZero() {
		return d.At.UTC(), d.Reason
	}
	if d.Picked && r.ARI != nil && validWindow(r, r.ARI) {
		return r.ARI.WindowStart.UTC(), "at a random moment " + d.Basis
	}
	return d.RenewAt.UTC(), d.Basis
}

// NextUntil is Next, and until when that answer holds as time passes
// without renewal.json changing (zero: it may change at any moment, as
// "due now" does): for status's index, which shows a certificate from a
// cached answer instead of planning it on every call. A Wait holds until
// its At, when Plan may answer otherwise, and never past Deadline, when
// the certificate turns urgent.
func NextUntil(r *store.Renewal, now time.Time) (at time.Time, why string, until time.Time) {
	at, why = Next(r, now)
	d := Plan(r, now, rand.New(rand.NewPCG(0, 0)), false)
	if d.Action != Wait || d.At.IsZero() {
		return at, why, time.Time{}
	}
	until = d.At
	if !r.NotAfter.IsZero() {
		if dl := Deadline(r); dl.Before(until) {
			until = dl
		}
	}
	return at, why, until
}

// renewMoment is the stored moment when it is still valid, else a new one:
// uniform in the ARI window [start, end) (RFC 9773 section 4.2: a random
// time in the window spreads the load on the CA), or half-life.
func renewMoment(r *store.Renewal, rnd *rand.Rand) (time.Time, string, bool) {
	if w := r.ARI; w != nil && validWindow(r, w) {
		why := fmt.Sprintf("inside the CA's ARI window %s to %s", w.WindowStart.UTC().Format(time.RFC3339), w.WindowEnd.UTC().Format(time.RFC3339))
		if !r.RenewAt.IsZero() && !r.RenewAt.Before(w.WindowStart) && r.RenewAt.Before(w.WindowEnd) && !r.RenewAt.After(Deadline(r)) {
			return r.RenewAt, why, false
		}
		end := w.WindowEnd
		if dl := Deadline(r); end.After(dl) {
			// A window reaching past the safety margin is cut there: the
			// renewal must not wait until the certificate is nearly gone.
			end = dl
			if !end.After(w.WindowStart) {
				return w.WindowStart, why, !w.WindowStart.Equal(r.RenewAt)
			}
		}
		span := end.Sub(w.WindowStart)
		return w.WindowStart.Add(time.Duration(rnd.Int64N(int64(span)))), why, true
	}
	at := HalfLife(r)
	return at, "half-life (half of the certificate's lifetime; the CA gave no renewal window)", !at.Equal(r.RenewAt)
}

// validWindow ignores windows that cannot be right: empty, or starting
// after the certificate has expired (renewing then would leave a gap).
func validWindow(r *store.Renewal, w *store.ARIState) bool {
	return !w.WindowStart.IsZero() && w.WindowEnd.After(w.WindowStart) && w.WindowStart.Before(r.NotAfter)
}

// ApplyARI records the outcome of an ARI check in r at now: the window and
// when to ask next (the CA's Retry-After, clamped), or the error and a
// retry time. A failed check keeps the previous window of the same
// certificate, which is still the CA's last word.
func ApplyARI(r *store.Renewal, info *acmeflow.RenewalInfo, err error, now time.Time) {
	st := &store.ARIState{}
	if r.ARI != nil {
		c := *r.ARI
		st = &c
	}
	st.CheckedAt = now.UTC()
	if err != nil {
		st.Error = err.Error()
		next := ARIErrorInterval
		if errors.Is(err, acmeflow.ErrNoARI) {
			next = ARIAbsentInterval
		}
		st.NextCheck = now.Add(next).UTC()
		r.ARI = st
		return
	}
	st.Error = ""
	st.WindowStart, st.WindowEnd = info.WindowStart.UTC(), info.WindowEnd.UTC()
	st.ExplanationURL = info.ExplanationURL
	iv := info.RetryAfter
	switch {
	case iv == 0:
		iv = ARIDefaultInterval
	case iv < ARIMinInterval:
		iv = ARIMinInterval
	case iv > ARIMaxInterval:
		iv = ARIMaxInterval
	}
	st.NextCheck = now.Add(iv).UTC()
	r.ARI = st
}
