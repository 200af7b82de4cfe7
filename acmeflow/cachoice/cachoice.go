// Package cachoice turns the user's CA choice (--ca staging|production|
// local|URL) into what the engine needs: the directory URL, whether Let's
// Encrypt's address policy applies, how to reach the CA, and for "local" a
// Pebble started inside the process with its validator pointed at our
// responder's ports.
package cachoice

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"sync"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/localca"
	"github.com/ipcert/ipcert/internal/spec"
)

// Choices are the named CAs.
const (
	Staging    = "staging"
	Production = "production"
	Local      = "local"
)

// CA is a resolved CA choice. Close it when done (it stops the local CA).
type CA struct {
	Choice    spec.CAChoice // as the user gave it
	Directory string
	Public    bool // Let's Encrypt's address policy applies
	Staging   bool // certificates are not trusted by browsers
	Local     bool
	CAKey     string
	Client    *http.Client
	// RootPEM is the root of issued certificates for the local CA.
	RootPEM []byte
	// RootFile is Options.RootFile: the PEM file trusted for a URL CA's
	// HTTPS (--ca-root), for the commands a diagnosis names.
	RootFile string
	// HTTPListen and TLSListen are the responder addresses to use; for the
	// local CA they carry the port its validator was pointed at.
	HTTPListen, TLSListen string

	srv *localca.Server
}

// Options tune Open.
type Options struct {
	HTTPListen string // the responder address the user asked for, if any
	TLSListen  string
	// WebServerPort is where the user's web server serves --webroot (local
	// CA only: its validator must knock there instead of on port 80).
	WebServerPort int
	RootFile      string    // --ca-root: PEM file of roots trusted for the CA's HTTPS (custom URLs)
	Log           io.Writer // the local CA's log; nil discards
	// Clients, when set, gives the HTTP client (one per root file for the
	// whole run) instead of a new one per Open: renew opens the CA of
	// every due certificate, and a transport per renewal held its
	// connections until the process ended (issue 22: 300 renewals, 602
	// open files).
	Clients *Clients
	// Pebble tuning for tests and fault injection (local CA only).
	Local localca.Options
}

// OptionsFor are the options an issuance asks its CA to be opened with:
// the responders' addresses, the web server's port and the root file.
func OptionsFor(is *spec.Issuance) Options {
	return Options{HTTPListen: is.HTTPListen, TLSListen: is.TLSListen, WebServerPort: is.WebRootPort, RootFile: is.CARoot}
}

// Short is the CA's name in a few words, for a line of status or the
// wizard's summary (Describe is the long form).
func Short(choice spec.CAChoice) string {
	switch choice {
	case Staging:
		return "Let's Encrypt staging"
	case Production:
		return "Let's Encrypt production"
	case Local:
		return "the local test CA"
	case "":
		return "unknown"
	}
	return string(choice)
}

// IsLocal says the choice is the built-in local test CA.
func IsLocal(choice spec.CAChoice) bool { return choice == Local }

// IsOwn says the choice is an ACME CA of the user's own (a directory URL
// that is not Let's Encrypt's, such as a step-ca for internal addresses):
// Let's Encrypt's rules (address policy, rate limits, staging, the
// validation from several places) do not apply to it.
func IsOwn(choice spec.CAChoice) bool {
	switch choice {
	case "", Staging, Production, Local:
		return false
	}
	u, err := url.Parse(string(choice))
	return err == nil && u.Host != "" && !spec.IsLetsEncrypt(u)
}

func Describe(choice spec.CAChoice) string {
	switch choice {
	case Staging:
		return "Let's Encrypt staging (a rehearsal: certificates are NOT trusted by browsers, rate limits are generous)"
	case Production:
		return "Let's Encrypt production (trusted certificates; mind the rate limits)"
	case Local:
		return "the built-in local test CA (Pebble on loopback; certificates are trusted only with its root)"
	}
	return "the ACME CA at " + string(choice)
}

// Open resolves choice. For "local" it starts Pebble.
func Open(choice spec.CAChoice, o Options) (*CA, error) {
	c := &CA{Choice: choice, HTTPListen: o.HTTPListen, TLSListen: o.TLSListen}
	switch choice {
	case "":
		return nil, errors.New("no CA chosen: use --ca staging (rehearsal), --ca production, --ca local (test CA, no internet) or --ca URL")
	case Staging:
		c.Directory, c.Public, c.Staging = acmeflow.LEStaging, true, true
	case Production:
		c.Directory, c.Public = acmeflow.LEProduction, true
	case Local:
		return openLocal(c, o)
	default:
		// The one rule for a CA choice (internal/spec): HTTPS, plain HTTP
		// only on loopback.
		if _, err := choice.Kind(); err != nil {
			return nil, fmt.Errorf("--ca: %w", err)
		}
		c.Directory = string(choice)
		// Let's Encrypt's refusal of private and reserved addresses
		// (docs/letsencrypt.md) is Let's Encrypt's policy, not ACME's: a private CA
		// (step-ca for internal services) certifies exactly those, and a
		// CA on loopback (Pebble run by hand, the benchmark) validates over
		// loopback. Any other CA decides for itself.
		c.Public = choice.Public()
	}
	c.CAKey = ""
	c.RootFile = o.RootFile
	var err error
	if o.Clients != nil {
		c.Client, err = o.Clients.get(o.RootFile)
	} else {
		c.Client, err = newClient(o.RootFile)
	}
	if err != nil {
		return nil, err
	}
	return c, nil
}

