package renew

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/go-acme/lego/v4/certificate"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
)

// simClock is the simulated time every fake and the runner read.
type simClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *simClock) Now() time.Time  { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *simClock) Set(t time.Time) { c.mu.Lock(); c.now = t; c.mu.Unlock() }

// simCA mints certificates whose notBefore is the simulated now, and stores
// them the way acmeflow.Engine.Issue does (version, current, renewal.json).
type simCA struct {
	t        *testing.T
	st       *store.Store
	clock    *simClock
	validity time.Duration
	key      *ecdsa.PrivateKey
	root     *x509.Certificate
	rootPEM  []byte
	down     func(time.Time) bool
	// retryAfter is the Retry-After the CA sends while down (0: none).
	retryAfter time.Duration

	mu       sync.Mutex
	issued   map[string][]time.Time // successful issuances per name
	attempts map[string][]time.Time // failed ones
	replaces map[string][]string
}

func newSimCA(t *testing.T, st *store.Store, clock *simClock) *simCA {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "sim root"},
		NotBefore: time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC), NotAfter: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	root, _ := x509.ParseCertificate(der)
	return &simCA{t: t, st: st, clock: clock, validity: 160 * time.Hour, key: key, root: root,
		rootPEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}),
		down:    func(time.Time) bool { return false },
		issued:  map[string][]time.Time{}, attempts: map[string][]time.Time{}, replaces: map[string][]string{}}
}

func (c *simCA) Issue(_ context.Context, r *store.Renewal, idents []netip.Addr, replaces string) (*store.Renewal, error) {
	now := c.clock.Now()
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down(now) {
		c.attempts[r.Name] = append(c.attempts[r.Name], now)
		return nil, &acmeflow.Error{Step: acmeflow.StepOrder, Problem: &acmeflow.Problem{Type: acmeflow.ProblemServerInternal, Detail: "the simulated CA is down", Status: 503, RetryAfter: c.retryAfter}}
	}
	c.issued[r.Name] = append(c.issued[r.Name], now)
	c.replaces[r.Name] = append(c.replaces[r.Name], replaces)
	return c.store(r, idents, now)
}

// store writes a certificate valid from nb under r.Name.
func (c *simCA) store(r *store.Renewal, idents []netip.Addr, nb time.Time) (*store.Renewal, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(mrand.Int64N(1 << 62)), NotBefore: nb, NotAfter: nb.Add(c.validity - time.Second)}
	for _, a := range idents {
		tmpl.IPAddresses = append(tmpl.IPAddresses, net.IP(a.AsSlice()))
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, c.root, &key.PublicKey, c.key)
	if err != nil {
		return nil, err
	}
	leaf, _ := x509.ParseCertificate(der)
	certPEM := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM, err := acmeflow.EncodeKey(key)
	if err != nil {
		return nil, err
	}
	n, err := c.st.SaveVersion(r.Name, store.CertFiles{Cert: certPEM, Chain: c.rootPEM, FullChain: append(append([]byte{}, certPEM...), c.rootPEM...), PrivKey: keyPEM})
	if err != nil {
		return nil, err
	}
	if err := c.st.Activate(r.Name, n); err != nil {
		return nil, err
	}
	nr := *r
	nr.Schema = store.RenewalSchema
	nr.Identifiers = canonical(idents)
	nr.Current, nr.Serial = n, fmt.Sprintf("%x", leaf.SerialNumber)
	nr.NotBefore, nr.NotAfter = leaf.NotBefore.UTC(), leaf.NotAfter.UTC()
	nr.CertID, _ = certificate.MakeARICertID(leaf)
	nr.LastAttempt, nr.LastSuccess = c.clock.Now().UTC(), c.clock.Now().UTC()
	nr.Failures, nr.NextAttempt, nr.LastError, nr.ARI, nr.RenewAt = 0, time.Time{}, nil, nil, time.Time{}
	if err := c.st.SaveRenewal(&nr); err != nil {
		return nil, err
	}
	return &nr, nil
}

// simARI answers like Let's Encrypt for short-lived certificates: the
// midpoint of the validity +-1 % (docs/letsencrypt.md), Retry-After 6 h.
type simARI struct {
	clock *simClock
	down  func(time.Time) bool
	mu    sync.Mutex
	asked map[string][]time.Time // per ARI certificate ID
}

func (a *simARI) RenewalInfo(_ context.Context, r *store.Renewal) (*acmeflow.RenewalInfo, error) {
	now := a.clock.Now()
	a.mu.Lock()
	a.asked[r.CertID] = append(a.asked[r.CertID], now)
	a.mu.Unlock()
	if a.down(now) {
		return nil, &acmeflow.Error{Step: acmeflow.StepRenewalInfo, Err: fmt.Errorf("GET renewalInfo: 503 Service Unavailable")}
	}
	life := r.NotAfter.Sub(r.NotBefore)
	mid := r.NotBefore.Add(life / 2)
	return &acmeflow.RenewalInfo{WindowStart: mid.Add(-life / 100), WindowEnd: mid.Add(life / 100), RetryAfter: 6 * time.Hour}, nil
}

