package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/cluster"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/internal/untrusted"
	"github.com/ipcert/ipcert/renew"
)

const clusterHelp = `
ipcert cluster: several machines serving one address share its certificate
through etcd (docs/cluster.md). Off unless set up; one machine alone never
needs it.

Usage:
  ipcert cluster init --etcd URL[,URL...] [--etcd-ca F --etcd-cert F --etcd-key F] [--prefix P]
  ipcert cluster join --etcd URL[,URL...] --cluster-key FILE [--etcd-ca F --etcd-cert F --etcd-key F] [--prefix P]
  ipcert cluster leave
  ipcert cluster status [--json]

init makes the cluster key (cluster.key in the state directory, 0600): it
seals every private key and the account before they reach etcd. There is no
default key. Copy it to each other machine (scp, never through etcd) and run
join there. Then run "ipcert agent" on every machine, and issue with
"ipcert issue --cluster" on any one of them.

Examples:
  sudo ipcert cluster init --etcd https://10.0.0.10:2379 --etcd-ca /etc/etcd/ca.pem --etcd-cert /etc/ipcert/etcd.pem --etcd-key /etc/ipcert/etcd-key.pem
  sudo ipcert cluster join --etcd https://10.0.0.10:2379 --cluster-key /root/cluster.key --etcd-ca /etc/etcd/ca.pem --etcd-cert /etc/ipcert/etcd.pem --etcd-key /etc/ipcert/etcd-key.pem
  sudo ipcert cluster status

Exit codes: 0 done; 1 failed (etcd unreachable, the key does not match); 2 bad flags.
`

const agentHelp = `
ipcert agent: the cluster's worker on each machine (docs/cluster.md). It
answers the CA's validators on ports 80 and 443 from the cluster's store
(whichever machine a validator reaches answers), installs every new
certificate into this machine's state directory (the same atomic current
as on a machine alone) and keeps this machine's registration, so
"ipcert cluster status" shows which machine serves which version. Run it as
a service (it stops on SIGTERM).

Usage:
  ipcert agent [--http-listen :80] [--tls-listen :443] [--id NAME] [--address ADDR ...]

Examples:
  sudo ipcert agent
  sudo ipcert agent --http-listen 10.0.0.5:80 --tls-listen 10.0.0.5:443 --id web-2

Exit codes: 0 stopped; 1 failed; 2 bad flags.
`

func init() {
	register(command{name: "cluster", summary: "share certificates between machines serving one address (etcd)", run: runCluster})
	register(command{name: "agent", summary: "on each machine of a cluster: answer validators, install certificates", run: runAgent})
}

type clusterFlags struct {
	commonFlags
	etcd, etcdCA, etcdCert, etcdKey, prefix, keyFile string
}

func (f *clusterFlags) config() cluster.Config {
	var eps []string
	for _, e := range strings.Split(f.etcd, ",") {
		if e = strings.TrimSpace(e); e != "" {
			eps = append(eps, e)
		}
	}
	return cluster.Config{Endpoints: eps, CAFile: abs(f.etcdCA), CertFile: abs(f.etcdCert), KeyFile: abs(f.etcdKey), Prefix: f.prefix}
}

func abs(p string) string {
	if p == "" {
		return ""
	}
	a, err := filepath.Abs(p)
	if err != nil {
		return p
	}
	return a
}

