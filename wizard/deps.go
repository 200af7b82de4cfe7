package wizard

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/preflight"
	"github.com/ipcert/ipcert/ui"
)

// Machine is what the welcome screen says about this machine.
type Machine struct {
	UID        int
	CanBindLow bool // may bind ports 80 and 443 (root or CAP_NET_BIND_SERVICE)
	Systemd    bool // systemd is PID 1: the renewal can be a systemd timer
	// Cron: a cron daemon runs (what runs the job where systemd does not).
	Cron bool
	// Binary is the ipcert binary a renewal job would run.
	Binary     string
	WebServers []preflight.WebServer
	// Managed are the certificates the state directory already renews,
	// with their addresses: one for an address this machine no longer has
	// is offered to ipcert remove.
	Managed []ManagedCert
}

// ManagedCert is a certificate the state directory renews.
type ManagedCert struct {
	Name  string
	Addrs []netip.Addr
}

// TempBinary says whether the binary lives where it may vanish (a
// temporary folder: tmpfs, cleaned at boot or by age), so a renewal job
// pointing at it would stop working.
func TempBinary(path string) bool {
	for _, d := range []string{"/tmp/", "/var/tmp/", "/dev/shm/", "/run/user/"} {
		if strings.HasPrefix(path, d) {
			return true
		}
	}
	return false
}

// PreflightRequest is one preflight run the user asked for.
type PreflightRequest struct {
	Addrs []netip.Addr
	// MapPorts: the user agreed that the router may be asked (UPnP IGD /
	// NAT-PMP) to map the validation ports for the duration of the check.
	MapPorts bool
	// OwnCA: the certificate will come from an ACME CA of the user's own
	// (the plan says so, or an address Let's Encrypt refuses leaves no
	// other choice): Let's Encrypt's address policy is not checked
	// (preflight.Options.OwnCA).
	OwnCA bool
	// Internal: every address is one the internet cannot reach (private,
	// shared, loopback: Let's Encrypt refuses it), so only an own CA on the
	// same network validates it: the checks of the public address, NAT
	// and the fetch through the public address do not apply.
	Internal bool
}

// InternalChecks are the preflight checks that apply to an internal
// address (PreflightRequest.Internal).
var InternalChecks = []string{preflight.IDInterfaces, preflight.IDPorts, preflight.IDPrivilege, preflight.IDWebServers, preflight.IDFirewall, preflight.IDAddress}

// Issuer stores a new certificate: *acmeflow.Engine.
type Issuer interface {
	Issue(ctx context.Context, req acmeflow.Request, opts acmeflow.IssueOptions) (*acmeflow.Issued, error)
}

// Deps are the wizard's connections to the world. main wires the real
// packages; tests pass loopback fakes and the local test CA. Every call
// runs inside a tea.Cmd, never in Update or View.
type Deps struct {
	// Machine looks at the user, systemd and web servers (welcome screen).
	Machine func(ctx context.Context) Machine
	// DetectPublic finds the public addresses and which sources said so.
	DetectPublic func(ctx context.Context) preflight.PublicAddrs
	// LocalAddrs lists the addresses on local interfaces (which interface
	// holds the public address, if any).
	LocalAddrs func() ([]preflight.IfaceAddr, error)
	// Preflight runs the checks; progress is called as each check starts
	// and finishes.
	Preflight func(ctx context.Context, req PreflightRequest, progress func(preflight.Event)) preflight.Report
	// OpenCA resolves a CA choice (staging, production, local, or the
	// directory URL of the user's own ACME CA with rootFile, the PEM file
	// of roots trusted for its HTTPS: "" the system's), as cachoice.Open
	// does for "ipcert issue --ca URL --ca-root FILE". The wizard closes
	// what it opened when it ends.
	OpenCA func(choice, rootFile string) (*cachoice.CA, error)
	// Issuer issues into the state directory (the certificate that will be
	// served and renewed).
	Issuer Issuer
	// Rehearsal issues the staging rehearsal before production into a
	// separate store, so the rehearsal never becomes the current
	// certificate nor gets renewed. Nil: the rehearsal goes to Issuer.
	Rehearsal Issuer
	// Store is Issuer's store, to name the files on the summary.
	Store *store.Store
	// RehearsalStore is Rehearsal's store.
	RehearsalStore *store.Store
	// After the issuance (docs/ARCHITECTURE.md: Install, Renewal, Verify). Each is
	// optional: without it, its screen names the command to run instead.
	// Servers lists the web servers the certificate can be installed for,
	// with the snippet each would get; Install installs it (config test,
	// write, test, reload).
	Servers func(ctx context.Context, iss *acmeflow.Issued) []InstallTarget
	Install func(ctx context.Context, iss *acmeflow.Issued, t InstallTarget) Report
	// Timer installs the renewal timer; DryRenew rehearses a renewal.
	Timer    func(ctx context.Context, iss *acmeflow.Issued) Report
	DryRenew func(ctx context.Context, iss *acmeflow.Issued) Report
	// Verify checks what the address serves on port 443.
	Verify func(ctx context.Context, iss *acmeflow.Issued) Report
	// RecordFailure keeps a failed attempt (a rehearsal's too: doctor
	// explains the failure the user just saw) for doctor and status, and
	// says when it could not; nil skips it.
	RecordFailure func(name string, err error) error
	// Now is the clock (tests pin it for golden files).
	Now func() time.Time
}

