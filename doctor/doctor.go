// Package doctor is `ipcert doctor`'s work: which certificates and
// failures to look at (Targets), the re-checks of today (preflight's
// checks, a local probe of the validation port, the CA's name, connection
// and directory for a failure at the CA), and --probe's real order. It
// gathers evidence and hands it to diagnosis, the pure classifier, which
// decides the cause and the fix.
package doctor

import (
	"context"
	"fmt"
	"github.com/ipcert/ipcert/diagnosis"
	"io"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/preflight"
)

// Target is one thing doctor examines: a stored certificate, an address,
// or both.
type Target struct {
	Name        string         `json:"name,omitempty"`
	Identifiers []string       `json:"identifiers"`
	CA          spec.CAChoice  `json:"ca,omitempty"`
	LastError   *store.Failure `json:"last_error,omitempty"`
	Failures    int            `json:"consecutive_failures,omitempty"`
	// Stored is the diagnosis made when the failure happened.
	Stored *diagnosis.Diagnosis `json:"stored_diagnosis,omitempty"`
	// Now is the same failure diagnosed again with today's evidence.
	Now    *diagnosis.Diagnosis `json:"diagnosis,omitempty"`
	Checks []preflight.Result   `json:"checks,omitempty"`
	Probes []diagnosis.Probe    `json:"local_probes,omitempty"`
	Order  *Order               `json:"probe_order,omitempty"`
	// CACheck re-checks a failure at the CA (resolve, connect, directory).
	CACheck *CACheck `json:"ca_check,omitempty"`

	// Revoked is set when the current certificate was revoked (ipcert
	// revoke): the next renew replaces it.
	Revoked *store.Revocation `json:"revoked,omitempty"`
	// RenewCommand replaces a revoked certificate, complete for this
	// state directory.
	RenewCommand string `json:"renew_command,omitempty"`

	renewal *store.Renewal
	managed bool // a certificate with a renewal.json, not a first failure
	addrs   []netip.Addr
}

// Order is the outcome of doctor's --probe: a real order on staging (on
// the certificate's own CA for an own ACME CA).
type Order struct {
	CA         spec.CAChoice               `json:"ca"`
	OK         bool                        `json:"ok"`
	Validators []acmeflow.ValidatorRequest `json:"validators"`
	Diagnosis  *diagnosis.Diagnosis        `json:"diagnosis,omitempty"`
	DurationMS int64                       `json:"duration_ms"`
	WebRoot    string                      `json:"webroot,omitempty"`
}

// DoctorOptions are doctor's settings: the flags that override a
// target's renewal.json, and the probe's.
type DoctorOptions struct {
	Challenge             spec.Challenge
	WebRoot               string
	HTTPListen, TLSListen string
	// Offline skips the checks that use the network (public address, NAT).
	Offline bool
	// ProbeCA is the CA of the probe order: staging, or local in tests.
	ProbeCA  spec.CAChoice
	AgreeTOS bool
	Timeout  time.Duration
	// UserAgent of the probe order; Log receives the local CA's log.
	UserAgent string
	Log       io.Writer
	// StateDir is the state directory, for the commands of a fix.
	StateDir string
	// Env is the preflight environment of the checks (nil: the system's).
	Env *preflight.Env
	// CAEndpoints are how the re-check of a failure at the CA reaches it
	// (zero: the system's resolver and network).
	CAEndpoints CAEndpoints
}

// UsageError is a doctor argument that is neither a certificate nor an
// address, or a --probe without one.
type UsageError struct{ Msg string }

func (e *UsageError) Error() string { return e.Msg }

