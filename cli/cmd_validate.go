package cli

import (
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/mail"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/deploy"
	"github.com/ipcert/ipcert/internal/store"
)

// Every flag is checked before anything is written or sent (issue 12):
// a refused command leaves no state directory, no debug log and no ACME
// traffic behind. Each command has one function here, called at the top
// of its run function; they only read.

// validateIssueFlags checks what `ipcert issue` was given. It prints the
// problem and returns exitUsage, or returns 0.
func validateIssueFlags(fs *flag.FlagSet, f *issueFlags, s stdio) int {
	if err := issueFlagsError(fs, f); err != nil {
		fmt.Fprintf(s.Err, "ipcert issue: %v\n", err)
		return exitUsage
	}
	return 0
}

func issueFlagsError(fs *flag.FlagSet, f *issueFlags) error {
	if err := noNegativeFlags(fs); err != nil {
		return err
	}
	if f.ca == "" {
		return errors.New("--ca is required: staging (a rehearsal; untrusted certificate), production, local (test CA, no internet) or an ACME directory URL")
	}
	public, err := validateCA(f.ca)
	if err != nil {
		return err
	}
	if f.caRoot != "" {
		if err := validateCARoot(f.caRoot); err != nil {
			return err
		}
	}
	if len(f.ips) == 0 {
		return errors.New("--ip is required: the address to certify (or --ip auto for this machine's public address)")
	}
	var idents []netip.Addr
	autos := 0
	for _, v := range f.ips {
		if v == "auto" {
			if autos++; autos > 1 {
				return errors.New("--ip auto is given twice")
			}
			continue
		}
		a, err := acmeflow.ParseIP(v)
		if err != nil {
			return fmt.Errorf("--ip: %w", err)
		}
		idents = append(idents, a)
	}
	// The engine's own checks (duplicates, at most 25, the CA's address
	// policy, challenge, key type), before the CA is even opened.
	req := acmeflow.Request{Identifiers: idents, Challenge: f.challenge, WebRoot: f.webroot, KeyType: f.keyType, PublicCA: public, Directory: "unchecked"}
	if len(idents) == 0 {
		req.Identifiers = []netip.Addr{netip.MustParseAddr("127.0.0.1")}
		req.PublicCA = false
	}
	if err := req.Validate(); err != nil {
		return userError(err)
	}
	for _, l := range []struct{ flag, v string }{{"--http-listen", f.httpListen}, {"--tls-listen", f.tlsListen}} {
		if l.v == "" {
			continue
		}
		if err := validateListen(l.v); err != nil {
			return fmt.Errorf("%s: %w", l.flag, err)
		}
	}
	if f.webroot != "" {
		st, err := os.Stat(f.webroot)
		switch {
		case err != nil:
			return fmt.Errorf("--webroot %s: %v; give the directory your web server serves for this address", f.webroot, errors.Unwrap(err))
		case !st.IsDir():
			return fmt.Errorf("--webroot %s is not a directory; give the document root your web server serves for this address", f.webroot)
		}
	}
	if f.webPort > 65535 {
		return fmt.Errorf("--webroot-port %d is not a port number (1-65535)", f.webPort)
	}
	if err := validateEmail(f.email); err != nil {
		return err
	}
	if f.name != "" {
		if err := store.ValidName(f.name); err != nil {
			return fmt.Errorf("--name: %v", err)
		}
	}
	if f.reload != "" {
		if _, err := deploy.ParseKind(f.reload); err != nil {
			return fmt.Errorf("--reload: %v", err)
		}
	}
	if f.verifyAddr != "" {
		if _, err := deploy.ParseTarget(f.verifyAddr, 443); err != nil {
			return fmt.Errorf("--verify: %v", err)
		}
	}
	for _, h := range f.hooks {
		if err := validateHook(h); err != nil {
			return err
		}
	}
	return nil
}

// validateRenewFlags checks what `ipcert renew` was given, including that
// every NAME is a managed certificate, without creating the state
// directory.
func validateRenewFlags(fs *flag.FlagSet, cf *commonFlags, s stdio) int {
	err := noNegativeFlags(fs)
	if err == nil {
		root := cf.stateDir
		if root == "" {
			root = store.DefaultRoot(s.Env, os.Getuid())
		}
		for _, n := range fs.Args() {
			if err = store.ValidName(n); err != nil {
				break
			}
			if _, serr := os.Stat(filepath.Join(root, "certs", n, "renewal.json")); serr != nil {
				err = fmt.Errorf("no certificate named %q in %s (ipcert status lists them)", n, root)
				break
			}
		}
	}
	if err != nil {
		fmt.Fprintf(s.Err, "ipcert renew: %v\n", err)
		return exitUsage
	}
	return 0
}

