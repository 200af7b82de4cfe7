package ui

import (
	"strings"

	"github.com/charmbracelet/lipgloss"
)

// Status is how far a checklist item got.
type Status int

const (
	Pending Status = iota
	Running
	OK
	Warn
	Fail
	Skipped
)

// Theme holds every style the screens use. Colours are adaptive so both
// light and dark terminals read well; with NoColor they render as plain
// text and only bold/underline-free text remains.
type Theme struct {
	Caps Caps

	Title    lipgloss.Style // the step's name in the header
	StepNo   lipgloss.Style // "step 2 of 6"
	Next     lipgloss.Style // "next: Preflight"
	Text     lipgloss.Style
	Dim      lipgloss.Style // evidence, sources, secondary facts
	Strong   lipgloss.Style
	OK       lipgloss.Style
	Warn     lipgloss.Style
	Fail     lipgloss.Style
	Selected lipgloss.Style // the row under the cursor
	Key      lipgloss.Style // a key in the help line
	Help     lipgloss.Style // the help line's words
	Code     lipgloss.Style // a command to run or a path
	Box      lipgloss.Style // the failure/decision box
}

var (
	colPrimary = lipgloss.AdaptiveColor{Light: "#5A56E0", Dark: "#7571F9"}
	colGreen   = lipgloss.AdaptiveColor{Light: "#027A54", Dark: "#02BF87"}
	colYellow  = lipgloss.AdaptiveColor{Light: "#9A6700", Dark: "#E3B341"}
	colRed     = lipgloss.AdaptiveColor{Light: "#C4213B", Dark: "#FE5F86"}
	colDim     = lipgloss.AdaptiveColor{Light: "#6E6E6E", Dark: "#8B8B8B"}
	colCode    = lipgloss.AdaptiveColor{Light: "#1F6FEB", Dark: "#79C0FF"}
)

// NewTheme builds the styles on r (see Renderer).
func NewTheme(r *lipgloss.Renderer, c Caps) Theme {
	t := Theme{Caps: c}
	t.Title = r.NewStyle().Bold(true).Foreground(colPrimary)
	t.StepNo = r.NewStyle().Foreground(colDim)
	t.Next = r.NewStyle().Foreground(colDim)
	t.Text = r.NewStyle()
	t.Dim = r.NewStyle().Foreground(colDim)
	t.Strong = r.NewStyle().Bold(true)
	t.OK = r.NewStyle().Foreground(colGreen)
	t.Warn = r.NewStyle().Foreground(colYellow)
	t.Fail = r.NewStyle().Foreground(colRed).Bold(true)
	t.Selected = r.NewStyle().Foreground(colPrimary).Bold(true)
	t.Key = r.NewStyle().Bold(true)
	t.Help = r.NewStyle().Foreground(colDim)
	t.Code = r.NewStyle().Foreground(colCode)
	border := lipgloss.RoundedBorder()
	if c.ASCII {
		border = lipgloss.NormalBorder()
		border.Top, border.Bottom, border.Left, border.Right = "-", "-", "|", "|"
		border.TopLeft, border.TopRight, border.BottomLeft, border.BottomRight = "+", "+", "+", "+"
	}
	t.Box = r.NewStyle().Border(border).BorderForeground(colRed).Padding(0, 1)
	return t
}

// Mark is the status symbol: the same width for every status so the
// titles line up.
func (t Theme) Mark(s Status, spin string) string {
	sym := map[Status][2]string{
		Pending: {"·", "."},
		OK:      {"✓", "+"},
		Warn:    {"!", "!"},
		Fail:    {"✗", "x"},
		Skipped: {"-", "-"},
	}
	if s == Running {
		return spin
	}
	i := 0
	if t.Caps.ASCII {
		i = 1
	}
	m := sym[s][i]
	switch s {
	case OK:
		return t.OK.Render(m)
	case Warn:
		return t.Warn.Render(m)
	case Fail:
		return t.Fail.Render(m)
	}
	return t.Dim.Render(m)
}

// Word is the status as a word, for screen readers and plain output.
func (s Status) Word() string {
	switch s {
	case Pending:
		return "waiting"
	case Running:
		return "running"
	case OK:
		return "ok"
	case Warn:
		return "warn"
	case Fail:
		return "FAIL"
	case Skipped:
		return "skipped"
	}
	return "?"
}

// SpinnerFrames are the spinner's frames for these caps.
func (t Theme) SpinnerFrames() []string {
	if t.Caps.ASCII {
		return []string{"|", "/", "-", "\\"}
	}
	return []string{"⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"}
}

// Bullet is the cursor for the selected row.
func (t Theme) Cursor() string {
	if t.Caps.ASCII {
		return ">"
	}
	return "›"
}

// Arrow separates a validator's address from what it asked.
func (t Theme) Arrow() string {
	if t.Caps.ASCII {
		return "->"
	}
	return "→"
}

// Ellipsis marks text that was cut.
func (t Theme) Ellipsis() string {
	if t.Caps.ASCII {
		return "~"
	}
	return "…"
}

// Command renders a command to run: styled as code, and kept on one line
// by Wrap (split between arguments, with a shell continuation, only when
// it is wider than the line).
func (t Theme) Command(s string) string {
	return t.Code.Render(strings.ReplaceAll(s, " ", nbsp))
}

// Dots end a line about work in progress.
func (t Theme) Dots() string {
	if t.Caps.ASCII {
		return "..."
	}
	return "…"
}
