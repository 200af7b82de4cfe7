package renew

import (
	"cmp"
	"context"
	"crypto/x509"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/diagnosis"
	"github.com/ipcert/ipcert/internal/store"
)

// Issuer gets a new certificate for r's settings and the given identifiers
// and stores it as the new current version of r.Name (the caller holds the
// store lock), returning the renewal record as now stored. replaces is the
// ARI identifier of the certificate it replaces, or empty. A rehearsal
// (--dry-run) implementation stores nothing and returns a record that
// describes the certificate it obtained.
type Issuer interface {
	Issue(ctx context.Context, r *store.Renewal, idents []netip.Addr, replaces string) (*store.Renewal, error)
}

// ARISource asks the CA of r for the renewal window of r's certificate.
type ARISource interface {
	RenewalInfo(ctx context.Context, r *store.Renewal) (*acmeflow.RenewalInfo, error)
}

// Deployer runs what must happen after a new version became current: the
// web server reload (r.Reload) and the user's commands (r.DeployHooks),
// given the directory of the current version (certs/<name>/current).
type Deployer interface {
	Deploy(ctx context.Context, r *store.Renewal, currentDir string) error
}

// Verifier checks that the server at addr now serves leaf.
type Verifier interface {
	Verify(ctx context.Context, addr string, leaf *x509.Certificate) error
}

// Level grades an Event.
type Level string

const (
	LevelInfo  Level = "info"
	LevelWarn  Level = "warning"
	LevelError Level = "error"
)

// Event is one line of the renewal log.
type Event struct {
	Time    time.Time `json:"time"`
	Level   Level     `json:"level"`
	Name    string    `json:"name,omitempty"`
	Message string    `json:"message"`
}

// Outcome is what happened to one certificate in a run.
type Outcome string

const (
	NotDue    Outcome = "not-due"
	Renewed   Outcome = "renewed"
	Failed    Outcome = "failed"
	Rehearsed Outcome = "rehearsed" // --dry-run obtained a certificate and threw it away
)

// CertResult is one certificate's part of a run.
type CertResult struct {
	Name    string    `json:"name"`
	Outcome Outcome   `json:"outcome"`
	Reason  string    `json:"reason"`
	Next    time.Time `json:"next,omitzero"` // the next moment something is due
	// After a renewal (or rehearsal):
	Version   int       `json:"version,omitempty"`
	NotAfter  time.Time `json:"not_after,omitzero"`
	Serial    string    `json:"serial,omitempty"`
	Addresses []string  `json:"identifiers,omitempty"`
	// AddressChanged lists the old identifiers when an --ip auto
	// certificate followed a new public address.
	AddressChanged []string `json:"address_changed_from,omitempty"`
	Error          string   `json:"error,omitempty"`
	// DeployError is set when the certificate was renewed but a hook or
	// the verification failed.
	DeployError string `json:"deploy_error,omitempty"`
}

// Result is a whole run.
type Result struct {
	Certs []CertResult `json:"certificates"`
	// Network says whether the run had to talk to anyone (ARI, the CA, the
	// address detection); a run with nothing due does not.
	Network bool `json:"network"`
	// NotDueOmitted counts the certificates left out of Certs
	// (Options.OmitNotDue): not due.
	NotDueOmitted int `json:"-"`
	mu            sync.Mutex
}

// online records that the run used the network (from any worker).
func (r *Result) online() {
	r.mu.Lock()
	r.Network = true
	r.mu.Unlock()
}

// Counts returns how many certificates were renewed (or rehearsed) and
// how many failed (renewal, or deploy after a renewal).
func (r *Result) Counts() (renewed, failed int) {
	for _, c := range r.Certs {
		switch c.Outcome {
		case Renewed, Rehearsed:
			renewed++
		case Failed:
			failed++
		}
		if c.DeployError != "" {
			failed++
		}
	}
	return renewed, failed
}

