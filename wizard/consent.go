package wizard

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/charmbracelet/bubbles/key"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/huh"
	"github.com/ipcert/ipcert/ui"
)

// consentField is the terms-of-service question as a huh field. huh's
// Confirm does not fit consent: it always has an answer selected (Enter
// submits it), its validation error is cleared by the next key, so a
// burst of typed-ahead Enters (a paste, a slow SSH link) got the form
// submitted with the terms not agreed. Here:
//   - nothing is chosen until the user presses y (agree) or n;
//     Enter answers nothing;
//   - keys that arrive before the question has been on screen for
//     armDelay are dropped (and counted on screen): they were typed for
//     an earlier question;
//   - leaving forward without agreement is an error huh's group checks
//     before it moves on, and no key but y clears it.
type consentField struct {
	key, title string
	value      *bool
	answered   bool // y or n was pressed (or --agree-tos preset it)
	theme      ui.Theme
	huhTheme   *huh.Theme
	width      int

	focused bool
	delay   time.Duration
	armed   bool
	gen     int
	ignored int
	back    bool // leaving backwards: no error
	err     error
}

// consentArmMsg says the question has been on screen long enough for a
// key to be an answer to it.
type consentArmMsg struct {
	f   *consentField
	gen int
}

var errConsentNeeded = errors.New("press y to agree, or n; Enter does not answer this question")

func newConsentField(key, title string, value *bool, t ui.Theme, delay time.Duration) *consentField {
	return &consentField{key: key, title: title, value: value, answered: *value, theme: t, delay: delay}
}

func (c *consentField) Init() tea.Cmd { return nil }

func (c *consentField) Focus() tea.Cmd {
	c.focused, c.back, c.ignored = true, false, 0
	c.gen++
	if c.delay <= 0 {
		c.armed = true
		return nil
	}
	c.armed = false
	gen := c.gen
	return tea.Tick(c.delay, func(time.Time) tea.Msg { return consentArmMsg{c, gen} })
}

func (c *consentField) Blur() tea.Cmd {
	if c.back || *c.value {
		c.focused = false
		return nil
	}
	// Forward without agreement: huh's group will not move on (Error),
	// so the question stays the current one.
	c.err = errConsentNeeded
	return nil
}

func (c *consentField) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case consentArmMsg:
		if msg.f == c && msg.gen == c.gen {
			c.armed = true
		}
	case tea.KeyMsg:
		if !c.armed {
			c.ignored++
			return c, nil
		}
		switch msg.String() {
		case "y", "Y":
			*c.value, c.answered, c.err = true, true, nil
			return c, huh.NextField
		case "n", "N":
			*c.value, c.answered = false, true
			c.err = errors.New("the CA issues only to accounts that accept its terms: y agrees; esc goes back, q quits")
		case "shift+tab", "up":
			c.back = true
			return c, huh.PrevField
		case "enter", "tab":
			if *c.value && c.answered {
				return c, huh.NextField
			}
			c.err = errConsentNeeded
		}
	}
	return c, nil
}

func (c *consentField) View() string {
	t := c.theme
	var b strings.Builder
	title := c.title
	if c.huhTheme != nil {
		st := c.huhTheme.Blurred.Title
		if c.focused {
			st = c.huhTheme.Focused.Title
		}
		title = st.Render(title)
	}
	b.WriteString(ui.Wrap(title, max(c.width-2, 20)) + "\n")
	box := func(on bool, label, k string) string {
		mark := "[ ]"
		if on {
			mark = "[x]"
		}
		s := mark + " " + label + " (" + k + ")"
		if on {
			return t.Selected.Render(s)
		}
		return s
	}
	b.WriteString("  " + box(c.answered && *c.value, "I agree", "y") + "    " + box(c.answered && !*c.value, "No", "n") + "\n")
	if c.err != nil {
		b.WriteString(t.Fail.Render(ui.Indent(c.err.Error(), 2, max(c.width-2, 20))) + "\n")
	}
	switch {
	case c.focused && c.armed && c.answered && *c.value:
		b.WriteString(t.Dim.Render("  agreed already: enter goes on; y agrees, n declines") + "\n")
	case c.focused && c.armed && !c.answered:
		b.WriteString(t.Dim.Render("  nothing is chosen yet: y agrees, n declines") + "\n")
	}
	if c.ignored > 0 {
		keys := "keys"
		if c.ignored == 1 {
			keys = "key"
		}
		b.WriteString(t.Warn.Render(ui.Indent(fmt.Sprintf("%d %s typed before this question was shown ignored", c.ignored, keys), 2, max(c.width-2, 20))) + "\n")
	}
	out := strings.TrimRight(b.String(), "\n")
	if c.huhTheme != nil {
		st := c.huhTheme.Blurred.Base
		if c.focused {
			st = c.huhTheme.Focused.Base
		}
		out = st.Width(c.width).Render(out)
	}
	return out
}

// Error is what huh's group checks before it moves to another group: no
// agreement, no way forward (going back stays possible).
func (c *consentField) Error() error {
	if *c.value || c.back {
		return nil
	}
	return errConsentNeeded
}

func (c *consentField) Run() error { return errors.New("consentField runs inside a form") }

// RunAccessible asks for a typed y or n: an empty line is no answer.
func (c *consentField) RunAccessible(w io.Writer, r io.Reader) error {
	sc := bufio.NewScanner(r)
	for {
		fmt.Fprint(w, c.title+" Type y to agree or n to decline: ")
		if !sc.Scan() {
			fmt.Fprintln(w)
			return nil // the caller sees the end of the input
		}
		switch strings.ToLower(strings.TrimSpace(sc.Text())) {
		case "y", "yes":
			*c.value, c.answered = true, true
			return nil
		case "n", "no":
			*c.value, c.answered = false, true
			return nil
		}
		fmt.Fprintln(w, "Answer y or n (there is no default).")
	}
}

func (c *consentField) Skip() bool { return false }
func (c *consentField) Zoom() bool { return false }
func (c *consentField) KeyBinds() []key.Binding {
	return []key.Binding{
		key.NewBinding(key.WithKeys("y"), key.WithHelp("y", "agree")),
		key.NewBinding(key.WithKeys("n"), key.WithHelp("n", "no")),
	}
}
func (c *consentField) WithTheme(t *huh.Theme) huh.Field {
	if c.huhTheme == nil {
		c.huhTheme = t
	}
	return c
}
func (c *consentField) WithAccessible(bool) huh.Field            { return c }
func (c *consentField) WithKeyMap(*huh.KeyMap) huh.Field         { return c }
func (c *consentField) WithWidth(w int) huh.Field                { c.width = w; return c }
func (c *consentField) WithHeight(int) huh.Field                 { return c }
func (c *consentField) WithPosition(huh.FieldPosition) huh.Field { return c }
func (c *consentField) GetKey() string                           { return c.key }
func (c *consentField) GetValue() any                            { return *c.value }
