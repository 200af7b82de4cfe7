package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/term"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/diagnosis"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/ui"
	"github.com/ipcert/ipcert/wizard"
)

const wizardHelp = `
ipcert (no arguments) or ipcert wizard: the interactive setup. It finds
this machine's public address, checks that validation can work, rehearses on
Let's Encrypt staging, gets the real certificate and says how to install and
renew it. It draws on stderr; the result is printed on stdout at the end.

Usage:
  sudo ipcert [flags]
  sudo ipcert wizard [flags]

Keys: enter continue, esc back a step, q (outside text fields) or ctrl+c
quit; the help line at the bottom shows the keys of each screen.

Examples:
  sudo ipcert                                  the full walk, answers asked on screen
  sudo ipcert --ip 203.0.113.7 --email me@example.org   start with these answers filled in
  sudo ipcert --accessible                     plain numbered questions (screen readers)
  ipcert demo                                  the same walk against a local test CA

Your own ACME CA (step-ca for internal and private addresses): choose "My
own ACME CA" on the Plan screen and give its directory URL and root file, or
preset them with --ca https://CA/acme/acme/directory --ca-root root.pem.

Every answer is also a flag (and an IPCERT_* variable); the screens start
from them. Without a terminal, use the subcommands instead:
  ipcert issue --ip ADDR --ca staging|production --agree-tos
  ipcert preflight --ip ADDR

Accessibility: --accessible (or ACCESSIBLE=1) asks plain sequential
questions a screen reader can follow; TERM=dumb does the same. NO_COLOR
turns colours off.

Exit codes: 0 a certificate was issued; 1 it failed; 2 bad flags or no
terminal; 130 quit before the end.
`

func init() {
	register(command{name: "wizard", summary: "the interactive setup (what ipcert runs with no arguments)", run: runWizard})
}

// wizardFlags are the wizard's flags, shared with ipcert demo.
type wizardFlags struct {
	stateDir   string
	debug      string
	accessible bool
	ips        multiFlag
	ca         string
	caRoot     string
	httpListen string
	tlsListen  string
	challenge  string
	webroot    string
	keyType    string
	email      string
	agreeTOS   bool
}

func (f *wizardFlags) register(fs *flag.FlagSet, demo bool) {
	fs.StringVar(&f.stateDir, "state-dir", "", "state directory (default /etc/ipcert as root, else ~/.local/state/ipcert; demo: a new temporary folder)")
	fs.StringVar(&f.debug, "debug", "", "write a debug log (wizard steps, ACME traffic summaries, never keys) to this file")
	fs.BoolVar(&f.accessible, "accessible", false, "plain sequential prompts for screen readers (also ACCESSIBLE=1)")
	fs.StringVar(&f.keyType, "key-type", "ec256", "preset key type: "+strings.Join(acmeflow.KeyTypes, ", "))
	fs.StringVar(&f.email, "email", "", "preset contact e-mail for the ACME account")
	fs.BoolVar(&f.agreeTOS, "agree-tos", false, "preset: agree to the CA's terms of service")
	fs.StringVar(&f.challenge, "challenge", "", "preset challenge: http-01, tls-alpn-01 (with --webroot: http-01 into that root)")
	if !demo {
		fs.Var(&f.ips, "ip", "preset address(es) to certify (repeatable)")
		fs.StringVar(&f.ca, "ca", "", "preset CA plan: rehearse (staging, then production), staging, production, or the https:// directory URL of your own ACME CA")
		fs.StringVar(&f.caRoot, "ca-root", "", "preset PEM root file of your own ACME CA's HTTPS (with --ca URL; default: the system's roots)")
		fs.StringVar(&f.httpListen, "http-listen", "", "address:port of the built-in http-01 responder (default :80)")
		fs.StringVar(&f.tlsListen, "tls-listen", "", "address:port of the built-in tls-alpn-01 responder (default :443)")
		fs.StringVar(&f.webroot, "webroot", "", "preset web root for http-01")
	}
}