// AllRehearsed says every certificate of the run was rehearsed
// (Options.DryRun): nothing was renewed for real.
func (r *Result) AllRehearsed() bool {
	for _, c := range r.Certs {
		if c.Outcome != Rehearsed {
			return false
		}
	}
	return true
}

// Options select what a run does.
type Options struct {
	Names  []string // default: every managed certificate
	Force  bool     // renew now, whatever the plan says
	DryRun bool     // rehearse through Runner.Rehearsal; never write the store
	// OmitNotDue leaves the certificates that the renewal index says are
	// not due out of Result.Certs and only counts them
	// (Result.NotDueOmitted): for a caller that shows and keeps only the
	// others (renew --quiet, the timer's run).
	OmitNotDue bool
}

// Runner renews certificates of one store.
type Runner struct {
	Store *store.Store
	// Issuer renews for real; Rehearsal serves --dry-run.
	Issuer    Issuer
	Rehearsal Issuer
	ARI       ARISource // nil: no ARI, renew at half-life
	Deploy    Deployer  // nil: no hooks
	Verify    Verifier  // nil: no verification
	// PublicAddrs finds this machine's public addresses, for certificates
	// issued with --ip auto. Nil keeps their identifiers.
	PublicAddrs func(ctx context.Context) ([]netip.Addr, error)
	Now         func() time.Time // default time.Now
	Rand        *rand.Rand       // default seeded from the OS
	Events      func(Event)      // nil discards
	// LockWait bounds the wait for another run's lock; then Run gives up
	// with a *store.LockedError.
	LockWait time.Duration
	// Parallel is how many due certificates are renewed at once
	// (default DefaultParallel).
	Parallel int

	randMu sync.Mutex // Rand is shared by the workers
}

func (rn *Runner) now() time.Time {
	if rn.Now != nil {
		return rn.Now()
	}
	return time.Now()
}

func (rn *Runner) emit(level Level, name, format string, args ...any) {
	if rn.Events == nil {
		return
	}
	rn.Events(Event{Time: rn.now(), Level: level, Name: name, Message: fmt.Sprintf(format, args...)})
}

// ExpiryWarning is how close to expiry a certificate must be for every run
// to warn about it; a certificate shorter than four days is warned about
// from its half-life on (ExpiryWarningFor): a private CA's 24-hour
// certificate is always less than a day from expiry.
const ExpiryWarning = 24 * time.Hour

// ExpiryWarningFor is ExpiryWarning for r's lifetime.
func ExpiryWarningFor(r *store.Renewal) time.Duration {
	return min(ExpiryWarning, 2*Margin(r))
}

