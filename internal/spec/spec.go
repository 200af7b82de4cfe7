// Package spec holds the rules for what an issuance is made of, checked
// one way for every face of ipcert: the flags of issue and the wizard's
// presets (cli), the wizard's own fields, the CA choice (cachoice) and what
// renew reads back. Each rule returns an error that names the value, what
// is wrong and what to give instead; a caller adds only where the value
// came from ("--ca-root: ..."). It imports nothing of ipcert's.
package spec

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"strconv"
	"strings"
	"unicode"
)

// The named CA choices; anything else must be an ACME directory URL.
const (
	CAStaging    = "staging"
	CAProduction = "production"
	CALocal      = "local"
)

// CAKind is what a CA choice is.
type CAKind int

const (
	CALetsEncrypt CAKind = iota // staging or production
	CALocalTest                 // the built-in local test CA
	CAOwn                       // an ACME directory URL
)

// CA checks a CA choice: staging, production, local, or the URL of an
// ACME directory (CAURL).
func CA(choice string) (CAKind, error) {
	switch strings.TrimSpace(choice) {
	case "":
		return 0, errors.New("no CA chosen: staging (a rehearsal; untrusted certificate), production, local (test CA, no internet) or an ACME directory URL")
	case CAStaging, CAProduction:
		return CALetsEncrypt, nil
	case CALocal:
		return CALocalTest, nil
	}
	if u, err := url.Parse(choice); err != nil || u.Scheme != "https" && u.Scheme != "http" {
		return 0, fmt.Errorf("%q is not staging, production, local or an ACME directory URL (https://...)", choice)
	}
	if err := CAURL(choice); err != nil {
		return 0, err
	}
	return CAOwn, nil
}

// CAURL checks an ACME directory URL: a host, and HTTPS (RFC 8555 section
// 6.1). Plain HTTP is accepted only on loopback, where a development CA
// (Pebble or Boulder run by hand) may listen.
func CAURL(v string) error {
	v = strings.TrimSpace(v)
	if v == "" {
		return errors.New("no ACME directory URL; give the CA's, such as https://ca.internal:9000/acme/acme/directory (step-ca: https://HOST:PORT/acme/PROVISIONER/directory)")
	}
	u, err := url.Parse(v)
	if err != nil {
		return fmt.Errorf("%q is not a URL (%v); give the CA's directory URL, such as https://ca.internal:9000/acme/acme/directory", v, err)
	}
	if u.Scheme != "https" && !(u.Scheme == "http" && loopbackHost(u.Hostname())) {
		return fmt.Errorf("%q does not start with https://: ACME runs over HTTPS (RFC 8555 section 6.1); give the https:// URL of the CA's directory", v)
	}
	if u.Host == "" || u.Hostname() == "" {
		return fmt.Errorf("%q names no host; give the whole directory URL, such as https://ca.internal:9000/acme/acme/directory", v)
	}
	return nil
}

func loopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(h)
	return err == nil && a.IsLoopback()
}

// CARoot checks the PEM file of roots trusted for an own CA's HTTPS
// (empty: the system's roots).
func CARoot(path string) error {
	path = strings.TrimSpace(path)
	if path == "" {
		return nil
	}
	data, err := os.ReadFile(path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return fmt.Errorf("%s: no such file; give the CA's root certificate in PEM (step-ca: $(step path)/certs/root_ca.crt), or none to trust the system's roots", path)
	case err != nil:
		return fmt.Errorf("%s cannot be read (%v); give a readable PEM file with the CA's root certificate", path, unwrapPath(err))
	case !x509.NewCertPool().AppendCertsFromPEM(data):
		return fmt.Errorf("%s holds no PEM certificate (a \"-----BEGIN CERTIFICATE-----\" block); give the CA's root certificate, not its key (DER: openssl x509 -inform der -in FILE -out root.pem)", path)
	}
	return nil
}

func unwrapPath(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// Email checks an account's contact address (empty: none): a plain
// address, no display name, no space or control character, a domain with
// a dot ("a@b" reaches nobody), at most 254 bytes (RFC 5321 section
// 4.5.3.1.3).
func Email(e string) error {
	if e == "" {
		return nil
	}
	if len(e) > 254 {
		return fmt.Errorf("the e-mail address is %d characters long; one has at most 254", len(e))
	}
	for _, r := range e {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("%q has a space or control character; give a plain address such as you@example.org", e)
		}
	}
	a, err := mail.ParseAddress(e)
	at := strings.LastIndexByte(e, '@')
	if err != nil || a.Address != e || at < 1 || at == len(e)-1 || !strings.Contains(strings.Trim(e[at+1:], "."), ".") {
		return fmt.Errorf("%q is not an e-mail address; give a plain address such as you@example.org", e)
	}
	return nil
}

// Listen checks ADDR:PORT of a built-in responder (port 0: any free port,
// which tests against a CA on loopback use).
func Listen(v string) error {
	host, port, err := net.SplitHostPort(v)
	if err != nil {
		return fmt.Errorf("%q is not ADDR:PORT (such as :80, 0.0.0.0:80 or [::]:80)", v)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < 0 || p > 65535 {
		return fmt.Errorf("%q: %q is not a port number (1-65535)", v, port)
	}
	if host != "" {
		if a, err := netip.ParseAddr(host); err != nil || a.Zone() != "" {
			return fmt.Errorf("%q: the host must be an IP address (or empty for all addresses)", v)
		}
	}
	return nil
}
