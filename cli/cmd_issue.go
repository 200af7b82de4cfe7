package cli

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/deploy"
	"github.com/ipcert/ipcert/diagnosis"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/internal/untrusted"
)

// Exit codes of `ipcert issue` beyond the shared ones.
const exitLocked = 4 // another ipcert run holds the state lock

const issueHelp = `
ipcert issue: get a certificate for one or more IP addresses, without a UI.

Usage:
  ipcert issue --ip ADDR [--ip ADDR ...] --ca staging|production|local|URL [flags]

Examples:
  # rehearse on Let's Encrypt staging with the built-in http-01 responder on port 80
  sudo ipcert issue --ip 203.0.113.7 --ca staging --agree-tos
  # the real certificate, answering through nginx's document root
  sudo ipcert issue --ip 203.0.113.7 --ca production --webroot /var/www/html --agree-tos
  # IPv4 and IPv6 in one certificate, validated on port 443
  sudo ipcert issue --ip 203.0.113.7 --ip 2001:db8::7 --ca production --challenge tls-alpn-01 --agree-tos
  # try it all locally: no internet, no root
  ipcert issue --ip 127.0.0.1 --ca local --state-dir /tmp/ipcert-try

Exit codes: 0 issued; 1 issuance failed (the message says why and what to do);
2 bad flags or address; 4 another ipcert run holds the state lock; 130 interrupted.
`

// commonFlags are the flags every command that touches the state shares.
type commonFlags struct {
	stateDir string
	debug    string
	jsonOut  bool
}

func (c *commonFlags) register(fs interface {
	StringVar(*string, string, string, string)
	BoolVar(*bool, string, bool, string)
}) {
	fs.StringVar(&c.stateDir, "state-dir", "", "state directory (default /etc/ipcert as root, else ~/.local/state/ipcert)")
	fs.StringVar(&c.debug, "debug", "", "write a debug log (ACME traffic summaries, never keys) to this file")
	fs.BoolVar(&c.jsonOut, "json", false, "print the result as JSON on stdout")
}

func (c *commonFlags) openStore(env func(string) string) (*store.Store, error) {
	root := c.stateDir
	if root == "" {
		root = store.DefaultRoot(env, os.Getuid())
	}
	s, err := store.Open(root)
	if err != nil {
		return nil, err
	}
	return s, nil
}

func init() {
	register(command{name: "issue", summary: "get a certificate for IP addresses (headless)", run: runIssue})
}

// issueFlags are issue's flags: the issuance's own settings go straight
// into the one description of an issuance (spec.Issuance), checked by its
// one validation and kept as renewal.json; the rest steer this run.
type issueFlags struct {
	commonFlags
	iss      spec.Issuance
	ips      multiFlag
	agreeTOS bool
	name     string
	quiet    bool
	timeout  time.Duration
	wait     time.Duration
}

