package wizard

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"

	"github.com/charmbracelet/huh"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/ui"
)

// ErrInputClosed is returned when the input ended before the wizard did.
var ErrInputClosed = errors.New("wizard: the input ended before the wizard finished")

// lineReader hands its reader out one line per Read: huh's accessible
// prompts make a new bufio.Scanner for every question, and a scanner that
// read ahead would swallow the answers to the next questions. It also
// remembers that the input ended, which the prompts themselves hide.
type lineReader struct {
	r       *bufio.Reader
	pending []byte
	eof     bool
}

func newLineReader(r io.Reader) *lineReader { return &lineReader{r: bufio.NewReader(r)} }

func (l *lineReader) Read(p []byte) (int, error) {
	if len(l.pending) == 0 {
		line, err := l.r.ReadBytes('\n')
		if len(line) == 0 && err != nil {
			l.eof = true
			return 0, err
		}
		// " 1" is the answer 1: spaces around an answer are never part
		// of it (a number, y or n, an address, a URL, a path).
		// The last answer without its newline is still an answer; the end
		// of the input shows at the next question.
		line = append(bytes.TrimSpace(line), '\n')
		l.pending = line
	}
	n := copy(p, l.pending)
	l.pending = l.pending[n:]
	return n, nil
}

// accessible runs the wizard's questions as plain sequential prompts.
type accessible struct {
	m   *Model
	in  *lineReader
	out io.Writer
	// work is held by the question flow except while it waits for an
	// answer: an interrupt then returns at once (a read from a terminal
	// cannot be cancelled), but waits for running work (an issuance
	// cancelled by the same interrupt) to finish writing.
	work sync.Mutex
}

// RunAccessible runs the wizard without a full-screen UI: every question
// is a plain prompt (huh's accessible mode) read from in, every progress
// report a plain line on out, in an order a screen reader can follow.
func RunAccessible(ctx context.Context, deps Deps, cfg Config, in io.Reader, out io.Writer) (Outcome, error) {
	cfg.Caps.NoColor, cfg.Caps.Accessible = true, true
	m := New(ctx, deps, cfg)
	defer m.Shutdown()
	a := &accessible{m: m, in: newLineReader(in), out: out}
	done := make(chan error, 1)
	a.work.Lock()
	go func() {
		defer a.work.Unlock()
		done <- a.run()
	}()
	var err error
	select {
	case err = <-done:
	case <-m.ctx.Done():
		a.work.Lock() // the flow is at a question, or has finished
		err = ErrAborted
		select {
		case e := <-done:
			if e == nil {
				err = nil
			}
		default:
		}
		fmt.Fprintln(out)
	}
	o := m.Outcome()
	if err != nil && o.Issued == nil {
		o.Aborted = true
	}
	return o, err
}

func (a *accessible) say(format string, args ...any) {
	fmt.Fprintf(a.out, format+"\n", args...)
}

// plain is a screen's text without styling.
func plain(s string) string {
	lines := strings.Split(ui.Plain(s), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ") // the padding styles add
	}
	return strings.TrimRight(strings.Join(lines, "\n"), "\n")
}

func (a *accessible) check() error {
	if a.in.eof {
		return ErrInputClosed
	}
	if a.m.ctx.Err() != nil {
		return ErrAborted
	}
	return nil
}

// ask runs one accessible prompt without holding the work lock. When the
// input ends while a prompt waits, the prompt's answer is not one the user
// gave (huh's prompts fall back to the default, or to the last refused
// answer), so it is ErrInputClosed. huh v1.0.0's Select even indexes its
// options with that refused answer ("0", "3" of 2, "abc") and panics: that
// panic is the end of the input too, and only that one is recovered.
func (a *accessible) ask(f interface {
	RunAccessible(io.Writer, io.Reader) error
}) (err error) {
	a.work.Unlock()
	defer a.work.Lock()
	defer func() {
		if r := recover(); r != nil {
			if !a.in.eof {
				panic(r)
			}
			fmt.Fprintln(a.out)
			err = ErrInputClosed
		}
	}()
	if err := f.RunAccessible(a.out, a.in); err != nil {
		return err
	}
	if a.in.eof {
		return ErrInputClosed
	}
	return nil
}

func (a *accessible) choose(title string, options []huh.Option[string], v *string) error {
	if *v == "" && len(options) > 0 {
		*v = options[0].Value
	}
	// Enter alone takes the default: said before, and after, so it is
	// never a silent pick.
	def := slices.IndexFunc(options, func(o huh.Option[string]) bool { return o.Value == *v })
	if def >= 0 {
		title += fmt.Sprintf(" (Enter alone: %d)", def+1)
	}
	f := huh.NewSelect[string]().Title(title).Options(options...).Value(v)
	if err := a.ask(f); err != nil {
		return err
	}
	if i := slices.IndexFunc(options, func(o huh.Option[string]) bool { return o.Value == *v }); i >= 0 {
		a.say("Chosen: %d. %s", i+1, options[i].Key)
	}
	a.say("")
	return a.check()
}