// Run plans every selected certificate and acts on those that are due. It
// first plans without the lock and without network; only when something
// must be done does it take the store lock (waiting up to LockWait), and
// then it reads and plans each certificate again, because the run that held
// the lock may have renewed it meanwhile. Three phases: which certificates
// (selectCerts), what each needs (planAll), and renewing what is due under the
// lock (renewUnderLock).
func (rn *Runner) Run(ctx context.Context, opts Options) (*Result, error) {
	if rn.Rand == nil {
		rn.Rand = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	sel, err := rn.selectCerts(opts)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	if opts.DryRun {
		for _, n := range sel.names {
			res.Certs = append(res.Certs, rn.rehearse(ctx, n))
			res.Network = true
		}
		return res, nil
	}
	p := rn.planAll(sel, opts, res)
	if !p.work {
		res.Certs = p.plans
		if len(opts.Names) == 0 && (!p.idxOK || len(p.changed) > 0 || len(p.fresh) > 0) {
			// Fold what was read into the index for the next runs, if no
			// other run is busy (only from a run over every certificate:
			// the index lists them all).
			if unlock, err := rn.Store.Lock(ctx, false); err == nil {
				rn.foldIndex(p.idx, p.fresh, sel.names, p.now)
				unlock()
			}
		}
		return res, nil
	}
	if err := rn.renewUnderLock(ctx, sel, p, opts, res); err != nil {
		return nil, err
	}
	return res, nil
}

// selection is the certificates a run looks at.
type selection struct {
	names   []string
	idx     *index // the renewal index as read (nil: none)
	idxOK   bool
	inOrder bool // names[i] is idx.names[i]
}

// selectCerts lists the certificates of the run: the names asked for, or
// every certificate, from the renewal index when no folder was added or
// removed since it was written.
func (rn *Runner) selectCerts(opts Options) (selection, error) {
	sel := selection{names: opts.Names}
	// With the renewal index in use, the folders are listed by name alone
	// below; else (and for --dry-run) each is checked for a renewal.json.
	sel.idx, sel.idxOK = readIndex(rn.Store)
	switch {
	case len(sel.names) == 0 && (!sel.idxOK || opts.DryRun):
		var err error
		if sel.names, err = rn.Store.Names(); err != nil {
			return sel, fmt.Errorf("list certificates in %s: %w", rn.Store.Root(), err)
		}
	case len(sel.names) == 0:
		// No folder added or removed since the index was written: its
		// names are the certificates (new ones are in store.Changed too).
		if mt, err := rn.Store.CertsMtime(); err == nil && mt == sel.idx.certsMtime {
			// Not copied: with every name in the index, none is dropped
			// by planAll (notCert), so the list is never changed.
			sel.names, sel.inOrder = sel.idx.names, true
		} else {
			if sel.names, err = rn.Store.CertNames(); err != nil {
				return sel, fmt.Errorf("list certificates in %s: %w", rn.Store.Root(), err)
			}
			slices.Sort(sel.names)
		}
	default:
		for _, n := range sel.names {
			if !rn.Store.Exists(n) {
				return sel, fmt.Errorf("no certificate named %q in %s (ipcert status lists them)", n, rn.Store.Root())
			}
		}
	}
	return sel, nil
}

// planned is what planAll found: a result for each certificate planned (the
// ones not due are final), whether any needs work, and the index entries
// read afresh.
type planned struct {
	now     time.Time
	names   []string // the certificates planned (without the omitted ones)
	plans   []CertResult
	work    bool
	changed map[string]bool
	fresh   map[string]indexEntry
	idx     *index // the index to fold into (nil when store.Changed failed)
	idxOK   bool
}

// planAll decides, without the lock and without network, what each selected
// certificate needs. The renewal index (index.go) says, for each
// certificate, until when nothing can be due: a run with nothing due then
// parses no renewal.json. Certificates whose renewal.json changed since the
// index was written (store.Changed), or that it lacks, are planned from
// renewal.json.
func (rn *Runner) planAll(sel selection, opts Options, res *Result) *planned {
	now := rn.now()
	idx, idxOK := sel.idx, sel.idxOK
	changedList, err := rn.Store.Changed()
	if err != nil {
		idx, idxOK = nil, false
	}
	p := &planned{now: now, changed: make(map[string]bool, len(changedList)), fresh: map[string]indexEntry{}, idx: idx, idxOK: idxOK}
	for _, n := range changedList {
		p.changed[n] = true
	}
	names := sel.names
	check := currentSample(len(names), now)
	checkCurrent, checked := rn.Store.CurrentChecker()
	entry := func(i int, n string) (indexEntry, bool) {
		if sel.inOrder && idx != nil {
			return idx.entries[i], true
		}
		if idx == nil {
			return indexEntry{}, false
		}
		return idx.get(n)
	}
	// skipped says the index lets the certificate at position i be left
	// alone: not due, no renewal.json read.
	skipped := func(i int, n string) bool {
		e, inIdx := entry(i, n)
		if !inIdx || p.changed[n] || opts.Force || !e.skip(now) || (check(i) && checkCurrent(n) != nil) {
			return false
		}
		rn.warnExpiryAt(n, time.Unix(e.notAfter, 0), ExpiryWarning, now)
		return true
	}
	// pos maps the names planned below to their positions in sel.names
	// (nil: the same), for the current-link sample.
	var pos []int
	omitting := opts.OmitNotDue && idxOK
	if omitting {
		// Certificates the index says are not due are only counted: at
		// thousands of certificates their results were most of the run's
		// memory, and the timer's --quiet run neither prints nor records
		// them one by one.
		var kept []string
		for i, n := range names {
			if skipped(i, n) {
				res.NotDueOmitted++
				continue
			}
			kept, pos = append(kept, n), append(pos, i)
		}
		names = kept
	}
	plans := make([]CertResult, len(names))
	notCert := make([]bool, len(names)) // a folder without renewal.json
	for j, n := range names {
		i := j
		if omitting {
			i = pos[j]
		}
		plans[j].Name = n
		e, inIdx := entry(i, n)
		if !omitting && skipped(i, n) {
			plans[j] = CertResult{Name: n, Outcome: NotDue, Reason: e.reason, Next: time.Unix(e.next, 0).UTC()}
			continue
		}
		if !inIdx && !rn.Store.Exists(n) {
			notCert[j] = true
			continue
		}
		r, err := rn.Store.LoadRenewal(n)
		if err != nil {
			plans[j] = CertResult{Name: n, Outcome: Failed, Reason: "renewal.json unusable", Error: err.Error()}
			rn.emit(LevelError, n, "cannot read renewal.json: %v", err)
			continue
		}
		rn.warnExpiry(r, now)
		var cc func(string) error
		if check(i) {
			cc = checkCurrent
		}
		d := rn.planChecked(r, now, opts.Force, cc)
		if d.Action != Wait || d.Picked {
			p.work = true
			continue
		}
		p.fresh[n] = entryFor(r, d)
		plans[j] = waitResult(n, d)
	}
	checked()
	for i := range names {
		if !notCert[i] {
			p.names, p.plans = append(p.names, names[i]), append(p.plans, plans[i])
		}
	}
	return p
}

// renewUnderLock takes the store lock and renews what planAll found due,
// then folds the run into the index.
func (rn *Runner) renewUnderLock(ctx context.Context, sel selection, p *planned, opts Options, res *Result) error {
	lctx, cancel := context.WithTimeout(ctx, rn.LockWait)
	unlock, err := rn.Store.Lock(lctx, rn.LockWait > 0)
	cancel()
	if err != nil {
		return err
	}
	defer unlock()
	res.Certs = make([]CertResult, len(p.names))
	var due []int
	for i := range p.names {
		switch {
		case p.plans[i].Outcome == Failed && p.plans[i].Error != "":
			res.Certs[i] = p.plans[i]
		case p.plans[i].Outcome == NotDue && !opts.Force:
			// Planned not due without the lock: a run that held the lock
			// may have changed it, but then it is in store.Changed and is
			// planned again when the index is folded.
			res.Certs[i] = p.plans[i]
		default:
			due = append(due, i)
		}
	}
	rn.renewDue(ctx, p.names, due, opts.Force, res)
	if len(opts.Names) == 0 {
		rn.foldIndex(p.idx, p.fresh, sel.names, rn.now())
	}
	return nil
}

// DefaultParallel is how many certificates a run renews at once: each is
// a few requests a second to the CA, so four stay well inside Let's
// Encrypt's request limits, and 100 due certificates (300 new orders per
// account per 3 hours) finish in minutes instead of an hour.
const DefaultParallel = 4

// renewDue renews the certificates at positions due, up to Parallel at
// once. Two whose responders would need the same listening address (the
// standalone http-01 responder on :80, tls-alpn-01 on :443) never run at
// the same time: they share a lane. Web-root certificates and those of the
// local CA (a fresh port each) have a lane of their own.
func (rn *Runner) renewDue(ctx context.Context, names []string, due []int, force bool, res *Result) {
	if len(due) == 0 {
		return
	}
	lanes := map[string][]int{}
	var order []string
	for _, i := range due {
		key := names[i]
		if r, err := rn.Store.LoadRenewal(names[i]); err == nil {
			key = responderKey(r)
		}
		if _, ok := lanes[key]; !ok {
			order = append(order, key)
		}
		lanes[key] = append(lanes[key], i)
	}
	par := rn.Parallel
	if par <= 0 {
		par = DefaultParallel
	}
	work := make(chan []int)
	var wg sync.WaitGroup
	for range min(par, len(order)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for lane := range work {
				for _, i := range lane {
					res.Certs[i] = rn.one(ctx, names[i], force, res)
				}
			}
		}()
	}
	for _, k := range order {
		work <- lanes[k]
	}
	close(work)
	wg.Wait()
}

