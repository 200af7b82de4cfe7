package cli

import (
	"fmt"
	"io"
	stdlog "log"
	"sync"

	legolog "github.com/go-acme/lego/v4/log"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/safefs"
	"github.com/ipcert/ipcert/internal/untrusted"
)

// debugLog is where --debug sends lego's and Pebble's chatter. It is set
// once per process by setupDebugLog, before any engine work starts; by
// default it discards, so nothing ever writes over a UI on the terminal.
var debugLog struct {
	sync.Mutex
	w io.Writer
}

func debugWriter() io.Writer {
	debugLog.Lock()
	defer debugLog.Unlock()
	if debugLog.w == nil {
		return io.Discard
	}
	return debugLog.w
}

// setupDebugLog opens path for appending (0600: it may name account URLs)
// and points lego's global logger at it, or at nothing.
func setupDebugLog(path string, errw io.Writer) func() {
	if path == "" {
		legolog.Logger = stdlog.New(io.Discard, "", 0)
		return func() {}
	}
	// As root: never through a link or into a file another user owns
	// (a planted --debug path would append to a root-only file).
	f, err := safefs.OpenAppend(path, 0o600, safefs.WriteOptions{})
	if err != nil {
		fmt.Fprintf(errw, "ipcert: cannot open debug log %s: %v (continuing without)\n", path, err)
		legolog.Logger = stdlog.New(io.Discard, "", 0)
		return func() {}
	}
	// lego's and Pebble's lines quote the CA's and validators' words.
	w := termSafe(f)
	debugLog.Lock()
	debugLog.w = w
	debugLog.Unlock()
	legolog.Logger = stdlog.New(w, "lego: ", stdlog.LstdFlags|stdlog.Lmicroseconds)
	return func() {
		debugLog.Lock()
		debugLog.w = nil
		debugLog.Unlock()
		legolog.Logger = stdlog.New(io.Discard, "", 0)
		f.Close()
	}
}

// logEvents writes every engine event, polls included, with a timestamp to
// the debug log, then passes it on to next (which may be nil). The events
// carry no secrets: tokens and validator addresses, never keys.
func logEvents(next func(acmeflow.Event)) func(acmeflow.Event) {
	w := debugWriter()
	if w == io.Discard {
		return next
	}
	return func(ev acmeflow.Event) {
		fmt.Fprintf(w, "%s event %s/%s %s\n", ev.Time.Format("15:04:05.000000"), ev.Step, ev.Kind, untrusted.Text(ev.String()))
		if next != nil {
			next(ev)
		}
	}
}

// termSafe wraps a terminal, log file or pipe so that control characters
// in what is written (an escape sequence a validator put in its request
// path, kept in renewal.json, replayed by doctor) come out as visible
// \xNN escapes; line breaks and tabs pass. Each Write is one formatted
// message, so a character is never split between two.
func termSafe(w io.Writer) io.Writer {
	if _, ok := w.(safeWriter); ok || w == nil {
		return w
	}
	return safeWriter{w}
}

type safeWriter struct{ w io.Writer }

func (s safeWriter) Write(p []byte) (int, error) {
	clean := untrusted.Lines(string(p))
	if _, err := io.WriteString(s.w, clean); err != nil {
		return 0, err
	}
	return len(p), nil
}