// Targets resolves doctor's argument: nothing (every certificate with a
// stored failure), a certificate name, or an address. A certificate whose
// renewal.json cannot be read is reported to warn and skipped.
func Targets(st *store.Store, arg string, probe bool, warn func(error)) ([]*Target, error) {
	names, err := st.Names()
	if err != nil {
		return nil, err
	}
	load := func(name string) (*Target, error) {
		r, err := st.LoadRenewal(name)
		if err != nil {
			return nil, err
		}
		t := &Target{Name: name, Identifiers: r.Identifiers, CA: r.CA, LastError: r.LastError, Failures: r.Failures, renewal: r, managed: true}
		if r.RevokedCurrent() {
			t.Revoked = r.Revoked
			c := diagnosis.Cmd{"ipcert", "renew", name}
			if st.Root() != "/etc/ipcert" {
				c = append(c, "--state-dir", st.Root())
			}
			t.RenewCommand = c.String()
		}
		for _, id := range r.Identifiers {
			if a, err := netip.ParseAddr(id); err == nil {
				t.addrs = append(t.addrs, a)
			}
		}
		return t, nil
	}
	// First issuances that failed have no renewal.json; the store keeps
	// their failure under the name they would have had.
	firsts, err := st.FirstFailures()
	if err != nil {
		warn(err)
	}
	first := func(ff store.FirstFailure) *Target {
		t := &Target{Name: ff.Name, Identifiers: ff.Identifiers, LastError: ff.LastError, Failures: 1}
		if f := ff.LastError; f != nil && f.CA != "" {
			// No renewal.json yet: the failure kept how the attempt was
			// asked (its CA, that CA's root, the responder), and it is
			// re-checked that way: an own CA's first issuance is not
			// judged by Let's Encrypt's rules.
			r := &store.Renewal{Issuance: f.Attempted(ff.Identifiers), Name: ff.Name}
			t.CA, t.renewal = f.CA, r
		}
		for _, id := range ff.Identifiers {
			if a, err := netip.ParseAddr(id); err == nil {
				t.addrs = append(t.addrs, a)
			}
		}
		return t
	}
	if arg == "" {
		var out []*Target
		for _, n := range names {
			t, err := load(n)
			if err != nil {
				warn(fmt.Errorf("%s: %w", n, err))
				continue
			}
			if t.LastError != nil {
				out = append(out, t)
			}
		}
		for _, ff := range firsts {
			out = append(out, first(ff))
		}
		// The newest failure first: the one the user just saw.
		sort.SliceStable(out, func(i, j int) bool { return out[i].LastError.Time.After(out[j].LastError.Time) })
		if len(out) == 0 && probe {
			return nil, &UsageError{"--probe needs an address or a certificate name: ipcert doctor ADDR --probe"}
		}
		return out, nil
	}
	// The same lookup as verify, snippet and status (store.Find): a name,
	// else the certificate for the address.
	found, ferr := st.Find(store.Query{Arg: arg})
	if ferr == nil && found.By == "name" {
		return oneTarget(load(found.Name))
	}
	for _, ff := range firsts {
		if ff.Name == arg {
			return []*Target{first(ff)}, nil
		}
	}
	a, err := acmeflow.ParseIP(arg)
	if err != nil {
		return nil, &UsageError{fmt.Sprintf("%q is neither a certificate in %s nor an IP address (%v)", arg, st.Root(), err)}
	}
	// An address: its certificate's stored failure too, when one names it.
	if ferr == nil && found.Name != "" {
		if t, err := load(found.Name); err == nil {
			t.addrs = []netip.Addr{a}
			return []*Target{t}, nil
		}
	}
	for _, ff := range firsts {
		if slices.Contains(ff.Identifiers, a.String()) {
			t := first(ff)
			t.addrs = []netip.Addr{a}
			return []*Target{t}, nil
		}
	}
	return []*Target{{Identifiers: []string{a.String()}, addrs: []netip.Addr{a}}}, nil
}

func oneTarget(t *Target, err error) ([]*Target, error) {
	if err != nil {
		return nil, err
	}
	return []*Target{t}, nil
}

// settings are the challenge settings of a target: its renewal.json,
// overridden by the options.
func (t *Target) settings(o *DoctorOptions) (challenge spec.Challenge, webroot, httpListen, tlsListen string, local bool) {
	if r := t.renewal; r != nil {
		challenge, webroot, httpListen, tlsListen = r.Challenge, r.WebRoot, r.HTTPListen, r.TLSListen
		local = r.CA == cachoice.Local
	} else {
		// A bare address is judged for the CA the probe would use.
		local = o.ProbeCA == cachoice.Local
	}
	if o.Challenge != "" {
		challenge = o.Challenge
	}
	if o.WebRoot != "" {
		webroot = o.WebRoot
	}
	if o.HTTPListen != "" {
		httpListen = o.HTTPListen
	}
	if o.TLSListen != "" {
		tlsListen = o.TLSListen
	}
	if challenge == "" {
		challenge = acmeflow.ChallengeHTTP01
	}
	return
}

