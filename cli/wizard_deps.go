package cli

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/deploy"
	"github.com/ipcert/ipcert/diagnosis"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/preflight"
	"github.com/ipcert/ipcert/renew"
	"github.com/ipcert/ipcert/ui"
	"github.com/ipcert/ipcert/wizard"
)

// The one place wizard.Deps is built (wizardDeps), for "ipcert wizard"
// and "ipcert demo", with the adapters it needs: each wires the wizard to
// the packages (preflight, cachoice, acmeflow, deploy, renew) the way the
// preflight, issue, snippet, timer, renew and verify commands use them.
// Nothing here prints: the wizard draws the reports.

// wizardWiring is what differs between the wizard and the demo.
type wizardWiring struct {
	// Demo wires the local test CA only: 127.0.0.1 is the address
	// "found", preflight runs only the local checks against the ports the
	// CA validates on, nothing is installed, and nothing leaves the
	// machine.
	Demo bool
	// Store is the state directory; Rehearsal (not in the demo) the
	// separate store of the staging rehearsal before production.
	Store, Rehearsal *store.Store
	// Getenv reads the IPCERT_* address-source overrides (not the demo).
	Getenv func(string) string
}

// wizardDeps builds the wizard's connections to the world.
func wizardDeps(w wizardWiring) (wizard.Deps, error) {
	st := w.Store
	env := preflight.DefaultEnv()
	if !w.Demo {
		var err error
		if env, err = wizardPreflightEnv(w.Getenv); err != nil {
			return wizard.Deps{}, err
		}
	}
	eng := &acmeflow.Engine{Store: st, UserAgent: "ipcert/" + version}
	d := wizard.Deps{
		Machine:       wizardMachine(env, st, w.Demo),
		LocalAddrs:    func() ([]preflight.IfaceAddr, error) { return preflight.LocalAddrs(env) },
		Issuer:        eng,
		Store:         st,
		RecordFailure: wizardRecordFailure(eng),
		DryRenew:      wizardDryRenew(st),
	}
	if !w.Demo {
		d.DetectPublic = func(ctx context.Context) preflight.PublicAddrs { return preflight.DetectPublic(ctx, env) }
		d.Preflight = func(ctx context.Context, req wizard.PreflightRequest, progress func(preflight.Event)) preflight.Report {
			opts := preflight.Options{IPs: req.Addrs, MapPorts: req.MapPorts, OwnCA: req.OwnCA, SelfFetch: true}
			if req.Internal {
				// An own CA on the internal network: nothing to check on
				// the internet's side, and nothing is sent there.
				opts.Only, opts.SelfFetch, opts.MapPorts = wizard.InternalChecks, false, false
			}
			return preflight.Run(ctx, env, opts, progress)
		}
		// As "ipcert issue --ca CHOICE --ca-root FILE" opens it.
		d.OpenCA = func(choice, rootFile string) (*cachoice.CA, error) {
			return cachoice.Open(spec.CAChoice(choice), cachoice.Options{RootFile: rootFile, Log: debugWriter()})
		}
		d.Rehearsal = &acmeflow.Engine{Store: w.Rehearsal, UserAgent: "ipcert/" + version}
		d.RehearsalStore = w.Rehearsal
		rc := &reloadClock{}
		d.Servers, d.Install = wizardServers(st), wizardInstall(st, rc)
		d.Timer = wizardTimer(st)
		d.Verify = wizardVerifyAfter(systemRoots, wizardVerifyTarget, rc)
		return d, nil
	}
	// One Pebble for the whole demo, started in the background at once so
	// the first frame does not wait for it.
	openLocal := sync.OnceValues(func() (*cachoice.CA, error) {
		return cachoice.Open(cachoice.Local, cachoice.Options{Log: debugWriter()})
	})
	go openLocal()
	d.DetectPublic = func(ctx context.Context) preflight.PublicAddrs {
		lo := netip.MustParseAddr("127.0.0.1")
		return preflight.PublicAddrs{V4: preflight.FamilyResult{
			Family: "ipv4", Addr: lo, Votes: 1, Answered: 1, Asked: 1,
			Sources: []preflight.SourceAnswer{{Kind: "demo", Source: "the demo's test CA (it validates over loopback)", Addr: lo}},
		}}
	}
	d.Preflight = func(ctx context.Context, req wizard.PreflightRequest, progress func(preflight.Event)) preflight.Report {
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
	}
	d.OpenCA = func(choice, _ string) (*cachoice.CA, error) {
		if choice != cachoice.Local {
			return nil, fmt.Errorf("the demo uses only the local test CA, not %q", choice)
		}
		return openLocal()
	}
	// The demo shows the nginx snippet but never touches the web servers
	// or the system's timers; the dry renewal runs against a fresh local
	// CA, and the verify step serves the certificate on a loopback port
	// and checks it like a browser trusting the test root.
	d.Servers = func(ctx context.Context, iss *acmeflow.Issued) []wizard.InstallTarget {
		snip, err := wizardSnippet(st, iss, deploy.Nginx, deploy.DetectDistro("/"))
		if err != nil {
			return nil
		}
		return []wizard.InstallTarget{{Kind: "nginx", Snippet: snip, Note: "the demo never changes your web servers"}}
	}
	d.Verify = wizardVerify(func() *x509.CertPool {
		pool := x509.NewCertPool()
		if ca, err := openLocal(); err == nil {
			pool.AppendCertsFromPEM(ca.RootPEM)
		}
		return pool
	}, demoServeTarget(st))
	return d, nil
}

