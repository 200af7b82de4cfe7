package spec

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Challenge is how the CA validates an address: one of the two that can
// prove an IP address (RFC 8738 section 7; docs/letsencrypt.md).
type Challenge string

// The two challenges for an IP address. dns-01 cannot prove one: there
// is no DNS name to publish its TXT record under.
const (
	HTTP01    Challenge = "http-01"     // port 80
	TLSALPN01 Challenge = "tls-alpn-01" // port 443
)

// Check says whether c is a challenge for an IP address.
func (c Challenge) Check() error {
	switch c {
	case HTTP01, TLSALPN01:
		return nil
	case "dns-01":
		return errors.New("dns-01 cannot validate an IP address: there is no DNS name to publish the TXT record under (RFC 8738); use http-01 (port 80) or tls-alpn-01 (port 443)")
	}
	return fmt.Errorf("unknown challenge %q; use http-01 or tls-alpn-01", string(c))
}

// Port is the port the CA validates c on (docs/letsencrypt.md): 80 for
// http-01, 443 for tls-alpn-01.
func (c Challenge) Port() int {
	if c == TLSALPN01 {
		return 443
	}
	return 80
}

// CAChoice is the CA as the user chose it: staging, production, local or
// an ACME directory URL (CA checks it).
type CAChoice string

// Kind is what the choice is, or why it is none.
func (c CAChoice) Kind() (CAKind, error) { return CA(string(c)) }

// Public says whether Let's Encrypt's address policy applies (and the
// order is checked against it before any traffic): staging, production
// and a URL of Let's Encrypt's, not the local test CA, nor an own CA,
// whose policy is its own (a private CA certifies private addresses).
func (c CAChoice) Public() bool {
	switch kind, err := c.Kind(); {
	case err != nil:
		return false
	case kind == CALetsEncrypt:
		return true
	case kind == CAOwn:
		u, err := url.Parse(strings.TrimSpace(string(c)))
		return err == nil && IsLetsEncrypt(u)
	}
	return false
}

// IsLetsEncrypt says whether a directory URL is Let's Encrypt's.
func IsLetsEncrypt(u *url.URL) bool {
	h := strings.ToLower(strings.TrimSuffix(u.Hostname(), "."))
	return h == "letsencrypt.org" || strings.HasSuffix(h, ".letsencrypt.org")
}

// KeyTypes lists the certificate key types ipcert makes.
var KeyTypes = []string{"ec256", "ec384", "rsa2048", "rsa3072", "rsa4096"}

// DefaultKeyType is the key type of an issuance that names none.
const DefaultKeyType = "ec256"

// KeyType checks a key type name ("" is DefaultKeyType).
func KeyType(k string) error {
	if k == "" || slices.Contains(KeyTypes, k) {
		return nil
	}
	return fmt.Errorf("unknown key type %q; use one of %s", k, strings.Join(KeyTypes, ", "))
}

// Issuance is one certificate's settings: what to certify, from which CA,
// how the CA validates, the key, and what happens around validation and
// after a renewal. It is the one description of an issuance that every
// face fills: issue's flags, the wizard's answers, renewal.json (which
// embeds it: these JSON names are that file's, a contract with installed
// machines) and, for a failure, the diagnosis's attempt. Check is its one
// validation; the addresses themselves are the engine's to check against
// the CA's policy (acmeflow.CheckOrder).
type Issuance struct {
	// Identifiers are the canonical IP literals to certify (empty while
	// --ip auto is not yet resolved).
	Identifiers []string `json:"identifiers"`
	// AutoIP: issued for --ip auto; renewals follow the public address.
	AutoIP bool     `json:"auto_ip,omitempty"`
	CA     CAChoice `json:"ca"`
	// CARoot is --ca-root: a PEM file of roots trusted for an own CA's
	// HTTPS (absolute: renew runs from /).
	CARoot string `json:"ca_root,omitempty"`

	Challenge Challenge `json:"challenge"`
	// WebRoot: http-01 written into an existing web server's document
	// root (absolute) instead of the built-in responder.
	WebRoot string `json:"webroot,omitempty"`
	// WebRootPort: with the local CA, the port the web server serves
	// WebRoot on (the local CA validates there instead of on 80).
	WebRootPort int `json:"webroot_port,omitempty"`
	// HTTPListen and TLSListen are the built-in responders' ADDR:PORT
	// (default :80 and :443).
	HTTPListen string `json:"http_listen,omitempty"`
	TLSListen  string `json:"tls_listen,omitempty"`

	KeyType string `json:"key_type"` // KeyTypes; "" is DefaultKeyType
	Email   string `json:"email,omitempty"`
	// ReuseKey certifies the same private key at every renewal
	// (--reuse-key), so that clients that pin it (DNS-over-TLS, RFC 7858)
	// keep working.
	ReuseKey bool `json:"reuse_key,omitempty"`
	// PreferredChain is --preferred-chain: the common name of the root (or
	// any issuer) of the chain to take among those the CA offers.
	PreferredChain string `json:"preferred_chain,omitempty"`
	// EABKid and EABHMACFile bind a new account to one at the CA (external
	// account binding, RFC 8555 section 7.3.4): the key ID, and the
	// root-only file with the MAC key (the key itself is never stored).
	EABKid      string `json:"eab_kid,omitempty"`
	EABHMACFile string `json:"eab_hmac_file,omitempty"`

	// PreHooks and PostHooks run around validation (--pre-hook,
	// --post-hook): only when the CA validates, the post ones even when it
	// fails.
	PreHooks  []string `json:"pre_hooks,omitempty"`
	PostHooks []string `json:"post_hooks,omitempty"`

	// After a renewal: shell commands run once a new version is current,
	// the service made to serve it (--reload), and the ADDR:PORT checked to
	// serve it (--verify).
	DeployHooks []string `json:"deploy_hooks,omitempty"`
	Reload      string   `json:"reload,omitempty"`
	VerifyAddr  string   `json:"verify_addr,omitempty"`
	Combined    bool     `json:"combined,omitempty"` // keep combined.pem (HAProxy)
	// MapPorts: issued with --map-ports; renewals ask the router too.
	MapPorts bool `json:"map_ports,omitempty"`
	// Cluster: shared with the machines of this state directory's cluster
	// (issue --cluster): renewals take the cluster's lock, answer through
	// every machine's agent and publish the result (docs/cluster.md).
	Cluster bool `json:"cluster,omitempty"`
}

