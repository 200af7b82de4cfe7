package cli

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/diagnosis"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/ui"
	"github.com/ipcert/ipcert/wizard"
)

const demoHelp = `
ipcert demo: the whole wizard against a test CA that runs inside ipcert
(Pebble, Let's Encrypt's own test CA) on 127.0.0.1. No internet, no root.
It ends with a real certificate for 127.0.0.1 on disk, trusted only with
the test CA's root, and says how to check it with openssl. The files stay
in a new temporary folder (printed at the end) unless --state-dir is given.

Usage:
  ipcert demo [--accessible] [--state-dir DIR] [--debug FILE]

Examples:
  ipcert demo                          the wizard, files in a new temporary folder
  ipcert demo --state-dir /tmp/try     keep the files where you want them
  ipcert demo --accessible             plain numbered questions (screen readers)

With no terminal (a script, CI, a pipe) it runs the same steps without
questions, as "ipcert issue --ip 127.0.0.1 --ca local" into the demo folder.

Exit codes: 0 a certificate was issued; 1 it failed; 2 bad flags;
130 quit before the end.
`

func init() {
	register(command{name: "demo", summary: "the whole wizard against a built-in local test CA (no internet, no root)", run: runDemo})
}

func runDemo(ctx context.Context, args []string, s stdio) error {
	var f wizardFlags
	fs := newFlagSet("demo", demoHelp, s.Out, s.Err)
	f.register(fs, true)
	if err := parseFlags(fs, args, s.Env); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q", fs.Arg(0))
	}
	ans, err := f.answers()
	if err != nil {
		return usageErr("%v", err)
	}
	caps := ui.DetectCaps(s.Env, f.accessible)
	headless := !caps.Accessible && !(wizardIsTerminal(s.In) && wizardIsTerminal(s.Err))
	root := f.stateDir
	created := false
	if root == "" {
		if root, err = os.MkdirTemp("", "ipcert-demo-"); err != nil {
			return failure("%v", err)
		}
		created = true
	}
	if headless {
		// A script, CI or a pipe: the wizard cannot draw, but the demo's
		// one path (127.0.0.1, the local test CA, http-01) needs no
		// answers, so it runs as the equivalent headless command.
		fmt.Fprintf(s.Err, "ipcert demo: no terminal, so no wizard; running its steps without questions\n(on a terminal you get the wizard; \"ipcert demo --accessible\" asks plain questions)\n\n")
		err := demoHeadless(ctx, root, f.debug, s)
		fmt.Fprintf(s.Out, "Demo state: %s\n", root)
		return err
	}
	closeLog := setupDebugLog(f.debug, s.Err)
	defer closeLog()

	st, err := store.Open(root)
	if err != nil {
		return failure("%v", err)
	}
	deps, err := wizardDeps(wizardWiring{Demo: true, Store: st})
	if err != nil {
		return failure("%v", err)
	}
	cfg := wizard.Config{Demo: true, Caps: caps, StateDir: root, Answers: ans, Log: wizardDebugLog(f.debug)}
	err = wizardRun(ctx, deps, cfg, s, true)
	if created && err != nil && demoNothingKept(st) {
		// The folder is the demo's own and holds nothing worth reading (no
		// certificate, no failure to explain): "nothing was changed"
		// stays true.
		os.RemoveAll(root)
		return err
	}
	fmt.Fprintf(s.Out, "Demo state: %s\n", root)
	return err
}

// demoNothingKept says the demo's store has no certificate and no stored
// failure.
func demoNothingKept(st *store.Store) bool {
	names, err := st.Names()
	if err != nil || len(names) > 0 {
		return false
	}
	ff, err := st.FirstFailures()
	return err == nil && len(ff) == 0
}

// demoHeadless is the demo's one path without questions: 127.0.0.1 from
// the local test CA over http-01, into the demo's folder, said the way
// "ipcert issue --ip 127.0.0.1 --ca local --agree-tos" says it.
func demoHeadless(ctx context.Context, root, debug string, s stdio) error {
	closeLog := setupDebugLog(debug, s.Err)
	defer closeLog()
	// ipcert issue's default --timeout: the CA keeps a pending
	// authorization for an hour, the demo's is local.
	ctx, cancel := context.WithTimeout(ctx, 10*time.Minute)
	defer cancel()
	st, err := store.Open(root)
	if err != nil {
		return failure("%v", err)
	}
	ca, err := cachoice.Open(cachoice.Local, cachoice.Options{Log: debugWriter()})
	if err != nil {
		return usageErr("%v", err) // as ipcert issue --ca local says it
	}
	defer ca.Close()
	idents := []netip.Addr{netip.MustParseAddr("127.0.0.1")}
	req := acmeflow.Request{Identifiers: idents, Challenge: acmeflow.ChallengeHTTP01, KeyType: "ec256", AgreeTOS: true}
	ca.Apply(&req)
	fmt.Fprintf(s.Err, "Issuing for %s from %s\n", acmeflow.JoinAddrs(idents), cachoice.Describe(cachoice.Local))
	req.Events = logEvents(progressPrinter(s.Err))
	eng := &acmeflow.Engine{Store: st, UserAgent: "ipcert/" + version}
	tmpl := &store.Renewal{Issuance: spec.Issuance{CA: cachoice.Local}}
	// A --state-dir used before keeps the settings of its 127.0.0.1
	// certificate (hooks, reload), as a repeated ipcert issue does.
	if backup, err := st.KeepSettings(store.NameFor(acmeflow.AddrStrings(idents)), tmpl); backup != "" {
		fmt.Fprintf(s.Err, "ipcert demo: the existing renewal.json is unreadable (%v); kept as %s\n", err, backup)
	}
	iss, err := eng.Issue(ctx, req, acmeflow.IssueOptions{Renewal: tmpl, RootPEM: ca.RootPEM, LockWait: 60 * time.Second})
	if err != nil {
		return reportIssueError(ctx, eng, "", idents, err, s, diagnosis.AttemptOf(&req, ca, cachoice.Local), false)
	}
	printIssued(s.Out, iss, st, ca)
	return nil
}
