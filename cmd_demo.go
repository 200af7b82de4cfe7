package main

import (
	"context"
	"crypto/x509"
	"fmt"
	"net/netip"
	"os"
	"sync"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/acmeflow/store"
	"github.com/ipcert/ipcert/deploy"
	"github.com/ipcert/ipcert/preflight"
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

func runDemo(ctx context.Context, args []string, s stdio) int {
	var f wizardFlags
	fs := newFlagSet("demo", demoHelp, s.Out, s.Err)
	f.register(fs, true)
	if done, code := parseFlags(fs, args, s.Env, s.Err); done {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(s.Err, "ipcert demo: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	ans, err := f.answers()
	if err != nil {
		fmt.Fprintf(s.Err, "ipcert demo: %v\n", err)
		return exitUsage
	}
	caps := ui.DetectCaps(s.Env, f.accessible)
	headless := !caps.Accessible && !(wizardIsTerminal(s.In) && wizardIsTerminal(s.Err))
	root := f.stateDir
	created := false
	if root == "" {
		if root, err = os.MkdirTemp("", "ipcert-demo-"); err != nil {
			fmt.Fprintf(s.Err, "ipcert demo: %v\n", err)
			return exitFailure
		}
		created = true
	}
	if headless {
		// A script, CI or a pipe: the wizard cannot draw, but the demo's
		// one path (127.0.0.1, the local test CA, http-01) needs no
		// answers, so it runs as the equivalent headless command.
		fmt.Fprintf(s.Err, "ipcert demo: no terminal, so no wizard; running its steps without questions\n(on a terminal you get the wizard; \"ipcert demo --accessible\" asks plain questions)\n\n")
		args := []string{"--ip", "127.0.0.1", "--ca", cachoice.Local, "--state-dir", root, "--agree-tos"}
		if f.debug != "" {
			args = append(args, "--debug", f.debug)
		}
		code := runIssue(ctx, args, s)
		fmt.Fprintf(s.Out, "Demo state: %s\n", root)
		return code
	}
	closeLog := setupDebugLog(f.debug, s.Err)
	defer closeLog()

	st, err := store.Open(root)
	if err != nil {
		fmt.Fprintf(s.Err, "ipcert demo: %v\n", err)
		return exitFailure
	}
	deps := demoDeps(st)
	cfg := wizard.Config{Demo: true, Caps: caps, StateDir: root, Answers: ans, Log: wizardDebugLog(f.debug)}
	code := wizardRun(ctx, deps, cfg, s, true)
	if created && code != exitOK && demoNothingKept(st) {
		// The folder is the demo's own and holds nothing worth reading (no
		// certificate, no failure to explain): "nothing was changed"
		// stays true.
		os.RemoveAll(root)
		return code
	}
	fmt.Fprintf(s.Out, "Demo state: %s\n", root)
	return code
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

// demoDeps wires the wizard to the local test CA: 127.0.0.1 is the
// address "found", preflight runs only the local checks against the
// responder ports the CA validates on, and nothing leaves the machine.
func demoDeps(st *store.Store) wizard.Deps {
	env := preflight.DefaultEnv()
	// One Pebble for the whole demo, started in the background at once so
	// the first frame does not wait for it.
	openLocal := sync.OnceValues(func() (*cachoice.CA, error) {
		return cachoice.Open(cachoice.Local, cachoice.Options{Log: debugWriter()})
	})
	go openLocal()
	eng := &acmeflow.Engine{Store: st, UserAgent: "ipcert/" + version}
	return wizard.Deps{
		Machine: wizardMachine(env),
		DetectPublic: func(ctx context.Context) preflight.PublicAddrs {
			lo := netip.MustParseAddr("127.0.0.1")
			return preflight.PublicAddrs{V4: preflight.FamilyResult{
				Family: "ipv4", Addr: lo, Votes: 1, Answered: 1, Asked: 1,
				Sources: []preflight.SourceAnswer{{Kind: "demo", Source: "the demo's test CA (it validates over loopback)", Addr: lo}},
			}}
		},
		LocalAddrs: func() ([]preflight.IfaceAddr, error) { return preflight.LocalAddrs(env) },
		Preflight: func(ctx context.Context, req wizard.PreflightRequest, progress func(preflight.Event)) preflight.Report {
			opts := preflight.Options{
				IPs: req.Addrs, LocalCA: true,
				// The public-address, NAT and self-fetch checks ask the
				// internet; the demo never does.
				Only: []string{preflight.IDInterfaces, preflight.IDPorts, preflight.IDPrivilege, preflight.IDWebServers, preflight.IDFirewall, preflight.IDAddress},
			}
			if ca, err := openLocal(); err == nil {
				opts.HTTPPort, opts.TLSPort = acmeflow.PortOf(ca.HTTPListen), acmeflow.PortOf(ca.TLSListen)
			}
			return preflight.Run(ctx, env, opts, progress)
		},
		OpenCA: func(choice string) (*cachoice.CA, error) {
			if choice != cachoice.Local {
				return nil, fmt.Errorf("the demo uses only the local test CA, not %q", choice)
			}
			return openLocal()
		},
		Issuer: eng, Store: st,
		RecordFailure: wizardRecordFailure(eng),
		// The demo shows the nginx snippet but never touches the web
		// servers or the system's timers; the dry renewal runs against a
		// fresh local CA, and the verify step serves the certificate on a
		// loopback port and checks it like a browser trusting the test root.
		Servers: func(ctx context.Context, iss *acmeflow.Issued) []wizard.InstallTarget {
			snip, err := wizardSnippet(st, iss, deploy.Nginx, deploy.DetectDistro("/"))
			if err != nil {
				return nil
			}
			return []wizard.InstallTarget{{Kind: "nginx", Snippet: snip, Note: "the demo never changes your web servers"}}
		},
		DryRenew: wizardDryRenew(st),
		Verify: wizardVerify(func() *x509.CertPool {
			pool := x509.NewCertPool()
			if ca, err := openLocal(); err == nil {
				pool.AppendCertsFromPEM(ca.RootPEM)
			}
			return pool
		}, demoServeTarget(st)),
	}
}