func runCluster(ctx context.Context, args []string, s stdio) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" {
		if len(args) == 0 {
			return usageErr("say init, join, leave or status (ipcert cluster --help)")
		}
		fmt.Fprintln(s.Out, strings.TrimSpace(clusterHelp))
		return nil
	}
	verb := args[0]
	var f clusterFlags
	fs := newFlagSet("cluster "+verb, clusterHelp, s.Out, s.Err)
	f.commonFlags.register(fs)
	switch verb {
	case "init", "join":
		fs.StringVar(&f.etcd, "etcd", "", "etcd client URLs, comma-separated (required)")
		fs.StringVar(&f.etcdCA, "etcd-ca", "", "PEM file of the CA of etcd's server certificates")
		fs.StringVar(&f.etcdCert, "etcd-cert", "", "this machine's client certificate for etcd (PEM)")
		fs.StringVar(&f.etcdKey, "etcd-key", "", "its key (PEM)")
		fs.StringVar(&f.prefix, "prefix", cluster.DefaultPrefix, "where ipcert keeps its keys in etcd")
		if verb == "join" {
			fs.StringVar(&f.keyFile, "cluster-key", "", "the cluster key copied from a machine already in the cluster (required)")
		}
	case "leave", "status":
	default:
		return usageErr("unknown verb %q; say init, join, leave or status", verb)
	}
	if err := parseFlags(fs, args[1:], s.Env); err != nil {
		return err
	}
	fail := func(code int, format string, a ...any) error {
		return withPrefix("ipcert cluster "+verb, exitWith(code, format, a...))
	}
	st, err := f.openStore(s.Env)
	if err != nil {
		return fail(exitFailure, "%v", err)
	}
	root := st.Root()
	switch verb {
	case "init", "join":
		if _, in, _ := cluster.LoadConfig(root); in {
			return fail(exitUsage, "%s is already in a cluster (%s); ipcert cluster leave first", root, filepath.Join(root, cluster.ConfigFile))
		}
		c := f.config()
		if len(c.Endpoints) == 0 {
			return fail(exitUsage, "--etcd is required: the client URL(s) of the cluster's etcd, such as https://10.0.0.10:2379")
		}
		if (c.CertFile == "") != (c.KeyFile == "") {
			return fail(exitUsage, "--etcd-cert and --etcd-key go together")
		}
		keyPath := filepath.Join(root, cluster.KeyFile)
		var key []byte
		if verb == "init" {
			if key, err = cluster.NewKey(); err != nil {
				return fail(exitFailure, "%v", err)
			}
		} else {
			if f.keyFile == "" {
				return fail(exitUsage, "--cluster-key is required: the cluster.key file copied from a machine already in the cluster")
			}
			if key, err = os.ReadFile(f.keyFile); err != nil {
				return fail(exitUsage, "--cluster-key: %v", err)
			}
			if _, err := cluster.ParseKey(key); err != nil {
				return fail(exitUsage, "--cluster-key %s: %v", f.keyFile, err)
			}
		}
		// The key first, then a check against etcd, then the
		// configuration that turns cluster mode on.
		if err := store.WriteFileAtomic(keyPath, key, 0o600); err != nil {
			return fail(exitFailure, "writing the cluster key: %v", err)
		}
		c.KeyPath = keyPath
		cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		defer cancel()
		cs, err := cluster.Connect(cctx, c)
		if err != nil {
			return fail(exitFailure, "%v", err)
		}
		defer cs.Close()
		if verb == "init" {
			if ok, err := cs.CheckKey(cctx); err != nil && !errors.Is(err, cluster.ErrOtherKey) {
				return fail(exitFailure, "%v", err)
			} else if ok || errors.Is(err, cluster.ErrOtherKey) {
				return fail(exitFailure, "etcd already holds a cluster under %s: join it with its cluster.key (ipcert cluster join), or init with another --prefix", c.Prefix)
			}
			if err := cs.InitKeyCheck(cctx); err != nil {
				return fail(exitFailure, "%v", err)
			}
		} else if _, err := cs.CheckKey(cctx); err != nil {
			return fail(exitFailure, "%v", err)
		}
		c.KeyPath = "" // beside cluster.json
		if err := cluster.SaveConfig(root, c); err != nil {
			return fail(exitFailure, "%v", err)
		}
		fmt.Fprintf(s.Out, "This machine is in the cluster at %s (prefix %s).\n", strings.Join(c.Endpoints, ","), c.Prefix)
		if verb == "init" {
			fmt.Fprintf(s.Out, "The cluster key is %s: copy it to each other machine (scp, never through etcd) and run there:\n", keyPath)
			fmt.Fprintf(s.Out, "  sudo ipcert cluster join --etcd %s --cluster-key FILE%s\n", strings.Join(c.Endpoints, ","), tlsArgs(c))
		}
		fmt.Fprintln(s.Out, "Next: run \"sudo ipcert agent\" on every machine, then \"sudo ipcert issue --cluster ...\" on one.")
		return nil
	case "leave":
		c, in, err := cluster.LoadConfig(root)
		if err != nil {
			return fail(exitFailure, "%v", err)
		}
		if !in {
			return fail(exitUsage, "%s is not in a cluster", root)
		}
		if err := os.Remove(filepath.Join(root, cluster.ConfigFile)); err != nil {
			return fail(exitFailure, "%v", err)
		}
		fmt.Fprintf(s.Out, "This machine left the cluster at %s: its certificates stay in %s and keep being served; the cluster key stays in %s (remove it when no machine needs it).\n", strings.Join(c.Endpoints, ","), root, c.KeyPath)
		return nil
	}
	// status
	c, in, err := cluster.LoadConfig(root)
	if err != nil {
		return fail(exitFailure, "%v", err)
	}
	if !in {
		return fail(exitUsage, "%s is not in a cluster (ipcert cluster init, or join)", root)
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	cs, err := cluster.Connect(cctx, c)
	if err != nil {
		return fail(exitFailure, "%v", err)
	}
	defer cs.Close()
	certs, err := cs.Certificates(cctx)
	if err != nil {
		return fail(exitFailure, "%v", err)
	}
	machines, err := cs.Machines(cctx)
	if err != nil {
		return fail(exitFailure, "%v", err)
	}
	sort.Slice(machines, func(i, j int) bool { return machines[i].ID < machines[j].ID })
	type certRow struct {
		Name     string    `json:"name"`
		Version  int       `json:"version"`
		NotAfter time.Time `json:"not_after"`
		Stale    []string  `json:"stale_on,omitempty"` // machines serving an older version or none
	}
	var rows []certRow
	for _, ct := range certs {
		r := certRow{Name: ct.Name, Version: ct.Version, NotAfter: ct.NotAfter}
		for _, m := range machines {
			if m.Serves[ct.Name] != ct.Version {
				r.Stale = append(r.Stale, m.ID)
			}
		}
		rows = append(rows, r)
	}
	if f.jsonOut {
		return writeJSON(s.Out, map[string]any{"endpoints": c.Endpoints, "prefix": c.Prefix, "certificates": rows, "machines": machines})
	}
	fmt.Fprintf(s.Out, "Cluster at %s (prefix %s): %d machine(s), %d certificate(s)\n", strings.Join(c.Endpoints, ","), c.Prefix, len(machines), len(rows))
	for _, m := range machines {
		var serves []string
		for n, v := range m.Serves {
			serves = append(serves, fmt.Sprintf("%s v%d", n, v))
		}
		sort.Strings(serves)
		fmt.Fprintf(s.Out, "  machine %s (ipcert %s, %s): %s\n", untrusted.Text(m.ID), untrusted.Text(m.Version), untrusted.Text(strings.Join(m.Addresses, ", ")), untrusted.Text(strings.Join(serves, ", ")))
	}
	code := exitOK
	for _, r := range rows {
		state := "served by every machine"
		if len(r.Stale) > 0 {
			state = "NOT yet on " + untrusted.Text(strings.Join(r.Stale, ", "))
			code = exitFailure
		}
		fmt.Fprintf(s.Out, "  %s: version %d, valid until %s, %s\n", untrusted.Text(r.Name), r.Version, r.NotAfter.UTC().Format("2006-01-02 15:04 UTC"), state)
	}
	return exitCode(code)
}