// responderKey names what a renewal's responder occupies: certificates
// with the same key must not be renewed at the same time.
func responderKey(r *store.Renewal) string {
	switch {
	case r.CA == cachoice.Local || r.WebRoot != "":
		return "own:" + r.Name
	case r.Challenge == acmeflow.ChallengeTLSALPN01:
		return "tls:" + cmp.Or(r.TLSListen, ":443")
	}
	return "http:" + cmp.Or(r.HTTPListen, ":80")
}

// currentSample says which certificates (by position) a run checks the
// current link of, when nothing else makes it read them: all of them up to
// 64, else a window that moves every hour so that each is checked at least
// once a day (a readlink and two stats each: at thousands of
// certificates, checking every one every hour would be most of the run).
func currentSample(n int, now time.Time) func(i int) bool {
	w := max(64, (n+23)/24)
	if n <= w {
		return func(int) bool { return true }
	}
	start := int(now.Unix()/3600) * w % n
	return func(i int) bool {
		d := (i - start + n) % n
		return d < w
	}
}

// plan is Plan, minus ARI when the runner has no way to ask (then the
// certificate is planned as if it had no ARI identifier: half-life), plus
// the one fact Plan cannot see in renewal.json: a current link that is
// missing or points at a version without its files (web servers read
// through it), which makes the certificate due now, backoff permitting.
func (rn *Runner) plan(r *store.Renewal, now time.Time, force bool) Decision {
	return rn.planChecked(r, now, force, rn.Store.CheckCurrent)
}

