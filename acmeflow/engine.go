// Package acmeflow is ipcert's ACME engine: it gets certificates for IP
// addresses from an ACME CA (Let's Encrypt, or the local test CA) with the
// shortlived profile, drives each order step by step on lego's ACME API
// layer, answers the challenges with its own responders, and reports every
// step and every validator request as an Event. It never prints and never
// exits: callers (the wizard, the commands) decide what to show.
package acmeflow

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-acme/lego/v4/acme"
	"github.com/go-acme/lego/v4/acme/api"
	"github.com/go-acme/lego/v4/certificate"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
)

// ProfileShortlived is the only Let's Encrypt profile that allows IP
// identifiers: 160 hours, no Common Name (docs/letsencrypt.md).
const ProfileShortlived = "shortlived"

// Directories of Let's Encrypt (docs/letsencrypt.md).
const (
	LEProduction = "https://acme-v02.api.letsencrypt.org/directory"
	LEStaging    = "https://acme-staging-v02.api.letsencrypt.org/directory"
)

// Request is one certificate to obtain.
type Request struct {
	Identifiers []netip.Addr
	Directory   string // ACME directory URL
	// PublicCA applies Let's Encrypt's address policy before any traffic
	// (CheckAddr): true for every CA but the local test CA.
	PublicCA bool
	// CAKey names the CA's folder under accounts/ (store.CAKey).
	CAKey string
	// HTTPClient talks to the CA; nil means the system roots.
	HTTPClient *http.Client

	Challenge  spec.Challenge
	HTTPListen string // standalone http-01 responder, default ":80"
	WebRoot    string // http-01 into this document root instead of standalone
	TLSListen  string // tls-alpn-01 responder, default ":443"

	KeyType  string // see KeyTypes; default ec256
	Email    string // optional account contact
	AgreeTOS bool   // the user accepted the CA's terms of service
	Profile  string // default ProfileShortlived
	Replaces string // ARI certificate ID of the certificate this one replaces (RFC 9773)

	// Events receives progress; calls are serialised. Nil discards.
	Events func(Event)

	// Publish, when set, also makes each answer available to the other
	// machines that serve the address (cluster mode: a validator may reach
	// any of them), before the challenge is accepted; release is called
	// when the authorization is done.
	Publish func(ctx context.Context, challenge spec.Challenge, ident netip.Addr, token, keyAuth string) (release func(), err error)
	// EABKid and EABHMAC bind a new account to an account at the CA
	// (external account binding, RFC 8555 section 7.3.4): commercial ACME
	// CAs and step-ca provisioners that require it. EABHMAC is the
	// base64url MAC key; never printed.
	EABKid, EABHMAC string

	// PreferredChain picks, among the chains the CA offers (RFC 8555
	// section 7.4.2, Link rel="alternate"), the one with a certificate
	// issued by or named this common name (such as "ISRG Root X2");
	// empty, or none matching: the CA's default chain.
	PreferredChain string

	// ReuseKey is the private key (PEM) to certify again instead of a new
	// one (--reuse-key: DNS-over-TLS clients may pin it, RFC 7858 section
	// 4.2); nil makes a new key of KeyType.
	ReuseKey []byte

	// AroundValidation, when set, runs once right before the first
	// challenge is answered (not at all when every authorization is valid
	// already); the after it returns runs when validation is over, failed
	// or not (--pre-hook / --post-hook: a service that holds port 80 is
	// stopped only while the CA validates). An error stops the order.
	AroundValidation func(ctx context.Context) (after func(), err error)

	// PublishOnly starts no responder here: the answers reach the
	// validators only through Publish (cluster mode, where every machine's
	// agent holds ports 80 and 443 and answers from the shared store).
	PublishOnly bool
}

// RequestFor is the engine request for an issuance's own settings: the
// addresses (resolved, for --ip auto), the challenge, the responders' or
// the web root, the key type, the contact and the preferred chain. The
// CA's part (directory, client, address policy) is cachoice.CA.Apply's;
// what is read from files or run (the EAB key, the reused key, the hooks)
// and consent are the caller's.
func RequestFor(is *spec.Issuance, idents []netip.Addr) Request {
	return Request{
		Identifiers: idents, Challenge: is.Challenge, WebRoot: is.WebRoot,
		HTTPListen: is.HTTPListen, TLSListen: is.TLSListen,
		KeyType: is.KeyType, Email: is.Email, PreferredChain: is.PreferredChain,
	}
}

// Certificate is what an order produced.
type Certificate struct {
	Leaf         *x509.Certificate
	CertPEM      []byte // the leaf
	ChainPEM     []byte // intermediates
	FullChainPEM []byte // leaf + intermediates
	KeyPEM       []byte
	CertID       string // RFC 9773 unique identifier (ARI)
	OrderURL     string
	AccountURL   string
	Seen         []ValidatorRequest
	// SeenDropped and SeenRefused are as in Error.
	SeenDropped, SeenRefused int
}

