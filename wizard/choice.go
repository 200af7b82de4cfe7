package wizard

import (
	"fmt"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/huh"
)

// choice is one answer a step's question takes, declared once for both
// runners: the full screen offers it by its key (or as a row of its
// list), accessible mode as an option of a huh Select (or the y and n of
// a yes/no question). Where it leads is part of the declaration (next,
// why): both runners follow it (Model.follow, accessible.walk), so no
// runner keeps its own copy of a step's routes. The full screen's lists
// stay drawn by hand: a huh Select there would change what the screens
// show (its title line, its own cursor and border).
type choice struct {
	label string // the option's words in accessible mode (and the row's on screen)
	value string
	key   string // the full screen's key; "" when the screen has none
	// next is the step the answer leads to, entered for why; stay (the
	// zero value: no answer leads back to the welcome screen) keeps the
	// user on the step, whose own work for the answer runs (a re-run, a
	// preview).
	next Step
	why  arrival
	// quits: the answer ends the wizard.
	quits bool
	// text: the answer is typed after the choice (an address), checked
	// as it is typed; typed is what was (accessible mode).
	text  *textQuestion
	typed string
}

// textQuestion is a text field: its title in accessible mode and the
// check the full screen runs as the user types and accessible mode runs
// on the answer.
type textQuestion struct {
	title string
	valid func(string) error
}

// stay is a choice's next when the answer keeps the user on the step.
const stay = StepWelcome

// leaves says whether the answer takes the user off the step.
func (c choice) leaves() bool { return c.quits || c.next != stay }

// choiceQuit ends the wizard (q on the full screen).
var choiceQuit = choice{label: "Quit", value: "quit", key: "q", quits: true}

// question is what a step asks now, declared by the step (its question
// method) and asked by either runner: the full screen reads its keys and
// rows, accessible mode asks it on lines (accessible.ask).
type question struct {
	title string
	// choices are the answers, in order; def is the value Enter alone
	// takes ("": the first).
	choices []choice
	def     string
	// yesNo: a question answered y or n (huh's Confirm; Enter alone: yes),
	// choices[0] being yes and choices[1] no.
	yesNo bool
	// screenOnly: a key the full screen waits for before it goes on
	// (enter); accessible mode, which said it all already, takes the only
	// choice at once.
	screenOnly bool
}

// pick is the choice of value, false when the question has none.
func (q *question) pick(value string) (choice, bool) {
	for _, c := range q.choices {
		if c.value == value {
			return c, true
		}
	}
	return choice{}, false
}

// follow takes the full screen where an answer leads: quit, or the next
// step entered for the choice's reason; nil when it stays.
func (m *Model) follow(c choice) tea.Cmd {
	switch {
	case c.quits:
		return m.quit()
	case c.next != stay:
		return m.arrive(c.next, c.why)
	}
	return nil
}

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

// byKey is the choice a key press means, false when none.
func byKey(cs []choice, key string) (choice, bool) {
	for _, c := range cs {
		if c.key != "" && c.key == key {
			return c, true
		}
	}
	return choice{}, false
}

// number is the step's place in the wizard, from the declaration order
// of the steps (the Step constants): "step 3 of 9" on the full screen,
// "Step 3 of 9" in accessible mode.
func (s Step) number() int { return int(s) + 1 }

// heading is a step's first words in accessible mode: "Step 3 of 9,
// Preflight".
func (s Step) heading() string {
	return fmt.Sprintf("Step %d of %d, %s", s.number(), int(numSteps), s)
}
