// Package preflight checks, before anything is sent to a CA, what makes
// validation of an IP-address certificate fail: the public address, NAT,
// ports 80/443, privilege, web servers, the host firewall. Each check is a
// value with an ID and a Run(ctx, Env) method returning a Result with a
// status, the evidence it saw and the fix. Run runs them all in parallel,
// each with its own timeout, inside one bounded run.
//
// The package never prints and never exits: the command and the wizard
// render the Report. Everything the checks touch (network endpoints,
// dialers, /proc and /sys, commands) comes through Env so tests replace it
// with local fakes. See docs/preflight.md for the checks and the JSON schema.
package preflight

import (
	"context"
	"fmt"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipcert/ipcert/internal/untrusted"
)

// Status is a check's outcome.
type Status string

const (
	StatusOK      Status = "ok"      // nothing found that would make validation fail
	StatusWarn    Status = "warn"    // something to look at; validation may still work
	StatusFail    Status = "fail"    // validation will very probably fail until fixed
	StatusSkipped Status = "skipped" // the check did not apply or could not run
)

// Mark is the status in brackets, all of one width, as plain-text output
// (preflight, doctor) starts each check's line with it.
func (s Status) Mark() string {
	switch s {
	case StatusOK:
		return "[ ok ]"
	case StatusWarn:
		return "[warn]"
	case StatusFail:
		return "[FAIL]"
	case StatusSkipped:
		return "[skip]"
	}
	return "[ ?? ]"
}

// rank orders statuses by severity for the overall verdict.
func (s Status) rank() int {
	switch s {
	case StatusFail:
		return 3
	case StatusWarn:
		return 2
	case StatusOK:
		return 1
	}
	return 0
}

// Result is what one check found.
type Result struct {
	ID      string `json:"id"`
	Title   string `json:"title"`
	Status  Status `json:"status"`
	Summary string `json:"summary"`
	// Evidence is what the check saw, one fact a line, in the words of the
	// source (a command's output line, a file, an echo service's answer).
	Evidence []string `json:"evidence,omitempty"`
	// Fix is what a person can do about it; a command where there is one.
	Fix string `json:"fix,omitempty"`
	// Advisory results never count towards the verdict (the self-fetch:
	// hairpin NAT makes it prove nothing either way, docs/letsencrypt.md).
	Advisory   bool  `json:"advisory,omitempty"`
	DurationMS int64 `json:"duration_ms"`
}

// check is one preflight check.
type check interface {
	ID() string
	Title() string
	Run(ctx context.Context, env Env) Result
}

// EventKind says whether a check started or finished.
type EventKind string

const (
	EventStart  EventKind = "start"
	EventFinish EventKind = "finish"
)

// Event is sent to Run's progress callback as each check starts and
// finishes. Result is set only for EventFinish.
type Event struct {
	Kind   EventKind
	ID     string
	Title  string
	Result *Result
}

// Options choose what a run checks.
type Options struct {
	// IPs are the addresses the certificate will name. Empty means "auto":
	// the majority public addresses DetectPublic finds.
	IPs []netip.Addr
	// LocalCA is true for the built-in local test CA, which validates over
	// loopback; false (the default) applies Let's Encrypt's address policy.
	LocalCA bool
	// OwnCA is true for a CA other than Let's Encrypt (a private ACME CA
	// such as step-ca): its own policy decides which addresses it
	// certifies, so Let's Encrypt's refusals and rate limits do not apply.
	OwnCA bool
	// HTTPPort and TLSPort are the validation ports (80 and 443: docs/letsencrypt.md,
	// LE only ever connects to these). Zero means the default.
	HTTPPort, TLSPort int
	// MapPorts asks the router (UPnP IGD or NAT-PMP) to map the validation
	// ports, checks what it granted and removes the mappings again. Only
	// with the user's consent.
	MapPorts bool
	// SelfFetch serves a random token on SelfFetchPort and fetches it
	// through the public address. Advisory only.
	SelfFetch     bool
	SelfFetchPort int // default HTTPPort
	// Timeout bounds the whole run (default 4.5s); CheckTimeout each check
	// (default 4s).
	Timeout      time.Duration
	CheckTimeout time.Duration
	// Only restricts the run to these check IDs (empty: all).
	Only []string
}

