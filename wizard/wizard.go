// Package wizard is ipcert's terminal wizard: a Bubble Tea program whose
// root model walks the user through Welcome, Address, Preflight, Plan,
// Issue, Install, Renewal, Verify and Summary, routing each message to
// one small handler per step (Model.steps). Every side effect (the
// address lookup, the checks, the ACME run) is a tea.Cmd calling the
// packages through Deps; their progress streams through a channel read by
// a re-armed command; results are assigned in Update only.
//
// The same steps run without a full-screen UI in accessible mode
// (RunAccessible): the steps' declared questions asked as plain
// sequential prompts a screen reader can follow, their work run in place.
// View only reads the model: Update settles the viewport (settle).
package wizard

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/ui"
)

// Step is a screen of the wizard.
type Step int

const (
	StepWelcome Step = iota
	StepAddress
	StepPreflight
	StepPlan
	StepIssue
	StepInstall
	StepRenewal
	StepVerify
	StepSummary
	numSteps
)

func (s Step) String() string {
	switch s {
	case StepWelcome:
		return "Welcome"
	case StepAddress:
		return "Address"
	case StepPreflight:
		return "Preflight"
	case StepPlan:
		return "Plan"
	case StepIssue:
		return "Issue"
	case StepInstall:
		return "Install"
	case StepRenewal:
		return "Renewal"
	case StepVerify:
		return "Verify"
	case StepSummary:
		return "Summary"
	}
	return fmt.Sprintf("Step(%d)", int(s))
}

// Model is the root model. Use it through a pointer: tea.Program keeps
// the pointer, and Run reads the outcome from it afterwards.
type Model struct {
	deps  Deps
	cfg   Config
	theme ui.Theme

	ctx    context.Context
	cancel context.CancelFunc
	jobs   *jobs
	cas    *caPool

	width, height int
	step          Step
	ans           Answers
	spin          int
	ticking       bool

	// The steps' own states, and the table that routes to them (New).
	welcome welcomeStep
	address addressStep
	pre     preflightStep
	plan    planStep
	issue   issueStep
	install actionStep
	renewal actionStep
	verify  actionStep
	summary summaryStep
	steps   [numSteps]step

	// scroll is the body's viewport on the current screen (reset when the
	// screen changes), as settled by Update (settle): View only reads it.
	scroll    ui.Scroll
	scrollFor Step

	quitting bool // waiting for a running issuance to stop before quitting
	done     bool
	outcome  Outcome
}

// New makes the wizard. ctx bounds every command it runs; call Shutdown
// when the program has ended.
func New(ctx context.Context, deps Deps, cfg Config) *Model {
	if deps.Now == nil {
		deps.Now = time.Now
	}
	if cfg.SpinEvery <= 0 {
		cfg.SpinEvery = 120 * time.Millisecond
	}
	if cfg.ConsentDelay == 0 {
		cfg.ConsentDelay = 300 * time.Millisecond
	}
	ctx, cancel := context.WithCancel(ctx)
	m := &Model{
		deps: deps, cfg: cfg,
		theme:  ui.NewTheme(ui.Renderer(io.Discard, cfg.Caps), cfg.Caps),
		ctx:    ctx,
		cancel: cancel,
		jobs:   newJobs(),
		cas:    &caPool{open: deps.OpenCA},
		width:  80, height: 24,
		ans: cfg.Answers,
	}
	m.install = actionStep{step: StepInstall, running: -1}
	m.renewal = actionStep{step: StepRenewal, running: -1}
	m.verify = actionStep{step: StepVerify, running: -1}
	m.steps = [numSteps]step{
		StepWelcome:   &m.welcome,
		StepAddress:   &m.address,
		StepPreflight: &m.pre,
		StepPlan:      &m.plan,
		StepIssue:     &m.issue,
		StepInstall:   &m.install,
		StepRenewal:   &m.renewal,
		StepVerify:    &m.verify,
		StepSummary:   &m.summary,
	}
	if m.ans.KeyType == "" {
		m.ans.KeyType = "ec256"
	}
	if m.ans.CA == "" {
		m.ans.CA = PlanRehearse
		if cfg.Demo {
			m.ans.CA = cachoice.Local
		}
	}
	if cfg.Demo {
		m.ans.CA = cachoice.Local
	}
	return m
}

// WithTheme replaces the theme (the program's renderer on stderr).
func (m *Model) WithTheme(t ui.Theme) *Model {
	m.theme = t
	return m
}

// Shutdown cancels whatever still runs, waits for it to finish (challenge
// servers closed, files written) and stops the CAs the wizard opened.
func (m *Model) Shutdown() {
	m.cancel()
	m.jobs.shutdown()
	m.cas.closeAll()
}