// planChecked is plan, looking at the current link with checkCurrent
// (store.CheckCurrent, or a store.CurrentChecker), or not when nil.
func (rn *Runner) planChecked(r *store.Renewal, now time.Time, force bool, checkCurrent func(string) error) Decision {
	c := r
	if rn.ARI == nil && r.CertID != "" {
		cp := *r
		cp.CertID = ""
		c = &cp
	}
	rn.randMu.Lock()
	d := Plan(c, now, rn.Rand, force)
	rn.randMu.Unlock()
	if force || d.Action == Renew || r.Current == 0 || checkCurrent == nil {
		return d
	}
	if err := checkCurrent(r.Name); err != nil {
		if r.Failures > 0 && now.Before(r.NextAttempt) {
			d.Broken = err.Error()
			return d
		}
		return Decision{Action: Renew, At: now, Reason: "the current certificate is broken (" + err.Error() + "); a renewal makes a new one"}
	}
	return d
}

func (rn *Runner) warnExpiry(r *store.Renewal, now time.Time) {
	rn.warnExpiryAt(r.Name, r.NotAfter, ExpiryWarningFor(r), now)
}

// warnExpiryAt warns about name expiring at notAfter within window.
func (rn *Runner) warnExpiryAt(name string, notAfter time.Time, window time.Duration, now time.Time) {
	if notAfter.IsZero() || notAfter.Unix() <= 0 {
		return
	}
	left := notAfter.Sub(now)
	switch {
	case left <= 0:
		rn.emit(LevelError, name, "the certificate EXPIRED at %s; clients refuse it until a renewal succeeds", notAfter.UTC().Format(time.RFC3339))
	case left < window:
		rn.emit(LevelWarn, name, "the certificate expires in %s (%s) and has not been renewed; see ipcert doctor %s", left.Round(time.Minute), notAfter.UTC().Format(time.RFC3339), name)
	}
}

