package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ipcert/ipcert/deploy"
	"github.com/ipcert/ipcert/internal/store"
)

// Exit codes of `ipcert verify`.
const (
	exitVerifyMismatch    = 1 // another certificate is served
	exitVerifyUnreachable = 3 // no TLS handshake
)

const verifyHelp = `
ipcert verify: connect to an address the way a browser does (TLS, no SNI,
as browsers send none for IP addresses), show the certificate it serves and
compare it with the stored current one.

Usage:
  ipcert verify ADDR[:PORT] [flags]

The port defaults to 443; write IPv6 with a port as [ADDR]:PORT. The stored
certificate to compare with is the one whose addresses include ADDR (or
--name). "Browser" means the system's trusted roots; --root FILE replaces
them with a test CA's root (ipcert issue --ca local keeps it as root.pem).

Examples:
  ipcert verify 203.0.113.7
  ipcert verify [2001:db8::7]:8443
  ipcert verify 127.0.0.1:8443 --root ~/.local/state/ipcert/certs/127.0.0.1/current/root.pem

Exit codes: 0 the stored current certificate is served (or, with nothing
stored to compare, a browser would accept what is served); 1 another
certificate is served; 2 bad arguments; 3 unreachable (no TLS handshake).
`

func init() {
	register(command{name: "verify", summary: "check which certificate an address serves", run: runVerify})
}

// verifyOut is what verify prints (--json: as it is).
type verifyOut = deploy.StoredVerifyResult

func runVerify(ctx context.Context, args []string, s stdio) error {
	var cf commonFlags
	fs := newFlagSet("verify", verifyHelp, s.Out, s.Err)
	cf.register(fs)
	rootFile := fs.String("root", "", "PEM file of root certificates to trust instead of the system's (test CAs)")
	name := fs.String("name", "", "compare with this stored certificate (default: the one for ADDR)")
	timeout := fs.Duration("timeout", 10*time.Second, "connect and handshake timeout")
	pos, err := parseArgs(fs, args, s.Env)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usageErr("give one address: ipcert verify ADDR[:PORT]")
	}
	target, err := deploy.ParseTarget(pos[0], 443)
	if err != nil {
		return usageErr("%v", err)
	}
	opts := deploy.VerifyOptions{Timeout: *timeout}
	if *rootFile != "" {
		pool, err := deploy.LoadRoots(*rootFile)
		if err != nil {
			return usageErr("--root: %v", err)
		}
		opts.Roots = pool
	}
	if *name != "" {
		if err := store.ValidName(*name); err != nil {
			return usageErr("--name: %v", err)
		}
	}
	closeLog := setupDebugLog(cf.debug, s.Err)
	defer closeLog()

	st, err := cf.openStore(s.Env)
	if err != nil {
		fmt.Fprintf(s.Err, "ipcert verify: %v (comparing with nothing)\n", err)
	} else if *name != "" && !st.Exists(*name) {
		return usageErr("--name: no certificate named %q in %s; ipcert status lists them", *name, st.Root())
	}
	// The handshake first: which stored certificate to expect may depend
	// on what the address serves (store.Find).
	out, err := deploy.VerifyStored(ctx, st, target.String(), deploy.VerifyStoredOptions{VerifyOptions: opts, Name: *name, Warn: func(err error) {
		fmt.Fprintf(s.Err, "ipcert verify: %v (comparing with nothing)\n", err)
	}})
	if err != nil {
		return usageErr("%v", err)
	}
	res := out.VerifyResult
	if cf.jsonOut {
		printJSON(s.Out, out)
	} else {
		verifyPrint(s.Out, out, opts.Roots != nil, *rootFile == "")
	}
	switch res.Outcome {
	case deploy.Match:
		return nil
	case deploy.Unreachable:
		return exitCode(exitVerifyUnreachable)
	case deploy.Unchecked:
		if res.Accepted {
			return nil
		}
	}
	return exitCode(exitVerifyMismatch)
}

