package testkit

import (
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Tmux is one program in a real terminal: a session of a private tmux
// server (its own socket), for the tests that drive the built binary as
// a person at a keyboard would.
type Tmux struct {
	t          testing.TB
	tmux, sock string
	// Wait bounds WaitFor (default 60 s: a deadline only matters when
	// the screen never comes).
	Wait time.Duration
}

// TermEnv is the environment of a UTF-8 colour terminal, for the
// programs StartTmux runs (prefix them with "env", TermEnv...).
var TermEnv = []string{"LANG=C.UTF-8", "TERM=xterm-256color"}

// StartTmux runs argv in a w x h terminal, the server's socket in dir;
// Need skips or fails when tmux is missing. The server is killed when the
// test ends, or before with Kill.
func StartTmux(t testing.TB, dir string, w, h int, argv ...string) *Tmux {
	t.Helper()
	s := &Tmux{t: t, tmux: NeedProgram(t, "tmux", "tmux"), sock: filepath.Join(dir, "tmux.sock"), Wait: 60 * time.Second}
	s.Cmd(append([]string{"new-session", "-d", "-s", "t", "-x", strconv.Itoa(w), "-y", strconv.Itoa(h)}, argv...)...)
	t.Cleanup(s.Kill)
	return s
}

// Kill stops the terminal and what runs in it.
func (s *Tmux) Kill() { _ = exec.Command(s.tmux, "-S", s.sock, "kill-server").Run() }

// Cmd runs a tmux command on the server (the session is "t").
func (s *Tmux) Cmd(args ...string) string {
	s.t.Helper()
	out, err := exec.Command(s.tmux, append([]string{"-u", "-S", s.sock}, args...)...).CombinedOutput()
	if err != nil {
		s.t.Fatalf("tmux %v: %v\n%s", args, err, out)
	}
	return string(out)
}

// Pane is what the terminal shows now, a line per row.
func (s *Tmux) Pane() string { return s.Cmd("capture-pane", "-p", "-t", "t") }

// Keys sends keys by tmux's names (Enter, Down, C-c) or as characters.
func (s *Tmux) Keys(keys ...string) { s.Cmd(append([]string{"send-keys", "-t", "t"}, keys...)...) }

// Type types text literally.
func (s *Tmux) Type(text string) { s.Cmd("send-keys", "-t", "t", "-l", text) }

// Resize changes the terminal's size.
func (s *Tmux) Resize(w, h int) {
	s.Cmd("resize-window", "-t", "t", "-x", strconv.Itoa(w), "-y", strconv.Itoa(h))
}

// WaitFor polls the pane until it shows every want, and returns it. A
// want matches the pane as it is or with its whitespace (line ends
// included) collapsed, so a sentence the program wrapped still matches.
func (s *Tmux) WaitFor(want ...string) string {
	s.t.Helper()
	return s.WaitForNot("", want...)
}

// WaitForNot is WaitFor that fails at once when the pane shows bad.
func (s *Tmux) WaitForNot(bad string, want ...string) string {
	s.t.Helper()
	deadline := time.Now().Add(s.Wait)
	var p string
	for {
		p = s.Pane()
		flat := strings.Join(strings.Fields(p), " ")
		if bad != "" && (strings.Contains(p, bad) || strings.Contains(flat, bad)) {
			s.t.Fatalf("the pane shows %q:\n%s", bad, p)
		}
		ok := true
		for _, w := range want {
			if !strings.Contains(p, w) && !strings.Contains(flat, w) {
				ok = false
				break
			}
		}
		if ok {
			return p
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("the pane never showed %q; it shows:\n%s", want, p)
		}
		time.Sleep(50 * time.Millisecond) // polling interval, bounded by the deadline
	}
}
