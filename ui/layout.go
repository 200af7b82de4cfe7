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
// would not fit (the first ones are the most important), but never the
// keys that leave the screen (esc, q, ctrl+c in a text field): those
// always show.
func (t Theme) HelpLine(width int, keys []KeyHelp) string {
	sep := t.Help.Render(" · ")
	if t.Caps.ASCII {
		sep = t.Help.Render(" | ")
	}
	item := func(k KeyHelp) string { return t.Key.Render(k.Key) + " " + t.Help.Render(k.What) }
	leaves := func(k KeyHelp) bool { return k.Key == "esc" || k.Key == "q" || k.Key == "ctrl+c" }
	join := func(keep []bool) string {
		var parts []string
		for i, k := range keys {
			if keep[i] {
				parts = append(parts, item(k))
			}
		}
		return strings.Join(parts, sep)
	}
	keep := make([]bool, len(keys))
	for i, k := range keys {
		keep[i] = leaves(k)
	}
	for i := range keys {
		if keep[i] {
			continue
		}
		keep[i] = true
		if lipgloss.Width(join(keep)) > width {
			keep[i] = false
			// The rest would be dropped from the end: keep the order's
			// promise (the first ones are the most important).
			for j := i + 1; j < len(keys); j++ {
				keep[j] = keep[j] && leaves(keys[j])
			}
			break
		}
	}
	return join(keep)
}

// nbsp joins the words of a command (Theme.Command) so that wrapping
// never splits it; Frame turns it back into a space.
const nbsp = "\u00a0"

// verbatim starts the part of a line that is meant to be copied (Theme.
// Verbatim: a config, a command, a path too wide for the line): Wrap
// never reflows it, Frame shows it shifted sideways (Scroll.Shift) and
// marks where it is cut at the edges, Plain drops the mark. It is
// zero-width, so styles and padding do not count it.
const verbatim = "\u2063"

// Verbatim renders text meant to be copied (a config file, a command, a
// path): every line as it is, indented by indent spaces, never wrapped
// and never cut inside a token. A line wider than the terminal is cut at
// the edge with a marker by Frame and scrolls sideways (←/→); the caller
// names the command that prints the text whole. This is the one way the
// screens show copyable blocks; accessible mode prints them whole.
func (t Theme) Verbatim(text string, indent int) string {
	pad := strings.Repeat(" ", indent)
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	for i, l := range lines {
		lines[i] = pad + verbatim + t.Code.Render(strings.ReplaceAll(l, "\t", "    "))
	}
	return strings.Join(lines, "\n")
}

// Wrap wraps plain or styled text to width at spaces only: never inside a
// word, so "--agree-tos" and "ss -ltnp" stay whole (Theme.Command joins a
// command's words). A line's continuation keeps its indent. A command or
// path that does not fit where it stands starts a new line; one wider than
// any line stands on its own line verbatim (Frame cuts it with a marker
// and scrolls it sideways): it is never split.
func Wrap(s string, width int) string {
	return wrap(s, width, -1)
}

// wrap is Wrap with the continuation lines indented by hang spaces (-1:
// each line's own indent).
func wrap(s string, width, hang int) string {
	if width < 10 {
		width = 10
	}
	lines := strings.Split(s, "\n")
	var out []string
	for _, l := range lines {
		out = append(out, wrapLine(l, width, hang)...)
	}
	return strings.Join(out, "\n")
}

func wrapLine(l string, width, hang int) []string {
	if strings.Contains(l, verbatim) || ansi.StringWidth(l) <= width {
		return []string{l}
	}
	lead := len(l) - len(strings.TrimLeft(l, " "))
	if hang < 0 {
		hang = lead
	}
	if hang > width-10 {
		hang = max(width-10, 0)
	}
	pad := strings.Repeat(" ", hang)
	var out []string
	cur, curW, hasWord := l[:lead], lead, false
	for _, w := range keepFlags(strings.Split(l[lead:], " ")) {
		if w == "" && !hasWord && len(out) > 0 {
			continue // the rest of a double space, at a continuation's start
		}
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
			cur, curW, hasWord = pad, hang, false
			if w == "" {
				continue // a double space at the break: no space to start the line
			}
		}
		if curW+ww <= width {
			cur, curW, hasWord = cur+w, curW+ww, true
			continue
		}
		// Wider than any line (a long command or path): on a line of its
		// own, verbatim; the prose goes on below it.
		out = append(out, cur+verbatim+w)
		cur, curW, hasWord = pad, hang, false
	}
	if hasWord || len(out) == 0 {
		out = append(out, cur)
	}
	return out
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
	closed := false // the word before is a whole command (Theme.Command)
	for i, w := range words {
		if i > 0 && len(out) > 0 && w != "" && !closed {
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
		closed = strings.Contains(w, nbsp)
	}
	return out
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
	return wrap(s, width, n)
}

