package deploy

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/ipcert/ipcert/deploy/catalog"
)

// Env is the machine DetectServers looks at; tests point Root at a
// testdata tree.
type Env struct {
	Root     string                          // "/" by default
	LookPath func(string) (string, error)    // exec.LookPath by default
	Proc     func() (map[string]bool, error) // running command names; default reads Root/proc/*/comm
}

// Server is an installed web server.
type Server struct {
	Kind    Kind
	Binary  string // its path
	Running bool
	Distro  Distro
	Systemd bool // the machine runs systemd: reload through systemctl
}

// Layout is where this server's config for certificate name goes.
func (s Server) Layout(name string) Layout { return LayoutFor(s.Kind, s.Distro, name) }

// ReloadCmd reloads this server.
func (s Server) ReloadCmd() Cmd {
	return Layout{Kind: s.Kind, Unit: unitFor(s.Kind, s.Distro)}.ReloadCmd(s.Systemd)
}

func (e Env) root() string {
	if e.Root == "" {
		return "/"
	}
	return e.Root
}

// binaries are each kind's program names (the catalogue's).
func binaries(k Kind, d Distro) []string { return catalog.Lookup(k, d).Programs }

// DetectServers lists the services of the catalogue installed here,
// running ones first.
func DetectServers(ctx context.Context, env Env) []Server {
	root := env.root()
	distro := DetectDistro(root)
	_, err := os.Stat(filepath.Join(root, "run", "systemd", "system"))
	systemd := err == nil
	running, _ := env.running()
	var found, idle []Server
	for _, k := range Kinds {
		if ctx.Err() != nil {
			break
		}
		for _, bin := range binaries(k, distro) {
			path := env.find(bin)
			if path == "" {
				continue
			}
			s := Server{Kind: k, Binary: path, Distro: distro, Systemd: systemd}
			for _, p := range catalog.Lookup(k, distro).Procs {
				s.Running = s.Running || running[p]
			}
			if s.Running {
				found = append(found, s)
			} else {
				idle = append(idle, s)
			}
			break
		}
	}
	return append(found, idle...)
}

// DetectServer returns the server to install for: want when it is
// installed, or, with want empty, the one running server (or the one
// installed server). It says what to pass when the choice is ambiguous.
func DetectServer(ctx context.Context, env Env, want Kind) (Server, error) {
	all := DetectServers(ctx, env)
	if want != "" {
		for _, s := range all {
			if s.Kind == want {
				return s, nil
			}
		}
		return Server{}, fmt.Errorf("%s is not installed here (no %s program found); install it, or print the snippet without --write and install it by hand", want, strings.Join(binaries(want, DetectDistro(env.root())), " or "))
	}
	var run []Server
	for _, s := range all {
		if s.Running {
			run = append(run, s)
		}
	}
	switch {
	case len(run) == 1:
		return run[0], nil
	case len(run) > 1:
		return Server{}, fmt.Errorf("several services ipcert configures are running (%s); say which one to use", kindsOf(run))
	case len(all) == 1:
		return all[0], nil
	case len(all) > 1:
		return Server{}, fmt.Errorf("several services ipcert configures are installed and none is running (%s); say which one to use", kindsOf(all))
	}
	return Server{}, fmt.Errorf("no web server or other service ipcert configures found (looked for %s)", kindsOf(nil))
}

func kindsOf(ss []Server) string {
	var names []string
	if ss == nil {
		for _, k := range Kinds {
			names = append(names, string(k))
		}
	}
	for _, s := range ss {
		names = append(names, string(s.Kind))
	}
	return strings.Join(names, ", ")
}

// find looks in PATH, then in the sbin directories a non-root PATH often
// lacks.
func (e Env) find(bin string) string {
	if e.Root == "" || e.Root == "/" {
		look := e.LookPath
		if look == nil {
			look = exec.LookPath
		}
		if p, err := look(bin); err == nil {
			return p
		}
	}
	for _, dir := range []string{"usr/sbin", "usr/bin", "sbin", "usr/local/sbin", "usr/local/bin"} {
		p := filepath.Join(e.root(), dir, bin)
		if st, err := os.Stat(p); err == nil && !st.IsDir() && st.Mode()&0o111 != 0 {
			return p
		}
	}
	return ""
}

func (e Env) running() (map[string]bool, error) {
	if e.Proc != nil {
		return e.Proc()
	}
	dir := filepath.Join(e.root(), "proc")
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	out := map[string]bool{}
	for _, ent := range entries {
		if _, err := strconv.Atoi(ent.Name()); err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join(dir, ent.Name(), "comm"))
		if err != nil {
			continue
		}
		out[strings.TrimSpace(string(b))] = true
	}
	return out, nil
}