func (o Options) withDefaults() Options {
	if o.HTTPPort == 0 {
		o.HTTPPort = 80
	}
	if o.TLSPort == 0 {
		o.TLSPort = 443
	}
	if o.SelfFetchPort == 0 {
		o.SelfFetchPort = o.HTTPPort
	}
	if o.Timeout <= 0 {
		o.Timeout = 4500 * time.Millisecond
	}
	if o.CheckTimeout <= 0 {
		o.CheckTimeout = 4 * time.Second
	}
	if o.CheckTimeout > o.Timeout {
		o.CheckTimeout = o.Timeout
	}
	return o
}

// SchemaVersion is the version of the Report's JSON schema
// (docs/preflight.md). It changes only when a field changes meaning or
// disappears; new fields may be added without a change.
const SchemaVersion = 1

// Report is the outcome of a run. Its JSON form is the stable schema of
// `ipcert preflight --json`.
type Report struct {
	Schema   int       `json:"schema"`
	Started  time.Time `json:"started"`
	Duration int64     `json:"duration_ms"`
	// Verdict is the worst status among the non-advisory results.
	Verdict Status `json:"verdict"`
	// Offline is true when no internet endpoint answered at all.
	Offline bool `json:"offline"`
	// Addrs are the addresses checked: Options.IPs, or the detected ones.
	Addrs      []netip.Addr `json:"addrs"`
	Public     PublicAddrs  `json:"public"`
	Interfaces []IfaceAddr  `json:"interfaces"`
	NAT        NATInfo      `json:"nat"`
	Ports      []PortState  `json:"ports"`
	Privilege  Privilege    `json:"privilege"`
	WebServers []WebServer  `json:"web_servers"`
	Firewall   Firewall     `json:"firewall"`
	Results    []Result     `json:"results"`
}

// Result returns the result with the given ID, if the run had it.
func (r Report) Result(id string) (Result, bool) {
	for _, x := range r.Results {
		if x.ID == id {
			return x, true
		}
	}
	return Result{}, false
}

// Check IDs, in the order of the report.
const (
	IDPublic4    = "public-ipv4"
	IDPublic6    = "public-ipv6"
	IDInterfaces = "interfaces"
	IDNAT        = "nat"
	IDPorts      = "ports"
	IDPrivilege  = "privilege"
	IDWebServers = "web-servers"
	IDFirewall   = "firewall"
	IDSelfFetch  = "self-fetch"
	IDAddress    = "address"
)

// state is one run's shared, lazily computed facts: several checks need the
// public address or the interface list, and each is gathered once. It lives
// only as long as a run (no package-level state).
type state struct {
	opts    Options
	public  func() PublicAddrs
	ifaces  func() ([]IfaceAddr, error)
	mu      sync.Mutex
	report  *Report
	others  sync.WaitGroup // every check but the address check
	results map[string]Result
	closed  bool
	// asked says the public address was looked up: only a check that
	// needs it asks the internet (`--only ports` sends nothing).
	asked atomic.Bool
}

func newState(ctx context.Context, env Env, opts Options, rep *Report) *state {
	st := &state{opts: opts, report: rep, results: map[string]Result{}}
	// Shared facts are bounded like a check, so a check that waits for
	// them never outlives its own timeout by much.
	st.public = sync.OnceValue(func() PublicAddrs {
		st.asked.Store(true)
		ctx, cancel := context.WithTimeout(ctx, opts.CheckTimeout)
		defer cancel()
		return DetectPublic(ctx, env)
	})
	st.ifaces = sync.OnceValues(func() ([]IfaceAddr, error) { return LocalAddrs(env) })
	return st
}