// newClient is an HTTP client for a CA: the system's roots, or only those
// of rootFile (--ca-root).
func newClient(rootFile string) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	// A CA's headers are a few hundred bytes (Go's default cap is 10 MB;
	// the bodies are capped by the engine, acmeflow.MaxCAResponse).
	tr.MaxResponseHeaderBytes = 64 << 10
	// Renewals run a few at a time (renew --parallel): keep enough idle
	// connections to reuse.
	tr.MaxIdleConnsPerHost = 8
	if rootFile != "" {
		pemData, err := os.ReadFile(rootFile)
		if err != nil {
			return nil, fmt.Errorf("--ca-root: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pemData) {
			return nil, fmt.Errorf("--ca-root %s holds no PEM certificate", rootFile)
		}
		if tr.TLSClientConfig == nil {
			tr.TLSClientConfig = &tls.Config{}
		}
		tr.TLSClientConfig.RootCAs = pool
	}
	return &http.Client{Transport: tr, Timeout: 30 * time.Second}, nil
}

// Clients holds one HTTP client per root file ("" the system's) for a
// run that opens many CAs (renew): every renewal from the same CA reuses
// its connections. The zero value is ready; Close when the run ends.
type Clients struct {
	mu sync.Mutex
	m  map[string]*http.Client
}

func (cs *Clients) get(rootFile string) (*http.Client, error) {
	cs.mu.Lock()
	defer cs.mu.Unlock()
	if c, ok := cs.m[rootFile]; ok {
		return c, nil
	}
	c, err := newClient(rootFile)
	if err != nil {
		return nil, err
	}
	if cs.m == nil {
		cs.m = map[string]*http.Client{}
	}
	cs.m[rootFile] = c
	return c, nil
}

// Close closes the idle connections of every client; a client used
// afterwards opens new ones.
func (cs *Clients) Close() {
	if cs == nil {
		return
	}
	cs.mu.Lock()
	defer cs.mu.Unlock()
	for _, c := range cs.m {
		c.CloseIdleConnections()
	}
}

func openLocal(c *CA, o Options) (*CA, error) {
	var err error
	if c.HTTPListen, err = localListen(c.HTTPListen); err != nil {
		return nil, fmt.Errorf("--http-listen: %w", err)
	}
	if c.TLSListen, err = localListen(c.TLSListen); err != nil {
		return nil, fmt.Errorf("--tls-listen: %w", err)
	}
	lo := o.Local
	lo.HTTPPort = acmeflow.PortOf(c.HTTPListen)
	if o.WebServerPort > 0 {
		lo.HTTPPort = o.WebServerPort
	}
	lo.TLSPort = acmeflow.PortOf(c.TLSListen)
	lo.Log = o.Log
	srv, err := localca.Start(lo)
	if err != nil {
		return nil, fmt.Errorf("start the local test CA: %w", err)
	}
	c.srv = srv
	c.Directory = srv.DirectoryURL()
	c.Local = true
	c.CAKey = "local"
	c.Client = srv.HTTPClient()
	c.RootPEM = srv.IssuerRootPEM()
	return c, nil
}

// localListen gives the local CA's responder a concrete loopback port: the
// local CA must know the port before it starts, and a test machine has no
// business binding port 80.
func localListen(listen string) (string, error) {
	if listen == "" {
		listen = "127.0.0.1:0"
	}
	host, port, err := net.SplitHostPort(listen)
	if err != nil {
		return "", fmt.Errorf("%q: %v; give ADDR:PORT such as 127.0.0.1:5002", listen, err)
	}
	if port != "0" {
		return listen, nil
	}
	p, err := acmeflow.FreePort(host)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort(host, strconv.Itoa(p)), nil
}

// Apply fills the CA fields of an engine request.
func (c *CA) Apply(req *acmeflow.Request) {
	req.Directory = c.Directory
	req.PublicCA = c.Public
	req.CAKey = c.CAKey
	req.HTTPClient = c.Client
	if c.Local {
		req.HTTPListen = c.HTTPListen
		req.TLSListen = c.TLSListen
	}
}

// Close stops the local CA, if any.
func (c *CA) Close() {
	if c != nil && c.srv != nil {
		c.srv.Close()
	}
}
