package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/netip"
	"strings"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/preflight"
)

// Exit codes of ipcert preflight, beyond the shared ones.
const (
	exitPreflightFailed  = 3 // at least one check failed: validation will probably fail
	exitPreflightOffline = 4 // no internet endpoint answered at all
)

const preflightHelp = `
ipcert preflight checks, before anything is sent to Let's Encrypt, what would
make validation fail: the public address (several echo, DNS and STUN sources,
majority vote, per family), local interfaces, NAT / CGNAT / cloud 1:1 NAT,
ports 80 and 443 (free, or held by which process), the privilege to bind
them, web servers and their web roots, the host firewall (read-only), and
whether Let's Encrypt accepts the address. Every check runs in parallel; the
whole run takes a few seconds at most.

Usage:
  ipcert preflight [--ip auto|ADDR ...] [--json] [--map-ports]

Examples:
  ipcert preflight                      find the public address and check it
  ipcert preflight --ip 203.0.113.7     check a given address
  ipcert preflight --json | jq .verdict
  ipcert preflight --map-ports          also try UPnP/NAT-PMP mappings of 80/443
                                        (removed again at the end)

Results go to stdout, progress to stderr. --json prints the report in the
schema of docs/preflight.md.

Exit codes:
  0  no check failed (warnings possible)
  1  preflight could not run
  2  bad flags
  3  at least one check failed: validation will probably fail
  4  no internet endpoint answered at all (no network?)
  130 interrupted

Endpoint flags replace the built-in internet endpoints (for tests and
air-gapped rehearsals); each is repeatable. A DNS source is written
QNAME/QTYPE[/CLASS]@SERVER:PORT, e.g. myip.opendns.com/A@208.67.222.222:53.
`

func init() {
	register(command{name: "preflight", summary: "check that validation can work: address, NAT, ports, firewall", run: runPreflight})
}

func runPreflight(ctx context.Context, args []string, s stdio) error {
	fs := newFlagSet("preflight", preflightHelp, s.Out, s.Err)
	var ips, echo4, echo6, dns4, dns6, stun4, stun6, only multiFlag
	fs.Var(&ips, "ip", "address to check, or auto (default auto: the detected public addresses)")
	asJSON := fs.Bool("json", false, "print the report as JSON (docs/preflight.md)")
	ca := fs.String("ca", "production", "the CA the address is for: production, staging, or local (the local test CA allows loopback)")
	mapPorts := fs.Bool("map-ports", false, "ask the router (UPnP IGD / NAT-PMP) to map 80/443, check what it granted, then remove the mappings")
	selfFetch := fs.Bool("self-fetch", true, "serve a token and fetch it through the public address (advisory)")
	selfPort := fs.Int("self-fetch-port", 80, "port of the self-fetch listener")
	timeout := fs.Duration("timeout", 4500*time.Millisecond, "bound for the whole run")
	verbose := fs.Bool("verbose", false, "show the evidence of every check, not only of warnings and failures")
	fs.Var(&only, "only", "run only this check ID (repeatable)")
	fs.Var(&echo4, "echo4", "IPv4 HTTPS echo URL (repeatable; replaces the built-in list)")
	fs.Var(&echo6, "echo6", "IPv6 HTTPS echo URL (repeatable)")
	fs.Var(&dns4, "dns4", "IPv4 DNS source QNAME/QTYPE[/CLASS]@SERVER:PORT (repeatable)")
	fs.Var(&dns6, "dns6", "IPv6 DNS source (repeatable)")
	fs.Var(&stun4, "stun4", "IPv4 STUN server HOST:PORT (repeatable)")
	fs.Var(&stun6, "stun6", "IPv6 STUN server HOST:PORT (repeatable)")
	noUPnP := fs.Bool("no-upnp", false, "do not search for UPnP gateways (SSDP multicast)")
	natpmp := fs.String("natpmp", "gateway", "NAT-PMP server: gateway (the default gateway, port 5351), HOST:PORT, or off")
	metadata := fs.String("metadata-url", "", "cloud metadata service base URL (default http://169.254.169.254)")
	root := fs.String("root", "", "read /proc, /sys and /etc under this directory (default /)")
	if err := parseFlags(fs, args, s.Env); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return usageErr("unexpected argument %q; give addresses with --ip", fs.Arg(0))
	}

	var opts preflight.Options
	for _, v := range ips {
		if v == "auto" {
			continue
		}
		a, err := acmeflow.ParseIP(v)
		if err != nil {
			return usageErr("%v", err)
		}
		opts.IPs = append(opts.IPs, a)
	}
	// The one rule for a CA choice (internal/spec), as for issue's --ca.
	switch kind, err := spec.CAChoice(*ca).Kind(); {
	case err != nil:
		return usageErr("--ca: %v", err)
	case kind == spec.CALocalTest:
		opts.LocalCA = true
	case kind == spec.CAOwn:
		opts.OwnCA = !spec.CAChoice(*ca).Public()
	}
	opts.MapPorts, opts.SelfFetch, opts.SelfFetchPort, opts.Timeout, opts.Only = *mapPorts, *selfFetch, *selfPort, *timeout, only

	env := preflight.DefaultEnv()
	if err := overrideEndpoints(&env, endpointFlags{echo4, echo6, dns4, dns6, stun4, stun6}); err != nil {
		return usageErr("%v", err)
	}
	if *noUPnP {
		env.DiscoverIGD = nil
	}
	env.NATPMP, env.Root = *natpmp, *root
	if env.NATPMP == "" {
		env.NATPMP = "off"
	}
	if *metadata != "" {
		env.MetadataURL = *metadata
	}

	fmt.Fprintf(s.Err, "Running preflight checks (at most %s)...\n", opts.Timeout)
	rep := preflight.Run(ctx, env, opts, func(e preflight.Event) {
		if e.Kind == preflight.EventFinish {
			fmt.Fprintf(s.Err, "  %-7s %s\n", e.Result.Status, e.Title)
		}
	})
	if ctx.Err() != nil {
		return exitWith(exitInterrupted, "interrupted")
	}
	if *asJSON {
		enc := json.NewEncoder(s.Out)
		enc.SetIndent("", "  ")
		if err := enc.Encode(rep); err != nil {
			return failure("%v", err)
		}
	} else {
		printPreflight(s.Out, rep, *verbose)
	}
	switch {
	case rep.Offline:
		return exitCode(exitPreflightOffline)
	case rep.Verdict == preflight.StatusFail:
		return exitCode(exitPreflightFailed)
	}
	return nil
}

