// Package ui is the look and feel shared by ipcert's terminal screens: the
// lipgloss theme, the terminal's capabilities (NO_COLOR, TERM=dumb,
// accessible mode, size), the step header, the checklist, the key help
// line and the frame that fits a screen into the terminal. It holds no
// business logic: the wizard decides what to show, ui decides how.
package ui

import (
	"io"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/muesli/termenv"
)

// Caps is what the terminal can do, decided once at start.
type Caps struct {
	// NoColor is set by NO_COLOR (https://no-color.org: any non-empty
	// value), by TERM=dumb, or when the output is not a terminal.
	NoColor bool
	// Dumb is TERM=dumb: no cursor addressing, so no full-screen UI.
	Dumb bool
	// Accessible asks for plain sequential prompts a screen reader can
	// follow (--accessible or ACCESSIBLE=1).
	Accessible bool
	// ASCII replaces the Unicode marks and spinner with ASCII
	// (TERM=dumb, or a non-UTF-8 locale).
	ASCII bool
	// Light is a light terminal background, from COLORFGBG. The terminal
	// is never asked (an OSC 11 query): a terminal that does not answer
	// would hold the first frame for seconds, and over a slow SSH link the
	// late answer arrives as keystrokes.
	Light bool
}

// DetectCaps reads the environment the way glow and gum do: the flag
// wins, then the variables.
func DetectCaps(getenv func(string) string, accessibleFlag bool) Caps {
	c := Caps{Accessible: accessibleFlag}
	if v := getenv("ACCESSIBLE"); v != "" && v != "0" && v != "false" {
		c.Accessible = true
	}
	if getenv("NO_COLOR") != "" {
		c.NoColor = true
	}
	if getenv("TERM") == "dumb" {
		c.Dumb, c.NoColor, c.ASCII = true, true, true
	}
	if !utf8Locale(getenv) {
		c.ASCII = true
	}
	c.Light = lightBackground(getenv("COLORFGBG"))
	return c
}

// lightBackground reads COLORFGBG ("fg;bg" or "fg;default;bg", set by
// rxvt, Konsole and others): background colours 7 and 9-15 are light.
func lightBackground(v string) bool {
	parts := strings.Split(v, ";")
	if len(parts) < 2 {
		return false
	}
	switch parts[len(parts)-1] {
	case "7", "9", "10", "11", "12", "13", "14", "15":
		return true
	}
	return false
}

// utf8Locale reports whether the locale (LC_ALL, then LC_CTYPE, then
// LANG) is UTF-8. An unset locale counts as UTF-8: every current terminal
// emulator and SSH client is.
func utf8Locale(getenv func(string) string) bool {
	for _, k := range []string{"LC_ALL", "LC_CTYPE", "LANG"} {
		if v := getenv(k); v != "" {
			v = strings.ToLower(v)
			return strings.Contains(v, "utf-8") || strings.Contains(v, "utf8")
		}
	}
	return true
}

// Renderer makes a lipgloss renderer for w (the UI's stream, stderr) that
// honours NoColor; the default renderer looks at stdout, which carries
// results, not the UI.
func Renderer(w io.Writer, c Caps) *lipgloss.Renderer {
	r := lipgloss.NewRenderer(w)
	r.SetHasDarkBackground(!c.Light)
	if c.NoColor {
		r.SetColorProfile(termenv.Ascii)
	}
	return r
}