type simResult struct {
	ca      *simCA
	ari     *simARI
	offline int // runs that needed no network
	// urgentFailed counts (hour, certificate) pairs within a day of expiry,
	// each reported failed by its run.
	urgentFailed int
	minLeft      time.Duration
	names        []string
}

// simulate runs `renew` hourly (at a fixed minute, like a timer with a
// fixed random delay) for days, for 3 certificates of 160 hours issued at
// staggered times, with the CA down while down(now).
func simulate(t *testing.T, days int, down func(time.Time) bool) *simResult {
	t.Helper()
	return simulateWith(t, days, down, 0)
}

// simulateWith is simulate with a CA that sends retryAfter while down. A
// certificate may come within a day of expiry only while every run reports
// it failed (so the unit shows failed and monitoring sees it).
func simulateWith(t *testing.T, days int, down func(time.Time) bool, retryAfter time.Duration) *simResult {
	t.Helper()
	st, err := store.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	start := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	clock := &simClock{now: start}
	ca := newSimCA(t, st, clock)
	ari := &simARI{clock: clock, down: func(time.Time) bool { return false }, asked: map[string][]time.Time{}}
	res := &simResult{ca: ca, ari: ari, minLeft: 1 << 62, names: []string{"a", "b", "c"}}
	for i, name := range res.names {
		r := &store.Renewal{Issuance: spec.Issuance{Identifiers: []string{fmt.Sprintf("192.0.2.%d", i+1)}, CA: "production", Challenge: "http-01", KeyType: "ec256"}, Name: name, Directory: acmeflow.LEProduction, Profile: "shortlived"}
		if _, err := ca.store(r, []netip.Addr{netip.MustParseAddr(r.Identifiers[0])}, start.Add(-time.Duration(i)*27*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	ca.down, ari.down, ca.retryAfter = down, down, retryAfter
	rn := &Runner{Store: st, Issuer: ca, ARI: ari, Now: clock.Now, Rand: mrand.New(mrand.NewPCG(7, 7))}
	for h := 0; h <= days*24; h++ {
		now := start.Add(time.Duration(h)*time.Hour + 17*time.Minute)
		clock.Set(now)
		beforeIssued, beforeAsked := ca.total(), ari.total()
		out, err := rn.Run(context.Background(), Options{})
		if err != nil {
			t.Fatalf("hour %d: %v", h, err)
		}
		if !out.Network {
			res.offline++
			if ca.total() != beforeIssued || ari.total() != beforeAsked {
				t.Fatalf("hour %d: a run that reported no network called the CA", h)
			}
		}
		for _, name := range res.names {
			v, err := st.CurrentVersion(name)
			if err != nil {
				t.Fatalf("hour %d: %s: %v", h, name, err)
			}
			left := v.Leaf.NotAfter.Sub(now)
			if left < res.minLeft {
				res.minLeft = left
			}
			if left <= 24*time.Hour && !(down(now) && failedIn(out, name)) {
				t.Fatalf("hour %d: %s has only %s of validity left (notAfter %s) and the run did not report it failed: %+v", h, name, left, v.Leaf.NotAfter, out.Certs)
			}
			if left <= 24*time.Hour {
				res.urgentFailed++
			}
		}
	}
	return res
}

func failedIn(res *Result, name string) bool {
	for _, c := range res.Certs {
		if c.Name == name {
			_, failed := (&Result{Certs: []CertResult{c}}).Counts()
			return failed > 0
		}
	}
	return false
}

func (c *simCA) total() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := 0
	for _, v := range c.issued {
		n += len(v)
	}
	for _, v := range c.attempts {
		n += len(v)
	}
	return n
}

func (a *simARI) total() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	n := 0
	for _, v := range a.asked {
		n += len(v)
	}
	return n
}

func (a *simARI) checkRetryAfter(t *testing.T) {
	for id, times := range a.asked {
		for i := 1; i < len(times); i++ {
			if gap := times[i].Sub(times[i-1]); gap < time.Hour {
				// 1 h is the retry after a failed check; a good answer
				// asks for 6 h.
				t.Errorf("ARI for %s asked twice within %s (%s, %s)", id, gap, times[i-1], times[i])
			}
		}
	}
}

func TestSimulation30Days(t *testing.T) {
	res := simulate(t, 30, func(time.Time) bool { return false })
	for _, name := range res.names {
		n := len(res.ca.issued[name])
		// 720 hours / 80 hours = 9 renewals per certificate.
		if n < 8 || n > 10 {
			t.Errorf("%s was renewed %d times in 30 days, want about 9 (every ~80 h)", name, n)
		}
		for _, rp := range res.ca.replaces[name] {
			if rp == "" {
				t.Errorf("%s was renewed without replaces", name)
			}
		}
		for i := 1; i < len(res.ca.issued[name]); i++ {
			gap := res.ca.issued[name][i].Sub(res.ca.issued[name][i-1])
			if gap < 78*time.Hour || gap > 83*time.Hour {
				t.Errorf("%s: %s between renewals, want inside LE's window (78h24m to 81h36m, plus the hourly tick)", name, gap)
			}
		}
	}
	res.ari.checkRetryAfter(t)
	for id, times := range res.ari.asked {
		for i := 1; i < len(times); i++ {
			if times[i].Sub(times[i-1]) < 6*time.Hour {
				t.Errorf("ARI for %s asked before its Retry-After of 6 h", id)
			}
		}
	}
	// Network is needed only for an ARI check (every 6 h per certificate,
	// plus one right after each renewal) or a renewal; every other run
	// must stay offline.
	issued := len(res.ca.issued["a"]) + len(res.ca.issued["b"]) + len(res.ca.issued["c"])
	if maxARI := 3*(720/6+1) + issued; res.ari.total() > maxARI {
		t.Errorf("ARI asked %d times, more than every 6 h per certificate (%d)", res.ari.total(), maxARI)
	}
	if online := 721 - res.offline; online > res.ari.total()+issued {
		t.Errorf("%d runs used the network, but only %d ARI checks and %d renewals happened", online, res.ari.total(), issued)
	}
	t.Logf("issuances: a=%d b=%d c=%d; offline runs %d/721; least validity left at any hour: %s",
		len(res.ca.issued["a"]), len(res.ca.issued["b"]), len(res.ca.issued["c"]), res.offline, res.minLeft)
}

func TestSimulationOutage48h(t *testing.T) {
	start := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	from, to := start.Add(315*time.Hour), start.Add(363*time.Hour)
	down := func(now time.Time) bool { return !now.Before(from) && now.Before(to) }
	res := simulate(t, 30, down)
	failedCerts := 0
	for _, name := range res.names {
		fails := res.ca.attempts[name]
		if len(fails) == 0 {
			continue
		}
		failedCerts++
		// Consecutive failed attempts are spaced by the backoff of the
		// failure before, rounded up to the next hourly run.
		for i := 1; i < len(fails); i++ {
			gap, want := fails[i].Sub(fails[i-1]), Backoff(i)
			if gap < want || gap >= want+time.Hour {
				t.Errorf("%s: attempt %d came %s after attempt %d, want the backoff %s (rounded up to the hourly run)", name, i+1, gap, i, want)
			}
		}
		// Renewal resumes by itself: the first success after the outage
		// follows the last failure by exactly one backoff step.
		var resumed time.Time
		for _, at := range res.ca.issued[name] {
			if !at.Before(to) {
				resumed = at
				break
			}
		}
		last := fails[len(fails)-1]
		if resumed.IsZero() || resumed.Sub(last) < Backoff(len(fails)) || resumed.Sub(last) >= Backoff(len(fails))+time.Hour {
			t.Errorf("%s: last failure %s, resumed at %s; want resumed one backoff (%s) later", name, last, resumed, Backoff(len(fails)))
		}
		t.Logf("%s: failed at %v, resumed at %s", name, fails, resumed)
	}
	if failedCerts == 0 {
		t.Fatal("no certificate was due during the outage: the test proves nothing; move the outage")
	}
	res.ari.checkRetryAfter(t)
	for _, name := range res.names {
		r, err := res.ca.st.LoadRenewal(name)
		if err != nil {
			t.Fatal(err)
		}
		if r.Failures != 0 || r.LastError != nil {
			t.Errorf("%s still records failures after the outage: %d, %+v", name, r.Failures, r.LastError)
		}
	}
	t.Logf("least validity left at any hour: %s", res.minLeft)
}

// TestSimulationRetryAfterWeek: the CA is down for 10 days and answers
// every attempt with Retry-After of a week. No Retry-After may push the
// next attempt past a day before expiry: inside that day every hourly run
// tries, and reports the certificate failed, until the CA is back; then
// the very next run renews.
func TestSimulationRetryAfterWeek(t *testing.T) {
	start := time.Date(2026, 2, 1, 0, 0, 0, 0, time.UTC)
	from, to := start.Add(100*time.Hour), start.Add(340*time.Hour)
	down := func(now time.Time) bool { return !now.Before(from) && now.Before(to) }
	res := simulateWith(t, 30, down, 7*24*time.Hour)
	if res.urgentFailed == 0 {
		t.Fatal("no certificate came within a day of expiry: the outage proves nothing")
	}
	for _, name := range res.names {
		fails := res.ca.attempts[name]
		if len(fails) < 24 {
			t.Errorf("%s: %d attempts during a 10-day outage; inside the last day every hourly run must try", name, len(fails))
		}
		var resumed time.Time
		for _, at := range res.ca.issued[name] {
			if !at.Before(to) {
				resumed = at
				break
			}
		}
		if resumed.IsZero() || resumed.Sub(to) > time.Hour {
			t.Errorf("%s: the CA was back at %s, renewed only at %s", name, to, resumed)
		}
		r, err := res.ca.st.LoadRenewal(name)
		if err != nil {
			t.Fatal(err)
		}
		if r.Failures != 0 {
			t.Errorf("%s still records %d failures", name, r.Failures)
		}
	}
	t.Logf("hours within a day of expiry, each reported failed: %d", res.urgentFailed)
}