// validationPorts are where the validator knocks: 80/443 for Let's
// Encrypt, the responder's own ports for the local test CA.
func validationPorts(local bool, httpListen, tlsListen string) (int, int) {
	httpPort, tlsPort := 80, 443
	if local {
		if p := acmeflow.PortOf(httpListen); p != 0 {
			httpPort = p
		}
		if p := acmeflow.PortOf(tlsListen); p != 0 {
			tlsPort = p
		}
	}
	return httpPort, tlsPort
}

// Examine re-runs the checks that bear on the target's failure and
// diagnoses it again with what they found. It says what it checks on
// progress.
func (t *Target) Examine(ctx context.Context, o *DoctorOptions, progress io.Writer) {
	challenge, webroot, httpListen, tlsListen, local := t.settings(o)
	httpPort, tlsPort := validationPorts(local, httpListen, tlsListen)
	if le := t.LastError; le != nil && le.Challenge != "" && o.Challenge == "" && o.WebRoot == "" {
		// Check what the failed attempt used, not what the certificate
		// was first issued with.
		challenge, webroot = le.Challenge, le.WebRoot
		if le.Port != 0 && challenge == acmeflow.ChallengeTLSALPN01 {
			tlsPort = le.Port
		} else if le.Port != 0 {
			httpPort = le.Port
		}
	}
	port := httpPort
	if challenge == acmeflow.ChallengeTLSALPN01 {
		port = tlsPort
	}
	fmt.Fprintf(progress, "Checking %s (%s on port %d)...\n", strings.Join(t.Identifiers, ", "), challenge, port)
	ca := t.CA
	if t.renewal == nil {
		ca = o.ProbeCA // a bare address is judged for the CA the probe would use
	}
	if local {
		ca = cachoice.Local
	}
	env := preflight.DefaultEnv()
	if o.Env != nil {
		env = *o.Env
	}
	rep := diagnosis.PreflightIn(ctx, env, t.addrs, ca, httpPort, tlsPort, o.Offline)
	for _, r := range rep.Results {
		if r.Status != preflight.StatusSkipped || r.Summary != "" {
			t.Checks = append(t.Checks, r)
		}
	}
	// The same builder as issue, renew and the wizard; the ports are the
	// ones just checked (the failed attempt's, when it recorded one).
	att := diagnosis.Attempt{Issuance: spec.Issuance{Challenge: challenge, WebRoot: webroot, CA: t.CA, HTTPListen: httpListen, TLSListen: tlsListen, Identifiers: t.Identifiers}, StateDir: o.StateDir}
	// A managed certificate's address was certified before: one that is
	// not this machine's now has moved.
	att.Issued = t.managed
	if t.renewal != nil {
		att.CARoot = t.renewal.CARoot
	}
	ev := att.Evidence(time.Now())
	ev.HTTPPort, ev.TLSPort = httpPort, tlsPort
	ev.AddPreflight(rep)
	for _, a := range t.addrs {
		if o.Offline && !onThisMachine(a) {
			// --offline sends nothing off the machine: an address that is
			// not on a local interface (the router's, behind NAT) would
			// be reached over the network.
			continue
		}
		p := diagnosis.ProbeValidationPort(ctx, a, port, challenge)
		t.Probes = append(t.Probes, p)
		if ev.Probe == nil {
			ev.Probe = &t.Probes[len(t.Probes)-1]
		}
	}
	if t.LastError == nil {
		return
	}
	if IsCAFailure(t.LastError.Code) && !o.Offline {
		// The failure was at the CA: exactly that again, at the CA the
		// attempt used.
		choice, root := t.LastError.CA, t.LastError.CARoot
		if choice == "" {
			choice = t.CA
		}
		if root == "" && t.renewal != nil {
			root = t.renewal.CARoot
		}
		fmt.Fprintf(progress, "Re-checking the CA (%s): its name, a connection, its directory...\n", choice)
		c := CheckCA(ctx, choice, root, o.CAEndpoints)
		t.CACheck = &c
	}
	if t.LastError.Code != "" {
		stored := diagnosis.Stored(*t.LastError)
		if len(t.Identifiers) == 1 {
			stored.Identifier = t.Identifiers[0]
		}
		t.Stored = &stored
	}
	err := diagnosis.ErrorFromFailure(*t.LastError)
	if t.LastError.Code != "" {
		// The record says what our responder saw; without a code it is an
		// old record that did not keep it, and the absence means nothing.
		ev.SeenKnown = true
		ev.Seen = diagnosis.ValidatorsFromFailure(*t.LastError)
	}
	if len(t.Identifiers) == 1 {
		err.Identifier = t.Identifiers[0]
	}
	d := diagnosis.Diagnose(err, ev)
	if d.Code == diagnosis.DiagUnknown && t.Stored != nil && t.Stored.Code != diagnosis.DiagUnknown {
		// The record keeps the error's words, not its type (a DNS error,
		// a timeout): what was known then stands; the re-checks (the CA's,
		// the port's) are today's.
		d = *t.Stored
	}
	t.Now = &d
}