// Outcome is how the wizard ended.
func (m *Model) Outcome() Outcome { return m.outcome }

// Step is the screen shown now.
func (m *Model) Step() Step { return m.step }

// Answers are the user's current answers.
func (m *Model) Answers() Answers { return m.ans }

func (m *Model) logf(format string, args ...any) {
	if m.cfg.Log != nil {
		fmt.Fprintf(m.cfg.Log, time.Now().Format("15:04:05.000")+" wizard: "+format+"\n", args...)
	}
}

// Init starts the welcome screen's look at the machine.
func (m *Model) Init() tea.Cmd {
	return m.welcome.enter(m, arriveForward)
}

// tickMsg advances the spinner.
type tickMsg struct{}

func (m *Model) tick() tea.Cmd {
	if m.ticking {
		return nil
	}
	m.ticking = true
	return tea.Tick(m.cfg.SpinEvery, func(time.Time) tea.Msg { return tickMsg{} })
}

func (m *Model) spinner() string {
	f := m.theme.SpinnerFrames()
	return m.theme.Selected.Render(f[m.spin%len(f)])
}

// streamed is a message that came through a job's channel; the reader is
// re-armed for the next one (docs/ARCHITECTURE.md).
type streamed struct {
	ch  <-chan tea.Msg
	msg tea.Msg
}

func readStream(ch <-chan tea.Msg) tea.Cmd {
	return func() tea.Msg {
		msg, ok := <-ch
		if !ok {
			return nil
		}
		return streamed{ch, msg}
	}
}

// stream runs fn as a command whose messages (progress, then the result)
// arrive in order through a channel. fn's send never blocks once the
// program has ended, and a send after fn has returned (a goroutine fn
// started, such as a challenge handler still reporting a request) is
// dropped, not sent on the closed channel.
func (m *Model) stream(fn func(send func(tea.Msg))) tea.Cmd {
	ch := make(chan tea.Msg, 256)
	stop := m.jobs.stop
	var mu sync.Mutex
	closed := false
	run := func() tea.Msg {
		defer func() {
			mu.Lock()
			closed = true
			close(ch)
			mu.Unlock()
		}()
		if !m.jobs.start() {
			return nil
		}
		defer m.jobs.done()
		fn(func(msg tea.Msg) {
			mu.Lock()
			defer mu.Unlock()
			if closed {
				return
			}
			select {
			case ch <- msg:
			case <-stop:
			}
		})
		return nil
	}
	return tea.Batch(run, readStream(ch))
}

// step is one screen's handler. Each step owns its state; what later
// steps need of it (the machine, the preflight report, the outcome) they
// read through the model, and where one step sends the user to another
// it says why (arrival), never by editing the other's state. A step is
// declared once for both runners: its question (the choices, where each
// leads, a typed text's check) and its work (a begin-style function,
// started as a command by enter and run in place by accessible mode),
// with the spoken methods accessible mode walks (accessible.go). Adding a
// step is a Step constant in its place (the order numbers the steps), its
// String, a type with these methods and spoken's, and its row in
// Model.steps (New).
type step interface {
	// enter runs when the user arrives at the step.
	enter(m *Model, why arrival) tea.Cmd
	// update takes the keys while the step is on screen, and the results
	// of the commands it started, whichever step shows by then.
	update(m *Model, msg tea.Msg) tea.Cmd
	// view draws the body, marks the row under the cursor and names its
	// keys. It only reads the model (View is pure; the viewport settles
	// in Update).
	view(m *Model, w int) drawn
	// busy: a command of the step runs (the spinner turns).
	busy() bool
	// back is esc outside a text field: the step goes where it wants
	// (m.show, m.goTo), or stays.
	back(m *Model) tea.Cmd
	// textFocused: the user types into a field, where q is a letter and
	// esc leaves the field, not the step.
	textFocused() bool
}

// arrival says why the user comes to a step, for the steps that enter
// differently from somewhere else.
type arrival int

const (
	arriveForward         arrival = iota // the previous step went on
	arriveBack                           // back from a later step
	arriveChangeChallenge                // the failure screen's "Change the challenge"
	arriveRefused                        // the terms were not agreed: the CA was not asked
	arriveCancelled                      // the user stopped the issuance (esc)
	arriveRecheck                        // the failure screen's "Back to preflight": check again
)

// stepMsg is a command's result: it goes to the step that started the
// command, whichever screen shows now (the user may have gone on, or
// back, meanwhile).
type stepMsg interface{ stepOf() Step }

// quiet gives a step the defaults of a screen with nothing running, no
// text field and no way back.
type quiet struct{}

