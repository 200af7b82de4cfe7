package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
)

// newFlagSet makes a flag set whose usage text is the command's help with
// examples. --help prints it on out (stdout: help is what was asked for);
// a flag error goes to errw with a pointer to --help, never the whole text.
func newFlagSet(name, help string, out, errw io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("ipcert "+name, flag.ContinueOnError)
	ew := &flagErrors{w: errw}
	fs.SetOutput(ew)
	fs.Usage = func() {
		if ew.seen {
			// The flag package printed the error first: parseFlags adds
			// the pointer to --help.
			return
		}
		fmt.Fprintln(out, strings.TrimSpace(help))
		fmt.Fprintln(out, "\nFlags (each also read from the IPCERT_* variable named after it):")
		fs.SetOutput(out)
		fs.PrintDefaults()
		fs.SetOutput(ew)
	}
	return fs
}

// flagErrors is a flag set's output: it notes that an error was printed.
type flagErrors struct {
	w    io.Writer
	seen bool
}

func (e *flagErrors) Write(p []byte) (int, error) {
	e.seen = true
	return e.w.Write(p)
}

// envName is the IPCERT_* variable that stands for a flag:
// --state-dir is IPCERT_STATE_DIR.
func envName(flagName string) string {
	return "IPCERT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags parses args, then fills every flag not given on the command
// line from its IPCERT_* environment variable (STYLE.md: every answer is a
// flag and a variable). It returns (done, code): done is true when the
// command should stop now with code (help asked, or a usage error).
func parseFlags(fs *flag.FlagSet, args []string, env func(string) string, errw io.Writer) (bool, int) {
	// Flags may come after the arguments too ("ipcert renew NAME --force"),
	// as people type them: parse, set the first argument aside, go on.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return true, exitOK
			}
			fmt.Fprintf(errw, "Run \"%s --help\" for the flags and examples.\n", fs.Name())
			return true, exitUsage
		}
		rest := fs.Args()
		// flag stops at "--" and drops it: what follows is arguments only.
		if len(rest) == 0 || len(args) > 0 && len(rest) < len(args) && args[len(args)-len(rest)-1] == "--" {
			positional = append(positional, rest...)
			break
		}
		positional = append(positional, rest[0])
		args = rest[1:]
	}
	_ = fs.Parse(append([]string{"--"}, positional...))
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })
	var bad error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] || bad != nil {
			return
		}
		v := env(envName(f.Name))
		if v == "" {
			return
		}
		if cl, ok := f.Value.(*commandList); ok {
			// One shell command, spaces and commas included.
			_ = cl.Set(v)
			return
		}
		if ml, ok := f.Value.(*multiFlag); ok {
			for _, part := range strings.FieldsFunc(v, func(r rune) bool { return r == ',' || r == ' ' }) {
				if err := ml.Set(part); err != nil {
					bad = fmt.Errorf("%s: %w", envName(f.Name), err)
					return
				}
			}
			return
		}
		if err := fs.Set(f.Name, v); err != nil {
			bad = fmt.Errorf("%s=%q: %w", envName(f.Name), v, err)
		}
	})
	if bad != nil {
		fmt.Fprintf(errw, "ipcert: %v\n", bad)
		return true, exitUsage
	}
	return false, 0
}

// parseArgs is parseFlags for commands that take positional arguments:
// it returns them (flags may come before, between or after them).
func parseArgs(fs *flag.FlagSet, args []string, env func(string) string, errw io.Writer) ([]string, bool, int) {
	if done, code := parseFlags(fs, args, env, errw); done {
		return nil, true, code
	}
	return fs.Args(), false, 0
}

// multiFlag is a repeatable string flag (--ip A --ip B). From the
// environment it takes a comma- or space-separated list.
type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error {
	*m = append(*m, v)
	return nil
}

// commandList is a repeatable flag whose values are shell commands
// (--deploy-hook). Its IPCERT_* variable holds one command as it is: a
// list split on spaces would turn "systemctl reload nginx" into three.
// Several commands: repeat the flag, or join them in one with ; or &&.
type commandList []string

func (c *commandList) String() string { return strings.Join(*c, "; ") }
func (c *commandList) Set(v string) error {
	*c = append(*c, v)
	return nil
}
