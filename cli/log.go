package cli

import (
	"fmt"
	"io"
	stdlog "log"
	"sync"
	"unicode/utf8"

	legolog "github.com/go-acme/lego/v4/log"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/internal/safefs"
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
// \xNN escapes; line breaks and tabs pass. A character split between two
// writes (a buffered writer's chunks) is held back until its end comes,
// so it is never taken for invalid UTF-8.
func termSafe(w io.Writer) io.Writer {
	if _, ok := w.(*safeWriter); ok || w == nil {
		return w
	}
	return &safeWriter{w: w}
}

type safeWriter struct {
	mu    sync.Mutex
	w     io.Writer
	carry []byte // the start of a character whose end is still to come
}

func (s *safeWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := p
	if len(s.carry) > 0 {
		b = append(s.carry, p...)
		s.carry = nil
	}
	// A trailing partial character (at most 3 bytes that start one) waits.
	if cut := partialTail(b); cut < len(b) {
		s.carry = append([]byte(nil), b[cut:]...)
		b = b[:cut]
	}
	if _, err := io.WriteString(s.w, untrusted.Lines(string(b))); err != nil {
		return 0, err
	}
	return len(p), nil
}

// partialTail is where an incomplete but so far valid UTF-8 sequence at
// the end of b starts (len(b) when there is none).
func partialTail(b []byte) int {
	for i := len(b) - 1; i >= 0 && i >= len(b)-3; i-- {
		c := b[i]
		if c < 0x80 {
			return len(b)
		}
		if c >= 0xc0 { // a leading byte
			if !utf8.FullRune(b[i:]) {
				return i
			}
			return len(b)
		}
	}
	return len(b)
}