// ProbeOrder places a real order on staging (or the local test CA in
// tests) for the target's addresses and records every validator request,
// saying each on progress. It never uses production and never stores the
// certificate.
func (t *Target) ProbeOrder(ctx context.Context, st *store.Store, o *DoctorOptions, progress io.Writer) *Order {
	challenge, webroot, httpListen, tlsListen, _ := t.settings(o)
	if o.ProbeCA == cachoice.Local {
		// The local CA knocks on the responder's port, never on 80/443.
		if httpListen == "" || strings.HasPrefix(httpListen, ":") {
			httpListen = "127.0.0.1:0"
		}
		if tlsListen == "" || strings.HasPrefix(tlsListen, ":") {
			tlsListen = "127.0.0.1:0"
		}
	}
	// A certificate of an own ACME CA is probed at that CA, trusting its
	// root: Let's Encrypt staging would test nothing it does (and refuses
	// the private addresses such a CA certifies).
	choice, root := o.ProbeCA, ""
	if r := t.renewal; r != nil && cachoice.IsOwn(r.CA) {
		choice, root = r.CA, r.CARoot
	}
	out := &Order{CA: choice, Validators: []acmeflow.ValidatorRequest{}, WebRoot: webroot}
	ca, err := cachoice.Open(choice, cachoice.Options{HTTPListen: httpListen, TLSListen: tlsListen, RootFile: root, Log: o.Log})
	if err != nil {
		d := diagnosis.Diagnose(err, diagnosis.Evidence{})
		out.Diagnosis = &d
		return out
	}
	defer ca.Close()
	req := acmeflow.Request{
		Identifiers: t.addrs, Challenge: challenge, WebRoot: webroot, HTTPListen: httpListen, TLSListen: tlsListen,
		AgreeTOS: o.AgreeTOS,
	}
	ca.Apply(&req)
	var mu sync.Mutex
	req.Events = func(ev acmeflow.Event) {
		switch ev.Kind {
		case acmeflow.EventValidator:
			mu.Lock()
			out.Validators = append(out.Validators, *ev.Validator)
			mu.Unlock()
			fmt.Fprintf(progress, "     %s\n", ev.Validator)
		case acmeflow.EventStep:
			fmt.Fprintf(progress, "  -> %s\n", ev.Message)
		}
	}
	fmt.Fprintf(progress, "Probe: a real order for %s on %s\n", strings.Join(t.Identifiers, ", "), cachoice.Describe(choice))
	pctx, cancel := context.WithTimeout(ctx, o.Timeout)
	defer cancel()
	start := time.Now()
	eng := &acmeflow.Engine{Store: st, UserAgent: o.UserAgent}
	_, err = eng.Obtain(pctx, req)
	out.DurationMS = time.Since(start).Milliseconds()
	mu.Lock()
	defer mu.Unlock()
	if err == nil {
		out.OK = true
		return out
	}
	d := diagnosis.Diagnose(err, diagnosis.AttemptOf(&req, ca, choice).Evidence(time.Now()))
	out.Diagnosis = &d
	return out
}

// OK says whether nothing is wrong with the target.
func (t *Target) OK() bool {
	if t.Revoked != nil {
		return false
	}
	if t.Order != nil {
		// A real validation is authoritative over everything else.
		return t.Order.OK
	}
	if t.LastError != nil {
		return false
	}
	for _, r := range t.Checks {
		if r.Status == preflight.StatusFail && !r.Advisory {
			return false
		}
	}
	return true
}

// onThisMachine: a is loopback or on one of this machine's interfaces, so
// a connection to it never leaves the machine.
func onThisMachine(a netip.Addr) bool {
	if a.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, ia := range addrs {
		if n, ok := ia.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok && ip.Unmap() == a.Unmap() {
				return true
			}
		}
	}
	return false
}
