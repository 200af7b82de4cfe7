// Package cli is ipcert's commands: one file each (flags, calling the
// packages that do the work, printing), the registry they join, and the
// dispatch of a command line. Only package main imports it.
package cli

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"strings"
	"syscall"
)

// version is the binary's version, set by Main (main.version).
var version = "dev"

// Exit codes shared by every command. Commands may add their own, documented
// in their --help and in the README.
const (
	exitOK          = 0
	exitFailure     = 1
	exitUsage       = 2
	exitInterrupted = 130
)

// stdio is what a command may read from and write to. Results go to Out, the
// human commentary and UI to Err (docs/ARCHITECTURE.md: results on stdout, UI on stderr).
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
	// run is the command: nil is exit 0; an error is printed once, as
	// "ipcert NAME: message" on stderr, and its code returned (exitError).
	run func(ctx context.Context, args []string, s stdio) error
}

// call runs c and returns its exit code, printing its error once.
func (c command) call(ctx context.Context, args []string, s stdio) int {
	name := c.name
	if name == "wizard" {
		name = "" // the wizard is "ipcert" itself
	}
	return exitStatus(name, c.run(ctx, args, s), s.Err)
}

// commands is filled by each cmd_*.go file's init and never changed after.
var commands = map[string]command{}

func register(c command) {
	if _, dup := commands[c.name]; dup {
		panic("ipcert: command registered twice: " + c.name)
	}
	commands[c.name] = c
}

// Main runs the command line of the process and returns its exit code:
// main's whole job.
func Main(v string) int {
	version = v
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, os.Args[1:], stdio{In: os.Stdin, Out: os.Stdout, Err: os.Stderr, Env: os.Getenv})
}

func run(ctx context.Context, args []string, s stdio) int {
	if s.Env == nil {
		s.Env = os.Getenv
	}
	if len(args) == 0 {
		if c, ok := commands["wizard"]; ok {
			return c.call(ctx, nil, s)
		}
		usage(s.Err)
		return exitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		if len(args) > 1 {
			if c, ok := commands[args[1]]; ok {
				return c.call(ctx, []string{"--help"}, s)
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
			return w.call(ctx, args, s)
		}
	}
	if !ok {
		var names []string
		for n, c := range commands {
			if c.summary != "" || n == "wizard" {
				names = append(names, n)
			}
		}
		sort.Strings(names)
		if near := nearest(args[0], names); near != "" {
			fmt.Fprintf(s.Err, "ipcert: unknown command %q; did you mean %q?\n", args[0], near)
			fmt.Fprintf(s.Err, "Run \"ipcert --help\" for the commands.\n")
			return exitUsage
		}
		fmt.Fprintf(s.Err, "ipcert: unknown command %q\n\n", args[0])
		usage(s.Err)
		return exitUsage
	}
	if args[0] != "wizard" && args[0] != "demo" {
		// The headless commands print text from outside (a CA's words, a
		// gateway's, a served certificate's, files): every package escapes
		// it where it comes in (internal/untrusted), and this is the net
		// under all of them. The wizard and demo draw the screen with
		// escape sequences of their own and escape what they show.
		s.Out, s.Err = termSafe(s.Out), termSafe(s.Err)
	}
	return c.call(ctx, args[1:], s)
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
	for n, c := range commands {
		// The wizard is "ipcert" itself; a command without a summary is
		// for scripts only (__names, for the completions).
		if n != "wizard" && c.summary != "" {
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
