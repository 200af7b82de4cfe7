package ui

import (
	"fmt"
	"strings"

	"github.com/charmbracelet/lipgloss"
	"github.com/charmbracelet/x/ansi"
)

// MinWidth and MinHeight are the smallest terminal the screens are laid
// out for; below it they still render, clipped, with a note.
const (
	MinWidth  = 60
	MinHeight = 20
	// MaxWidth keeps lines readable on wide terminals.
	MaxWidth = 100
)

// KeyHelp is one entry of the help line.
type KeyHelp struct{ Key, What string }

// Header is the first line of every screen: "Step 2 of 6  Address" and,
// when there is room, "next: Preflight".
func (t Theme) Header(width, k, n int, title, next string) string {
	left := t.StepNo.Render(fmt.Sprintf("ipcert · step %d of %d ", k, n)) + t.Title.Render(title)
	if t.Caps.ASCII {
		left = t.StepNo.Render(fmt.Sprintf("ipcert - step %d of %d: ", k, n)) + t.Title.Render(title)
	}
	if next == "" {
		return ansi.Truncate(left, width, "")
	}
	right := t.Next.Render("next: " + next)
	gap := width - lipgloss.Width(left) - lipgloss.Width(right)
	if gap < 2 {
		return ansi.Truncate(left, width, "")
	}
	return left + strings.Repeat(" ", gap) + right
}

// HelpLine renders the keys, dropping entries from the end when the line
// would not fit (the first ones are the most important).
func (t Theme) HelpLine(width int, keys []KeyHelp) string {
	sep := t.Help.Render(" · ")
	if t.Caps.ASCII {
		sep = t.Help.Render(" | ")
	}
	var out string
	for i, k := range keys {
		item := t.Key.Render(k.Key) + " " + t.Help.Render(k.What)
		cand := item
		if i > 0 {
			cand = out + sep + item
		}
		if lipgloss.Width(cand) > width {
			break
		}
		out = cand
	}
	return out
}

// Wrap wraps plain or styled text to width, keeping words whole where it
// can (words longer than a line, such as paths, are broken).
func Wrap(s string, width int) string {
	if width < 10 {
		width = 10
	}
	return ansi.Wrap(s, width, "")
}

// Indent wraps s to width-n and indents every line by n spaces, for
// evidence under a checklist row.
func Indent(s string, n, width int) string {
	pad := strings.Repeat(" ", n)
	lines := strings.Split(Wrap(s, width-n), "\n")
	for i := range lines {
		lines[i] = pad + lines[i]
	}
	return strings.Join(lines, "\n")
}

// Frame lays a screen out in exactly width x height cells: the header at
// the top, the help line at the bottom, and the body clipped in between
// (with a "more below" marker) so that a small terminal shows the start
// of the screen and the keys, never a scrolled-off mess.
func (t Theme) Frame(width, height int, header, body, help string) string {
	if width <= 0 {
		width = 80
	}
	if height <= 0 {
		height = 24
	}
	var lines []string
	lines = append(lines, ansi.Truncate(header, width, ""), "")
	room := height - 4 // header, blank, blank, help
	bl := strings.Split(strings.TrimRight(body, "\n"), "\n")
	if room < 1 {
		room = 1
	}
	if len(bl) > room {
		bl = append(bl[:room-1], t.Dim.Render("… more: make the terminal taller"))
		if t.Caps.ASCII {
			bl[room-1] = t.Dim.Render("... more: make the terminal taller")
		}
	}
	for _, l := range bl {
		lines = append(lines, ansi.Truncate(l, width, ""))
	}
	for len(lines) < height-1 {
		lines = append(lines, "")
	}
	lines = append(lines, ansi.Truncate(help, width, ""))
	return strings.Join(lines, "\n")
}

// ContentWidth is the width screens wrap their text to.
func ContentWidth(termWidth int) int {
	if termWidth <= 0 {
		termWidth = 80
	}
	return min(termWidth, MaxWidth)
}