func (quiet) busy() bool            { return false }
func (quiet) back(m *Model) tea.Cmd { return nil }
func (quiet) textFocused() bool     { return false }

// handler is the step's row in the table.
func (m *Model) handler(s Step) step {
	if s < 0 || s >= numSteps || m.steps[s] == nil {
		panic(fmt.Sprintf("wizard: step %v has no handler; this is a bug", s))
	}
	return m.steps[s]
}

// Update routes a message (update), then settles the viewport for the
// screen as it now is (settle): the one place the scroll offset and the
// row in view change, so View only reads the model.
func (m *Model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	cmd := m.update(msg)
	m.settle()
	return m, cmd
}

// update routes a message: global keys first, then the step's handler.
func (m *Model) update(msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case streamed:
		next := readStream(msg.ch)
		return tea.Batch(m.update(msg.msg), next)
	case tea.WindowSizeMsg:
		m.width, m.height = msg.Width, msg.Height
		var cmds []tea.Cmd
		for _, s := range m.steps {
			if r, ok := s.(interface{ resize(*Model) tea.Cmd }); ok {
				cmds = append(cmds, r.resize(m))
			}
		}
		return tea.Batch(cmds...)
	case tickMsg:
		m.ticking = false
		if m.busy() {
			m.spin++
			return m.tick()
		}
		return nil
	case tea.KeyMsg:
		switch msg.String() {
		case "pgdown", "pgup", "left", "right":
			// The keys move the viewport the user sees: settled first, in
			// case the model changed since the last Update (tests set it).
			m.settle()
		}
		switch msg.String() {
		case "pgdown":
			m.scroll.Page(1, false)
			return nil
		case "pgup":
			m.scroll.Page(-1, false)
			return nil
		case "left", "right":
			if !m.textFocused() && m.scroll.Wide > 0 {
				m.scroll.Sideways(map[string]int{"left": -1, "right": 1}[msg.String()])
				return nil
			}
		case "ctrl+c":
			return m.quit()
		case "q":
			if !m.textFocused() {
				return m.quit()
			}
		case "esc":
			if !m.textFocused() {
				return m.back()
			}
		}
	case issueDoneMsg:
		if m.quitting {
			m.issue.finish(m, msg)
			// The run may have finished storing the certificate before it
			// saw the cancellation (Engine.Issue completes a write it began).
			m.outcome.Aborted = m.outcome.Issued == nil
			m.done = true
			m.cancel()
			return tea.Quit
		}
	}
	return m.updateStep(msg)
}

func (m *Model) updateStep(msg tea.Msg) tea.Cmd {
	s := m.step
	if sm, ok := msg.(stepMsg); ok {
		s = sm.stepOf()
	}
	return m.handler(s).update(m, msg)
}

// busy: some step's command runs.
func (m *Model) busy() bool {
	for _, s := range m.steps {
		if s != nil && s.busy() {
			return true
		}
	}
	return false
}

// textFocused is true while the user types into a text field, where q is
// a letter, not "quit", and esc leaves the field, not the step.
func (m *Model) textFocused() bool { return m.handler(m.step).textFocused() }

// quit leaves at once, unless an issuance runs: then it is cancelled
// (its challenge server closed, nothing half-written: Engine.Issue only
// switches current after a complete write) and the wizard quits when it
// has returned.
func (m *Model) quit() tea.Cmd {
	if m.quitting {
		return nil
	}
	m.logf("quit requested on %s", m.step)
	if m.issue.running() {
		m.quitting = true
		m.issue.cancel()
		return nil
	}
	if m.outcome.Issued == nil {
		m.outcome.Aborted = true
	}
	m.done = true
	m.cancel()
	return tea.Quit
}

// goTo enters a step going forward.
func (m *Model) goTo(s Step) tea.Cmd { return m.arrive(s, arriveForward) }

// arrive enters a step, saying why.
func (m *Model) arrive(s Step, why arrival) tea.Cmd {
	h := m.handler(s)
	m.logf("step %s -> %s", m.step, s)
	m.step = s
	return h.enter(m, why)
}

// show puts a step back on screen as it was left (esc): it is not
// entered again.
func (m *Model) show(s Step) { m.step = s }

// back goes one step back; answers given so far are kept.
func (m *Model) back() tea.Cmd { return m.handler(m.step).back(m) }

// View draws the current step in a frame of exactly the terminal's size.
// It only reads the model: the viewport it draws with was settled by
// Update (settle), and drawing it again gives the same frame.
func (m *Model) View() string {
	if m.done {
		return ""
	}
	out, _ := m.frame()
	return out
}

