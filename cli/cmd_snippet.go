package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"

	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/deploy"
	"github.com/ipcert/ipcert/internal/store"
)

const snippetHelp = `
ipcert snippet: the config that serves a certificate on its IP addresses,
with Mozilla's "intermediate" TLS settings, for a web server (nginx, apache,
haproxy, caddy, lighttpd: also a port-80 server that keeps
/.well-known/acme-challenge/ answering from the web root and redirects
everything else to HTTPS) or a TLS service (dnsdist and unbound and
knot-resolver for DNS over TLS, cockpit, stunnel).

Usage:
  ipcert snippet SERVICE [NAME] [--write] [flags]
  SERVICE: nginx apache haproxy caddy lighttpd dnsdist unbound knot-resolver cockpit stunnel

NAME is the certificate's name (ipcert status lists them); it may be left
out when there is only one.

Without --write the config is printed on stdout, to read or to place by
hand. With --write ipcert installs it for the server found on this machine:
it runs the server's config test first, writes the file (keeping a backup of
the one it replaces, in the state directory), tests again, and reloads only
when the test passes; when it fails, the previous file comes back. It never
edits a file it did not write: when the server's main config does not read
the new file yet, it says which line to add where.

HAProxy reads certificate and key from one file: "snippet haproxy" turns on
combined.pem for this certificate (now and at every renewal). A service that
reads its files as its own user (caddy, lighttpd, dnsdist, knot-resolver,
stunnel) gets a copy readable by its group, which every renewal refreshes
before the service is told. What makes each serve a new certificate: a
reload (nginx, apache, haproxy, caddy, lighttpd), SIGHUP (stunnel), the
console (dnsdist), or a restart, which drops connections for a moment
(unbound, knot-resolver, cockpit). docs/services.md has the details.

Examples:
  ipcert snippet nginx 203.0.113.7
  sudo ipcert snippet nginx 203.0.113.7 --write
  sudo ipcert snippet apache --write --webroot /srv/www
  ipcert snippet haproxy 203.0.113.7 --upstream 127.0.0.1:8080

Exit codes: 0 done; 1 the install failed (the message says why and what was
restored); 2 bad arguments or a refused value.
`

func init() {
	register(command{name: "snippet", summary: "web server config for a certificate (--write installs it)", run: runSnippet})
}

// deployPickName returns the certificate for arg (a name or an address,
// through the lookup every command shares, store.Find), or the only one.
func deployPickName(st *store.Store, arg, cmd string) (string, error) {
	f, err := st.Find(store.Query{Arg: arg})
	if err != nil {
		if arg == "" {
			return "", fmt.Errorf("%v: ipcert %s NAME", err, cmd)
		}
		return "", err
	}
	switch {
	case f.Name == "":
		return "", fmt.Errorf("no stored certificate covers %s; ipcert status lists them", f.Addr.Addr())
	case f.Ambiguous():
		return "", fmt.Errorf("several certificates cover %s (%s); say which: ipcert %s NAME", f.Addr.Addr(), strings.Join(f.Candidates, ", "), cmd)
	}
	return f.Name, nil
}

type snippetOut struct {
	Kind    string                `json:"kind"`
	Name    string                `json:"name"`
	Path    string                `json:"path"` // where --write puts it
	Snippet string                `json:"snippet"`
	Install *deploy.InstallResult `json:"install,omitempty"`
	// Service is what the service manager said (reload only when active).
	Service *deploy.ServiceState `json:"service,omitempty"`
	Error   string               `json:"error,omitempty"`
}