func tlsArgs(c cluster.Config) string {
	var b strings.Builder
	for _, a := range [][2]string{{"--etcd-ca", c.CAFile}, {"--etcd-cert", c.CertFile}, {"--etcd-key", c.KeyFile}} {
		if a[1] != "" {
			b.WriteString(" " + a[0] + " " + shellQuote(a[1]))
		}
	}
	if c.Prefix != "" && c.Prefix != cluster.DefaultPrefix {
		b.WriteString(" --prefix " + shellQuote(c.Prefix))
	}
	return b.String()
}

func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-:,=@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func runAgent(ctx context.Context, args []string, s stdio) error {
	var cf commonFlags
	var httpListen, tlsListen, id string
	var addrs multiFlag
	fs := newFlagSet("agent", agentHelp, s.Out, s.Err)
	cf.register(fs)
	fs.StringVar(&httpListen, "http-listen", ":80", "where to answer http-01 (empty: not at all)")
	fs.StringVar(&tlsListen, "tls-listen", ":443", "where to answer tls-alpn-01 (empty: not at all)")
	fs.StringVar(&id, "id", "", "this machine's name in the cluster (default the host name)")
	fs.Var(&addrs, "address", "this machine's own address, for the status (repeatable)")
	if err := parseFlags(fs, args, s.Env); err != nil {
		return err
	}
	for _, l := range []struct{ flag, v string }{{"--http-listen", httpListen}, {"--tls-listen", tlsListen}} {
		if l.v != "" {
			if err := validateListen(l.v); err != nil {
				return usageErr("%s: %v", l.flag, err)
			}
		}
	}
	if httpListen == "" && tlsListen == "" {
		return usageErr("--http-listen and --tls-listen are both empty: the agent would answer nothing")
	}
	if id == "" {
		h, err := os.Hostname()
		if err != nil || h == "" {
			return usageErr("no host name: give --id NAME")
		}
		id = h
	}
	st, err := cf.openStore(s.Env)
	if err != nil {
		return failure("%v", err)
	}
	c, in, err := cluster.LoadConfig(st.Root())
	if err != nil {
		return failure("%v", err)
	}
	if !in {
		return usageErr("%s is not in a cluster: run ipcert cluster init (first machine) or ipcert cluster join (the others)", st.Root())
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	cs, err := cluster.Connect(cctx, c)
	cancel()
	if err != nil {
		return failure("%v", err)
	}
	defer cs.Close()
	var httpL, tlsL net.Listener
	if httpListen != "" {
		if httpL, err = net.Listen("tcp", httpListen); err != nil {
			return failure("answering http-01 on %s: %v", httpListen, err)
		}
	}
	if tlsListen != "" {
		if tlsL, err = net.Listen("tcp", tlsListen); err != nil {
			return failure("answering tls-alpn-01 on %s: %v", tlsListen, err)
		}
	}
	fmt.Fprintf(s.Err, "ipcert agent %s: answering validators on %s, cluster at %s\n", id, strings.Trim(httpListen+" "+tlsListen, " "), strings.Join(c.Endpoints, ","))
	a := &cluster.Agent{Store: cs, Local: st, ID: id, Addresses: addrs, Version: version,
		Log: func(line string) { fmt.Fprintf(s.Err, "ipcert agent: %s\n", line) },
		Seen: func(remote, what string, answered bool) {
			fmt.Fprintf(s.Err, "ipcert agent: validator %s: %s, answered=%v\n", untrusted.Text(remote), untrusted.Text(what), answered)
		}}
	if err := a.Run(ctx, httpL, tlsL); err != nil {
		return failure("%v", err)
	}
	return nil
}

// clusterIssue is `issue --cluster`: the answers go to every machine, the
// certificate's lock is held while ordering, and the result is written
// fenced by that lock (cluster.Share).
type clusterIssue struct {
	cs *cluster.Store
	in *cluster.Issuance
}

// connectCluster opens the cluster of the state directory root.
func connectCluster(ctx context.Context, root string) (*cluster.Store, error) {
	c, in, err := cluster.LoadConfig(root)
	if err != nil {
		return nil, err
	}
	if !in {
		return nil, fmt.Errorf("%s is not in a cluster: run ipcert cluster init or join first", root)
	}
	cctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	return cluster.Connect(cctx, c)
}

func startClusterIssue(ctx context.Context, st *store.Store, name string, req *acmeflow.Request) (*clusterIssue, error) {
	cs, err := connectCluster(ctx, st.Root())
	if err != nil {
		return nil, err
	}
	// Another machine renewing the same certificate holds the lock: wait
	// for it (bounded by ctx), then order: issue always orders.
	in, err := cs.Share(ctx, st, name, time.Time{}, req)
	if err != nil {
		cs.Close()
		return nil, err
	}
	return &clusterIssue{cs: cs, in: in}, nil
}

func (ci *clusterIssue) publish(ctx context.Context, iss *acmeflow.Issued) (int, error) {
	return ci.in.Publish(ctx, iss)
}

func (ci *clusterIssue) close() {
	ci.in.Release()
	ci.cs.Close()
}

// renewShared is renew.CAs.Shared for a state directory in a cluster: the
// store is opened at the first cluster certificate that is due.
type renewShared struct {
	st *store.Store
	cs *cluster.Store
}

func (rs *renewShared) share(ctx context.Context, r *store.Renewal, req *acmeflow.Request) (renew.SharedRun, error) {
	if rs.cs == nil {
		cs, err := connectCluster(ctx, rs.st.Root())
		if err != nil {
			return renew.SharedRun{}, err
		}
		rs.cs = cs
	}
	in, err := rs.cs.Share(ctx, rs.st, r.Name, r.NotAfter, req)
	if err != nil {
		return renew.SharedRun{}, err
	}
	run := renew.SharedRun{Done: in.Done, Release: in.Release}
	if in.Done == nil {
		run.Publish = func(ctx context.Context, iss *acmeflow.Issued) error {
			_, err := in.Publish(ctx, iss)
			return err
		}
	}
	return run, nil
}

func (rs *renewShared) close() {
	if rs.cs != nil {
		rs.cs.Close()
	}
}
