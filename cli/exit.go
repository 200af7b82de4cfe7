package cli

import (
	"errors"
	"fmt"
	"io"

	"github.com/ipcert/ipcert/internal/store"
)

// exitError is how a command ends other than with success: the exit code
// and the message the dispatcher prints once on stderr, as "ipcert
// COMMAND: message" (run). A command returns it (or any error: exit 1);
// it never prints its own failure line.
//
// An exitError without err prints nothing: the command has said what
// there was to say (renew's "nothing due" is 0 and "renewed" 10, doctor's
// "problems found", a held state lock's 4, --help's 0).
type exitError struct {
	code int
	err  error
	// prefix replaces "ipcert COMMAND" before the message: a subcommand
	// ("ipcert timer install"), or "ipcert" alone (the wizard, an IPCERT_*
	// variable).
	prefix string
}

func (e *exitError) Error() string {
	if e.err == nil {
		return fmt.Sprintf("exit %d", e.code)
	}
	return e.err.Error()
}

func (e *exitError) Unwrap() error { return e.err }

// usageErr is exit 2 (bad arguments, a refused value) with the message
// fmt.Errorf(format, a...) makes.
func usageErr(format string, a ...any) error {
	return &exitError{code: exitUsage, err: fmt.Errorf(format, a...)}
}

// failure is exit 1 with the message fmt.Errorf(format, a...) makes.
func failure(format string, a ...any) error {
	return &exitError{code: exitFailure, err: fmt.Errorf(format, a...)}
}

// exitWith is exit code with the message fmt.Errorf(format, a...) makes.
func exitWith(code int, format string, a ...any) error {
	return &exitError{code: code, err: fmt.Errorf(format, a...)}
}

// exitCode is exit code with nothing printed; exitCode(0) is nil.
func exitCode(code int) error {
	if code == exitOK {
		return nil
	}
	return &exitError{code: code}
}

// withPrefix prints err after prefix instead of "ipcert COMMAND" (a
// subcommand's name); an error that is not an exitError becomes exit 1.
func withPrefix(prefix string, err error) error {
	if err == nil {
		return nil
	}
	var e *exitError
	if errors.As(err, &e) {
		c := *e
		c.prefix = prefix
		return &c
	}
	return &exitError{code: exitFailure, err: err, prefix: prefix}
}

// exitStatus prints err's message once on errw, after "ipcert NAME: " (or
// the error's own prefix), and returns the exit code: 0 for nil, the
// exitError's code, 1 for any other error.
func exitStatus(name string, err error, errw io.Writer) int {
	if err == nil {
		return exitOK
	}
	prefix := "ipcert"
	if name != "" {
		prefix += " " + name
	}
	code := exitFailure
	var e *exitError
	if errors.As(err, &e) {
		code = e.code
		if e.prefix != "" {
			prefix = e.prefix
		}
		err = e.err
	}
	if err != nil {
		fmt.Fprintf(errw, "%s: %s\n", prefix, err)
	}
	return code
}

// writeJSON is printJSON for a command returning an error: exit 1, with
// nothing more printed, when the encoding fails.
func writeJSON(w io.Writer, v any) error {
	return exitCode(printJSON(w, v))
}

// lockFailure is err with exit 4 when another ipcert run held the state
// lock (store.ErrLocked), else exit 1.
func lockFailure(err error) error {
	if errors.Is(err, store.ErrLocked) {
		return exitWith(exitLocked, "%v", err)
	}
	return failure("%v", err)
}