// settle keeps the viewport as the current screen is drawn: reset when
// the screen changed, the row under the cursor kept in view, a live log
// followed, the offset kept inside the body. Update calls it after every
// message (a new terminal size too).
func (m *Model) settle() {
	if m.done {
		return
	}
	_, m.scroll = m.frame()
	m.scrollFor = m.step
}

// frame lays out the current screen and returns it with the viewport as
// drawn (m.scroll settled for this body). It changes nothing in the
// model: settle keeps the viewport, View the text.
func (m *Model) frame() (string, ui.Scroll) {
	w := ui.ContentWidth(m.width)
	sc := m.scroll
	if m.scrollFor != m.step {
		sc = ui.Scroll{Focus: -1, FocusSeen: -1}
		if f, ok := m.steps[m.step].(interface{ followsLog() bool }); ok && f.followsLog() {
			sc.Follow = true
		}
	}
	scr := drawn{focus: -1}
	if h := m.steps[m.step]; h != nil {
		scr = h.view(m, w)
	} else {
		scr.body = fmt.Sprintf("wizard: step %v has no view; this is a bug", m.step)
	}
	body, keys := scr.body, scr.keys
	if m.quitting {
		body += "\n" + m.theme.Warn.Render("Stopping: cancelling the ACME run and closing the challenge server"+m.theme.Dots())
	}
	next := ""
	if m.step+1 < numSteps {
		next = (m.step + 1).String()
	}
	header := m.theme.Header(m.width, m.step.number(), int(numSteps), m.step.String(), next)
	room := m.height - 4 // Frame: header, blank, body, blank, help
	if m.width < ui.MinWidth || m.height < ui.MinHeight {
		// Under the header, outside the scrolling body: always in view.
		note := ui.Wrap(m.theme.Warn.Render(fmt.Sprintf("(terminal %dx%d is small: %dx%d or more reads best)", m.width, m.height, ui.MinWidth, ui.MinHeight)), w)
		header += "\n" + note
		room -= strings.Count(note, "\n") + 1
	}
	sc.Focus = scr.focus
	// The scroll keys are named when the body does not fit; then the
	// sideways keys when copyable text is wider than the terminal
	// (ui.Verbatim).
	at := 1
	if n := strings.Count(strings.TrimRight(body, "\n"), "\n") + 1; n > max(room, 1) && len(keys) > 0 {
		k := "pgup/pgdn"
		keys = append(keys[:1:1], append([]ui.KeyHelp{{Key: k, What: "scroll"}}, keys[1:]...)...)
		at = 2
	}
	if ui.Overflow(body, m.width) > 0 && len(keys) >= at {
		k := "←/→"
		if m.theme.Caps.ASCII {
			k = "left/right"
		}
		keys = append(keys[:at:at], append([]ui.KeyHelp{{Key: k, What: "sideways"}}, keys[at:]...)...)
	}
	return m.theme.Frame(m.width, m.height, header, body, m.theme.HelpLine(m.width, keys), &sc), sc
}

// rescroll starts the current screen's viewport again: at the top, or
// following the end of a live log.
func (m *Model) rescroll(follow bool) {
	m.scroll = ui.Scroll{Focus: -1, FocusSeen: -1, Follow: follow}
	m.scrollFor = m.step
}

// drawn is what a step's view draws: the body, the body line of the row
// under the cursor (-1: none; the viewport keeps it in view) and the keys.
type drawn struct {
	body  string
	focus int
	keys  []ui.KeyHelp
}

// canvas is a body being drawn, with the row under the cursor marked.
// Start it as canvas{focus: -1}.
type canvas struct {
	strings.Builder
	focus int
}

// focusHere marks the next line written as the row under the cursor.
func (c *canvas) focusHere() { c.focus = strings.Count(c.String(), "\n") }

// drawn is the body with its keys.
func (c *canvas) drawn(keys []ui.KeyHelp) drawn {
	return drawn{body: c.String(), focus: c.focus, keys: keys}
}

// keysQuit is the help entry every screen ends with.
var keysQuit = ui.KeyHelp{Key: "q", What: "quit"}
var keysBack = ui.KeyHelp{Key: "esc", What: "back"}

// publicCA says whether Let's Encrypt's address policy applies: not to
// the local test CA, nor to the user's own ACME CA.
func (m *Model) publicCA() bool {
	return !m.cfg.Demo && m.ans.CA != cachoice.Local && !m.ownCA()
}

// ownCA: the plan names an ACME CA of the user's own, not Let's Encrypt
// (cachoice.IsOwn: a Let's Encrypt URL typed as "own" is Let's Encrypt).
func (m *Model) ownCA() bool {
	return !m.cfg.Demo && m.ans.CA == PlanOwnCA && (m.ans.CAURL == "" || cachoice.IsOwn(spec.CAChoice(m.ans.CAURL)))
}