// waitResult is a certificate left for later: not due, or broken and
// waiting for the backoff after a failed repair, which counts as a
// failure so that the job shows failed until it is repaired.
func waitResult(name string, d Decision) CertResult {
	if d.Broken != "" {
		return CertResult{Name: name, Outcome: Failed, Reason: "current certificate broken; " + d.Reason, Error: d.Broken, Next: d.At}
	}
	return CertResult{Name: name, Outcome: NotDue, Reason: d.Reason, Next: d.At}
}

// one plans and acts on one certificate under the lock.
func (rn *Runner) one(ctx context.Context, name string, force bool, res *Result) CertResult {
	out := CertResult{Name: name}
	if ctx.Err() != nil {
		// Interrupted while an earlier certificate was renewed: leave the
		// rest as they are for the next run.
		out.Outcome, out.Reason, out.Error = Failed, "interrupted", ctx.Err().Error()
		return out
	}
	r, err := rn.Store.LoadRenewal(name)
	if err != nil {
		out.Outcome, out.Reason, out.Error = Failed, "renewal.json unusable", err.Error()
		return out
	}
	now := rn.now()
	d := rn.plan(r, now, force)
	dirty := false
	if d.Action == CheckARI {
		rn.checkARI(ctx, r, now, res)
		dirty = true
		d = rn.plan(r, now, force)
	}
	if d.Picked {
		r.RenewAt = d.RenewAt
		dirty = true
		rn.emit(LevelInfo, name, "will renew at %s (%s)", d.RenewAt.UTC().Format(time.RFC3339), d.Basis)
	}
	if d.Action != Renew {
		out = waitResult(name, d)
		if dirty {
			if err := rn.Store.SaveRenewal(r); err != nil {
				out.Outcome, out.Error = Failed, "save renewal.json: "+err.Error()
			}
		}
		return out
	}
	rn.emit(LevelInfo, name, "renewing: %s", d.Reason)
	return rn.renew(ctx, r, d, res)
}

func (rn *Runner) checkARI(ctx context.Context, r *store.Renewal, now time.Time, res *Result) {
	if rn.ARI == nil || !UsesARI(r) {
		return
	}
	res.online()
	info, err := rn.ARI.RenewalInfo(ctx, r)
	switch {
	case errors.Is(err, acmeflow.ErrNoARI):
		// Not a fault: most private CAs (step-ca) have no ARI. Asked
		// again only every ARIAbsentInterval.
		rn.emit(LevelInfo, r.Name, "the CA offers no renewal window (ARI): renewing at half of the lifetime it gave")
	case err != nil:
		rn.emit(LevelWarn, r.Name, "could not ask the CA for the renewal window (ARI): %v; falling back to half of the lifetime", err)
	}
	ApplyARI(r, info, err, now)
}

// identifiers is what to renew for: the stored addresses, or for an
// --ip auto certificate the public addresses as found now.
func (rn *Runner) identifiers(ctx context.Context, r *store.Renewal, res *Result) ([]netip.Addr, []string, error) {
	var idents []netip.Addr
	for _, s := range r.Identifiers {
		a, err := netip.ParseAddr(s)
		if err != nil {
			return nil, nil, fmt.Errorf("renewal.json lists %q, which is not an IP address; fix it or issue again", s)
		}
		idents = append(idents, a)
	}
	if !r.AutoIP || rn.PublicAddrs == nil {
		return idents, nil, nil
	}
	res.online()
	found, err := rn.PublicAddrs(ctx)
	if err != nil || len(found) == 0 {
		if err == nil {
			err = errors.New("no source answered")
		}
		rn.emit(LevelWarn, r.Name, "could not find the public address (%v); renewing for %s as before", err, strings.Join(r.Identifiers, ", "))
		return idents, nil, nil
	}
	now := canonical(found)
	if slices.Equal(now, canonical(idents)) {
		return idents, nil, nil
	}
	rn.emit(LevelWarn, r.Name, "!!! THE PUBLIC ADDRESS CHANGED: certificate %s was for %s, this machine is now reached at %s. Renewing for the NEW address; update DNS records, firewall rules and clients that use the old one.",
		r.Name, strings.Join(r.Identifiers, ", "), strings.Join(now, ", "))
	return found, slices.Clone(r.Identifiers), nil
}

