package cli

import (
	"bytes"
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
		if done, code := parseFlags(fs, c.args, func(string) string { return "" }, &bytes.Buffer{}); done {
			t.Fatalf("%v: done with %d", c.args, code)
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
