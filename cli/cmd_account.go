package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/untrusted"
)

const accountHelp = `
ipcert account: the ACME account this state directory holds with a CA.

Usage:
  ipcert account show --ca staging|production|URL [--ca-root FILE]
  ipcert account update --ca ... --email ADDRESS     (--email "" removes the contact)
  ipcert account rollover --ca ...                   (a new account key, RFC 8555 section 7.3.5)
  ipcert account deactivate --ca ...

show asks the CA for the account's status and contact. deactivate ends the
account at the CA for good (its certificates stay valid); its files are kept
aside and the next issuance registers a new one.

Examples:
  sudo ipcert account show --ca production
  sudo ipcert account update --ca production --email ops@example.org

Exit codes: 0 done; 1 the CA refused or could not be reached; 2 bad flags,
or no account with that CA.
`

func init() {
	register(command{name: "account", summary: "show, update or deactivate the ACME account of a CA", run: runAccount})
}

func runAccount(ctx context.Context, args []string, s stdio) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		if len(args) == 0 {
			return usageErr("say show, update, rollover or deactivate (ipcert account --help)")
		}
		fmt.Fprintln(s.Out, strings.TrimSpace(accountHelp))
		return nil
	}
	op := args[0]
	if op != "show" && op != "update" && op != "deactivate" && op != "rollover" {
		return usageErr("unknown verb %q; say show, update, rollover or deactivate", op)
	}
	var cf commonFlags
	var ca, caRoot, email string
	fs := newFlagSet("account "+op, accountHelp, s.Out, s.Err)
	cf.register(fs)
	fs.StringVar(&ca, "ca", "", "the CA: staging, production or an ACME directory URL (required)")
	fs.StringVar(&caRoot, "ca-root", "", "PEM file of roots to trust for the CA's own HTTPS (a custom --ca URL)")
	if op == "update" {
		fs.StringVar(&email, "email", "", "the account's new contact e-mail (empty: none)")
	}
	if err := parseFlags(fs, args[1:], s.Env); err != nil {
		return err
	}
	fail := func(code int, format string, a ...any) error {
		return withPrefix("ipcert account "+op, exitWith(code, format, a...))
	}
	if ca == "" {
		return fail(exitUsage, "--ca is required: staging, production or the ACME directory URL of your CA")
	}
	if ca == cachoice.Local {
		return fail(exitUsage, "the local test CA forgets its accounts when ipcert stops: there is no account to look at")
	}
	if _, err := validateCA(ca); err != nil {
		return fail(exitUsage, "%v", err)
	}
	if err := validateEmail(email); err != nil {
		return fail(exitUsage, "%v", err)
	}
	st, err := cf.openStore(s.Env)
	if err != nil {
		return fail(exitFailure, "%v", err)
	}
	c, err := cachoice.Open(spec.CAChoice(ca), cachoice.Options{RootFile: caRoot})
	if err != nil {
		return fail(exitUsage, "%v", err)
	}
	defer c.Close()
	req := acmeflow.Request{}
	c.Apply(&req)
	rctx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	eng := &acmeflow.Engine{Store: st, UserAgent: "ipcert/" + version}
	var info *acmeflow.AccountInfo
	if op == "rollover" {
		info, err = eng.RolloverAccountKey(rctx, req)
	} else {
		info, err = eng.Account(rctx, req, op, email)
	}
	if errors.Is(err, acmeflow.ErrNoAccount) {
		return fail(exitUsage, "%s has %v", st.Root(), err)
	}
	if err != nil {
		return fail(exitFailure, "%v", err)
	}
	if cf.jsonOut {
		return writeJSON(s.Out, info)
	}
	fmt.Fprintf(s.Out, "Account %s\n  at      %s\n  status  %s\n", untrusted.Text(info.URI), cachoice.Describe(spec.CAChoice(ca)), untrusted.Text(info.Status))
	if op == "rollover" {
		fmt.Fprintln(s.Out, "The account has a new key (the old one no longer signs for it); it is stored in the state directory.")
	}
	if op != "deactivate" && op != "rollover" {
		contact := "none"
		switch {
		case len(info.Contact) > 0:
			contact = untrusted.Text(strings.Join(info.Contact, ", "))
		case op == "update" && email != "":
			contact = "none kept by the CA (it accepted the update and returned no contact; some CAs no longer keep e-mail addresses)"
		}
		fmt.Fprintf(s.Out, "  contact %s\n", contact)
	}
	if !info.Created.IsZero() {
		fmt.Fprintf(s.Out, "  created %s\n", info.Created.Format("2006-01-02 15:04 UTC"))
	}
	if info.KeptAs != "" {
		fmt.Fprintf(s.Out, "Its files are kept in %s; the next issuance registers a new account.\n", info.KeptAs)
	}
	return nil
}
