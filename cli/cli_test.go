package cli

import (
	"bytes"
	"strings"
	"testing"
)

func TestParseFlagsInterspersed(t *testing.T) {
	for _, c := range []struct {
		args []string
		pos  []string
	}{
		{[]string{"a", "--force", "b", "--name", "n"}, []string{"a", "b"}},
		{[]string{"--force", "a"}, []string{"a"}},
		{[]string{"a", "--", "--force"}, []string{"a", "--force"}},
		{nil, nil},
	} {
		fs := newFlagSet("t", "help", &bytes.Buffer{}, &bytes.Buffer{})
		force := fs.Bool("force", false, "")
		name := fs.String("name", "", "")
		if err := parseFlags(fs, c.args, func(string) string { return "" }); err != nil {
			t.Fatalf("%v: done with %d: %v", c.args, exitStatus("t", err, &bytes.Buffer{}), err)
		}
		got := fs.Args()
		if len(got) != len(c.pos) {
			t.Fatalf("%v: args %q, want %q", c.args, got, c.pos)
		}
		for i := range got {
			if got[i] != c.pos[i] {
				t.Fatalf("%v: args %q, want %q", c.args, got, c.pos)
			}
		}
		wantForce := c.args != nil && c.args[1] != "--"
		if *force != wantForce {
			t.Errorf("%v: force %v", c.args, *force)
		}
		if len(c.args) == 5 && *name != "n" {
			t.Errorf("%v: name %q", c.args, *name)
		}
	}
}

// TestCLIHabits: the command line follows its ecosystem's habits (issue
// 24 item 13): a mistyped command or flag gets "did you mean", errors and
// --help name flags with two dashes as the usage lines and man pages do,
// timer --help lists its flags, and completion names the shells it lacks.
func TestCLIHabits(t *testing.T) {
	for _, c := range []struct {
		args    []string
		code    int
		in, not string // in the output (stdout and stderr)
	}{
		{[]string{"stauts"}, exitUsage, `unknown command "stauts"; did you mean "status"?`, ""},
		{[]string{"isue", "--ip", "1.2.3.4"}, exitUsage, `did you mean "issue"?`, ""},
		{[]string{"xyzzy"}, exitUsage, `unknown command "xyzzy"`, "did you mean"},
		{[]string{"issue", "--bogus"}, exitUsage, "ipcert issue: unknown flag --bogus\n", " -bogus"},
		{[]string{"issue", "-agre-tos"}, exitUsage, "unknown flag --agre-tos; did you mean --agree-tos?", ""},
		{[]string{"issue", "--ca"}, exitUsage, "flag needs an argument: --ca", " -ca"},
		{[]string{"renew", "--wait", "soon"}, exitUsage, `for flag --wait`, " -wait"},
		{[]string{"issue", "--help"}, exitOK, "\n  --agree-tos\n", "\n  -agree-tos"},
		{[]string{"timer", "--help"}, exitOK, "\n  --unit-dir string\n", ""},
		{[]string{"completion", "tcsh"}, exitUsage, `"tcsh" is not supported: ipcert has completion scripts for bash, zsh and fish only`, ""},
	} {
		code, out, errs := issueRun(t, nil, c.args...)
		all := out + errs
		if code != c.code || !strings.Contains(all, c.in) || c.not != "" && strings.Contains(all, c.not) {
			t.Errorf("ipcert %s: exit %d (want %d), want %q and not %q in:\n%s", strings.Join(c.args, " "), code, c.code, c.in, c.not, all)
		}
		if c.code == exitUsage && strings.Contains(out, "Flags (each") {
			t.Errorf("ipcert %s: a usage error printed the whole help on stdout", strings.Join(c.args, " "))
		}
	}
}