func runSnippet(ctx context.Context, args []string, s stdio) error {
	var cf commonFlags
	fs := newFlagSet("snippet", snippetHelp, s.Out, s.Err)
	cf.register(fs)
	write := fs.Bool("write", false, "install it for the web server found here: test, back up, write, test, reload (or restore)")
	webroot := fs.String("webroot", "", "document root served over HTTPS and for the challenge path (default: the certificate's --webroot, else the distribution's)")
	httpsPort := fs.Int("https-port", 0, "HTTPS (TLS) port (default 443; dnsdist, unbound, knot-resolver 853; cockpit 9090)")
	httpPort := fs.Int("http-port", 80, "plain HTTP port (challenge path and redirect)")
	distroFlag := fs.String("distro", "", "debian or rhel: file locations and defaults (default: from /etc/os-release)")
	upstream := fs.String("upstream", "", "haproxy, stunnel: IP:PORT of the server behind it (default "+deploy.DefaultUpstream+")")
	noReload := fs.Bool("no-reload", false, "with --write: install and test, but do not reload")
	pos, err := parseArgs(fs, args, s.Env)
	if err != nil {
		return err
	}
	if len(pos) == 0 || len(pos) > 2 {
		return usageErr("%s", "say which service and (when there are several) which certificate: ipcert snippet SERVICE [NAME], SERVICE one of: "+strings.Join(kindNames(), " "))
	}
	kind, err := deploy.ParseKind(pos[0])
	if err != nil {
		return usageErr("%v", err)
	}
	distro := deploy.DetectDistro("/")
	if *distroFlag != "" {
		if distro, err = deploy.ParseDistro(*distroFlag); err != nil {
			return usageErr("--distro: %v", err)
		}
	}
	closeLog := setupDebugLog(cf.debug, s.Err)
	defer closeLog()
	st, err := cf.openStore(s.Env)
	if err != nil {
		return failure("%v", err)
	}
	var nameArg string
	if len(pos) == 2 {
		nameArg = pos[1]
	}
	name, err := deployPickName(st, nameArg, "snippet "+string(kind))
	if err != nil {
		return usageErr("%v", err)
	}
	r, err := st.LoadRenewal(name)
	if err != nil {
		return failure("%v", err)
	}
	if err := st.CheckCurrent(name); err != nil {
		// A config pointing at a broken link would fail the server's own
		// config test at best, and its next restart at worst.
		if *write {
			return failure("not written: the certificate's current version is broken (%v); repair it first with: sudo ipcert renew --force %s%s", err, name, userStateFlag(st.Root()))
		}
		fmt.Fprintf(s.Err, "Warning: the certificate's current version is broken (%v); the config below will not work until: sudo ipcert renew --force %s%s\n", err, name, userStateFlag(st.Root()))
	}
	wr := *webroot
	if wr == "" {
		wr = r.WebRoot
	}
	layout := deploy.LayoutFor(kind, distro, name)
	certDir, copyGroup := snippetCertDir(st, name, layout)
	if *httpsPort == 0 {
		*httpsPort = layout.Service.Port
	}
	params := deploy.SnippetParams{
		Name: name, Identifiers: r.Identifiers, CertDir: certDir, CopyGroup: copyGroup, WebRoot: wr,
		HTTPSPort: *httpsPort, HTTPPort: *httpPort, Distro: distro, Upstream: *upstream,
		NotLocal: snippetNotLocal(r.Identifiers), Systemd: deploy.TimerSystemdRunning("/"),
	}
	if kind == deploy.Unbound {
		// Whether any other interface: line is set (else the snippet
		// keeps unbound answering on localhost).
		if out, err := (deploy.ExecRunner{}).Run(ctx, deploy.Cmd{Path: "unbound-checkconf", Args: []string{"-o", "interface"}}); err == nil {
			params.KeepLocalhost = deploy.UnboundKeepsLocalhost(out, layout.ConfigPath)
		} else {
			fmt.Fprintf(s.Err, "Note: unbound-checkconf could not list unbound's interfaces (%v); if no interface: line is set elsewhere, add \"interface: 127.0.0.1\" and \"interface: ::1\" or unbound stops answering on localhost.\n", err)
		}
	}
	if kind == deploy.Dnsdist {
		// The console key of the file already installed, so a rewrite
		// keeps the running dnsdist reachable; else a new one.
		if params.ConsoleKey, err = deploy.DnsdistConsoleKey(layout.ConfigPath); err != nil {
			return failure("%v", err)
		}
	}
	for _, a := range params.NotLocal {
		fmt.Fprintf(s.Err, "Note: %s is not on a local interface (1:1 NAT, as on most clouds): the config listens on every address of its family, as the default server.\n", a)
	}
	snip, err := deploy.Snippet(kind, params)
	if err != nil {
		return usageErr("%v", err)
	}
	out := snippetOut{Kind: string(kind), Name: name, Path: layout.ConfigPath, Snippet: string(snip)}

	hint := snippetHint{stateDir: st.Root(), flags: snippetRepeatFlags(fs), webroot: wr, httpPort: *httpPort}
	if hint.webroot == "" {
		hint.webroot = layout.WebRoot
	}
	if layout.Service.Web {
		snippetWarnChallenge(s.Err, r, *httpPort, *httpsPort, hint)
	} else {
		// A TLS service holds its TLS port only, never port 80.
		snippetWarnChallenge(s.Err, r, 0, *httpsPort, hint)
	}

	if !*write {
		// Printing for HAProxy turns combined.pem on: the printed config
		// names it, and renewals must keep writing it.
		if kind == deploy.HAProxy {
			if err := deploy.RecordSnippet(ctx, st, name, kind, deploy.SnippetSettings{Combined: true}, s.Err); err != nil {
				return lockFailure(err)
			}
		}
		if cf.jsonOut {
			return writeJSON(s.Out, out)
		}
		s.Out.Write(snip)
		if copyGroup != "" {
			fmt.Fprintf(s.Err, "\n%s runs as user %s, which cannot read ipcert's private state: the config names a copy in %s, readable by group %s, that --write makes and every renewal refreshes.", kind, layout.User, certDir, copyGroup)
		}
		fmt.Fprintf(s.Err, "\nTo install it: sudo %s  (writes %s, tests, reloads)\n", hint.snippet(kind, name, "--write"), layout.ConfigPath)
		return nil
	}

	srv, err := deploy.DetectServer(ctx, deploy.Env{}, kind)
	if err != nil {
		return failure("%v", err)
	}
	if *distroFlag == "" {
		srv.Distro = distro
	}
	layout = srv.Layout(name)
	out.Path = layout.ConfigPath
	// --write is the user's go-ahead to enable what the snippet needs
	// (Debian's apache2 ships without mod_ssl); the wizard asks first.
	res, svc, err := deploy.InstallSnippet(ctx, st, name, srv, snip, deploy.InstallSnippetOptions{Reload: !*noReload, EnableModules: true, Notes: s.Err})
	out.Install = &res
	out.Service = &svc
	if errors.Is(err, store.ErrLocked) {
		return exitWith(exitLocked, "%v", err)
	}
	if err != nil {
		out.Error = err.Error()
	}
	if cf.jsonOut {
		printJSON(s.Out, out)
	} else {
		snippetPrintInstall(s.Out, res, err, layout, snippetVerifyTarget(r.Identifiers[0], *httpsPort), hint, layout.ApplyCmd(srv.Systemd))
	}
	if err != nil {
		return failure("%v", err)
	}
	if res.Changed && !res.Reloaded && !*noReload && !res.IncludeNeeded && !cf.jsonOut {
		snippetNotReloaded(s.Out, srv, svc, layout)
	}
	return nil
}