// wizardPreflightEnv is the real preflight environment, with the
// public-address sources replaced by IPCERT_ECHO4/ECHO6/DNS4/DNS6/STUN4/
// STUN6 (comma-separated) when set, as for "ipcert issue --ip auto".
func wizardPreflightEnv(getenv func(string) string) (preflight.Env, error) {
	return publicEnv(getenv)
}

func wizardMachine(env preflight.Env, st *store.Store, demo bool) func(context.Context) wizard.Machine {
	return func(ctx context.Context) wizard.Machine {
		var managed []wizard.ManagedCert
		if names, err := st.CertNames(); err == nil && !demo {
			for _, n := range names {
				r, err := st.LoadRenewal(n)
				if err != nil || r.CA == cachoice.Local || r.Cluster {
					continue
				}
				mc := wizard.ManagedCert{Name: n}
				for _, id := range r.Identifiers {
					if a, err := netip.ParseAddr(id); err == nil {
						mc.Addrs = append(mc.Addrs, a)
					}
				}
				managed = append(managed, mc)
			}
		}
		priv := preflight.ReadPrivilege(env, 80)
		_, err := os.Stat("/run/systemd/system")
		bin, _ := os.Executable()
		if b, err := filepath.EvalSymlinks(bin); err == nil {
			bin = b
		}
		return wizard.Machine{
			UID: priv.UID, CanBindLow: priv.CanBind, Systemd: err == nil, Cron: cronRuns("/proc"), Binary: bin,
			WebServers: preflight.FindWebServers(ctx, env), Managed: managed,
		}
	}
}

func wizardRecordFailure(eng *acmeflow.Engine) func(string, error) error {
	return func(name string, err error) error {
		// The evidence the wizard showed its diagnosis with travels with
		// the error (diagnosis.WithEvidence): the record is that diagnosis.
		d := diagnosis.Diagnose(err, diagnosis.EvidenceOf(err, diagnosis.Evidence{Now: time.Now()}))
		return eng.RecordFailure(name, d.Failure(time.Now()))
	}
}