type endpointFlags struct{ echo4, echo6, dns4, dns6, stun4, stun6 []string }

// overrideEndpoints replaces the built-in internet endpoints family by
// family: giving any endpoint flag for a family replaces all of that
// family's sources, so a test never half-uses the real internet.
func overrideEndpoints(env *preflight.Env, f endpointFlags) error {
	any4 := len(f.echo4)+len(f.dns4)+len(f.stun4) > 0
	any6 := len(f.echo6)+len(f.dns6)+len(f.stun6) > 0
	if any4 {
		env.Echo4, env.DNS4, env.STUN4 = f.echo4, nil, f.stun4
		for _, d := range f.dns4 {
			src, err := parseDNSSource(d)
			if err != nil {
				return err
			}
			env.DNS4 = append(env.DNS4, src)
		}
	}
	if any6 {
		env.Echo6, env.DNS6, env.STUN6 = f.echo6, nil, f.stun6
		for _, d := range f.dns6 {
			src, err := parseDNSSource(d)
			if err != nil {
				return err
			}
			env.DNS6 = append(env.DNS6, src)
		}
	}
	return nil
}

// parseDNSSource reads QNAME/QTYPE[/CLASS]@SERVER:PORT.
func parseDNSSource(s string) (preflight.DNSSource, error) {
	q, server, ok := strings.Cut(s, "@")
	parts := strings.Split(q, "/")
	if !ok || len(parts) < 2 || len(parts) > 3 || server == "" {
		return preflight.DNSSource{}, fmt.Errorf("DNS source %q: write QNAME/QTYPE[/CLASS]@SERVER:PORT, e.g. myip.opendns.com/A@208.67.222.222:53", s)
	}
	if _, err := netip.ParseAddrPort(server); err != nil {
		return preflight.DNSSource{}, fmt.Errorf("DNS source %q: the server must be IP:PORT ([IPv6]:PORT): %v", s, err)
	}
	src := preflight.DNSSource{Name: parts[0], Server: server, QName: parts[0], QType: strings.ToUpper(parts[1])}
	if len(parts) == 3 {
		src.QClass = strings.ToUpper(parts[2])
	}
	return src, nil
}

func printPreflight(w io.Writer, rep preflight.Report, verbose bool) {
	fmt.Fprintf(w, "Preflight for %s (%d ms)\n\n", addrList(rep.Addrs), rep.Duration)
	for _, r := range rep.Results {
		fmt.Fprintf(w, "%s %s: %s\n", r.Status.Mark(), r.Title, r.Summary)
		if verbose || r.Status == preflight.StatusWarn || r.Status == preflight.StatusFail {
			for _, e := range r.Evidence {
				fmt.Fprintf(w, "         - %s\n", e)
			}
		}
		if r.Fix != "" && r.Status != preflight.StatusOK {
			fmt.Fprintf(w, "         fix: %s\n", r.Fix)
		}
	}
	fmt.Fprintln(w)
	switch {
	case rep.Offline:
		fmt.Fprintln(w, "No internet endpoint answered: this machine seems to be offline, so the public address is unknown. Check the network, or give the address with --ip.")
	case rep.Verdict == preflight.StatusFail:
		fmt.Fprintln(w, "Verdict: validation will probably FAIL until the failures above are fixed. Rehearse on staging: ipcert issue --ca staging")
	case rep.Verdict == preflight.StatusWarn:
		fmt.Fprintln(w, "Verdict: no blocker found, but look at the warnings. The authoritative test is a staging run: ipcert issue --ca staging")
	default:
		fmt.Fprintln(w, "Verdict: everything checked looks right. Next: ipcert issue --ca staging")
	}
}

func addrList(as []netip.Addr) string {
	if len(as) == 0 {
		return "(no address known)"
	}
	return acmeflow.JoinAddrs(as)
}