func canonical(as []netip.Addr) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Unmap().String()
	}
	slices.Sort(out)
	return out
}

func (rn *Runner) renew(ctx context.Context, r *store.Renewal, d Decision, res *Result) CertResult {
	out := CertResult{Name: r.Name}
	idents, changedFrom, err := rn.identifiers(ctx, r, res)
	if err != nil {
		return rn.fail(r, out, err)
	}
	out.AddressChanged = changedFrom
	replaces := ""
	// RFC 9773 section 5: `replaces` makes the order a renewal, which Let's
	// Encrypt exempts from its rate limits (docs/letsencrypt.md). The CA must know the
	// old certificate (not so for a fresh local CA) and the two must share
	// an identifier.
	if UsesARI(r) && sharesIdentifier(r.Identifiers, idents) {
		replaces = r.CertID
	}
	res.online()
	nr, err := rn.Issuer.Issue(ctx, r, idents, replaces)
	if err != nil {
		if ctx.Err() != nil {
			// Interrupted (Ctrl-C, the timer stopped): not the CA's fault,
			// so no backoff; the next run simply tries again.
			out.Outcome, out.Reason, out.Error = Failed, "interrupted", err.Error()
			return out
		}
		return rn.fail(r, out, err)
	}
	out.Outcome, out.Reason = Renewed, d.Reason
	out.Version, out.NotAfter, out.Serial, out.Addresses = nr.Current, nr.NotAfter, nr.Serial, nr.Identifiers
	rn.emit(LevelInfo, r.Name, "renewed: version %d for %s is current, valid until %s", nr.Current, strings.Join(nr.Identifiers, ", "), nr.NotAfter.UTC().Format(time.RFC3339))

	// Ask ARI about the new certificate now, while online, so that the
	// next hourly runs can decide without any network.
	now := rn.now()
	if rn.ARI != nil && UsesARI(nr) {
		rn.checkARI(ctx, nr, now, res)
	}
	if nd := rn.plan(nr, now, false); nd.Picked {
		nr.RenewAt = nd.RenewAt
	}
	if nd := rn.plan(nr, now, false); nd.Action == Wait {
		out.Next = nd.At
	}
	var derr []string
	if rn.Deploy != nil && (len(nr.DeployHooks) > 0 || nr.Reload != "") {
		if err := rn.Deploy.Deploy(ctx, nr, rn.Store.CurrentDir(nr.Name)); err != nil {
			derr = append(derr, "deploy hook: "+err.Error())
		}
	}
	if rn.Verify != nil && nr.VerifyAddr != "" && len(derr) == 0 {
		v, err := rn.Store.CurrentVersion(nr.Name)
		if err == nil {
			err = rn.Verify.Verify(ctx, nr.VerifyAddr, v.Leaf)
		}
		if err != nil {
			derr = append(derr, "verify "+nr.VerifyAddr+": "+err.Error())
		}
	}
	if len(derr) > 0 {
		out.DeployError = strings.Join(derr, "; ")
		rn.emit(LevelError, r.Name, "the new certificate is current, but %s", out.DeployError)
		f := store.Failure{Time: rn.now().UTC(), Step: "deploy", Detail: out.DeployError,
			Fix: "fix the hook or the server, then run the deploy step again (no new certificate) with: ipcert deploy " + r.Name, Retryable: true}
		nr.LastError = &f
	}
	if err := rn.Store.SaveRenewal(nr); err != nil {
		rn.emit(LevelWarn, r.Name, "could not save the renewal state: %v", err)
	}
	return out
}

