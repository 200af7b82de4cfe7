package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/netip"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipcert/ipcert/acmeflow/store"
	"github.com/ipcert/ipcert/deploy"
)

const snippetHelp = `
ipcert snippet: a web server config that serves a certificate over HTTPS on
its IP addresses, with Mozilla's "intermediate" TLS settings, and a port-80
server that keeps /.well-known/acme-challenge/ answering from the web root
and redirects everything else to HTTPS.

Usage:
  ipcert snippet nginx|apache|haproxy|caddy [NAME] [--write] [flags]

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
combined.pem for this certificate (now and at every renewal).

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

// deployParseArgs parses flags that may come before, between or after the
// positional arguments ("snippet nginx NAME --write"), then fills unset
// flags from IPCERT_* variables.
func deployParseArgs(fs *flag.FlagSet, args []string, env func(string) string, errw io.Writer) ([]string, bool, int) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, true, exitOK
			}
			fmt.Fprintf(errw, "Run \"%s --help\" for the flags and examples.\n", fs.Name())
			return nil, true, exitUsage
		}
		rest := fs.Args()
		if len(rest) == 0 {
			break
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
	if done, code := parseFlags(fs, nil, env, errw); done {
		return nil, true, code
	}
	return pos, false, 0
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
	Error   string                `json:"error,omitempty"`
}

func runSnippet(ctx context.Context, args []string, s stdio) int {
	var cf commonFlags
	fs := newFlagSet("snippet", snippetHelp, s.Err)
	cf.register(fs)
	write := fs.Bool("write", false, "install it for the web server found here: test, back up, write, test, reload (or restore)")
	webroot := fs.String("webroot", "", "document root served over HTTPS and for the challenge path (default: the certificate's --webroot, else the distribution's)")
	httpsPort := fs.Int("https-port", 443, "HTTPS port")
	httpPort := fs.Int("http-port", 80, "plain HTTP port (challenge path and redirect)")
	distroFlag := fs.String("distro", "", "debian or rhel: file locations and defaults (default: from /etc/os-release)")
	upstream := fs.String("upstream", "", "haproxy: IP:PORT of the web server behind it (default "+deploy.DefaultUpstream+")")
	noReload := fs.Bool("no-reload", false, "with --write: install and test, but do not reload")
	pos, done, code := deployParseArgs(fs, args, s.Env, s.Err)
	if done {
		return code
	}
	if len(pos) == 0 || len(pos) > 2 {
		fmt.Fprintln(s.Err, "ipcert snippet: say which server and (when there are several) which certificate: ipcert snippet nginx|apache|haproxy|caddy [NAME]")
		return exitUsage
	}
	kind, err := deploy.ParseKind(pos[0])
	if err != nil {
		fmt.Fprintf(s.Err, "ipcert snippet: %v\n", err)
		return exitUsage
	}
	distro := deploy.DetectDistro("/")
	if *distroFlag != "" {
		if distro, err = deploy.ParseDistro(*distroFlag); err != nil {
			fmt.Fprintf(s.Err, "ipcert snippet: --distro: %v\n", err)
			return exitUsage
		}
	}
	closeLog := setupDebugLog(cf.debug, s.Err)
	defer closeLog()
	st, err := cf.openStore(s.Env)
	if err != nil {
		fmt.Fprintf(s.Err, "ipcert snippet: %v\n", err)
		return exitFailure
	}
	var nameArg string
	if len(pos) == 2 {
		nameArg = pos[1]
	}
	name, err := deployPickName(st, nameArg, "snippet "+string(kind))
	if err != nil {
		fmt.Fprintf(s.Err, "ipcert snippet: %v\n", err)
		return exitUsage
	}
	r, err := st.LoadRenewal(name)
	if err != nil {
		fmt.Fprintf(s.Err, "ipcert snippet: %v\n", err)
		return exitFailure
	}
	wr := *webroot
	if wr == "" {
		wr = r.WebRoot
	}
	params := deploy.SnippetParams{
		Name: name, Identifiers: r.Identifiers, CertDir: st.CurrentDir(name), WebRoot: wr,
		HTTPSPort: *httpsPort, HTTPPort: *httpPort, Distro: distro, Upstream: *upstream,
		NotLocal: snippetNotLocal(r.Identifiers),
	}
	for _, a := range params.NotLocal {
		fmt.Fprintf(s.Err, "Note: %s is not on a local interface (1:1 NAT, as on most clouds): the config listens on every address of its family, as the default server.\n", a)
	}
	snip, err := deploy.Snippet(kind, params)
	if err != nil {
		fmt.Fprintf(s.Err, "ipcert snippet: %v\n", err)
		return exitUsage
	}
	layout := deploy.LayoutFor(kind, distro, name)
	out := snippetOut{Kind: string(kind), Name: name, Path: layout.ConfigPath, Snippet: string(snip)}

	// Renewal settings the snippet relies on: combined.pem for HAProxy,
	// and (with --write) which server the renewal reloads.
	if kind == deploy.HAProxy || *write {
		if code := snippetUpdateRenewal(ctx, st, name, kind, *write && !*noReload, s); code != exitOK {
			return code
		}
	}
	snippetWarnChallenge(s.Err, r, *httpPort, *httpsPort)

	if !*write {
		if cf.jsonOut {
			return printJSON(s.Out, out)
		}
		s.Out.Write(snip)
		fmt.Fprintf(s.Err, "\nTo install it: sudo ipcert snippet %s %s --write  (writes %s, tests, reloads)\n", kind, name, layout.ConfigPath)
		return exitOK
	}

	srv, err := deploy.DetectServer(ctx, deploy.Env{}, kind)
	if err != nil {
		fmt.Fprintf(s.Err, "ipcert snippet: %v\n", err)
		return exitFailure
	}
	if *distroFlag == "" {
		srv.Distro = distro
	}
	layout = srv.Layout(name)
	out.Path = layout.ConfigPath
	in := deploy.Installer{Layout: layout, Content: snip, BackupDir: filepath.Join(st.Root(), "backups"), Runner: deploy.ExecRunner{}}
	// A reload of a stopped server proves nothing (Debian's init script
	// even reports success), so a stopped server is only told about.
	if !*noReload && srv.Running {
		in.Reload = srv.ReloadCmd()
	}
	res, err := deploy.Install(ctx, in)
	out.Install = &res
	if err != nil {
		out.Error = err.Error()
	}
	if cf.jsonOut {
		printJSON(s.Out, out)
	} else {
		snippetPrintInstall(s.Out, res, err, layout, snippetVerifyTarget(r.Identifiers[0], *httpsPort))
	}
	if err != nil {
		fmt.Fprintf(s.Err, "ipcert snippet: %v\n", err)
		return exitFailure
	}
	if !srv.Running && !*noReload && !res.IncludeNeeded && !cf.jsonOut {
		fmt.Fprintf(s.Out, "\n%s is not running, so nothing was reloaded; it serves the certificate once started: sudo systemctl start %s\n", srv.Kind, layout.Unit)
	}
	return exitOK
}

// snippetNotLocal lists the identifiers no local interface carries: the
// public address of a cloud VM behind 1:1 NAT (FACTS.md). When the
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

// snippetUpdateRenewal keeps combined.pem for HAProxy and records the
// server to reload after renewals, under the store lock so a running renew
// does not write renewal.json at the same time.
func snippetUpdateRenewal(ctx context.Context, st *store.Store, name string, kind deploy.Kind, setReload bool, s stdio) int {
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	unlock, err := st.Lock(lctx, true)
	if err != nil {
		fmt.Fprintf(s.Err, "ipcert snippet: %v\n", err)
		return exitLocked
	}
	defer unlock()
	r, err := st.LoadRenewal(name)
	if err != nil {
		fmt.Fprintf(s.Err, "ipcert snippet: %v\n", err)
		return exitFailure
	}
	changed := false
	if kind == deploy.HAProxy {
		if !r.Combined {
			r.Combined, changed = true, true
		}
		path, created, err := st.EnsureCombined(name)
		if err != nil {
			fmt.Fprintf(s.Err, "ipcert snippet: HAProxy needs combined.pem: %v\n", err)
			return exitFailure
		}
		if created {
			fmt.Fprintf(s.Err, "Wrote %s (certificate chain and key in one file, for HAProxy); renewals keep it.\n", path)
		}
	}
	if setReload && r.Reload != string(kind) {
		r.Reload, changed = string(kind), true
	}
	if changed {
		if err := st.SaveRenewal(r); err != nil {
			fmt.Fprintf(s.Err, "ipcert snippet: %v\n", err)
			return exitFailure
		}
	}
	return exitOK
}

// snippetWarnChallenge: once a web server owns port 80 (or 443), ipcert's
// own responder cannot bind it at renewal time; the renewal must answer
// through the web root instead.
func snippetWarnChallenge(w io.Writer, r *store.Renewal, httpPort, httpsPort int) {
	switch {
	case r.Challenge == "http-01" && r.WebRoot == "" && httpPort == 80:
		fmt.Fprintf(w, "Note: %s renews with ipcert's own responder on port 80, which this web server will hold.\n"+
			"Switch it to the web root once: sudo ipcert issue --ip %s --webroot /var/www/html --ca %s --name %s\n",
			r.Name, strings.Join(r.Identifiers, " --ip "), r.CA, r.Name)
	case r.Challenge == "tls-alpn-01" && httpsPort == 443:
		fmt.Fprintf(w, "Note: %s renews with tls-alpn-01 on port 443, which this web server will hold.\n"+
			"Switch it to http-01 through the web root once: sudo ipcert issue --ip %s --webroot /var/www/html --ca %s --name %s\n",
			r.Name, strings.Join(r.Identifiers, " --ip "), r.CA, r.Name)
	}
}

func snippetPrintInstall(w io.Writer, res deploy.InstallResult, err error, l deploy.Layout, addr string) {
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
	if res.LinkCreated {
		fmt.Fprintf(w, "  enabled it with the link %s\n", l.EnableLink)
	}
	if res.Tested {
		fmt.Fprintf(w, "  config test passed (%s)\n", l.Test)
	}
	if res.IncludeNeeded {
		fmt.Fprintf(w, "\n%s does not read it yet. Add this line to %s:\n\n    %s\n\nthen reload: sudo systemctl reload %s (ipcert never edits files it did not write).\n", l.Unit, res.IncludeFile, res.IncludeLine, l.Unit)
		return
	}
	if res.Reloaded {
		fmt.Fprintf(w, "  reloaded %s\n\nCheck what it serves: ipcert verify %s\n", l.Unit, addr)
	}
}