// snippetCertDir is the directory the snippet names: the current link,
// or, for a server reading as its own user (Caddy), the copy ipcert keeps
// for its group (deploy.CopyForGroup) with that group.
func snippetCertDir(st *store.Store, name string, l deploy.Layout) (dir, group string) {
	if l.CopyDir != "" && l.Kind != deploy.Cockpit {
		return l.CopyDir, l.Group
	}
	return st.CurrentDir(name), ""
}

// snippetNotReloaded says why nothing was reloaded and what to do.
func snippetNotReloaded(w io.Writer, srv deploy.Server, svc deploy.ServiceState, l deploy.Layout) {
	start := "sudo systemctl start " + l.Unit
	if strings.Contains(l.Unit, "@") {
		// A unit of its own for this certificate (stunnel@ipcert-NAME):
		// enabled, so it comes back after a reboot.
		start = "sudo systemctl enable --now " + l.Unit
	}
	if svc.Manager == "sysv" {
		start = "sudo service " + l.Service.SysVName() + " start"
	}
	fmt.Fprintf(w, "\nNot reloaded: %s.\n", svc)
	if srv.Running {
		fmt.Fprintf(w, "Some %s process is running that the service manager did not start (a private instance?); ipcert did not signal it: reload it yourself if it should read this file.\n", srv.Kind)
	}
	switch svc.Manager {
	case "":
		fmt.Fprintf(w, "Reload the server yourself once it runs: %s\n", l.ReloadCmd(false))
	default:
		fmt.Fprintf(w, "The system service serves the certificate once started: %s\n", start)
	}
}

// snippetNotLocal lists the identifiers no local interface carries: the
// public address of a cloud VM behind 1:1 NAT (docs/letsencrypt.md). When the
// interfaces cannot be read, none is marked.
func snippetNotLocal(ids []string) []string {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	local := map[netip.Addr]bool{}
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			local[p.Addr().Unmap()] = true
		}
	}
	var out []string
	for _, id := range ids {
		if a, err := netip.ParseAddr(id); err == nil && !local[a] {
			out = append(out, id)
		}
	}
	return out
}

// snippetVerifyTarget is the verify argument for an address and port.
func snippetVerifyTarget(id string, port int) string {
	if strings.Contains(id, ":") {
		if port == 443 {
			return id
		}
		return fmt.Sprintf("[%s]:%d", id, port)
	}
	if port == 443 {
		return id
	}
	return fmt.Sprintf("%s:%d", id, port)
}

// snippetWarnChallenge: once a web server owns port 80 (or 443), ipcert's
// own responder cannot bind it at renewal time; the renewal must answer
// through the web root instead.
func snippetWarnChallenge(w io.Writer, r *store.Renewal, httpPort, httpsPort int, h snippetHint) {
	switch {
	case r.Challenge == "http-01" && r.WebRoot == "" && httpPort == 80:
		fmt.Fprintf(w, "Note: %s renews with ipcert's own responder on port 80, which this web server will hold.\n"+
			"Switch it to the web root once: %s\n", r.Name, h.issue(r))
	case r.Challenge == "tls-alpn-01" && httpsPort == 443:
		fmt.Fprintf(w, "Note: %s renews with tls-alpn-01 on port 443, which this web server will hold.\n"+
			"Switch it to http-01 through the web root once: %s\n", r.Name, h.issue(r))
	}
}