func runIssue(ctx context.Context, args []string, s stdio) error {
	var f issueFlags
	fs := newFlagSet("issue", issueHelp, s.Out, s.Err)
	f.commonFlags.register(fs)
	fs.Var(&f.ips, "ip", "IP address to certify (repeat for several; \"auto\" finds this machine's public address)")
	fs.StringVar((*string)(&f.iss.CA), "ca", "", "staging, production, local, or an ACME directory URL (required)")
	fs.StringVar(&f.iss.CARoot, "ca-root", "", "PEM file of roots to trust for the CA's own HTTPS (a custom --ca URL)")
	fs.StringVar((*string)(&f.iss.Challenge), "challenge", string(spec.HTTP01), "http-01 (port 80) or tls-alpn-01 (port 443)")
	fs.StringVar(&f.iss.WebRoot, "webroot", "", "answer http-01 by writing into this web server document root")
	fs.IntVar(&f.iss.WebRootPort, "webroot-port", 0, "with --ca local and --webroot: the port your web server serves that root on")
	fs.StringVar(&f.iss.HTTPListen, "http-listen", "", "address:port of the built-in http-01 responder (default :80)")
	fs.StringVar(&f.iss.TLSListen, "tls-listen", "", "address:port of the built-in tls-alpn-01 responder (default :443)")
	fs.StringVar(&f.iss.KeyType, "key-type", spec.DefaultKeyType, "certificate key: "+strings.Join(spec.KeyTypes, ", "))
	fs.StringVar(&f.iss.Email, "email", "", "contact e-mail for the ACME account (optional)")
	fs.BoolVar(&f.agreeTOS, "agree-tos", false, "agree to the CA's terms of service (needed to register an account)")
	fs.StringVar(&f.name, "name", "", "certificate name in the store (default derived from the addresses)")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress on stderr")
	fs.Var((*commandList)(&f.iss.DeployHooks), "deploy-hook", "shell command ipcert renew runs after each renewal, with IPCERT_CERT, IPCERT_KEY, IPCERT_FULLCHAIN... set (repeatable; IPCERT_DEPLOY_HOOK holds one command as it is)")
	fs.StringVar(&f.iss.Reload, "reload", "", "service ipcert renew makes serve the new certificate after each renewal (reload, signal, console or restart, as docs/services.md says): "+kindWords())
	fs.StringVar(&f.iss.VerifyAddr, "verify", "", "ADDR:PORT where the web server serves this certificate; ipcert renew checks it after each renewal")
	fs.DurationVar(&f.timeout, "timeout", 10*time.Minute, "give up after this long (the CA keeps a pending authorization for an hour)")
	fs.BoolVar(&f.iss.MapPorts, "map-ports", false, mapPortsUsage)
	fs.Var((*commandList)(&f.iss.PreHooks), "pre-hook", "shell command run right before the CA validates, only when it does (stop a service that holds port 80); kept for renewals (repeatable)")
	fs.Var((*commandList)(&f.iss.PostHooks), "post-hook", "shell command run when validation is over, failed or not (start that service again); kept for renewals (repeatable)")
	fs.StringVar(&f.iss.EABKid, "eab-kid", "", "external account binding: the key ID your CA gave you (CAs that require EAB)")
	fs.StringVar(&f.iss.EABHMACFile, "eab-hmac-file", "", "external account binding: a file only root reads holding the MAC key (base64url) your CA gave you; kept for re-registration, never printed")
	fs.StringVar(&f.iss.PreferredChain, "preferred-chain", "", "among the chains the CA offers, take the one with this issuer or root common name (such as \"ISRG Root X2\"); kept for renewals")
	fs.BoolVar(&f.iss.ReuseKey, "reuse-key", false, "certify the same private key at every renewal, so clients that pin it (DNS-over-TLS) keep working; a key that leaks then stays in use until you revoke it")
	fs.BoolVar(&f.iss.Cluster, "cluster", false, "share the answers and the certificate with the other machines of this machine's cluster (ipcert cluster init)")
	fs.DurationVar(&f.wait, "wait", 60*time.Second, "how long to wait for another ipcert run's lock before giving up (exit 4); 0 gives up at once")
	if err := parseFlags(fs, args, s.Env); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q; addresses go in --ip", fs.Arg(0))
	}
	// A hook from root's environment becomes a permanent root hook: said
	// loudly once it is stored (issue 22).
	hookFromEnv := len(f.iss.DeployHooks) > 0
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name == "deploy-hook" {
			hookFromEnv = false
		}
	})
	if err := validateIssueFlags(fs, &f, s); err != nil { // cmd_validate.go
		return err
	}
	closeLog := setupDebugLog(f.debug, s.Err)
	defer closeLog()
	if f.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, f.timeout)
		defer cancel()
	}

	idents, auto, err := resolveIPs(ctx, f.ips, s)
	if err != nil {
		return usageErr("%v", err)
	}
	if f.iss.VerifyAddr != "" {
		ap, _ := deploy.ParseTarget(f.iss.VerifyAddr, 443) // checked (validateIssueFlags)
		f.iss.VerifyAddr = ap.String()
	}
	// renew runs from another directory (the timer: /), so the paths it
	// reads back must be absolute.
	if err := f.iss.Absolute(); err != nil {
		return usageErr("%v", err)
	}
	f.iss.Identifiers, f.iss.AutoIP = acmeflow.AddrStrings(idents), auto
	st, err := f.openStore(s.Env)
	if err != nil {
		return failure("%v", err)
	}
	o := cachoice.OptionsFor(&f.iss)
	o.Log = debugWriter()
	ca, err := cachoice.Open(f.iss.CA, o)
	if err != nil {
		return usageErr("%v", err)
	}
	defer ca.Close()

	req := acmeflow.RequestFor(&f.iss, idents)
	req.AgreeTOS = f.agreeTOS
	req.AroundValidation = deploy.ValidationHooks(f.iss.PreHooks, f.iss.PostHooks, func(line string) {
		if !f.quiet {
			fmt.Fprintf(s.Err, "     %s\n", untrusted.Text(line))
		}
	})
	if f.iss.EABHMACFile != "" {
		k, _ := os.ReadFile(f.iss.EABHMACFile)
		req.EABKid, req.EABHMAC = f.iss.EABKid, strings.TrimSpace(string(k))
	}
	ca.Apply(&req)
	if err := req.Validate(); err != nil {
		return usageErr("%v", userError(err))
	}
	if !f.quiet {
		fmt.Fprintf(s.Err, "Issuing for %s from %s\n", acmeflow.JoinAddrs(idents), cachoice.Describe(f.iss.CA))
		req.Events = progressPrinter(s.Err)
	}
	req.Events = logEvents(req.Events)
	var rootPEM []byte
	if ca.Local {
		rootPEM = ca.RootPEM
	}
	eng := &acmeflow.Engine{Store: st, UserAgent: "ipcert/" + version}
	tmpl := &store.Renewal{Issuance: f.iss}
	keepName := f.name
	if keepName == "" {
		keepName = store.NameFor(acmeflow.AddrStrings(idents))
	}
	if backup, err := st.KeepSettings(keepName, tmpl); backup != "" {
		fmt.Fprintf(s.Err, "ipcert issue: the existing renewal.json is unreadable (%v); kept as %s\n", err, backup)
	}
	if f.iss.MapPorts {
		release, err := holdPorts(ctx, mapRequest(req.Challenge, req.WebRoot, req.HTTPListen, req.TLSListen, f.iss.WebRootPort), s.Err)
		if err != nil {
			return failure("--map-ports: %v", err)
		}
		defer release()
	}
	if f.iss.ReuseKey {
		// The same key again (a second issue of the name); the first issue
		// makes the key that renewals keep.
		if v, err := st.CurrentVersion(keepName); err == nil {
			if k, err := os.ReadFile(filepath.Join(v.Dir, store.KeyFile)); err == nil {
				req.ReuseKey = k
			}
		}
		fmt.Fprintln(s.Err, "  !  --reuse-key: every renewal certifies this same key, so pinned clients keep working; if it ever leaks, revoke with ipcert revoke NAME --reason keyCompromise and issue again without --reuse-key")
	}
	var shared *clusterIssue
	if f.iss.Cluster {
		if shared, err = startClusterIssue(ctx, st, keepName, &req); err != nil {
			return failure("--cluster: %v", err)
		}
		defer shared.close()
	}
	iss, err := eng.Issue(ctx, req, acmeflow.IssueOptions{Name: f.name, Renewal: tmpl, RootPEM: rootPEM, LockWait: f.wait})
	if err == nil && shared != nil {
		v, perr := shared.publish(ctx, iss)
		if perr != nil {
			return failure("--cluster: the certificate is stored here but not shared with the other machines: %v", perr)
		}
		fmt.Fprintf(s.Err, "Shared with the cluster as version %d of %s: every machine's agent installs it.\n", v, iss.Name)
	}
	if err != nil {
		return reportIssueError(ctx, eng, f.name, idents, err, s, diagnosis.AttemptOf(&req, ca, f.iss.CA), f.jsonOut)
	}
	if hookFromEnv {
		warnHookFromEnv(s.Err, f.iss.DeployHooks, filepath.Join(st.CertDir(iss.Name), "renewal.json"), iss.Name)
	}
	if f.jsonOut {
		return writeJSON(s.Out, issuedJSON(iss, st, ca))
	}
	printIssued(s.Out, iss, st, ca)
	return nil
}