// wizardSnippet is the snippet for kind serving iss.
func wizardSnippet(st *store.Store, iss *acmeflow.Issued, kind deploy.Kind, distro deploy.Distro) (string, error) {
	r := iss.Renewal
	layout := deploy.LayoutFor(kind, distro, iss.Name)
	certDir, group := snippetCertDir(st, iss.Name, layout)
	p := deploy.SnippetParams{
		Name: iss.Name, Identifiers: r.Identifiers, CertDir: certDir, CopyGroup: group, WebRoot: r.WebRoot, Distro: distro,
		Systemd: deploy.TimerSystemdRunning("/"),
	}
	if kind == deploy.Unbound {
		if out, err := (deploy.ExecRunner{}).Run(context.Background(), deploy.Cmd{Path: "unbound-checkconf", Args: []string{"-o", "interface"}}); err == nil {
			p.KeepLocalhost = deploy.UnboundKeepsLocalhost(out, layout.ConfigPath)
		}
	}
	if kind == deploy.Dnsdist {
		key, err := deploy.DnsdistConsoleKey(layout.ConfigPath)
		if err != nil {
			return "", err
		}
		p.ConsoleKey = key
	}
	b, err := deploy.Snippet(kind, p)
	return string(b), err
}

func wizardServers(st *store.Store) func(context.Context, *acmeflow.Issued) []wizard.InstallTarget {
	return func(ctx context.Context, iss *acmeflow.Issued) []wizard.InstallTarget {
		var out []wizard.InstallTarget
		for _, srv := range deploy.DetectServers(ctx, deploy.Env{}) {
			if !srv.Running && !deploy.LayoutFor(srv.Kind, srv.Distro, iss.Name).Service.Web {
				// A DNS resolver, Cockpit or stunnel only when it runs
				// here: installed is not a wish to serve it.
				continue
			}
			snip, err := wizardSnippet(st, iss, srv.Kind, srv.Distro)
			if err != nil {
				continue
			}
			layout := srv.Layout(iss.Name)
			t := wizard.InstallTarget{Kind: string(srv.Kind), Running: srv.Running, ConfigPath: layout.ConfigPath, Snippet: snip, CanInstall: os.Geteuid() == 0, WebRoot: iss.Renewal.WebRoot}
			if t.WebRoot == "" {
				t.WebRoot = layout.WebRoot // what the snippet serves (wizardSnippet)
			}
			if !t.CanInstall {
				t.Note = "installing needs root: sudo ipcert snippet " + string(srv.Kind) + " " + iss.Name + wizard.StateArg(st.Root()) + " --write"
			}
			out = append(out, t)
		}
		return out
	}
}

// wizardInstall does what "ipcert snippet KIND NAME --write" does.
func wizardInstall(st *store.Store, rc *reloadClock) func(context.Context, *acmeflow.Issued, wizard.InstallTarget) wizard.Report {
	return func(ctx context.Context, iss *acmeflow.Issued, t wizard.InstallTarget) wizard.Report {
		kind, err := deploy.ParseKind(t.Kind)
		if err != nil {
			return wizard.Report{Status: ui.Fail, Summary: err.Error()}
		}
		srv, err := deploy.DetectServer(ctx, deploy.Env{}, kind)
		if err != nil {
			return wizard.Report{Status: ui.Fail, Summary: err.Error()}
		}
		snip, err := wizardSnippet(st, iss, kind, srv.Distro)
		if err != nil {
			return wizard.Report{Status: ui.Fail, Summary: err.Error()}
		}
		layout := srv.Layout(iss.Name)
		// The same install as "snippet --write" (deploy.InstallSnippet): renewal.json
		// changes only when it succeeded; its messages are collected, not
		// printed over the UI.
		var msgs bytes.Buffer
		res, svc, err := deploy.InstallSnippet(ctx, st, iss.Name, srv, []byte(snip), deploy.InstallSnippetOptions{Reload: true, Notes: &msgs})
		rep := wizard.Report{Status: ui.OK, Summary: fmt.Sprintf("%s: %s installed", t.Kind, layout.ConfigPath)}
		if res.Changed {
			rep.Lines = append(rep.Lines, "wrote "+res.Path)
		} else {
			rep.Lines = append(rep.Lines, res.Path+" unchanged")
		}
		if res.Backup != "" {
			rep.Lines = append(rep.Lines, "the previous file is kept as "+res.Backup)
		}
		if res.Tested {
			rep.Lines = append(rep.Lines, "config test passed: "+layout.TestCmd().String())
		}
		switch {
		case err != nil:
			rep.Status, rep.Summary = ui.Fail, fmt.Sprintf("%s: not installed: %v", t.Kind, err)
			rep.Lines = append(rep.Lines, wizardLines(res.TestOutput)...)
			if res.RolledBack {
				rep.Lines = append(rep.Lines, "the previous configuration was restored")
			}
			rep.Fix = "read the config test's output above, then: sudo ipcert snippet " + t.Kind + " " + iss.Name + wizard.StateArg(st.Root()) + " --write"
		case res.IncludeNeeded:
			rep.Status = ui.Warn
			rep.Summary = fmt.Sprintf("%s: written, but its main config does not read it yet", t.Kind)
			rep.Fix = fmt.Sprintf("add %q to %s, then reload %s", res.IncludeLine, res.IncludeFile, t.Kind)
		case res.Reloaded:
			rc.mark()
			rep.Summary = fmt.Sprintf("%s serves the certificate (config tested, reloaded)", t.Kind)
		case !svc.Active:
			rep.Status = ui.Warn
			rep.Summary = fmt.Sprintf("%s: installed; not reloaded: %s", t.Kind, svc)
			rep.Fix = "start it: sudo systemctl start " + layout.Unit
		}
		return rep
	}
}