// snippetHint builds the next commands snippet prints, repeating the
// flags that matter: followed without them, a command acts on another
// state directory (sudo's default /etc/ipcert) or writes other ports.
type snippetHint struct {
	stateDir string
	flags    []string // the snippet flags given, as --name=value
	webroot  string
	httpPort int
}

// snippetRepeatFlags are the flags given to this snippet command that the
// printed --write command must repeat (everything but --write and --json).
func snippetRepeatFlags(fs *flag.FlagSet) []string {
	var out []string
	fs.Visit(func(f *flag.Flag) {
		switch f.Name {
		case "write", "json", "state-dir", "debug", "quiet":
			return
		}
		if b, ok := f.Value.(interface{ IsBoolFlag() bool }); ok && b.IsBoolFlag() {
			if f.Value.String() == "true" {
				out = append(out, "--"+f.Name)
			}
			return
		}
		out = append(out, "--"+f.Name+" "+shellWord(f.Value.String()))
	})
	return out
}

// stateFlag is --state-dir DIR unless the state is sudo's default.
func (h snippetHint) stateFlag() string { return sudoStateFlag(h.stateDir) }

// sudoStateFlag is " --state-dir DIR" for a command printed with sudo,
// unless root is root's default (sudo does not keep IPCERT_STATE_DIR).
func sudoStateFlag(root string) string {
	if root == "" || root == store.DefaultRoot(func(string) string { return "" }, 0) {
		return ""
	}
	return " --state-dir " + shellWord(root)
}

// userStateFlag is the same for a command this user runs without sudo.
func userStateFlag(root string) string {
	def := store.DefaultRoot(func(k string) string {
		if k == "IPCERT_STATE_DIR" {
			return ""
		}
		return os.Getenv(k)
	}, os.Geteuid())
	if root == "" || root == def {
		return ""
	}
	return " --state-dir " + shellWord(root)
}

func (h snippetHint) snippet(kind deploy.Kind, name string, extra ...string) string {
	parts := append([]string{"ipcert snippet", string(kind), name}, extra...)
	parts = append(parts, h.flags...)
	return strings.Join(parts, " ") + h.stateFlag()
}

// issue is the command that switches r to http-01 through the web root
// this snippet serves, with the same CA and name (and, for the local test
// CA, the port the web server serves plain HTTP on).
func (h snippetHint) issue(r *store.Renewal) string {
	cmd := fmt.Sprintf("sudo ipcert issue --ip %s --webroot %s --ca %s --name %s", strings.Join(r.Identifiers, " --ip "), shellWord(h.webroot), shellWord(string(r.CA)), r.Name)
	if cachoice.IsLocal(r.CA) {
		cmd += fmt.Sprintf(" --webroot-port %d --agree-tos", h.httpPort)
	}
	return cmd + h.stateFlag()
}

// shellWord quotes s for a shell when it needs it.
func shellWord(s string) string { return deploy.Cmd{Path: s}.String() }

func snippetPrintInstall(w io.Writer, res deploy.InstallResult, err error, l deploy.Layout, addr string, h snippetHint, reload deploy.Cmd) {
	switch {
	case res.RolledBack:
		fmt.Fprintf(w, "Not installed: the config test failed with it, so %s is as it was and nothing was reloaded.\n", res.Path)
		return
	case err != nil && !res.Changed:
		return // nothing happened; the error on stderr says why
	case !res.Changed:
		fmt.Fprintf(w, "%s is unchanged; nothing to do.\n", res.Path)
	default:
		fmt.Fprintf(w, "Wrote %s\n", res.Path)
	}
	if res.Backup != "" {
		fmt.Fprintf(w, "  previous version kept in %s\n", res.Backup)
	}
	if len(res.ModulesEnabled) > 0 {
		fmt.Fprintf(w, "  enabled the modules it needs: %s %s\n", l.EnableModules, strings.Join(res.ModulesEnabled, " "))
	}
	if res.LinkCreated {
		fmt.Fprintf(w, "  enabled it with the link %s\n", l.EnableLink)
	}
	if res.Tested {
		fmt.Fprintf(w, "  config test passed (%s)\n", l.TestCmd())
	}
	if res.IncludeNeeded {
		fmt.Fprintf(w, "\n%s does not read it yet. Add this line to %s:\n\n    %s\n\nthen reload: sudo %s (ipcert never edits files it did not write).\n", l.Unit, res.IncludeFile, res.IncludeLine, reload)
		return
	}
	if res.Reloaded {
		fmt.Fprintf(w, "  reloaded %s\n\nCheck what it serves: ipcert verify %s%s\n", l.Unit, addr, h.stateFlag())
	}
}