// answers turns the flags into the wizard's preset answers.
func (f *wizardFlags) answers() (wizard.Answers, error) {
	a := wizard.Answers{CA: f.ca, KeyType: f.keyType, Email: f.email, AgreeTOS: f.agreeTOS, WebRoot: f.webroot}
	for _, v := range f.ips {
		ip, err := acmeflow.ParseIP(v)
		if err != nil {
			return a, fmt.Errorf("--ip: %w", err)
		}
		a.Addrs = append(a.Addrs, ip)
	}
	switch f.ca {
	case "", wizard.PlanRehearse, cachoice.Staging, cachoice.Production:
	case cachoice.Local:
		return a, fmt.Errorf("--ca local: the wizard with the local test CA is ipcert demo")
	default:
		// An own ACME CA's directory, checked like issue's --ca URL.
		if !strings.HasPrefix(f.ca, "https://") {
			return a, fmt.Errorf("--ca %q: the wizard offers rehearse, staging, production or the https:// directory URL of your own ACME CA (the local test CA: ipcert demo)", f.ca)
		}
		if _, err := validateCA(f.ca); err != nil {
			return a, err
		}
		a.CA, a.CAURL = wizard.PlanOwnCA, f.ca
	}
	if f.caRoot != "" && a.CA != wizard.PlanOwnCA {
		return a, errors.New("--ca-root goes with --ca URL (your own ACME CA); Let's Encrypt's roots are the system's")
	}
	// The presets are a partial issuance: each value given is checked by
	// the one validation issue's flags go through (internal/spec).
	given := spec.Issuance{CARoot: f.caRoot, Challenge: spec.Challenge(f.challenge), WebRoot: f.webroot,
		HTTPListen: f.httpListen, TLSListen: f.tlsListen, KeyType: f.keyType, Email: f.email}
	if err := given.CheckGiven(); err != nil {
		return a, err
	}
	if f.caRoot != "" {
		// renew runs from another directory (the timer: /).
		a.CARoot, _ = filepath.Abs(f.caRoot)
	}
	a.HTTPListen, a.TLSListen = f.httpListen, f.tlsListen
	switch given.Challenge {
	case spec.HTTP01:
		a.Challenge = wizard.ChallengeHTTP
		if f.webroot != "" {
			a.Challenge = wizard.ChallengeWebroot
		}
	case spec.TLSALPN01:
		a.Challenge = wizard.ChallengeTLSALPN
	}
	return a, nil
}

func runWizard(ctx context.Context, args []string, s stdio) error {
	var f wizardFlags
	fs := newFlagSet("wizard", wizardHelp, s.Out, s.Err)
	f.register(fs, false)
	if err := parseFlags(fs, args, s.Env); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q; run \"ipcert --help\" for the commands", fs.Arg(0))
	}
	ans, err := f.answers()
	if err != nil {
		return usageErr("%v", err)
	}
	caps := ui.DetectCaps(s.Env, f.accessible)
	if err := wizardNeedTerminal(s, caps, "ipcert"); err != nil {
		return err
	}
	closeLog := setupDebugLog(f.debug, s.Err)
	defer closeLog()

	root := f.stateDir
	if root == "" {
		root = store.DefaultRoot(s.Env, os.Getuid())
	}
	st, err := store.Open(root)
	if err != nil {
		return failure("%v", err)
	}
	// The staging rehearsal before production lives in its own store under
	// the state directory: it keeps its staging account for the next
	// rehearsal, but never becomes the current certificate and is never
	// renewed (renew walks certs/ of the main store only).
	rst, err := store.Open(filepath.Join(root, "rehearsal"))
	if err != nil {
		return failure("%v", err)
	}
	deps, err := wizardDeps(wizardWiring{Store: st, Rehearsal: rst, Getenv: s.Env})
	if err != nil {
		return usageErr("%v", err)
	}
	cfg := wizard.Config{Caps: caps, StateDir: root, Answers: ans, Log: wizardDebugLog(f.debug)}
	return wizardRun(ctx, deps, cfg, s, false)
}

// wizardNeedTerminal decides between the full-screen wizard, the plain
// accessible prompts and refusing (exit 2): with no terminal the
// full-screen UI would hang or garble, so it says which subcommand does
// the job.
func wizardNeedTerminal(s stdio, caps ui.Caps, name string) error {
	if caps.Accessible {
		return nil
	}
	if wizardIsTerminal(s.In) && wizardIsTerminal(s.Err) {
		return nil
	}
	//lint:ignore ST1005 the lines are printed as they are, not wrapped
	return &exitError{code: exitUsage, prefix: name, err: fmt.Errorf(`no terminal, so no wizard (it needs stdin and stderr on a terminal).
Over SSH, ask for one: ssh -t HOST sudo ipcert
Or use the subcommands, which never ask anything:
  ipcert preflight --ip ADDR                            check ports, NAT and firewall
  ipcert issue --ip ADDR --ca staging --agree-tos       rehearse on staging
  ipcert issue --ip ADDR --ca production --agree-tos    get the real certificate
  ipcert demo                                           try it all with no internet
Or answer plain questions from stdin: %s --accessible
Run "ipcert --help" for every command.`, name)}
}

func wizardIsTerminal(v any) bool {
	f, ok := v.(*os.File)
	return ok && term.IsTerminal(f.Fd())
}