// resolveIPs parses --ip values; "auto" asks the public-address detection.
func resolveIPs(ctx context.Context, vals []string, s stdio) ([]netip.Addr, bool, error) {
	if len(vals) == 0 {
		return nil, false, errors.New("--ip is required: the address to certify (or --ip auto for this machine's public address)")
	}
	var out []netip.Addr
	auto := false
	for _, v := range vals {
		if v == "auto" {
			auto = true
			found, err := detectPublicAddrs(ctx, s)
			if err != nil {
				return nil, false, fmt.Errorf("--ip auto: %w", err)
			}
			out = append(out, found...)
			continue
		}
		a, err := acmeflow.ParseIP(v)
		if err != nil {
			return nil, false, fmt.Errorf("--ip: %w", err)
		}
		out = append(out, a)
	}
	return out, auto, nil
}

// progressPrinter prints engine events as lines on w (stderr).
func progressPrinter(w io.Writer) func(acmeflow.Event) {
	return func(ev acmeflow.Event) {
		switch ev.Kind {
		case acmeflow.EventStep:
			fmt.Fprintf(w, "  -> %s\n", ev.Message)
		case acmeflow.EventValidator:
			fmt.Fprintf(w, "     %s\n", ev.Validator)
		case acmeflow.EventWarning:
			fmt.Fprintf(w, "  !  %s\n", ev.Message)
		case acmeflow.EventDone:
			fmt.Fprintf(w, "  ok %s\n", ev.Message)
		}
	}
}