// Config is how this run of the wizard looks and what it starts with.
type Config struct {
	// Demo runs against the local test CA only (ipcert demo).
	Demo bool
	Caps ui.Caps
	// StateDir is shown on the welcome and summary screens.
	StateDir string
	// Answers preset from flags and IPCERT_* variables (docs/ARCHITECTURE.md: every
	// answer is also a flag); the screens start from them.
	Answers Answers
	// Log receives the wizard's debug log (--debug); nil discards.
	Log io.Writer
	// SpinEvery is the spinner's period (default 120ms).
	SpinEvery time.Duration
	// ConsentDelay is how long the terms question must have been on
	// screen before a key answers it (default 300ms; negative: at once).
	// Keys typed ahead for earlier questions arrive sooner.
	ConsentDelay time.Duration
	// InstallHint, when set, replaces the summary's default install and
	// renewal commands.
	InstallHint []string
	// SummaryOnStdout: the caller prints the outcome on stdout (cli), so
	// accessible mode does not say the summary a second time.
	SummaryOnStdout bool
}

// CA plan choices beyond cachoice's names.
const (
	// PlanRehearse issues on staging first, then (after the user says so)
	// on production: the default (docs/letsencrypt.md: rehearse on staging, always).
	PlanRehearse = "rehearse"
	// PlanOwnCA is an ACME CA of the user's own (step-ca for internal
	// addresses, say): Answers.CAURL is its directory and Answers.CARoot
	// the root its HTTPS is trusted with. Let's Encrypt's rules do not
	// apply to it (private addresses are allowed, its validity is its own).
	PlanOwnCA = "own"
)

// Challenge choices on the plan screen.
const (
	ChallengeHTTP    = string(acmeflow.ChallengeHTTP01)
	ChallengeWebroot = "http-01-webroot"
	ChallengeTLSALPN = string(acmeflow.ChallengeTLSALPN01)
)

// Answers are what the user chose.
type Answers struct {
	Addrs []netip.Addr
	CA    string // PlanRehearse, cachoice.Staging, cachoice.Production, cachoice.Local, PlanOwnCA
	// CAURL and CARoot are PlanOwnCA's directory URL (https) and PEM root
	// file ("": the system's roots), as "ipcert issue --ca URL --ca-root".
	CAURL, CARoot string
	Challenge     string // ChallengeHTTP, ChallengeWebroot, ChallengeTLSALPN
	WebRoot       string
	KeyType       string
	Email         string
	AgreeTOS      bool
	// AgreedFor is whose terms AgreeTOS agreed to (Terms): consent belongs
	// to one CA, and another CA's question is asked again.
	AgreedFor string
	// HTTPListen and TLSListen are the built-in responders' addresses
	// (--http-listen, --tls-listen; default :80 and :443), kept in
	// renewal.json for renew like issue's.
	HTTPListen, TLSListen string
}

// Choice is the CA the answers name, as cachoice.Open and renewal.json
// take it: the directory URL for PlanOwnCA.
func (a Answers) Choice() string {
	if a.CA == PlanOwnCA {
		return a.CAURL
	}
	return a.CA
}