// Engine obtains certificates. Its zero value is not usable: Store is
// required; Now defaults to time.Now.
type Engine struct {
	Store     *store.Store
	UserAgent string
	Now       func() time.Time
}

func (e *Engine) now() time.Time {
	if e.Now != nil {
		return e.Now()
	}
	return time.Now()
}

// emitter serialises event delivery: responders call it from their own
// goroutines.
type emitter struct {
	mu  sync.Mutex
	fn  func(Event)
	now func() time.Time
}

func (m *emitter) emit(ev Event) {
	if m.fn == nil {
		return
	}
	if ev.Time.IsZero() {
		ev.Time = m.now()
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.fn(ev)
}

func (m *emitter) step(s Step, format string, args ...any) {
	m.emit(Event{Kind: EventStep, Step: s, Message: fmt.Sprintf(format, args...)})
}

func (m *emitter) info(s Step, ident, format string, args ...any) {
	m.emit(Event{Kind: EventInfo, Step: s, Identifier: ident, Message: fmt.Sprintf(format, args...)})
}

// Validate checks a request before any network traffic: identifiers
// canonical and acceptable to the CA, a challenge that works for IPs.
func (r *Request) Validate() error {
	if len(r.Identifiers) == 0 {
		return &Error{Step: StepAddress, Err: errors.New("no IP address given; use --ip ADDR (or --ip auto)")}
	}
	if err := CheckOrder(r.Identifiers, r.PublicCA, r.Challenge, r.WebRoot, r.KeyType); err != nil {
		return err
	}
	if r.Directory == "" {
		return &Error{Step: StepDirectory, Err: errors.New("no ACME directory URL")}
	}
	return nil
}

// CheckOrder is the order's own rules, checked before the CA is even
// opened (the flags of issue, before anything is written or sent): at most
// 25 distinct canonical addresses that the CA's address policy allows
// (none given: not checked, as for --ip auto before the detection), a
// challenge that can prove an address, a web root only with http-01, a
// known key type.
func CheckOrder(idents []netip.Addr, publicCA bool, challenge spec.Challenge, webRoot, keyType string) error {
	// Let's Encrypt allows at most 25 identifiers per order (docs/letsencrypt.md).
	if len(idents) > 25 {
		return &Error{Step: StepAddress, Err: fmt.Errorf("%d addresses given; a certificate may name at most 25", len(idents))}
	}
	seen := map[netip.Addr]bool{}
	for _, a := range idents {
		if a.Zone() != "" || a.Is4In6() {
			return &Error{Step: StepAddress, Identifier: a.String(), Err: &AddrError{Input: a.String(), Reason: "is not a canonical identifier", Fix: "use " + a.Unmap().WithZone("").String()}}
		}
		if seen[a] {
			return &Error{Step: StepAddress, Identifier: a.String(), Err: fmt.Errorf("address %s is given twice", a)}
		}
		seen[a] = true
		if err := CheckAddr(a, publicCA); err != nil {
			return &Error{Step: StepAddress, Identifier: a.String(), Err: err}
		}
	}
	if err := challenge.Check(); err != nil {
		return &Error{Step: StepAddress, Err: err}
	}
	if webRoot != "" && challenge != ChallengeHTTP01 {
		return &Error{Step: StepAddress, Err: errors.New("--webroot works only with --challenge http-01")}
	}
	if _, err := GenerateKeyCheck(keyType); err != nil {
		return &Error{Step: StepAddress, Err: err}
	}
	return nil
}

// GenerateKeyCheck validates a key type name without generating a key.
func GenerateKeyCheck(keyType string) (string, error) {
	if err := spec.KeyType(keyType); err != nil {
		return "", err
	}
	if keyType == "" {
		return spec.DefaultKeyType, nil
	}
	return keyType, nil
}

// Obtain runs one order to a certificate. It stores the ACME account (and
// reuses it next time) but not the certificate: Issue does that.
func (e *Engine) Obtain(ctx context.Context, req Request) (_ *Certificate, err error) {
	em := &emitter{fn: req.Events, now: e.now}
	if err := req.Validate(); err != nil {
		return nil, err
	}
	if req.Profile == "" {
		req.Profile = ProfileShortlived
	}
	idents := slices.Clone(req.Identifiers)
	slices.SortFunc(idents, func(a, b netip.Addr) int { return a.Compare(b) })

	base := http.DefaultTransport
	if req.HTTPClient != nil && req.HTTPClient.Transport != nil {
		base = req.HTTPClient.Transport
	}
	tr := &ctxTransport{ctx: ctx, base: base}
	defer func() {
		// A 503 or 429 from a proxy or an overloaded CA carries Retry-After
		// outside lego's rateLimited handling: keep it with the problem so
		// the diagnosis can say when to try again.
		var ae *Error
		if errors.As(err, &ae) && ae.Problem != nil && ae.Problem.RetryAfter == 0 && ae.Problem.Status >= 429 {
			ae.Problem.RetryAfter = tr.peekRetryAfter()
		}
	}()
	hc := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	if req.HTTPClient != nil && req.HTTPClient.Timeout > 0 {
		hc.Timeout = req.HTTPClient.Timeout
	}
	ua := e.UserAgent
	if ua == "" {
		ua = "ipcert"
	}

	em.step(StepDirectory, "Fetching the ACME directory %s", req.Directory)
	core, accountKey, acct, err := e.account(ctx, hc, ua, req, em)
	if err != nil {
		return nil, err
	}

	// checkDirectory accepted the directory: the profile is known.
	profile, _ := chooseProfile(core.GetDirectory(), req)
	if profile == "" {
		em.step(StepOrder, "Ordering a certificate for %s (no profile: the CA's own validity)", JoinAddrs(idents))
	} else {
		em.step(StepOrder, "Ordering a %s certificate for %s", profile, JoinAddrs(idents))
	}
	order, err := core.Orders.NewWithOptions(AddrStrings(idents), &api.OrderOptions{Profile: profile, ReplacesCertID: req.Replaces})
	if err != nil && isProblem(err, ProblemAccountDoesNotExist) {
		// The CA forgot the account (a new test CA, or a deactivated one):
		// register again once and retry.
		em.info(StepAccount, "", "The CA no longer knows account %s; registering a new one", acct)
		core, acct, err = e.register(ctx, hc, ua, req, accountKey, em)
		if err != nil {
			return nil, err
		}
		order, err = core.Orders.NewWithOptions(AddrStrings(idents), &api.OrderOptions{Profile: profile, ReplacesCertID: req.Replaces})
	}
	if err != nil {
		return nil, e.wrapCtx(ctx, stepErr(StepOrder, "", err))
	}
	em.info(StepOrder, "", "Order %s is %s", order.Location, order.Status)

	// Every validator request wakes the poller: the CA decides right after.
	wake := make(chan struct{}, 1)
	seen := &seenLog{emit: func(ev Event) {
		em.emit(ev)
		if ev.Kind == EventValidator {
			select {
			case wake <- struct{}{}:
			default:
			}
		}
	}}
	fail := func(step Step, ident string, err error) (*Certificate, error) {
		se := stepErr(step, ident, err)
		se.Seen = seen.snapshot()
		se.SeenDropped, se.SeenRefused = seen.counts()
		return nil, e.wrapCtx(ctx, se)
	}

	err = e.authorize(ctx, core, tr, req, order, seen, wake, em)
	if d, r := seen.counts(); d+r > 0 {
		em.info(StepChallenge, "", "%s", SeenCountsText(d, r))
	}
	if err != nil {
		return fail(StepChallenge, "", err)
	}

	sans := "1 IP SAN"
	if len(idents) != 1 {
		sans = fmt.Sprintf("%d IP SANs", len(idents))
	}
	em.step(StepFinalize, "Sending the CSR (empty subject, %s) and waiting for the certificate", sans)
	var key crypto.Signer
	if len(req.ReuseKey) > 0 {
		if key, err = store.ParseKey(req.ReuseKey); err != nil {
			return fail(StepFinalize, "", fmt.Errorf("the key to reuse: %w", err))
		}
	} else if key, err = GenerateKey(req.KeyType); err != nil {
		return fail(StepFinalize, "", err)
	}
	csr, err := makeCSR(key, idents)
	if err != nil {
		return fail(StepFinalize, "", err)
	}
	final, err := core.Orders.UpdateForCSR(order.Finalize, csr)
	if err != nil {
		return fail(StepFinalize, "", err)
	}
	p := newPoller()
	p.next = finalizeFirstPoll
	for final.Status != acme.StatusValid {
		if final.Status == acme.StatusInvalid {
			return fail(StepFinalize, "", orderProblem(final.Order))
		}
		if err := p.wait(ctx, tr.takeRetryAfter()); err != nil {
			return fail(StepFinalize, "", err)
		}
		final, err = core.Orders.Get(order.Location)
		if err != nil {
			return fail(StepFinalize, "", err)
		}
		em.emit(Event{Kind: EventPoll, Step: StepFinalize, Message: "order is " + final.Status})
	}

	em.step(StepDownload, "Downloading the certificate and its chain")
	bundle, err := downloadChain(core, final.Certificate, req.PreferredChain, em)
	if err != nil {
		return fail(StepDownload, "", err)
	}
	out, err := splitChain(bundle)
	if err != nil {
		return fail(StepDownload, "", err)
	}
	if err := checkIssued(out.Leaf, idents, key); err != nil {
		return fail(StepDownload, "", err)
	}
	out.KeyPEM, err = EncodeKey(key)
	if err != nil {
		return fail(StepDownload, "", err)
	}
	if id, err := certificate.MakeARICertID(out.Leaf); err == nil {
		out.CertID = id
	}
	out.OrderURL = order.Location
	out.AccountURL = acct
	out.Seen = seen.snapshot()
	out.SeenDropped, out.SeenRefused = seen.counts()
	return out, nil
}

// wrapCtx turns a failure caused by cancellation into the context's error,
// so callers can tell "interrupted" from "the CA said no".
func (e *Engine) wrapCtx(ctx context.Context, err *Error) error {
	if ctx.Err() != nil && err.Problem == nil {
		err.Err = fmt.Errorf("%w (%v)", ctx.Err(), err.Err)
	}
	return err
}

// account loads the stored account for the CA, or registers one.
func (e *Engine) account(ctx context.Context, hc *http.Client, ua string, req Request, em *emitter) (*api.Core, crypto.Signer, string, error) {
	caKey := store.CAKey(req.Directory, req.CAKey)
	load := func() (*store.Account, []byte, error) {
		acct, keyPEM, err := e.Store.LoadAccount(caKey, "default")
		if err == nil && acct.Directory != req.Directory {
			// The local test CA listens on a new port each run and forgets
			// its accounts: an account of another directory is of no use.
			err = fmt.Errorf("account of %s: %w", acct.Directory, os.ErrNotExist)
		}
		return acct, keyPEM, err
	}
	acct, keyPEM, err := load()
	if err != nil {
		// Parallel renewals share the store: one registers, the others
		// wait and use its account.
		unlock := e.Store.LockRegistration()
		defer unlock()
		acct, keyPEM, err = load()
	}
	if err == nil {
		key, kerr := store.ParseKey(keyPEM)
		if kerr != nil {
			return nil, nil, "", &Error{Step: StepAccount, Err: kerr}
		}
		core, err := api.New(hc, ua, req.Directory, acct.URI, key)
		if err != nil {
			return nil, nil, "", e.wrapCtx(ctx, stepErr(StepDirectory, "", err))
		}
		if err := checkDirectory(core, req, em); err != nil {
			return nil, nil, "", err
		}
		em.info(StepAccount, "", "Using account %s", acct.URI)
		return core, key, acct.URI, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		msg := fmt.Sprintf("Stored account unusable (%v); registering a new one", err)
		if moved, qerr := e.Store.QuarantineAccount(caKey, "default", e.now()); qerr == nil {
			msg += "; the old files are kept in " + moved
		}
		em.emit(Event{Kind: EventWarning, Step: StepAccount, Message: msg})
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, "", &Error{Step: StepAccount, Err: err}
	}
	core, uri, err := e.register(ctx, hc, ua, req, key, em)
	return core, key, uri, err
}

func (e *Engine) register(ctx context.Context, hc *http.Client, ua string, req Request, key crypto.Signer, em *emitter) (*api.Core, string, error) {
	core, err := api.New(hc, ua, req.Directory, "", key)
	if err != nil {
		return nil, "", e.wrapCtx(ctx, stepErr(StepDirectory, "", err))
	}
	if err := checkDirectory(core, req, em); err != nil {
		return nil, "", err
	}
	if !req.AgreeTOS {
		tos := core.GetDirectory().Meta.TermsOfService
		return nil, "", &Error{Step: StepAccount, Err: fmt.Errorf("a new ACME account needs your agreement to the CA's terms of service (%s); read them, then pass --agree-tos", tos)}
	}
	em.step(StepAccount, "Registering a new ACME account")
	msg := acme.Account{TermsOfServiceAgreed: true}
	if req.Email != "" {
		msg.Contact = []string{"mailto:" + req.Email}
	}
	var acct acme.ExtendedAccount
	switch {
	case req.EABKid != "":
		em.info(StepAccount, "", "Binding it to the CA's account %s (external account binding)", req.EABKid)
		acct, err = core.Accounts.NewEAB(msg, req.EABKid, req.EABHMAC)
	case core.GetDirectory().Meta.ExternalAccountRequired:
		// Said as the CA itself would (RFC 8555 section 7.3.4), before
		// asking it: the directory's meta says so.
		return nil, "", &Error{Step: StepAccount, Problem: &Problem{Type: ProblemNS + "externalAccountRequired",
			Detail: "the CA's directory says it registers only accounts bound to an account you have with it (external account binding): give --eab-kid KID and --eab-hmac-file FILE"}}
	default:
		acct, err = core.Accounts.New(msg)
	}
	if err != nil {
		return nil, "", e.wrapCtx(ctx, stepErr(StepAccount, "", err))
	}
	keyPEM, err := EncodeKey(key)
	if err != nil {
		return nil, "", &Error{Step: StepAccount, Err: err}
	}
	caKey := store.CAKey(req.Directory, req.CAKey)
	if err := e.Store.SaveAccount(caKey, "default", &store.Account{URI: acct.Location, Directory: req.Directory, Email: req.Email, Created: e.now().UTC()}, keyPEM); err != nil {
		return nil, "", &Error{Step: StepAccount, Err: e.Store.Explain(fmt.Errorf("save account: %w", err))}
	}
	em.info(StepAccount, "", "Registered account %s", acct.Location)
	return core, acct.Location, nil
}

// checkDirectory refuses a CA that does not offer the profile (docs/letsencrypt.md:
// check meta.profiles before ordering). A CA other than Let's Encrypt that
// advertises no profiles at all (step-ca, most private ACME CAs: the
// profiles extension is a draft) is ordered from without one: it issues
// under its own policy, and the user is told which of Let's Encrypt's
// rules do not apply.
func checkDirectory(core *api.Core, req Request, em *emitter) error {
	dir := core.GetDirectory()
	profile, err := chooseProfile(dir, req)
	if err != nil {
		return err
	}
	if profile == "" {
		em.step(StepDirectory, "%s", NoProfileNotice)
		return nil
	}
	em.info(StepDirectory, "", "The CA offers the %s profile: %s", profile, dir.Meta.Profiles[profile])
	return nil
}

// NoProfileNotice is what a user of a CA without meta.profiles is told:
// which of Let's Encrypt's rules ipcert leaves to that CA.
const NoProfileNotice = "The CA advertises no profiles (its directory has no meta.profiles), so none is requested. " +
	"Let's Encrypt's rules do not apply to it: not the shortlived profile and its 160 hours (the validity is the one this CA gives), " +
	"not the refusal of private and reserved addresses, not its rate limits; " +
	"renewal follows this CA's validity (at half-life, or inside its ARI window if it offers ARI)"

// chooseProfile is the newOrder profile for req at the CA of dir: "" means
// none is sent.
func chooseProfile(dir acme.Directory, req Request) (string, error) {
	profile := req.Profile
	if profile == "" {
		profile = ProfileShortlived
	}
	if len(dir.Meta.Profiles) == 0 && !req.PublicCA && profile == ProfileShortlived {
		return "", nil
	}
	if _, ok := dir.Meta.Profiles[profile]; !ok {
		offered := make([]string, 0, len(dir.Meta.Profiles))
		for p := range dir.Meta.Profiles {
			offered = append(offered, p)
		}
		slices.Sort(offered)
		list := "none"
		if len(offered) > 0 {
			list = strings.Join(offered, ", ")
		}
		return "", &Error{Step: StepDirectory, Err: fmt.Errorf("%w %q (it offers: %s); certificates for IP addresses need a CA with the shortlived profile, such as Let's Encrypt (--ca staging or --ca production)", ErrNoShortlived, profile, list)}
	}
	return profile, nil
}

// forEach runs f(0..n-1), up to 8 at a time (a CA sees a short burst, not
// a flood), and returns the first error by position.
func forEach(n int, f func(i int) error) error {
	if n == 1 {
		return f(0)
	}
	errs := make([]error, n)
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs[i] = f(i)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// pending is an authorization to answer: its address, URL and challenge.
type pending struct {
	ident string
	authz string
	chal  acme.Challenge
}

// orderAuthz is one order's authorizations being answered: the phases of
// authorize share it.
type orderAuthz struct {
	e     *Engine
	core  *api.Core
	tr    *ctxTransport
	req   Request
	order acme.ExtendedOrder
	seen  *seenLog
	wake  <-chan struct{}
	em    *emitter

	// The responder and the published answers live until the CA has
	// validated (close), and so does what AroundValidation set up.
	after    func()
	resp     responder
	relMu    sync.Mutex
	releases []func()
}

// close stops the responder and withdraws the published answers.
func (a *orderAuthz) close() {
	if a.resp != nil {
		a.resp.close()
	}
	if a.after != nil {
		a.after()
	}
	for _, r := range a.releases {
		r()
	}
}

// authorize answers every pending authorization of the order, in two
// phases: answer and accept each challenge (answerAll), then wait until
// the CA has validated them (waitValid).
func (e *Engine) authorize(ctx context.Context, core *api.Core, tr *ctxTransport, req Request, order acme.ExtendedOrder, seen *seenLog, wake <-chan struct{}, em *emitter) error {
	a := &orderAuthz{e: e, core: core, tr: tr, req: req, order: order, seen: seen, wake: wake, em: em}
	defer a.close()
	waiting, err := a.answerAll(ctx)
	if err != nil || len(waiting) == 0 {
		return err
	}
	return a.waitValid(ctx, waiting)
}

// answerAll fetches the authorizations, answers each challenge (the
// responder, and Publish) and has it accepted; it returns those the CA has
// still to validate.
func (a *orderAuthz) answerAll(ctx context.Context) ([]pending, error) {
	e, core, req, order, seen, em := a.e, a.core, a.req, a.order, a.seen, a.em
	// The authorizations are fetched a few at a time, and each challenge
	// is accepted as soon as its authorization is in (the CA validates one
	// while the next ones are fetched): with 25 addresses one after
	// another it was most of the order's time. The responder is started by
	// the first authorization that needs it, before any challenge is
	// accepted, and not at all when every one is already valid.
	n := len(order.Authorizations)
	todo := make([]*pending, n)
	validNow := make([]bool, n)
	var (
		start   sync.Once
		respErr error
		addMu   sync.Mutex // the responders' add is not safe for concurrent use
		// The challenges accepted as their authorizations come in.
		accepts     sync.WaitGroup
		acceptSlots = make(chan struct{}, 8)
		acceptErrs  = make([]error, n)
	)
	err := forEach(n, func(i int) error {
		authzURL := order.Authorizations[i]
		authz, err := core.Authorizations.Get(authzURL)
		if err != nil {
			return stepErr(StepChallenge, "", err)
		}
		ident := authz.Identifier.Value
		if authz.Status == acme.StatusValid {
			em.info(StepChallenge, ident, "%s is already authorized (reused)", ident)
			return nil
		}
		var chal *acme.Challenge
		var offered []string
		for i := range authz.Challenges {
			offered = append(offered, authz.Challenges[i].Type)
			if spec.Challenge(authz.Challenges[i].Type) == req.Challenge {
				chal = &authz.Challenges[i]
			}
		}
		if chal == nil {
			return &Error{Step: StepChallenge, Identifier: ident, Err: fmt.Errorf("the CA does not offer %s for %s (it offers %s)", req.Challenge, ident, strings.Join(offered, ", "))}
		}
		ka, err := core.GetKeyAuthorization(chal.Token)
		if err != nil {
			return &Error{Step: StepChallenge, Identifier: ident, Err: err}
		}
		addr, err := netip.ParseAddr(ident)
		if err != nil {
			return &Error{Step: StepChallenge, Identifier: ident, Err: fmt.Errorf("the CA returned an authorization for %q, which is not an IP address", ident)}
		}
		start.Do(func() {
			if req.AroundValidation != nil {
				after, err := req.AroundValidation(ctx)
				if err != nil {
					respErr = err
					return
				}
				a.after = after
			}
			if req.PublishOnly && req.Publish != nil {
				return
			}
			// Not assigned on failure: a responder type's nil in the
			// interface would be closed below.
			r, err := e.startResponder(ctx, req, seen, em)
			if err != nil {
				respErr = err
				return
			}
			a.resp = r
		})
		if respErr != nil {
			return &Error{Step: StepResponder, Err: respErr}
		}
		if a.resp != nil {
			addMu.Lock()
			err = a.resp.add(challengeAnswer{ident: addr, token: chal.Token, keyAuth: ka})
			addMu.Unlock()
		}
		if err != nil {
			return &Error{Step: StepResponder, Identifier: ident, Err: err}
		}
		if req.Publish != nil {
			release, err := req.Publish(ctx, req.Challenge, addr, chal.Token, ka)
			if err != nil {
				return &Error{Step: StepResponder, Identifier: ident, Err: fmt.Errorf("publishing the answer to the other machines: %w", err)}
			}
			a.relMu.Lock()
			a.releases = append(a.releases, release)
			a.relMu.Unlock()
		}
		em.step(StepChallenge, "Asking the CA to validate %s with %s", ident, req.Challenge)
		todo[i] = &pending{ident: ident, authz: authzURL, chal: *chal}
		// Accepted by a worker of its own, so that this one fetches the
		// next authorization meanwhile: at most 8 fetches and 8 accepts in
		// flight, and the nonces each answer brings keep the new-nonce
		// requests (Let's Encrypt allows a burst of 10 per address) to
		// the first few.
		accepts.Add(1)
		go func() {
			defer accepts.Done()
			acceptSlots <- struct{}{}
			defer func() { <-acceptSlots }()
			accepted, err := core.Challenges.New(todo[i].chal.URL)
			if err != nil {
				acceptErrs[i] = stepErr(StepChallenge, ident, err)
				return
			}
			// The CA may have validated before it answered (Pebble does
			// when its validator is quick): no poll needed then.
			validNow[i] = accepted.Status == acme.StatusValid
		}()
		return nil
	})
	accepts.Wait()
	if err != nil {
		return nil, err
	}
	for _, err := range acceptErrs {
		if err != nil {
			return nil, err // the first by position, as forEach
		}
	}
	var waiting []pending
	for i, p := range todo {
		switch {
		case p == nil: // already valid
		case validNow[i]:
			em.info(StepChallenge, p.ident, "%s validated", p.ident)
		default:
			waiting = append(waiting, *p)
		}
	}
	return waiting, nil
}

// waitValid polls until every waiting authorization is valid, or one
// failed (its error).
func (a *orderAuthz) waitValid(ctx context.Context, waiting []pending) error {
	e, core, req, order, em, tr := a.e, a.core, a.req, a.order, a.em, a.tr
	// One poll a tick for the whole order: a single authorization is
	// polled itself, several through the order, whose status stays pending
	// until all are valid and turns invalid when one fails (RFC 8555
	// section 7.1.6); only then are the authorizations asked, at once, to
	// find which.
	poll := newPoller()
	poll.wake = a.wake
	single := ""
	if len(waiting) == 1 {
		single = waiting[0].ident
	}
	for polls := 1; ; polls++ {
		if err := poll.wait(ctx, tr.takeRetryAfter()); err != nil {
			return &Error{Step: StepChallenge, Identifier: single, Err: err}
		}
		if single != "" {
			done, err := e.authzDone(core, req, waiting[0], em)
			if done || err != nil {
				return err
			}
			continue
		}
		o, err := core.Orders.Get(order.Location)
		if err != nil {
			return stepErr(StepChallenge, "", err)
		}
		em.emit(Event{Kind: EventPoll, Step: StepChallenge, Message: "order is " + o.Status})
		switch o.Status {
		case acme.StatusPending:
			// A CA that leaves a failed challenge pending (step-ca) keeps
			// the order pending for good: every eighth poll (under 2 s
			// apart) the authorizations are asked too.
			if polls%8 == 0 {
				if err := forEach(len(waiting), func(i int) error {
					_, err := e.authzDone(core, req, waiting[i], em)
					return err
				}); err != nil {
					return err
				}
			}
			continue
		case acme.StatusReady, acme.StatusProcessing, acme.StatusValid:
			for _, p := range waiting {
				em.info(StepChallenge, p.ident, "%s validated", p.ident)
			}
			return nil
		}
		return a.whichFailed(o.Status, waiting)
	}
}

// whichFailed asks each waiting authorization, at once, which one failed
// the order (its status says only that one did).
func (a *orderAuthz) whichFailed(status string, waiting []pending) error {
	errs := make([]error, len(waiting))
	var wg sync.WaitGroup
	for i, p := range waiting {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if done, err := a.e.authzDone(a.core, a.req, p, a.em); err != nil {
				errs[i] = err
			} else if !done {
				errs[i] = &Error{Step: StepChallenge, Identifier: p.ident, Problem: &Problem{Type: ProblemNS + "unauthorized",
					Detail: "the order is " + status + " while this authorization is still pending", Identifier: p.ident}}
			}
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return &Error{Step: StepChallenge, Problem: &Problem{Type: ProblemNS + "unauthorized", Detail: "the order is " + status}}
}

// authzDone polls one authorization: done when valid, an error when it
// failed (with the challenge's problem), neither while pending.
func (e *Engine) authzDone(core *api.Core, req Request, p pending, em *emitter) (bool, error) {
	authz, err := core.Authorizations.Get(p.authz)
	if err != nil {
		return false, stepErr(StepChallenge, p.ident, err)
	}
	em.emit(Event{Kind: EventPoll, Step: StepChallenge, Identifier: p.ident, Message: p.ident + " is " + authz.Status})
	switch authz.Status {
	case acme.StatusValid:
		em.info(StepChallenge, p.ident, "%s validated", p.ident)
		return true, nil
	case acme.StatusInvalid, acme.StatusDeactivated, acme.StatusExpired, acme.StatusRevoked:
		prob := &Problem{Type: ProblemNS + "unauthorized", Detail: "authorization is " + authz.Status, Identifier: p.ident}
		for _, c := range authz.Challenges {
			if spec.Challenge(c.Type) == req.Challenge && c.Error != nil {
				prob = fromLego(c.Error)
				prob.Identifier = p.ident
			}
		}
		return false, &Error{Step: StepChallenge, Identifier: p.ident, Problem: prob}
	}
	// A challenge still pending but carrying an error is one the CA tried,
	// failed and will not try again by itself: step-ca leaves it so (Let's
	// Encrypt marks it invalid). Waiting would last until --timeout and
	// then hide the CA's reason.
	for _, c := range authz.Challenges {
		if spec.Challenge(c.Type) == req.Challenge && c.Error != nil && c.Status == acme.StatusPending {
			prob := fromLego(c.Error)
			prob.Identifier = p.ident
			return false, &Error{Step: StepChallenge, Identifier: p.ident, Problem: prob}
		}
	}
	return false, nil
}

func (e *Engine) startResponder(ctx context.Context, req Request, seen *seenLog, em *emitter) (responder, error) {
	switch {
	case req.Challenge == ChallengeTLSALPN01:
		listen := req.TLSListen
		if listen == "" {
			listen = ":443"
		}
		em.step(StepResponder, "Starting the tls-alpn-01 responder on %s", listenText(listen, req.Identifiers))
		r, err := startTLSALPNResponder(ctx, listen, req.Identifiers, seen)
		if err != nil {
			return nil, bindHint(err, listen)
		}
		return r, nil
	case req.WebRoot != "":
		em.step(StepResponder, "Writing the http-01 answers into the web root %s", req.WebRoot)
		return newWebrootResponder(req.WebRoot)
	default:
		listen := req.HTTPListen
		if listen == "" {
			listen = ":80"
		}
		em.step(StepResponder, "Starting the http-01 responder on %s", listenText(listen, req.Identifiers))
		r, err := startHTTPResponder(ctx, listen, req.Identifiers, seen)
		if err != nil {
			return nil, bindHint(err, listen)
		}
		return r, nil
	}
}

// listenText is every address the responder listens on for idents (a
// v6-only order on "127.0.0.1:PORT" also listens on [::1]:PORT, where the
// validator connects), for the log.
func listenText(listen string, idents []netip.Addr) string {
	addrs, err := listenAddrs(listen, idents)
	if err != nil {
		return listen
	}
	return strings.Join(addrs, " and ")
}

// bindHint explains the two usual reasons a responder cannot listen.
func bindHint(err error, listen string) error {
	switch {
	case errors.Is(err, os.ErrPermission):
		return fmt.Errorf("cannot listen on %s: %w; ports below 1024 need root or CAP_NET_BIND_SERVICE (run with sudo)", listen, err)
	case strings.Contains(err.Error(), "address already in use"):
		return fmt.Errorf("cannot listen on %s: %w; another program (often nginx or apache) holds the port: use --webroot with its document root, or stop it during issuance (ipcert preflight shows which process)", listen, err)
	}
	return fmt.Errorf("cannot listen on %s: %w", listen, err)
}

// orderProblem extracts the error of an invalid order.
func orderProblem(o acme.Order) error {
	if o.Error != nil {
		return o.Error
	}
	return errors.New("the CA marked the order invalid without saying why")
}

func isProblem(err error, typ string) bool {
	p := ProblemOf(err)
	return p != nil && p.Type == typ
}

// splitChain separates the leaf from the intermediates of a PEM bundle.
func splitChain(bundle []byte) (*Certificate, error) {
	var blocks []*pem.Block
	for rest := bundle; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			blocks = append(blocks, b)
		}
	}
	if len(blocks) == 0 {
		return nil, errors.New("the CA sent no certificate")
	}
	leaf, err := x509.ParseCertificate(blocks[0].Bytes)
	if err != nil {
		return nil, fmt.Errorf("the CA sent an unreadable certificate: %w", err)
	}
	var chain bytes.Buffer
	for _, b := range blocks[1:] {
		_ = pem.Encode(&chain, b)
	}
	certPEM := pem.EncodeToMemory(blocks[0])
	full := append(append([]byte{}, certPEM...), chain.Bytes()...)
	return &Certificate{Leaf: leaf, CertPEM: certPEM, ChainPEM: chain.Bytes(), FullChainPEM: full}, nil
}

// checkIssued makes sure the CA issued what was asked: exactly the IP
// SANs, no DNS names, and our key.
func checkIssued(leaf *x509.Certificate, idents []netip.Addr, key crypto.Signer) error {
	var got []netip.Addr
	for _, ip := range leaf.IPAddresses {
		a, _ := netip.AddrFromSlice(ip)
		got = append(got, a.Unmap())
	}
	slices.SortFunc(got, func(a, b netip.Addr) int { return a.Compare(b) })
	if !slices.Equal(got, idents) || len(leaf.DNSNames) > 0 {
		return fmt.Errorf("the CA issued a certificate for %v %v, not for %v", got, leaf.DNSNames, idents)
	}
	type equaler interface{ Equal(crypto.PublicKey) bool }
	if pub, ok := key.Public().(equaler); !ok || !pub.Equal(leaf.PublicKey) {
		return errors.New("the issued certificate does not carry our key")
	}
	return nil
}

// downloadChain fetches the certificate with the CA's default chain, or,
// with a preferred chain named, every chain the CA offers and the first
// (the default first, then the alternates in URL order) that has a
// certificate issued by or named that common name.
func downloadChain(core *api.Core, certURL, preferred string, em *emitter) ([]byte, error) {
	if preferred == "" {
		bundle, _, err := core.Certificates.Get(certURL, true)
		return bundle, err
	}
	all, err := core.Certificates.GetAll(certURL, true)
	if err != nil {
		return nil, err
	}
	urls := []string{certURL}
	var alts []string
	for u := range all {
		if u != certURL {
			alts = append(alts, u)
		}
	}
	slices.Sort(alts)
	urls = append(urls, alts...)
	for _, u := range urls {
		raw := all[u]
		if raw == nil {
			continue
		}
		// Fetched as a bundle: Cert is the whole chain.
		bundle := raw.Cert
		if chainNames(bundle, preferred) {
			if u != certURL {
				em.info(StepDownload, "", "Using the CA's alternate chain to %q", preferred)
			}
			return bundle, nil
		}
	}
	em.emit(Event{Kind: EventWarning, Step: StepDownload, Message: fmt.Sprintf("none of the %d chains the CA offers leads to %q: keeping its default chain", len(urls), preferred)})
	return all[certURL].Cert, nil
}

// chainNames says whether a certificate of the PEM bundle is issued by or
// named cn.
func chainNames(bundle []byte, cn string) bool {
	for rest := bundle; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			return false
		}
		c, err := x509.ParseCertificate(b.Bytes)
		if err != nil {
			continue
		}
		if c.Issuer.CommonName == cn || c.Subject.CommonName == cn {
			return true
		}
	}
}