func wizardLines(s string) []string {
	var out []string
	for _, l := range strings.Split(strings.TrimSpace(s), "\n") {
		if l = strings.TrimSpace(l); l != "" {
			out = append(out, l)
		}
		if len(out) == 6 {
			break
		}
	}
	return out
}

// wizardTimer does what "ipcert timer install" does.
func wizardTimer(st *store.Store) func(context.Context, *acmeflow.Issued) wizard.Report {
	return func(ctx context.Context, iss *acmeflow.Issued) wizard.Report {
		bin, err := os.Executable()
		if err == nil {
			bin, err = filepath.EvalSymlinks(bin)
		}
		if err != nil {
			return wizard.Report{Status: ui.Fail, Summary: "cannot find the ipcert binary: " + err.Error(), Fix: "sudo ipcert timer install" + wizard.StateArg(st.Root())}
		}
		o := deploy.TimerOptions{Mode: deploy.TimerAuto, Config: deploy.TimerConfig{Binary: bin, StateDir: st.Root(), WritablePaths: timerWebroots(st, nil), Minute: -1}}
		res, err := deploy.TimerInstall(ctx, o)
		if err != nil {
			return wizard.Report{Status: ui.Fail, Summary: "renewal timer not installed: " + err.Error(), Fix: "sudo ipcert timer install" + wizard.StateArg(st.Root()) + timerPermissionHint(err)}
		}
		rep := wizard.Report{Status: ui.OK, Summary: fmt.Sprintf("renewal job installed (%s)", res.Mode), Lines: res.Files}
		if res.Unchanged {
			rep.Summary = fmt.Sprintf("renewal job already installed (%s), unchanged", res.Mode)
		}
		// Installed is not running: say what would keep the job from it.
		if res.Mode == deploy.TimerCron && !cronRuns("/proc") {
			rep.Status = ui.Warn
			rep.Lines = append(rep.Lines, "no cron daemon runs on this machine: the job does not run until one does")
			rep.Fix = "install and start cron (Debian: sudo apt install cron)"
		}
		if wizard.TempBinary(bin) {
			rep.Status = ui.Warn
			rep.Lines = append(rep.Lines, "the job runs "+bin+", in a temporary folder: it may be gone after a reboot")
			rep.Fix = "sudo install -m 0755 " + shellWord(bin) + " /usr/local/bin/ipcert && sudo /usr/local/bin/ipcert timer install" + wizard.StateArg(st.Root())
		}
		return rep
	}
}