// Scroll is the part of a screen's body in view: Offset is the first
// line shown. Frame keeps it inside the body and reports what is hidden.
type Scroll struct {
	Offset int
	// Focus is the body line that must stay in view (the row under the
	// cursor), -1 for none; it wins over Offset when it changed since
	// the last frame (FocusSeen) or the body changed length (Lines).
	Focus, FocusSeen int
	// Follow keeps the end of the body in view (a live log), until the
	// user scrolls up.
	Follow bool
	// Shift is how many columns the verbatim lines (Theme.Verbatim) are
	// scrolled sideways; Frame keeps it inside Wide.
	Shift int
	// Set by Frame: the rows the body had and the rows shown, and how
	// many columns the widest verbatim line is wider than its room.
	Lines, Rows, Wide int
}

// SideStep is how many columns one ←/→ scrolls the verbatim lines.
const SideStep = 8

// Sideways scrolls the verbatim lines by n steps (negative: left).
func (s *Scroll) Sideways(n int) {
	s.Shift = max(0, min(s.Shift+n*SideStep, s.Wide))
}

// Overflow is how many columns the widest verbatim line of body is wider
// than its room on a terminal width columns wide (0: all fit).
func Overflow(body string, width int) int {
	over := 0
	for _, l := range strings.Split(body, "\n") {
		i := strings.Index(l, verbatim)
		if i < 0 {
			continue
		}
		room := width - ansi.StringWidth(l[:i])
		over = max(over, verbatimWidth(l[i+len(verbatim):])-room)
	}
	return over
}

// verbatimWidth is the width of a verbatim part without the padding
// styles add at its end.
func verbatimWidth(v string) int {
	return ansi.StringWidth(strings.TrimRight(ansi.Strip(v), " "))
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
	sc.Wide = Overflow(body, width)
	sc.Shift = max(0, min(sc.Shift, sc.Wide))
	room := max(height-3-len(hl), 1) // header, blank, ..., blank, help
	bl := strings.Split(strings.TrimRight(body, "\n"), "\n")
	// The body changed length (a text field opened, a row expanded): the
	// rows moved under the viewport, so the row under the cursor is
	// brought into view again even where its index stayed the same.
	relaid := len(bl) != sc.Lines
	sc.Lines, sc.Rows = len(bl), min(len(bl), room)
	if len(bl) > room {
		maxOff := len(bl) - room
		if sc.Follow {
			sc.Offset = maxOff
		}
		if sc.Focus >= 0 && (sc.Focus != sc.FocusSeen || relaid) {
			if sc.Focus < sc.Offset+1 {
				sc.Offset = sc.Focus - 1
			}
			if sc.Focus > sc.Offset+room-2 {
				sc.Offset = sc.Focus - room + 2
			}
		}
		sc.FocusSeen = sc.Focus
		sc.Offset = max(0, min(sc.Offset, maxOff))
		// The cursor took the view up from the end: the log is no longer
		// followed (as after pgup), so drawing the same body again shows
		// the same lines.
		sc.Follow = sc.Follow && sc.Offset == maxOff
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
		lines = append(lines, t.fitVerbatim(l, width, sc.Shift))
	}
	for len(lines) < height-1 {
		lines = append(lines, "")
	}
	lines = append(lines, t.fit(help, width))
	return strings.Join(lines, "\n")
}

// Plain is styled text as plain words: no escape sequences, the command
// joiners turned back into spaces, verbatim text whole (accessible mode,
// logs).
func Plain(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(ansi.Strip(s), nbsp, " "), verbatim, "")
}

// fitVerbatim is fit for a body line: its verbatim part, if any, is
// shifted sideways by shift columns and cut at the edges of its room with
// a marker (never wrapped); the rest is fit.
func (t Theme) fitVerbatim(l string, width, shift int) string {
	i := strings.Index(l, verbatim)
	if i < 0 {
		return t.fit(l, width)
	}
	prefix, v := l[:i], strings.ReplaceAll(l[i+len(verbatim):], nbsp, " ")
	room := width - ansi.StringWidth(prefix)
	vw := verbatimWidth(v)
	if room < 2 {
		return t.fit(prefix, width)
	}
	if vw <= room && shift == 0 {
		return ansi.Truncate(t.fit(prefix, width)+v, width, "")
	}
	left, right := "←", "→"
	if t.Caps.ASCII {
		left, right = "<", ">"
	}
	// Every line of the screen shifts by the same columns (as less -S):
	// a block keeps its columns lined up.
	from, to := shift, shift+room
	var out string
	if vw == 0 {
		return t.fit(prefix, width) // an empty line: nothing to either side
	}
	if from > 0 {
		from++
		out = t.Dim.Render(left)
	}
	more := vw > to
	if more {
		to--
	}
	if from < vw {
		out += ansi.Cut(v, from, to)
	}
	if more {
		out += t.Dim.Render(right)
	}
	return t.fit(prefix, width) + out
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