// Issuance is the one description of the issuance the answers ask of
// the CA choice (Choice, or staging for the rehearsal): what the engine's
// request, renewal.json and a failure's diagnosis are made from, as for
// issue's flags. The wizard's web-root challenge is http-01 into the web
// root.
func (a Answers) Issuance(choice string) spec.Issuance {
	is := spec.Issuance{
		Identifiers: acmeflow.AddrStrings(a.Addrs), CA: spec.CAChoice(choice), CARoot: a.root(choice),
		Challenge: spec.Challenge(a.Challenge), KeyType: a.KeyType, Email: a.Email,
		HTTPListen: a.HTTPListen, TLSListen: a.TLSListen,
	}
	if a.Challenge == ChallengeWebroot {
		is.Challenge, is.WebRoot = spec.HTTP01, a.WebRoot
	}
	return is
}

// Terms names whose terms of service the answers' CA has: Let's
// Encrypt's Subscriber Agreement for the rehearsal, staging and
// production alike; the local test CA's; an own CA's, per directory URL.
func (a Answers) Terms() string {
	switch a.CA {
	case PlanRehearse, cachoice.Staging, cachoice.Production:
		return "letsencrypt"
	case PlanOwnCA:
		return "own " + strings.TrimSpace(a.CAURL)
	}
	return a.CA
}

// keepConsent notes whose terms a new agreement is for, and drops an
// agreement given for another CA's terms.
func (a *Answers) keepConsent(wasAgreed bool) {
	switch {
	case a.AgreeTOS && !wasAgreed:
		a.AgreedFor = a.Terms()
	case a.AgreeTOS && a.AgreedFor == "":
		a.AgreedFor = a.Terms() // --agree-tos, for the CA given with it
	case a.AgreeTOS && a.AgreedFor != a.Terms():
		a.AgreeTOS = false
	}
}

// root is the PEM root file for choice: only the own CA's.
func (a Answers) root(choice string) string {
	if a.CA == PlanOwnCA && choice == a.CAURL {
		return a.CARoot
	}
	return ""
}

// Outcome is how the wizard ended, for main to print on stdout.
type Outcome struct {
	// Issued is the certificate now current in the state directory.
	Issued *acmeflow.Issued
	// Files are Issued's files.
	Files Files
	// Rehearsal is the staging rehearsal's certificate, when one ran.
	Rehearsal *acmeflow.Issued
	// RehearsalFiles are the rehearsal's files.
	RehearsalFiles Files
	CA             *cachoice.CA
	// Aborted is true when the user quit before a certificate was issued.
	Aborted bool
	// Err is the last issuance error, when the user quit on it;
	// RecordErr says why it could not be recorded for doctor (a full
	// disk), when it could not.
	Err       error
	RecordErr error
	// Done is what the after-issuance steps did ("install", "renewal",
	// "verify"): the commands that come next leave them out (NextCommands).
	Done map[string]bool
}

// Files are where a stored certificate lives.
type Files = store.Paths

func filesOf(st *store.Store, name string, local bool) Files {
	if st == nil {
		return Files{}
	}
	return store.PathsIn(st.CurrentDir(name), local)
}

// caPool opens each CA choice once and closes them all at the end: the
// local CA is a Pebble inside this process and must survive retries.
type caPool struct {
	mu   sync.Mutex
	open func(choice, rootFile string) (*cachoice.CA, error)
	cas  map[[2]string]*cachoice.CA
}

func (p *caPool) get(choice, rootFile string) (*cachoice.CA, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	k := [2]string{choice, rootFile}
	if ca, ok := p.cas[k]; ok {
		return ca, nil
	}
	if p.open == nil {
		return nil, errors.New("no CA opener configured; this is a bug")
	}
	ca, err := p.open(choice, rootFile)
	if err != nil {
		return nil, err
	}
	if p.cas == nil {
		p.cas = map[[2]string]*cachoice.CA{}
	}
	p.cas[k] = ca
	return ca, nil
}

func (p *caPool) closeAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, ca := range p.cas {
		ca.Close()
		delete(p.cas, k)
	}
}

// jobs tracks the goroutines the wizard's commands run, so that Shutdown
// can wait until every challenge server is closed and every file written
// before the process exits.
type jobs struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
	stop   chan struct{}
}

func newJobs() *jobs { return &jobs{stop: make(chan struct{})} }

func (j *jobs) start() bool {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return false
	}
	j.wg.Add(1)
	return true
}

func (j *jobs) done() { j.wg.Done() }

func (j *jobs) shutdown() {
	j.mu.Lock()
	if !j.closed {
		j.closed = true
		close(j.stop)
	}
	j.mu.Unlock()
	j.wg.Wait()
}
