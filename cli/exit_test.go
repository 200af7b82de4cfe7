package cli

import (
	"bytes"
	"errors"
	"fmt"
	"testing"

	"github.com/ipcert/ipcert/internal/store"
)

// TestExitStatus: a command's error is printed once, after "ipcert NAME: "
// or its own prefix, and its code returned; an exitError without a
// message prints nothing.
func TestExitStatus(t *testing.T) {
	for _, c := range []struct {
		name string
		err  error
		code int
		out  string
	}{
		{"renew", nil, 0, ""},
		{"renew", exitCode(exitOK), 0, ""},
		{"renew", exitCode(exitRenewRenewed), 10, ""},
		{"renew", &exitError{code: exitOK}, 0, ""}, // --help
		{"verify", usageErr("give one address: %s", "x"), 2, "ipcert verify: give one address: x\n"},
		{"snippet", failure("%v", errors.New("boom")), 1, "ipcert snippet: boom\n"},
		{"issue", errors.New("plain"), 1, "ipcert issue: plain\n"},
		{"timer", withPrefix("ipcert timer install", usageErr("bad")), 2, "ipcert timer install: bad\n"},
		{"timer", withPrefix("ipcert timer status", errors.New("plain")), 1, "ipcert timer status: plain\n"},
		{"", usageErr("%v", "no terminal"), 2, "ipcert: no terminal\n"},
		{"renew", exitWith(exitInterrupted, "interrupted\nsecond line"), 130, "ipcert renew: interrupted\nsecond line\n"},
		{"deploy", lockFailure(fmt.Errorf("held: %w", store.ErrLocked)), exitLocked, "ipcert deploy: held: " + store.ErrLocked.Error() + "\n"},
		{"deploy", lockFailure(errors.New("disk full")), 1, "ipcert deploy: disk full\n"},
	} {
		var b bytes.Buffer
		if code := exitStatus(c.name, c.err, &b); code != c.code || b.String() != c.out {
			t.Errorf("%s %v: code %d, printed %q; want %d, %q", c.name, c.err, code, b.String(), c.code, c.out)
		}
	}
	if withPrefix("x", nil) != nil {
		t.Error("withPrefix(nil) is not nil")
	}
}
