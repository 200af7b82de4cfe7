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

// nbsp joins the words of a command (Theme.Command) so that wrapping
// never splits it; Frame turns it back into a space.
const nbsp = "\u00a0"

// Wrap wraps plain or styled text to width at spaces only: never inside a
// word, so "--agree-tos" and "ss -ltnp" stay whole (Theme.Command joins a
// command's words). A word wider than the line (a path) is broken; a
// command wider than the line is split between its arguments with a
// shell line continuation, so it still works when pasted.
func Wrap(s string, width int) string {
	if width < 10 {
		width = 10
	}
	lines := strings.Split(s, "\n")
	var out []string
	for _, l := range lines {
		out = append(out, wrapLine(l, width)...)
	}
	return strings.Join(out, "\n")
}

func wrapLine(l string, width int) []string {
	if ansi.StringWidth(l) <= width {
		return []string{l}
	}
	// The line's leading spaces stay as its first line's indent.
	lead := len(l) - len(strings.TrimLeft(l, " "))
	var out []string
	cur, curW, hasWord := l[:lead], lead, false
	for _, w := range keepFlags(strings.Split(l[lead:], " ")) {
		ww := ansi.StringWidth(w)
		sep := 0
		if hasWord {
			sep = 1
		}
		if curW+sep+ww <= width {
			cur += strings.Repeat(" ", sep) + w
			curW += sep + ww
			hasWord = true
			continue
		}
		if hasWord {
			out = append(out, cur)
			cur, curW = "", 0
		}
		if curW+ww <= width {
			cur, curW, hasWord = cur+w, curW+ww, true
			continue
		}
		// Wider than any line: a command between its arguments, else
		// (a path) anywhere.
		var parts []string
		if strings.Contains(w, nbsp) {
			parts = splitCommand(w, width-curW)
		} else {
			parts = strings.Split(ansi.Hardwrap(w, max(width-curW, 1), true), "\n")
		}
		parts[0] = cur + parts[0]
		out = append(out, parts[:len(parts)-1]...)
		cur = parts[len(parts)-1]
		curW, hasWord = ansi.StringWidth(cur), true
	}
	return append(out, cur)
}

// keepFlags joins command-line flags to the word before them, and a
// long flag to its value, so that prose naming a command ("check with ss
// -ltnp", "run again with --ca staging") does not break it between lines.
func keepFlags(words []string) []string {
	isFlag := func(w string) bool {
		p := ansi.Strip(w)
		return len(p) > 1 && p[0] == '-' && p != "--" && p[1] != ' '
	}
	var out []string
	for i, w := range words {
		if i > 0 && len(out) > 0 && w != "" {
			prev := ansi.Strip(out[len(out)-1])
			if i := strings.LastIndex(prev, nbsp); i >= 0 {
				prev = prev[i+len(nbsp):]
			}
			value := strings.HasPrefix(prev, "--") && !strings.ContainsAny(prev[len(prev)-1:], ":,.;)") && !isFlag(w) && len(ansi.Strip(w)) <= 40
			if isFlag(w) && prev != "" || value {
				out[len(out)-1] += nbsp + w
				continue
			}
		}
		out = append(out, w)
	}
	return out
}