// spoken is a step as accessible mode runs it, declared in the step's
// own file next to its screen: the work is the step's own (the begin
// functions enter starts as commands, run here in place, their results
// taken by the step's update), the question is the one the full screen
// offers (question), and where each answer leads is the choice's.
type spoken interface {
	// prepare runs the step's work that is due, in place, and says it,
	// its heading first (Step.heading: the number is the declaration's).
	prepare(a *accessible) error
	// question is what the step asks now.
	question(m *Model) *question
	// chosen does an answer's own work in place (sets the addresses, runs
	// an action) before the runner follows the choice it returns.
	chosen(a *accessible, c choice) (choice, error)
}

func (a *accessible) run() error {
	m := a.m
	a.say("ipcert setup (accessible mode: plain prompts; answer by typing and Enter).")
	// The steps as declared, from the first: each is prepared, asked, and
	// left where the chosen answer leads, until the summary.
	step := StepWelcome
	for step != StepSummary {
		var err error
		if step, err = a.walk(step); err != nil {
			return err
		}
	}
	if err := a.check(); err != nil {
		return err
	}
	m.step = StepSummary
	if m.cfg.SummaryOnStdout {
		// Said once: the caller prints it on standard output.
		a.say("\n%s: it follows.", StepSummary.heading())
	} else {
		a.say("\n%s", plain(m.summary.view(m, 80).body))
	}
	if m.outcome.Issued == nil && m.outcome.Rehearsal == nil {
		return ErrAborted
	}
	return nil
}

// walk runs one step: its work, its question, the answer's work, until
// an answer leads elsewhere; it returns the step to walk next.
func (a *accessible) walk(s Step) (Step, error) {
	m := a.m
	sp, ok := m.handler(s).(spoken)
	if !ok {
		return 0, fmt.Errorf("wizard: accessible step %v has no handler; this is a bug", s)
	}
	m.step = s
	for {
		if err := a.check(); err != nil {
			return 0, err
		}
		if err := sp.prepare(a); err != nil {
			return 0, err
		}
		c, err := a.answer(sp.question(m))
		if err != nil {
			return 0, err
		}
		if c, err = sp.chosen(a, c); err != nil {
			return 0, err
		}
		switch {
		case c.quits:
			return 0, ErrAborted
		case c.next != stay:
			return c.next, nil
		}
	}
}

// answer asks a step's question on lines and returns the choice made.
func (a *accessible) answer(q *question) (choice, error) {
	switch {
	case q == nil || len(q.choices) == 0:
		return choice{}, fmt.Errorf("wizard: step %v asks nothing; this is a bug", a.m.step)
	case q.screenOnly:
		return q.choices[0], nil
	case q.yesNo:
		yes := true
		if err := a.ask(huh.NewConfirm().Title(q.title).Value(&yes)); err != nil {
			return choice{}, err
		}
		a.say("")
		if err := a.check(); err != nil {
			return choice{}, err
		}
		if yes {
			return q.choices[0], nil
		}
		return q.choices[1], nil
	}
	v := q.def
	if err := a.choose(q.title, options(q.choices), &v); err != nil {
		return choice{}, err
	}
	c, _ := q.pick(v)
	if c.text != nil {
		in := huh.NewInput().Title(c.text.title).Value(&c.typed).Validate(c.text.valid)
		if err := a.ask(in); err != nil {
			return choice{}, err
		}
		a.say("") // the answer ends its line (typed input is not echoed when piped)
		if err := a.check(); err != nil {
			return choice{}, err
		}
	}
	return c, nil
}

// eventText is an engine event as one line of words.
func eventText(t ui.Theme, ev acmeflow.Event) string {
	switch ev.Kind {
	case acmeflow.EventValidator:
		return validatorText(t, ev)
	case acmeflow.EventWarning:
		return "warning: " + ev.Message
	case acmeflow.EventDone:
		return "done: " + ev.Message
	}
	return ev.Message
}

func validatorText(t ui.Theme, ev acmeflow.Event) string {
	v := ev.Validator
	if v == nil {
		return ev.String()
	}
	what := "GET " + v.Path
	if len(v.Path) > 40 {
		what = "GET " + t.Ellipsis() + v.Path[len(v.Path)-30:]
	}
	if v.Challenge == acmeflow.ChallengeTLSALPN01 {
		what = "TLS " + v.SNI
	}
	res := "answered"
	if v.Status != 0 {
		res = fmt.Sprintf("%d", v.Status)
	}
	if !v.Answered {
		res = "NOT answered"
		if v.Note != "" {
			res += ": " + v.Note
		}
	}
	return fmt.Sprintf("validator %s %s %s %s %s", v.Remote, t.Arrow(), what, t.Arrow(), res)
}