// wizardDryRenew does what "ipcert renew --dry-run NAME" does: a renewal
// against staging (or a fresh local CA) whose certificate is thrown away.
func wizardDryRenew(st *store.Store) func(context.Context, *acmeflow.Issued) wizard.Report {
	return func(ctx context.Context, iss *acmeflow.Issued) wizard.Report {
		cas := &renew.CAs{Store: st, UserAgent: "ipcert/" + version, Log: debugWriter()}
		defer cas.Close()
		rn := &renew.Runner{Store: st, Issuer: renew.NewIssuer(cas), Rehearsal: renew.NewRehearsal(cas), LockWait: 30 * time.Second}
		res, err := rn.Run(ctx, renew.Options{Names: []string{iss.Name}, DryRun: true})
		if err != nil {
			return wizard.Report{Status: ui.Fail, Summary: "dry renewal failed: " + err.Error(), Fix: "sudo ipcert renew --dry-run" + wizard.StateArg(st.Root()) + " " + iss.Name}
		}
		if len(res.Certs) == 0 {
			return wizard.Report{Status: ui.Fail, Summary: "the dry renewal did not run", Fix: "sudo ipcert renew --dry-run" + wizard.StateArg(st.Root()) + " " + iss.Name}
		}
		c := res.Certs[0]
		if c.Outcome == renew.Rehearsed {
			return wizard.Report{Status: ui.OK, Summary: fmt.Sprintf("dry renewal worked (%s issued; nothing kept)", shortRehearsalCA(iss.Renewal.CA))}
		}
		return wizard.Report{Status: ui.Fail, Summary: "dry renewal failed: " + c.Reason, Lines: wizardLines(c.Error), Fix: "ipcert doctor" + wizard.StateArg(st.Root()) + " " + iss.Name}
	}
}

func shortRehearsalCA(choice spec.CAChoice) string {
	switch renew.RehearsalCA(choice) {
	case "staging":
		return "Let's Encrypt staging"
	case cachoice.Local:
		return "a fresh local test CA"
	}
	return string(renew.RehearsalCA(choice))
}

// wizardVerify does what "ipcert verify ADDR" does, for the first address
// on port 443, with roots (nil: the system's, like a browser).
// systemRoots trusts what a browser trusts.
func systemRoots() *x509.CertPool { return nil }

func wizardVerify(roots func() *x509.CertPool, target func(*acmeflow.Issued) (string, func(), error)) func(context.Context, *acmeflow.Issued) wizard.Report {
	return wizardVerifyAfter(roots, target, nil)
}

// reloadClock is when the wizard's install last reloaded a web server.
type reloadClock struct{ at atomic.Int64 }

func (c *reloadClock) mark() {
	if c != nil {
		c.at.Store(time.Now().UnixNano())
	}
}

// recent: a reload happened less than d ago.
func (c *reloadClock) recent(d time.Duration) bool {
	return c != nil && c.at.Load() != 0 && time.Since(time.Unix(0, c.at.Load())) < d
}