// noNegativeFlags refuses a negative number or duration in any flag: none
// of ipcert's means anything below zero (a negative --timeout used to be
// taken as "no timeout").
func noNegativeFlags(fs *flag.FlagSet) error {
	var bad error
	fs.VisitAll(func(fl *flag.Flag) {
		g, ok := fl.Value.(flag.Getter)
		if !ok || bad != nil {
			return
		}
		switch v := g.Get().(type) {
		case time.Duration:
			if v < 0 {
				bad = fmt.Errorf("--%s %s is negative; give a duration such as 90s or 10m", fl.Name, v)
			}
		case int:
			if v < 0 {
				bad = fmt.Errorf("--%s %d is negative", fl.Name, v)
			}
		case int64:
			if v < 0 {
				bad = fmt.Errorf("--%s %d is negative", fl.Name, v)
			}
		}
	})
	return bad
}

// validateCA checks --ca without opening it, and says whether Let's
// Encrypt's address policy applies.
func validateCA(ca string) (public bool, err error) {
	switch ca {
	case "staging", "production":
		return true, nil
	case cachoice.Local:
		return false, nil
	}
	u, perr := url.Parse(ca)
	if perr != nil || u.Host == "" || u.Scheme != "https" && u.Scheme != "http" {
		return false, fmt.Errorf("--ca %q is not staging, production, local or an ACME directory URL (https://...)", ca)
	}
	host := u.Hostname()
	loopback := host == "localhost"
	if a, err := netip.ParseAddr(host); err == nil && a.IsLoopback() {
		loopback = true
	}
	// RFC 8555 section 6.1: ACME runs over HTTPS. Plain HTTP is accepted
	// only on loopback, where a development CA (Boulder's) may listen.
	if u.Scheme == "http" && !loopback {
		return false, fmt.Errorf("--ca %s: ACME needs HTTPS (RFC 8555 section 6.1); use the https:// URL of the directory", ca)
	}
	// Let's Encrypt's address policy is Let's Encrypt's: cachoice decides
	// it, for every command (a private CA certifies private addresses).
	return cachoice.IsLetsEncrypt(u), nil
}

func validateCARoot(path string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("--ca-root: %v; give a PEM file with the root certificate of your ACME CA", err)
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		return fmt.Errorf("--ca-root %s holds no PEM certificate", path)
	}
	return nil
}

// validateListen checks ADDR:PORT of a built-in responder (port 0: any
// free port, which tests against a CA on loopback use).
func validateListen(v string) error {
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

// validateEmail accepts a plain address (no display name, no spaces, no
// control characters), at most 254 bytes (RFC 5321 section 4.5.3.1.3).
func validateEmail(e string) error {
	if e == "" {
		return nil
	}
	if len(e) > 254 {
		return fmt.Errorf("--email is %d characters long; an e-mail address has at most 254", len(e))
	}
	for _, r := range e {
		if unicode.IsSpace(r) || unicode.IsControl(r) {
			return fmt.Errorf("--email %q has a space or control character; give a plain address such as admin@example.com", e)
		}
	}
	a, err := mail.ParseAddress(e)
	at := strings.LastIndexByte(e, '@')
	if err != nil || a.Address != e || at < 1 || at == len(e)-1 {
		return fmt.Errorf("--email %q is not an e-mail address; give a plain address such as admin@example.com", e)
	}
	return nil
}

// validateHook refuses an empty deploy hook and, when run as root, a hook
// whose program is a file another user could change: renew runs it as
// root after every renewal.
func validateHook(h string) error {
	if strings.TrimSpace(h) == "" {
		return errors.New("--deploy-hook is empty; give the shell command to run after each renewal")
	}
	if strings.ContainsAny(h, "\n\r\x00") {
		return fmt.Errorf("--deploy-hook %q has a line break; give one command (or a script)", h)
	}
	if err := deploy.CheckHookProgram(h); err != nil {
		return fmt.Errorf("--deploy-hook: %w", err)
	}
	return nil
}