// addrs are the addresses the run is about.
func (st *state) addrs() []netip.Addr {
	if len(st.opts.IPs) > 0 {
		return st.opts.IPs
	}
	return st.public().Addrs()
}

// set records structured detail in the report under the lock. A check
// that overran its timeout and finishes after Run returned writes nothing.
func (st *state) set(f func(r *Report)) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !st.closed {
		f(st.report)
	}
}

// checkFunc is a Check made of a function.
type checkFunc struct {
	id, title string
	run       func(ctx context.Context, env Env) Result
}

func (c checkFunc) ID() string                              { return c.id }
func (c checkFunc) Title() string                           { return c.title }
func (c checkFunc) Run(ctx context.Context, env Env) Result { return c.run(ctx, env) }

// checks are the checks in report order. They share the facts several of
// them need (the public address, the interfaces), gathered once.
func (st *state) checks() []check {
	addrTitle := "The address Let's Encrypt will validate"
	if st.opts.OwnCA || st.opts.LocalCA {
		addrTitle = "The address the CA will validate"
	}
	return []check{
		checkFunc{IDPublic4, "Public IPv4 address", func(ctx context.Context, env Env) Result { return st.checkPublic(ctx, 4) }},
		checkFunc{IDPublic6, "Public IPv6 address", func(ctx context.Context, env Env) Result { return st.checkPublic(ctx, 6) }},
		checkFunc{IDInterfaces, "Local interfaces", st.checkInterfaces},
		checkFunc{IDNAT, "NAT and cloud", st.checkNAT},
		checkFunc{IDPorts, "Ports 80 and 443", st.checkPorts},
		checkFunc{IDPrivilege, "Privilege to bind ports below 1024", st.checkPrivilege},
		checkFunc{IDWebServers, "Web servers", st.checkWebServers},
		checkFunc{IDFirewall, "Host firewall", st.checkFirewall},
		checkFunc{IDSelfFetch, "Self-fetch through the public address (advisory)", st.checkSelfFetch},
		checkFunc{IDAddress, addrTitle, st.checkAddress},
	}
}