// wizardVerifyAfter checks what addr serves: once, or, right after the
// install reloaded a web server (rc), again and again for the reload's
// grace (deploy.WaitServed); a refused connection with nothing reloaded
// is the answer at once (issue 24 item 10). The time it took is said.
func wizardVerifyAfter(roots func() *x509.CertPool, target func(*acmeflow.Issued) (string, func(), error), rc *reloadClock) func(context.Context, *acmeflow.Issued) wizard.Report {
	return func(ctx context.Context, iss *acmeflow.Issued) wizard.Report {
		addr, done, err := target(iss)
		if err != nil {
			return wizard.Report{Status: ui.Fail, Summary: err.Error()}
		}
		defer done()
		pool, rootArg := roots(), ""
		if r := iss.Renewal; r != nil && r.CARoot != "" && cachoice.IsOwn(r.CA) {
			// An own ACME CA: its browsers trust its root, the --ca-root
			// (step-ca signs its HTTPS and its certificates under the same
			// root), as "ipcert verify ADDR --root FILE" does.
			if p, err := deploy.LoadRoots(r.CARoot); err == nil {
				pool, rootArg = p, " --root "+r.CARoot
			}
		}
		start := time.Now()
		var res deploy.VerifyResult
		if rc.recent(deploy.ReloadGrace) {
			// Right after the reload: give the server its grace to pick
			// the new certificate up (deploy.ReloadGrace).
			res, _, err = deploy.WaitServed(ctx, addr, iss.Cert.Leaf, 0, deploy.VerifyOptions{Roots: pool})
		} else {
			res, err = deploy.Verify(ctx, addr, deploy.VerifyOptions{Roots: pool, Expected: iss.Cert.Leaf})
		}
		took := fmt.Sprintf("%.1f s", time.Since(start).Seconds())
		if err != nil {
			return wizard.Report{Status: ui.Fail, Summary: err.Error(), Lines: []string{"checked in " + took}}
		}
		rep := wizard.Report{Summary: res.Reason}
		if res.TLSVersion != "" {
			chain := "chain sent"
			if !res.ChainSent {
				chain = "NO chain sent (the config names cert.pem, not fullchain.pem)"
			}
			rep.Lines = append(rep.Lines, fmt.Sprintf("%s, %s, valid for %s more", res.TLSVersion, chain, humanDuration(res.ValidFor)))
		}
		if res.Accepted {
			rep.Lines = append(rep.Lines, "a browser trusting the CA accepts it")
		} else if res.Rejection != "" {
			rep.Lines = append(rep.Lines, "a browser would refuse it: "+res.Rejection)
		}
		switch res.Outcome {
		case deploy.Match:
			rep.Status = ui.OK
		case deploy.Unreachable:
			rep.Status = ui.Fail
			rep.Fix = "install the snippet (the Install step) and make sure the web server runs; then: ipcert verify " + addr + rootArg
		default:
			rep.Status = ui.Fail
			rep.Fix = "reload the web server so it reads the new files, then: ipcert verify " + addr + rootArg
		}
		rep.Lines = append(rep.Lines, "checked in "+took)
		return rep
	}
}

// wizardVerifyTarget is the address a browser would use: the first
// identifier on port 443.
func wizardVerifyTarget(iss *acmeflow.Issued) (string, func(), error) {
	a, err := netip.ParseAddr(iss.Renewal.Identifiers[0])
	if err != nil {
		return "", nil, err
	}
	return netip.AddrPortFrom(a, 443).String(), func() {}, nil
}

// demoServeTarget serves the new certificate on a loopback port for the
// demo's verify step, so the check is a real handshake, like a browser's.
func demoServeTarget(st *store.Store) func(*acmeflow.Issued) (string, func(), error) {
	return func(iss *acmeflow.Issued) (string, func(), error) {
		dir := st.CurrentDir(iss.Name)
		cert, err := tls.LoadX509KeyPair(filepath.Join(dir, store.FullChainFile), filepath.Join(dir, store.KeyFile))
		if err != nil {
			return "", nil, fmt.Errorf("load the certificate to serve it: %w", err)
		}
		l, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
		if err != nil {
			return "", nil, err
		}
		go func() {
			for {
				c, err := l.Accept()
				if err != nil {
					return
				}
				go func(c net.Conn) {
					defer c.Close()
					c.SetDeadline(time.Now().Add(5 * time.Second))
					if tc, ok := c.(*tls.Conn); ok {
						tc.Handshake()
					}
				}(c)
			}
		}()
		return l.Addr().String(), func() { l.Close() }, nil
	}
}

// cronNames are the process names of the cron daemons (Debian's cron,
// cronie's crond, busybox crond, fcron).
var cronNames = map[string]bool{"cron": true, "crond": true, "fcron": true}

// cronRuns says whether a cron daemon runs: a process under proc whose
// name is one of cronNames.
func cronRuns(proc string) bool {
	ents, err := os.ReadDir(proc)
	if err != nil {
		return false
	}
	for _, e := range ents {
		if e.Name()[0] < '0' || e.Name()[0] > '9' {
			continue
		}
		b, err := os.ReadFile(filepath.Join(proc, e.Name(), "comm"))
		if err == nil && cronNames[strings.TrimSpace(string(b))] {
			return true
		}
	}
	return false
}
