package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/internal/store"
)

const revokeHelp = `
ipcert revoke: ask the CA to revoke a certificate's current version.

Usage:
  ipcert revoke NAME|ADDR [--reason REASON] [--with-cert-key]

It signs with the account that ordered the certificate (the CA's stored
account), or with the certificate's own key (--with-cert-key: the way for a
key that leaked; --reason keyCompromise asks for it). renewal.json keeps the
revocation: status shows it, and the next "ipcert renew" replaces the
certificate at once. The files stay where they are: the web server keeps
serving the revoked certificate until then (run ipcert renew now).

Reasons: unspecified (default), keyCompromise, affiliationChanged,
superseded, cessationOfOperation (the address was given back).

Examples:
  sudo ipcert revoke 203.0.113.7 --reason superseded
  sudo ipcert revoke 203.0.113.7 --reason keyCompromise && sudo ipcert renew 203.0.113.7

Exit codes: 0 revoked; 1 the CA refused or could not be reached; 2 bad
flags, or no such certificate.
`

func init() {
	register(command{name: "revoke", summary: "ask the CA to revoke a certificate (renew replaces it)", run: runRevoke})
}

func runRevoke(ctx context.Context, args []string, s stdio) error {
	var cf commonFlags
	var reason string
	var withKey bool
	var timeout time.Duration
	fs := newFlagSet("revoke", revokeHelp, s.Out, s.Err)
	cf.register(fs)
	fs.StringVar(&reason, "reason", "unspecified", "why: "+acmeflow.ReasonNames())
	fs.BoolVar(&withKey, "with-cert-key", false, "sign with the certificate's own key instead of the account's (keyCompromise)")
	fs.DurationVar(&timeout, "timeout", 2*time.Minute, "give up after this long")
	rest, err := parseArgs(fs, args, s.Env)
	if err != nil {
		return err
	}
	if len(rest) != 1 {
		return usageErr("give the certificate: ipcert revoke NAME|ADDR (ipcert status lists them)")
	}
	if _, ok := acmeflow.RevocationReasons[reason]; !ok {
		return usageErr("--reason %q is not one of %s", reason, acmeflow.ReasonNames())
	}
	if reason == "keyCompromise" {
		// Let's Encrypt accepts keyCompromise only signed by the key itself.
		withKey = true
	}
	st, found, err := findManaged(cf, rest[0], s.Env)
	if err != nil {
		return err
	}
	r, err := st.LoadRenewal(found.Name)
	if err != nil {
		return failure("%s: %v", found.Name, err)
	}
	if r.CA == cachoice.Local {
		return usageErr("%s is from the local test CA, which lives only while ipcert runs: there is nothing to revoke it at; stop managing it with: ipcert remove %s%s", found.Name, found.Name, stateDirArg(cf.stateDir))
	}
	if r.RevokedCurrent() {
		fmt.Fprintf(s.Out, "%s: version %d (serial %s) was revoked already (%s, %s); ipcert renew replaces it.\n", found.Name, r.Current, r.Serial, r.Revoked.Reason, r.Revoked.At.Format("2006-01-02 15:04 UTC"))
		return nil
	}
	if err := revokeCurrent(ctx, st, found.Name, r, reason, withKey, timeout, s.Err); err != nil {
		return failure("%s: %v", found.Name, err)
	}
	r.Revoked = &store.Revocation{Serial: r.Serial, Reason: reason, At: time.Now().UTC()}
	if err := st.SaveRenewal(r); err != nil {
		return failure("%s was revoked, but renewal.json could not record it (%v): run ipcert renew --force %s", found.Name, err, found.Name)
	}
	fmt.Fprintf(s.Out, "Revoked %s version %d (serial %s, reason %s) at %s.\n", found.Name, r.Current, r.Serial, reason, strings.TrimSuffix(cachoice.Describe(r.CA), "."))
	fmt.Fprintf(s.Out, "The web server still serves it: replace it now with \"ipcert renew%s %s\" (the timer's next run would too).\n", stateDirArg(cf.stateDir), found.Name)
	return nil
}

// stateDirArg is " --state-dir DIR" when one was given, for the commands
// printed back to the user.
func stateDirArg(dir string) string {
	if dir == "" {
		return ""
	}
	return " --state-dir " + shellQuote(dir)
}

// revokeCurrent asks r's CA to revoke the current version of name, signed
// with the account, or with the certificate's own key (withKey).
func revokeCurrent(ctx context.Context, st *store.Store, name string, r *store.Renewal, reason string, withKey bool, timeout time.Duration, progress io.Writer) error {
	v, err := st.CurrentVersion(name)
	if err != nil {
		return err
	}
	certPEM, err := os.ReadFile(filepath.Join(v.Dir, store.CertFile))
	if err != nil {
		return err
	}
	var keyPEM []byte
	if withKey {
		if keyPEM, err = os.ReadFile(filepath.Join(v.Dir, store.KeyFile)); err != nil {
			return err
		}
	}
	ca, err := cachoice.Open(r.CA, cachoice.Options{RootFile: r.CARoot})
	if err != nil {
		return err
	}
	defer ca.Close()
	req := acmeflow.Request{AgreeTOS: true}
	ca.Apply(&req)
	req.Events = progressPrinter(progress)
	rctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	return (&acmeflow.Engine{Store: st, UserAgent: "ipcert/" + version}).Revoke(rctx, req, certPEM, keyPEM, reason)
}

// findManaged opens the state directory and finds the one certificate arg
// names (a name or an address); the error is the command's (exitError).
func findManaged(cf commonFlags, arg string, env func(string) string) (*store.Store, store.Found, error) {
	st, err := cf.openStore(env)
	if err != nil {
		return nil, store.Found{}, failure("%v", err)
	}
	found, err := st.Find(store.Query{Arg: arg})
	if err != nil {
		return nil, store.Found{}, usageErr("%v", err)
	}
	if found.Name == "" {
		return nil, store.Found{}, usageErr("no certificate for %s in %s (ipcert status lists them)", arg, st.Root())
	}
	return st, found, nil
}