// Check is the issuance's one validation of the values a user gives,
// whichever face they came through. Each error names the flag that sets
// the value (the flags are the vocabulary of the docs, of renewal.json's
// comments and of the wizard's "as a command" line), what is wrong and
// what to give instead. Files named (CARoot, WebRoot) are read: Check
// runs before anything is written or sent.
func (is *Issuance) Check() error {
	if is.CA == "" {
		return errors.New("--ca is required: staging (a rehearsal; untrusted certificate), production, local (test CA, no internet) or an ACME directory URL")
	}
	if is.Challenge == "" {
		return errors.New("--challenge is required: http-01 (port 80) or tls-alpn-01 (port 443)")
	}
	return is.CheckGiven()
}

// CheckGiven is Check for a partial issuance, such as the wizard's
// presets: every value given is checked, none is required.
func (is *Issuance) CheckGiven() error {
	if is.CA != "" {
		if _, err := is.CA.Kind(); err != nil {
			return fmt.Errorf("--ca: %w", err)
		}
	}
	if err := CARoot(is.CARoot); err != nil {
		return fmt.Errorf("--ca-root %w", err)
	}
	if is.Challenge != "" {
		if err := is.Challenge.Check(); err != nil {
			return fmt.Errorf("--challenge: %w", err)
		}
	}
	if is.WebRoot != "" {
		if is.Challenge != "" && is.Challenge != HTTP01 {
			return errors.New("--webroot works only with --challenge http-01")
		}
		st, err := os.Stat(is.WebRoot)
		switch {
		case err != nil:
			return fmt.Errorf("--webroot %s: %v; give the directory your web server serves for this address", is.WebRoot, unwrapPath(err))
		case !st.IsDir():
			return fmt.Errorf("--webroot %s is not a directory; give the document root your web server serves for this address", is.WebRoot)
		}
	}
	if is.WebRootPort < 0 || is.WebRootPort > 65535 {
		return fmt.Errorf("--webroot-port %d is not a port number (1-65535)", is.WebRootPort)
	}
	for _, l := range []struct{ flag, v string }{{"--http-listen", is.HTTPListen}, {"--tls-listen", is.TLSListen}} {
		if l.v == "" {
			continue
		}
		if err := Listen(l.v); err != nil {
			return fmt.Errorf("%s: %w", l.flag, err)
		}
	}
	if err := KeyType(is.KeyType); err != nil {
		return fmt.Errorf("--key-type: %w", err)
	}
	if err := Email(is.Email); err != nil {
		return fmt.Errorf("--email: %w", err)
	}
	if (is.EABKid == "") != (is.EABHMACFile == "") {
		return errors.New("--eab-kid and --eab-hmac-file go together: the key ID and the file with the MAC key your CA gave you")
	}
	if is.Cluster && (is.WebRoot != "" || is.HTTPListen != "" || is.TLSListen != "" || is.MapPorts) {
		return errors.New("--cluster answers through every machine's agent (ipcert agent): --webroot, --http-listen, --tls-listen and --map-ports do not apply; drop them")
	}
	return nil
}

// Absolute makes the paths renew reads back absolute (the timer runs from
// /): the web root, the CA's root file, the EAB key file.
func (is *Issuance) Absolute() error {
	for _, p := range []*string{&is.WebRoot, &is.CARoot, &is.EABHMACFile} {
		if *p == "" {
			continue
		}
		abs, err := filepath.Abs(*p)
		if err != nil {
			return fmt.Errorf("%s: %v", *p, err)
		}
		*p = abs
	}
	return nil
}