// Run runs every check (or Options.Only) in parallel, each bounded by
// Options.CheckTimeout and the whole run by Options.Timeout, and returns the
// Report with results in a fixed order. progress, if not nil, is called as
// each check starts and finishes; Run serialises the calls (never two at
// once), so progress need not be safe for concurrent use, but it must not
// block for long.
func Run(ctx context.Context, env Env, opts Options, progress func(Event)) Report {
	opts = opts.withDefaults()
	env = env.withDefaults()
	ctx, cancel := context.WithTimeout(ctx, opts.Timeout)
	defer cancel()
	start := env.Now()
	st := newState(ctx, env, opts, &Report{Schema: SchemaVersion, Started: start.UTC(), Verdict: StatusOK})

	var pmu sync.Mutex
	emit := func(e Event) {
		if progress == nil {
			return
		}
		pmu.Lock()
		defer pmu.Unlock()
		progress(e)
	}
	only := map[string]bool{}
	for _, id := range opts.Only {
		only[id] = true
	}
	var chosen []check
	for _, c := range st.checks() {
		if len(only) == 0 || only[c.ID()] {
			chosen = append(chosen, c)
		}
	}
	results := make([]Result, len(chosen))
	var wg sync.WaitGroup
	for i, c := range chosen {
		if c.ID() != IDAddress {
			st.others.Add(1)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			if c.ID() != IDAddress {
				defer st.others.Done()
			}
			emit(Event{Kind: EventStart, ID: c.ID(), Title: c.Title()})
			r := runOne(ctx, env, c, opts.CheckTimeout)
			results[i] = r
			st.mu.Lock()
			st.results[r.ID] = r
			st.mu.Unlock()
			emit(Event{Kind: EventFinish, ID: c.ID(), Title: c.Title(), Result: &r})
		}()
	}
	wg.Wait()

	st.mu.Lock()
	st.closed = true
	rep := *st.report
	st.mu.Unlock()
	rep.Results = results
	for _, r := range results {
		if !r.Advisory && r.Status.rank() > rep.Verdict.rank() {
			rep.Verdict = r.Status
		}
	}
	if len(only) == 0 || only[IDPublic4] || only[IDPublic6] {
		rep.Public = st.public()
		p := rep.Public
		rep.Offline = p.V4.Asked+p.V6.Asked > 0 && p.V4.Answered == 0 && p.V6.Answered == 0
	}
	if len(st.opts.IPs) > 0 || st.asked.Load() {
		rep.Addrs = st.addrs()
	}
	// Lists are [] rather than null in JSON, so consumers need no
	// null checks (docs/preflight.md).
	rep.Addrs = nonNil(rep.Addrs)
	rep.Interfaces = nonNil(rep.Interfaces)
	rep.Ports = nonNil(rep.Ports)
	rep.WebServers = nonNil(rep.WebServers)
	rep.Results = nonNil(rep.Results)
	rep.Firewall.Tools = nonNil(rep.Firewall.Tools)
	rep.Firewall.Verdict = nonNil(rep.Firewall.Verdict)
	rep.Duration = env.Now().Sub(start).Milliseconds()
	return rep
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// runOne runs a check with its own timeout. A check that overruns is
// reported as skipped with the timeout as evidence; its goroutine finishes
// on its own because its context is cancelled.
func runOne(ctx context.Context, env Env, c check, timeout time.Duration) Result {
	cctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	start := env.Now()
	done := make(chan Result, 1)
	go func() {
		defer func() {
			if p := recover(); p != nil {
				done <- Result{Status: StatusSkipped, Summary: fmt.Sprintf("the check crashed (a bug): %v", p)}
			}
		}()
		done <- c.Run(cctx, env)
	}()
	var r Result
	select {
	case r = <-done:
	case <-cctx.Done():
		// Give the check a moment to return what it has: most checks
		// return promptly once their context ends.
		select {
		case r = <-done:
		case <-time.After(100 * time.Millisecond):
			r = Result{Status: StatusSkipped, Summary: "timed out after " + timeout.String(), Evidence: []string{cctx.Err().Error()}}
		}
	}
	r.ID, r.Title = c.ID(), c.Title()
	// A check's words quote what it met: a gateway's names and errors,
	// an echo service's answer, a command's output. Escaped here once, so
	// the text report, --json and the wizard get safe, bounded text.
	r.Summary, r.Fix = untrusted.Text(r.Summary), untrusted.Text(r.Fix)
	r.Evidence = untrusted.Strings(r.Evidence)
	if r.Status == "" {
		r.Status = StatusSkipped
	}
	r.DurationMS = env.Now().Sub(start).Milliseconds()
	return r
}

// RehearsalCommand is the command a fix suggests to test from outside: a
// staging order for the addresses (--ip auto when none are known), whole
// and on one line (cli's tests run it through issue's validation).
func RehearsalCommand(addrs []netip.Addr) string {
	return strings.Join(append(append([]string{"ipcert", "issue", "--ca", "staging"}, ipArgs(addrs)...), "--agree-tos"), " ")
}

// PreflightCommand is "ipcert preflight" for the addresses, with extra
// flags (--map-ports), whole and on one line.
func PreflightCommand(addrs []netip.Addr, extra ...string) string {
	w := []string{"ipcert", "preflight"}
	if len(addrs) > 0 {
		w = append(w, ipArgs(addrs)...)
	}
	return strings.Join(append(w, extra...), " ")
}

// ipArgs are --ip flags for the addresses (netip's canonical form: no
// character a shell treats specially), or --ip auto.
func ipArgs(addrs []netip.Addr) []string {
	if len(addrs) == 0 {
		return []string{"--ip", "auto"}
	}
	var out []string
	for _, a := range addrs {
		out = append(out, "--ip", a.String())
	}
	return out
}
