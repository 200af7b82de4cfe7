package cli

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"
	"sync"
)

// newFlagSet makes a flag set whose usage text is the command's help with
// examples. --help prints it on out (stdout: help is what was asked for);
// a flag error goes to errw with a pointer to --help, never the whole text.
func newFlagSet(name, help string, out, errw io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("ipcert "+name, flag.ContinueOnError)
	// The flag package's own messages name flags with one dash; parseFlags
	// prints the error in ipcert's "--flag" form instead (flagError).
	fs.SetOutput(io.Discard)
	// The flag package calls Usage for an error too: the help is printed
	// by parseFlags, only when it was asked for (flag.ErrHelp).
	fs.Usage = func() {}
	helpers.Store(fs, func() {
		fmt.Fprintln(out, strings.TrimSpace(help))
		fmt.Fprintln(out, "\nFlags (each also read from the IPCERT_* variable named after it):")
		printFlags(out, fs)
	})
	return fs
}

// helpers are the flag sets' --help printers (newFlagSet).
var helpers sync.Map // *flag.FlagSet -> func()

// printHelp prints fs's --help.
func printHelp(fs *flag.FlagSet) {
	if h, ok := helpers.LoadAndDelete(fs); ok {
		h.(func())()
	}
}

// printFlags is flag.PrintDefaults in the form the usage lines, man pages
// and completions use: "--name TYPE", the usage, the default.
func printFlags(w io.Writer, fs *flag.FlagSet) {
	fs.VisitAll(func(f *flag.Flag) {
		if strings.HasPrefix(f.Name, "__") {
			return
		}
		typ, usage := flag.UnquoteUsage(f)
		line := "  --" + f.Name
		if typ != "" {
			line += " " + typ
		}
		usage = strings.ReplaceAll(usage, "\n", "\n    \t")
		line += "\n    \t" + usage
		if d := f.DefValue; d != "" && d != "false" && d != "0" && d != "[]" {
			if typ == "string" {
				d = fmt.Sprintf("%q", d)
			}
			line += " (default " + d + ")"
		}
		fmt.Fprintln(w, line)
	})
}

// flagError is the flag package's error in ipcert's words: flags with two
// dashes, and for an unknown flag the nearest one the command has.
func flagError(fs *flag.FlagSet, err error) string {
	msg := err.Error()
	for _, p := range []string{"not defined: -", "for flag -", "needs an argument: -"} {
		if i := strings.Index(msg, p); i >= 0 && !strings.HasPrefix(msg[i+len(p):], "-") {
			msg = msg[:i+len(p)] + "-" + msg[i+len(p):]
		}
	}
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: --"); ok {
		msg = "unknown flag --" + name
		var names []string
		fs.VisitAll(func(f *flag.Flag) { names = append(names, f.Name) })
		if near := nearest(name, names); near != "" {
			msg += "; did you mean --" + near + "?"
		}
	}
	return msg
}

// nearest is the name in names closest to s (a typo: at most 2 edits, or
// a unique prefix), or "".
func nearest(s string, names []string) string {
	best, bestD := "", 3
	var prefixed []string
	for _, n := range names {
		if strings.HasPrefix(n, "__") {
			continue
		}
		if d := editDistance(s, n); d < bestD {
			best, bestD = n, d
		}
		if len(s) >= 2 && strings.HasPrefix(n, s) {
			prefixed = append(prefixed, n)
		}
	}
	if best == "" && len(prefixed) == 1 {
		return prefixed[0]
	}
	return best
}

// editDistance is the Damerau-Levenshtein distance (a swap of two
// neighbours counts once: "stauts" is one edit from "status").
func editDistance(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	d := make([][]int, len(ra)+1)
	for i := range d {
		d[i] = make([]int, len(rb)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(ra); i++ {
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && ra[i-1] == rb[j-2] && ra[i-2] == rb[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(ra)][len(rb)]
}

// envName is the IPCERT_* variable that stands for a flag:
// --state-dir is IPCERT_STATE_DIR.
func envName(flagName string) string {
	return "IPCERT_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

// parseFlags parses args, then fills every flag not given on the command
// line from its IPCERT_* environment variable (docs/ARCHITECTURE.md: every answer is a
// flag and a variable). A non-nil error means the command stops now and
// returns it: --help was asked (exit 0, printed here), or a usage error.
func parseFlags(fs *flag.FlagSet, args []string, env func(string) string) error {
	// Flags may come after the arguments too ("ipcert renew NAME --force"),
	// as people type them: parse, set the first argument aside, go on.
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				printHelp(fs)
				return &exitError{code: exitOK} // stop here; nothing more to print
			}
			helpers.Delete(fs)
			return &exitError{code: exitUsage, prefix: fs.Name(),
				//lint:ignore ST1005 the two lines are printed as they are, not wrapped
				err: fmt.Errorf("%s\nRun \"%s --help\" for the flags and examples.", flagError(fs, err), fs.Name())}
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
	helpers.Delete(fs)
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
		return &exitError{code: exitUsage, prefix: "ipcert", err: bad}
	}
	return nil
}

// parseArgs is parseFlags for commands that take positional arguments:
// it returns them (flags may come before, between or after them).
func parseArgs(fs *flag.FlagSet, args []string, env func(string) string) ([]string, error) {
	if err := parseFlags(fs, args, env); err != nil {
		return nil, err
	}
	return fs.Args(), nil
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
