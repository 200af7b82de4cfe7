// Command ipcert gets a publicly trusted TLS certificate for a bare IP
// address from Let's Encrypt and keeps it fresh. main only wires commands:
// it parses flags, builds the real dependencies and calls a package.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime/debug"
	"sort"
	"strings"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=..."; a
// `go install`ed build has none, and takes its module version (or the VCS
// revision) from the build information instead.
var version = "dev"

func init() {
	if version != "dev" {
		return
	}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return
	}
	if v := bi.Main.Version; v != "" && v != "(devel)" {
		version = v
		return
	}
	var rev, dirty string
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.modified":
			if s.Value == "true" {
				dirty = "-dirty"
			}
		}
	}
	if len(rev) > 12 {
		rev = rev[:12]
	}
	if rev != "" {
		version = "dev-" + rev + dirty
	}
}

// Exit codes shared by every command. Commands may add their own, documented
// in their --help and in the README.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// stdio is what a command may read from and write to. Results go to Out, the
// human commentary and UI to Err (STYLE.md: results on stdout, UI on stderr).
type stdio struct {
	In  io.Reader
	Out io.Writer
	Err io.Writer
	// Env looks up environment variables; tests replace it.
	Env func(string) string
}

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, s stdio) int
}

// commands is filled by each cmd_*.go file's init and never changed after.
var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("ipcert: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Env: os.Getenv})
	stop()
	os.Exit(code)
}

func run(ctx context.Context, args []string, s stdio) int {
	if s.Env == nil {
		s.Env = os.Getenv
	}
	if len(args) == 0 {
		if c, ok := commands["wizard"]; ok {
			return c.run(ctx, nil, s)
		}
		usage(s.Err)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				return c.run(ctx, []string{"--help"}, s)
			}
		}
		usage(s.Out)
		return exitOK
	case "-v", "--version", "version":
		fmt.Fprintf(s.Out, "ipcert %s\n", version)
		return exitOK
	}
	c, ok := commands[args[0]]
	if !ok && strings.HasPrefix(args[0], "-") {
		// "ipcert --ip ADDR ...": flags with no command preset the wizard.
		if w, found := commands["wizard"]; found {
			return w.run(ctx, args, s)
		}
	}
	if !ok {
		fmt.Fprintf(s.Err, "ipcert: unknown command %q\n\n", args[0])
		usage(s.Err)
		return exitUsage
	}
	return c.run(ctx, args[1:], s)
}

func usage(w io.Writer) {
	fmt.Fprintf(w, `ipcert gets a publicly trusted HTTPS certificate for a bare IP address
from Let's Encrypt (160-hour "shortlived" certificates) and keeps it fresh.

Usage:
  ipcert                 the setup wizard (on a terminal)
  ipcert COMMAND [flags]

Commands:
`)
	names := make([]string, 0, len(commands))
	for n := range commands {
		if n != "wizard" {
			names = append(names, n)
		}
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-10s  %s\n", n, commands[n].summary)
	}
	fmt.Fprintf(w, `
Run "ipcert COMMAND --help" for a command's flags and examples.
Try everything first with no internet and no root: ipcert demo
`)
}