// splitCommand breaks a command that cannot fit on one line between its
// arguments, each line but the last ending in " \\".
func splitCommand(w string, width int) []string {
	args := strings.Split(w, nbsp)
	var out []string
	cur := ""
	for _, a := range args {
		switch {
		case cur == "":
			cur = a
		case ansi.StringWidth(cur)+1+ansi.StringWidth(a)+2 <= width:
			cur += nbsp + a
		default:
			out = append(out, cur+" \\")
			cur = "  " + a
		}
	}
	return append(out, cur)
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

// Hang wraps s to width with every line after the first indented by n
// spaces (a hanging indent: the continuation of "  label  value" lines
// up under the value, not at column 0).
func Hang(s string, n, width int) string {
	first := strings.Split(Wrap(s, width), "\n")
	if len(first) == 1 {
		return first[0]
	}
	rest := strings.Join(first[1:], " ")
	return first[0] + "\n" + Indent(rest, n, width)
}

// Scroll is the part of a screen's body in view: Offset is the first
// line shown. Frame keeps it inside the body and reports what is hidden.
type Scroll struct {
	Offset int
	// Focus is the body line that must stay in view (the row under the
	// cursor), -1 for none; it wins over Offset when it changed since
	// the last frame (FocusSeen).
	Focus, FocusSeen int
	// Follow keeps the end of the body in view (a live log), until the
	// user scrolls up.
	Follow bool
	// Set by Frame: the rows the body had and the rows shown.
	Lines, Rows int
}

// Page moves by n pages (negative: up), half a page when half is set.
func (s *Scroll) Page(n int, half bool) {
	step := max(s.Rows-2, 1)
	if half {
		step = max(s.Rows/2, 1)
	}
	s.Offset += n * step
	s.Offset = max(0, min(s.Offset, s.Lines-s.Rows))
	s.Follow = s.Offset >= s.Lines-s.Rows
}

// Frame lays a screen out in exactly width x height cells: the header at
// the top, the help line at the bottom, and the body in between. A body
// taller than the room scrolls (sc, nil: from the top): the first and
// last rows then say how many lines are above and below and which keys
// scroll. Lines wider than the terminal end in a marker.
func (t Theme) Frame(width, height int, header, body, help string, sc *Scroll) string {
	if width <= 0 {
		width = 80
	}
	if height <= 0 {
		height = 24
	}
	if sc == nil {
		sc = &Scroll{Focus: -1, FocusSeen: -1}
	}
	var lines []string
	hl := strings.Split(header, "\n") // the header may carry a notice
	for _, h := range hl {
		lines = append(lines, t.fit(h, width))
	}
	lines = append(lines, "")
	room := max(height-3-len(hl), 1) // header, blank, ..., blank, help
	bl := strings.Split(strings.TrimRight(body, "\n"), "\n")
	sc.Lines, sc.Rows = len(bl), min(len(bl), room)
	if len(bl) > room {
		maxOff := len(bl) - room
		if sc.Follow {
			sc.Offset = maxOff
		}
		if sc.Focus >= 0 && sc.Focus != sc.FocusSeen {
			if sc.Focus < sc.Offset+1 {
				sc.Offset = sc.Focus - 1
			}
			if sc.Focus > sc.Offset+room-2 {
				sc.Offset = sc.Focus - room + 2
			}
		}
		sc.FocusSeen = sc.Focus
		sc.Offset = max(0, min(sc.Offset, maxOff))
		view := append([]string{}, bl[sc.Offset:sc.Offset+room]...)
		up, down := "↑", "↓"
		if t.Caps.ASCII {
			up, down = "^", "v"
		}
		if sc.Offset > 0 {
			view[0] = t.Dim.Render(fmt.Sprintf("%s %d more above (pgup)", up, sc.Offset))
		}
		if below := len(bl) - sc.Offset - room; below > 0 {
			view[room-1] = t.Dim.Render(fmt.Sprintf("%s %d more below (pgdn)", down, below))
		}
		bl = view
	} else {
		sc.Offset = 0
		sc.FocusSeen = sc.Focus
	}
	for _, l := range bl {
		lines = append(lines, t.fit(l, width))
	}
	for len(lines) < height-1 {
		lines = append(lines, "")
	}
	lines = append(lines, t.fit(help, width))
	return strings.Join(lines, "\n")
}

// Plain is styled text as plain words: no escape sequences, the command
// joiners turned back into spaces (accessible mode, logs).
func Plain(s string) string {
	return strings.ReplaceAll(ansi.Strip(s), nbsp, " ")
}

// fit cuts a line to width with a marker, and turns the command joiners
// back into spaces.
func (t Theme) fit(l string, width int) string {
	l = strings.ReplaceAll(l, nbsp, " ")
	if ansi.StringWidth(l) <= width {
		return l
	}
	return ansi.Truncate(l, width, t.Ellipsis())
}

// ContentWidth is the width screens wrap their text to.
func ContentWidth(termWidth int) int {
	if termWidth <= 0 {
		termWidth = 80
	}
	return min(termWidth, MaxWidth)
}