// wizardDebugLog is where the wizard logs its steps: the --debug file.
func wizardDebugLog(path string) io.Writer {
	if path == "" {
		return nil
	}
	return debugWriter()
}

// wizardRun runs the full-screen or the accessible wizard and prints the
// outcome on stdout. Its errors say "ipcert:", for the demo too.
func wizardRun(ctx context.Context, deps wizard.Deps, cfg wizard.Config, s stdio, demo bool) error {
	fail := func(code int, format string, a ...any) error {
		return withPrefix("ipcert", exitWith(code, format, a...))
	}
	var o wizard.Outcome
	var err error
	if cfg.Caps.Accessible || cfg.Caps.Dumb {
		if cfg.Caps.Dumb && !cfg.Caps.Accessible {
			fmt.Fprintln(s.Err, "TERM=dumb: asking plain questions instead of drawing screens.")
		}
		lipgloss.SetDefaultRenderer(ui.Renderer(s.Err, ui.Caps{NoColor: true}))
		cfg.SummaryOnStdout = true // wizardPrintOutcome says it, once
		o, err = wizard.RunAccessible(ctx, deps, cfg, s.In, s.Err)
	} else {
		// huh draws its fields with lipgloss's default renderer, which
		// looks at stdout; the UI is on stderr.
		lipgloss.SetDefaultRenderer(ui.Renderer(s.Err, cfg.Caps))
		o, err = wizard.Run(ctx, deps, cfg, s.In, s.Err)
	}
	wizardPrintOutcome(s.Out, o, demo, cfg.StateDir)
	switch {
	case o.Issued != nil:
		return nil
	case o.Rehearsal != nil && err == nil:
		return nil
	case errors.Is(err, wizard.ErrInputClosed):
		return fail(exitFailure, "the input ended before the wizard did; nothing was issued. Run it again and answer every question (one answer per line), or run it on a terminal")
	case o.Err != nil && o.RecordErr != nil:
		return fail(exitFailure, "no certificate: %v\nThis failure could not be recorded (%s), so ipcert doctor will not know it: the wizard's failure screen was the whole explanation.", o.Err, acmeflow.Printable(o.RecordErr.Error()))
	case o.Err != nil:
		return fail(exitFailure, "no certificate: %v\nRun \"%s\" for the explanation and a re-check.", o.Err, wizardDoctorCmd(o.Err, cfg.StateDir))
	case err != nil && !errors.Is(err, wizard.ErrAborted):
		return fail(exitFailure, "%v", err)
	}
	return fail(exitInterrupted, "quit; nothing was changed.")
}

// wizardPrintOutcome prints the result on stdout: what was issued, where
// the files are, and the commands that come next.
func wizardPrintOutcome(w io.Writer, o wizard.Outcome, demo bool, stateDir string) {
	iss, files := o.Issued, o.Files
	rehearsal := false
	if iss == nil && o.Rehearsal != nil {
		iss, files, rehearsal = o.Rehearsal, o.RehearsalFiles, true
	}
	if iss == nil {
		return
	}
	r := iss.Renewal
	kind := "a certificate"
	if rehearsal {
		kind = "a STAGING rehearsal certificate (not trusted by browsers)"
	}
	printIssuedFiles(w, kind, iss, files)
	if demo {
		fmt.Fprintln(w, "\nCheck it with openssl:")
		for _, c := range wizard.OpensslCommands(files) {
			fmt.Fprintf(w, "  %s\n", c)
		}
		fmt.Fprintln(w, "\nThe files stay where they are. For a real certificate, run ipcert (no arguments) on the server.")
		return
	}
	if rehearsal {
		fmt.Fprintf(w, "\nGet the real certificate: sudo ipcert issue --ip %s --ca production --agree-tos%s (or run ipcert again)\n", r.Identifiers[0], wizard.StateArg(stateDir))
		return
	}
	var next [][3]string
	for _, c := range wizard.NextCommands(iss.Name, r.Identifiers[0], stateDir, r) {
		if !o.Done[c[0]] { // done in the wizard already
			next = append(next, c)
		}
	}
	if len(next) == 0 {
		return
	}
	fmt.Fprintln(w, "\nNext:")
	for _, c := range next {
		fmt.Fprintf(w, "  %-8s %s  %s\n", c[0], c[1], c[2])
	}
}

// wizardDoctorCmd is the doctor command for the failure the wizard quit
// on: that address, in the wizard's state directory.
func wizardDoctorCmd(err error, stateDir string) diagnosis.Cmd {
	c := diagnosis.Cmd{"ipcert", "doctor"}
	var ae *acmeflow.Error
	if errors.As(err, &ae) && ae.Identifier != "" {
		c = append(c, ae.Identifier)
	}
	return append(c, diagnosis.StateDirArgs(stateDir)...)
}