// userError strips the engine's step prefix from address and flag errors,
// which read better on their own.
func userError(err error) error {
	var ae *acmeflow.Error
	if errors.As(err, &ae) && ae.Step == acmeflow.StepAddress && ae.Err != nil {
		return ae.Err
	}
	return err
}

// reportIssueError is the end of a failed issuance (issue, and the
// demo's headless path: its messages say "ipcert issue" for both).
func reportIssueError(ctx context.Context, eng *acmeflow.Engine, name string, idents []netip.Addr, err error, s stdio, att diagnosis.Attempt, jsonOut bool) error {
	fail := func(code int, format string, a ...any) error {
		return withPrefix("ipcert issue", exitWith(code, format, a...))
	}
	if errors.Is(err, store.ErrLocked) {
		return fail(exitLocked, "%v", err)
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fail(exitFailure, "gave up: the run took longer than --timeout; the current certificate (if any) is unchanged\n  it was at: %v", err)
	}
	if ctx.Err() != nil {
		return fail(exitInterrupted, "interrupted; the current certificate (if any) is unchanged")
	}
	var ae *acmeflow.Error
	if errors.As(err, &ae) && ae.Step == acmeflow.StepAddress {
		return fail(exitUsage, "%v", userError(err))
	}
	// The diagnosis follows this line on stderr: it is printed here.
	fmt.Fprintf(s.Err, "\nipcert issue failed: %v\n", err)
	// The one evidence builder (diagnosis.Attempt), with the local facts
	// gathered right after the failure: what is printed here is what
	// renewal.json keeps.
	if name == "" {
		name = store.NameFor(acmeflow.AddrStrings(idents))
	}
	att.StateDir, att.Issued = eng.Store.Root(), eng.Store.Exists(name)
	ev := att.Evidence(time.Now())
	// For Let's Encrypt also the NAT verdict and the public addresses now
	// (their sources as for --ip auto: IPCERT_ECHO4 and the like).
	if penv, perr := publicEnv(s.Env); perr == nil {
		ev.GatherIn(context.Background(), &penv, err)
	} else {
		ev.Gather(context.Background(), err)
	}
	d := diagnosis.Diagnose(err, ev)
	// Recorded first: when the record cannot be written (a full disk),
	// the message says so instead of sending the user to doctor.
	rerr := eng.RecordFailure(name, d.Failure(time.Now()))
	diagnosis.WriteFailure(s.Err, d, rerr)
	if jsonOut {
		// Automation reading --json gets the same explanation a person
		// reads on stderr.
		printJSON(s.Out, struct {
			Error     string              `json:"error"`
			Diagnosis diagnosis.Diagnosis `json:"diagnosis"`
		}{err.Error(), d})
	}
	return exitCode(exitFailure)
}

type issuedOut struct {
	Name        string      `json:"name"`
	Identifiers []string    `json:"identifiers"`
	CA          string      `json:"ca"`
	Directory   string      `json:"directory"`
	Version     int         `json:"version"`
	Serial      string      `json:"serial"`
	NotBefore   time.Time   `json:"not_before"`
	NotAfter    time.Time   `json:"not_after"`
	Staging     bool        `json:"staging"`
	Files       store.Paths `json:"files"`
}

func issuedJSON(iss *acmeflow.Issued, st *store.Store, ca *cachoice.CA) issuedOut {
	var o issuedOut
	o.Name = iss.Name
	o.Identifiers = iss.Renewal.Identifiers
	o.CA = string(iss.Renewal.CA)
	o.Directory = iss.Renewal.Directory
	o.Version = iss.Version.N
	o.Serial = iss.Renewal.Serial
	o.NotBefore, o.NotAfter = iss.Renewal.NotBefore, iss.Renewal.NotAfter
	o.Staging = ca.Staging
	o.Files = store.PathsIn(st.CurrentDir(iss.Name), ca.Local)
	return o
}

func printJSON(w io.Writer, v any) int {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return exitFailure
	}
	return exitOK
}

// printIssued says what was issued, where the files are and until when, in
// the way mkcert does: a person should not need to read anything else.
func printIssued(w io.Writer, iss *acmeflow.Issued, st *store.Store, ca *cachoice.CA) {
	o := issuedJSON(iss, st, ca)
	r := iss.Renewal
	fmt.Fprintln(w)
	printIssuedFiles(w, "a certificate", iss, o.Files)
	if o.Files.Root != "" {
		fmt.Fprintf(w, "  check it:   openssl verify -CAfile %s -untrusted %s %s\n", o.Files.Root, o.Files.Chain, o.Files.Cert)
	}
	if ca.Staging {
		fmt.Fprintln(w, "\nThis is a STAGING certificate: browsers will not trust it. When this worked,\nget the real one with --ca production.")
	}
	// The next commands name this state directory unless it is the
	// default one, or they would act on another.
	sd := userStateFlag(st.Root())
	fmt.Fprintf(w, "\nIt lasts only %s: keep it fresh with \"ipcert renew%s\" (run it from \"ipcert timer install%s\").\n", humanDuration(r.NotAfter.Sub(r.NotBefore)), sd, sd)
}

