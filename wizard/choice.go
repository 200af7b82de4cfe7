package wizard

import "github.com/charmbracelet/huh"

// choice is one thing a screen lets the user do, described once for both
// renderings: the full screen offers it by its key (or as a row of its
// list), accessible mode as an option of a huh Select. The full screen's
// lists stay drawn by hand: a huh Select there would change what the
// screens show (its title line, its own cursor and border), which this
// restructuring must not.
type choice struct {
	label string // the option's words in accessible mode (and the row's on screen)
	value string
	key   string // the full screen's key; "" when the screen has none
}

// choiceQuit ends the wizard (q on the full screen).
var choiceQuit = choice{label: "Quit", value: "quit", key: "q"}

// options are the choices as huh options, in order.
func options(cs []choice) []huh.Option[string] {
	out := make([]huh.Option[string], len(cs))
	for i, c := range cs {
		out[i] = huh.NewOption(c.label, c.value)
	}
	return out
}

// labels are the choices' words, for a hand-drawn list.
func labels(cs []choice) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.label
	}
	return out
}

// byKey is the choice a key press means, "" when none.
func byKey(cs []choice, key string) string {
	for _, c := range cs {
		if c.key == key {
			return c.value
		}
	}
	return ""
}