func verifyPrint(w io.Writer, o verifyOut, customRoots bool, noRoot bool) {
	stored := o.Stored
	r := o.VerifyResult
	if r.Outcome == deploy.Unreachable {
		fmt.Fprintf(w, "UNREACHABLE: %s\n", r.Reason)
		return
	}
	fmt.Fprintf(w, "%s answered with %s (%s), no SNI sent\n", r.Addr, r.TLSVersion, r.CipherSuite)
	leaf := r.Chain[0]
	ips := make([]string, len(leaf.IPs))
	for i, a := range leaf.IPs {
		ips[i] = a.String()
	}
	fmt.Fprintf(w, "\nServed certificate\n")
	fmt.Fprintf(w, "  IP addresses  %s\n", verifyOrNone(strings.Join(ips, ", ")))
	if len(leaf.DNSNames) > 0 {
		fmt.Fprintf(w, "  DNS names     %s\n", strings.Join(leaf.DNSNames, ", "))
	}
	fmt.Fprintf(w, "  issuer        %s\n", leaf.Issuer)
	fmt.Fprintf(w, "  serial        %s\n", leaf.Serial)
	if r.ValidFor > 0 {
		fmt.Fprintf(w, "  valid until   %s (%s left)\n", leaf.NotAfter.UTC().Format("2006-01-02 15:04 MST"), humanDuration(r.ValidFor))
	} else {
		fmt.Fprintf(w, "  EXPIRED       %s (%s)\n", leaf.NotAfter.UTC().Format("2006-01-02 15:04 MST"), humanDuration(r.ValidFor))
	}
	fmt.Fprintf(w, "  chain         ")
	if !r.ChainSent {
		fmt.Fprintf(w, "only the certificate itself, no intermediate (the config should name fullchain.pem)\n")
	} else {
		var parts []string
		for _, c := range r.Chain[1:] {
			parts = append(parts, c.Subject)
		}
		// Which chain: the root its topmost certificate names (the
		// --preferred-chain a CA's alternate chains are chosen by).
		fmt.Fprintf(w, "%s, leading to %s\n", strings.Join(parts, " <- "), r.Chain[len(r.Chain)-1].Issuer)
	}

	fmt.Fprintln(w)
	if o.Name != "" {
		fmt.Fprintf(w, "Compared with %q: %s.\n", o.Name, verifyWhy(o))
	}
	switch r.Outcome {
	case deploy.Match:
		fmt.Fprintf(w, "MATCH: this is the stored current certificate of %q (version %d).\n", o.Name, o.Version)
	case deploy.Mismatch:
		fmt.Fprintf(w, "MISMATCH: %s.\n", r.Reason)
		fmt.Fprintf(w, "  stored current of %q: version %d, serial %s, valid until %s\n", o.Name, o.Version, r.ExpectedSerial, stored.Leaf.NotAfter.UTC().Format("2006-01-02 15:04 MST"))
		if n := o.ServedVersion; n > 0 {
			fmt.Fprintf(w, "  served: version %d of it, from before the last renewal\n", n)
		}
	case deploy.Unchecked:
		fmt.Fprintf(w, "No stored certificate names this address, so there is nothing to compare with.\n")
	}
	who := "A browser"
	if customRoots {
		who = "A browser trusting the given root"
	}
	if r.Accepted {
		fmt.Fprintf(w, "%s would accept it.\n", who)
		return
	}
	fmt.Fprintf(w, "%s would NOT accept it: %s.\n", who, r.Rejection)
	if noRoot && stored.Dir != "" {
		if _, err := os.Stat(filepath.Join(stored.Dir, store.RootFile)); err == nil {
			fmt.Fprintf(w, "It comes from a test CA; check against its root: --root %s\n", filepath.Join(filepath.Dir(filepath.Dir(stored.Dir)), "current", store.RootFile))
		}
	}
}

// verifyWhy says how the certificate compared with was chosen.
func verifyWhy(o verifyOut) string {
	others := ""
	if len(o.Candidates) > 1 {
		others = fmt.Sprintf(" (certificates for this address: %s)", strings.Join(o.Candidates, ", "))
	}
	switch o.ChosenBy {
	case "name":
		return "named with --name" + others
	case "verify address":
		return fmt.Sprintf("its renewal.json names %s as the address to verify%s", o.Addr, others)
	case "served certificate":
		return "the address serves its current version" + others
	case "earlier version":
		return "the address serves an earlier version of it" + others
	case "address":
		if len(o.Candidates) > 1 {
			return fmt.Sprintf("a guess: several certificates cover this address (%s) and none is served here or names it as its verify address; choose with --name NAME, or record it with ipcert issue ... --verify %s", strings.Join(o.Candidates, ", "), o.Addr)
		}
		return "the only stored certificate for this address"
	}
	return o.ChosenBy
}

func verifyOrNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}