func sharesIdentifier(old []string, now []netip.Addr) bool {
	for _, a := range now {
		if slices.Contains(old, a.Unmap().String()) {
			return true
		}
	}
	return false
}

// fail records a failed attempt: backoff, and the diagnosis for status
// and doctor.
func (rn *Runner) fail(r *store.Renewal, out CertResult, err error) CertResult {
	now := rn.now()
	att := diagnosis.RenewalAttempt(r)
	att.StateDir = rn.Store.Root()
	d := diagnosis.Diagnose(err, att.Evidence(now))
	f := d.Failure(now)
	r.LastAttempt = now.UTC()
	r.Failures++
	// A rate limit says when to come back (docs/letsencrypt.md: honour
	// Retry-After, never loop), but never past the safety margin before
	// expiry. The header counts whole seconds; the detail may name a later
	// moment ("retry after 2026-12-07 13:32:06 UTC", Boulder): the later
	// of the two, rounded up to a second.
	retry := d.RetryAfter
	if !d.RetryAt.IsZero() && d.RetryAt.Sub(now) > retry {
		retry = d.RetryAt.Sub(now)
	}
	if retry > 0 {
		retry = (retry + time.Second - 1).Truncate(time.Second)
	}
	r.NextAttempt, r.NextAttemptReason = NextAttempt(r, r.Failures, retry, now)
	wait := r.NextAttempt.Sub(now).Round(time.Second)
	r.LastError = &f
	out.Outcome, out.Reason, out.Error, out.Next = Failed, "renewal failed", err.Error(), r.NextAttempt
	msg := fmt.Sprintf("renewal failed (attempt %d in a row): %v", r.Failures, err)
	if d.Cause != "" {
		msg += "; likely cause: " + d.Cause
	}
	if d.Fix != "" {
		msg += "; fix: " + d.Fix
	}
	rn.emit(LevelError, r.Name, "%s; next attempt at %s (in %s: %s)", msg, r.NextAttempt.Format(time.RFC3339), wait, r.NextAttemptReason)
	if serr := rn.Store.SaveRenewal(r); serr != nil {
		rn.emit(LevelError, r.Name, "could not record the failure in renewal.json: %v", serr)
	}
	return out
}

// rehearse obtains a certificate through Rehearsal without touching the
// store: a dry run of everything but the final write and the hooks.
func (rn *Runner) rehearse(ctx context.Context, name string) CertResult {
	out := CertResult{Name: name}
	r, err := rn.Store.LoadRenewal(name)
	if err != nil {
		out.Outcome, out.Reason, out.Error = Failed, "renewal.json unusable", err.Error()
		return out
	}
	if rn.Rehearsal == nil {
		out.Outcome, out.Error = Failed, "no rehearsal CA configured"
		return out
	}
	idents, changed, err := rn.identifiers(ctx, r, &Result{})
	if err != nil {
		out.Outcome, out.Error = Failed, err.Error()
		return out
	}
	out.AddressChanged = changed
	rn.emit(LevelInfo, name, "rehearsing the renewal for %s (nothing is stored)", strings.Join(canonical(idents), ", "))
	nr, err := rn.Rehearsal.Issue(ctx, r, idents, "")
	if err != nil {
		out.Outcome, out.Reason, out.Error = Failed, "rehearsal failed", err.Error()
		rn.emit(LevelError, name, "rehearsal failed: %v", err)
		return out
	}
	out.Outcome, out.Reason = Rehearsed, "dry run: a certificate was obtained and discarded"
	out.NotAfter, out.Serial, out.Addresses = nr.NotAfter, nr.Serial, nr.Identifiers
	if len(r.DeployHooks) > 0 || r.Reload != "" {
		rn.emit(LevelInfo, name, "dry run: the deploy hooks were not run (reload %q, %d command(s))", r.Reload, len(r.DeployHooks))
	}
	return out
}