// printIssuedFiles is the block issue, demo and the wizard print for a new
// certificate: what it covers, who issued it, how long it lasts, where its
// files are. kind says what it is ("a certificate", "a STAGING rehearsal ...").
func printIssuedFiles(w io.Writer, kind string, iss *acmeflow.Issued, files store.Paths) {
	r := iss.Renewal
	fmt.Fprintf(w, "Issued %s for %s (version %d of %q)\n", kind, strings.Join(r.Identifiers, ", "), iss.Version.N, iss.Name)
	fmt.Fprintf(w, "  from        %s\n", cachoice.Describe(r.CA))
	fmt.Fprintf(w, "  valid       %s until %s (%s)\n", r.NotBefore.Local().Format("2006-01-02 15:04 MST"), r.NotAfter.Local().Format("2006-01-02 15:04 MST"), humanDuration(r.NotAfter.Sub(r.NotBefore)))
	fmt.Fprintf(w, "  certificate %s\n", files.FullChain)
	fmt.Fprintf(w, "  key         %s\n", files.Key)
	if files.Root != "" {
		fmt.Fprintf(w, "  test root   %s\n", files.Root)
	}
}

// humanDuration reads like a person would say it: "160 hours", "3 days 4 hours".
func humanDuration(d time.Duration) string {
	neg := d < 0
	if neg {
		d = -d
	}
	var out string
	switch {
	case d < time.Minute:
		out = fmt.Sprintf("%d seconds", int(d.Seconds()))
	case d < time.Hour:
		out = fmt.Sprintf("%d minutes", int(d.Minutes()))
	case d < 48*time.Hour:
		out = fmt.Sprintf("%d hours", int(d.Round(time.Minute).Hours()))
		if m := int(d.Round(time.Minute).Minutes()) % 60; m != 0 && d < 10*time.Hour {
			out = fmt.Sprintf("%dh%02dm", int(d.Hours()), m)
		}
	default:
		days := int(d.Hours()) / 24
		hours := int(d.Round(time.Hour).Hours()) % 24
		out = fmt.Sprintf("%d days %d hours (%d hours)", days, hours, int(d.Round(time.Hour).Hours()))
	}
	if neg {
		return out + " ago"
	}
	return out
}

// warnHookFromEnv says, on stderr, that a deploy hook taken from
// IPCERT_DEPLOY_HOOK (not typed as --deploy-hook) is now stored: renew
// runs it as root after every renewal, whatever the environment is then.
func warnHookFromEnv(w io.Writer, hooks []string, renewalJSON, name string) {
	v := envName("deploy-hook")
	fmt.Fprintf(w, "ipcert issue: WARNING: the deploy hook %s came from the environment variable %s, not from --deploy-hook, and is now stored in %s: ipcert renew runs it as root after every renewal of %s, whatever the environment is then.\n",
		untrusted.Text(strconv.Quote(strings.Join(hooks, "; "))), v, renewalJSON, name)
	fmt.Fprintf(w, "ipcert issue: if that was not meant, delete it from \"deploy_hooks\" in %s, and unset %s where it is set (/etc/environment, root's shell profile).\n", renewalJSON, v)
}

// checkSecretFile accepts a secret's file only when no other user can read
// or change it: a regular file, mode 0600 or stricter, owned by the user
// running ipcert.
func checkSecretFile(path string) error {
	st, err := os.Lstat(path)
	if err != nil {
		return fmt.Errorf("%v; put the key in a file only you can read (chmod 600)", err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	if st.Mode().Perm()&0o077 != 0 {
		return fmt.Errorf("%s can be read by others (mode %04o): chmod 600 %s", path, st.Mode().Perm(), path)
	}
	if sys, ok := st.Sys().(*syscall.Stat_t); ok && int(sys.Uid) != os.Geteuid() {
		return fmt.Errorf("%s belongs to uid %d, not to you: keep the key in a file of your own (chmod 600)", path, sys.Uid)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if strings.TrimSpace(string(b)) == "" {
		return fmt.Errorf("%s is empty; it should hold the MAC key your CA gave you (base64url)", path)
	}
	return nil
}
