package wizard

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/diagnosis"
	"github.com/ipcert/ipcert/internal/spec"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/ui"
)

type issuePhase int

const (
	phaseIdle issuePhase = iota
	phaseRunning
	phaseFailed
	phaseAskProduction
	// phaseIssued: the certificate is stored; the screen stays, with the
	// validator lines that are its reason to exist, until enter.
	phaseIssued
)

// issueLine is one line of the live log.
type issueLine struct {
	status    ui.Status
	text      string
	validator bool
}

// issueStep runs the ACME order and shows every step and every validator
// request; on failure it explains and offers retry / change challenge /
// back to preflight; after a staging rehearsal it asks before production.
type issueStep struct {
	phase      issuePhase
	gen        int
	cancelFn   context.CancelFunc
	rehearsal  bool   // the run shown is the staging rehearsal
	choice     string // the CA of the run shown
	lines      []issueLine
	seen       int
	err        error
	diag       diagnosis.Diagnosis
	failCursor int
	// backAfterCancel: Esc during a run goes back to the plan once the
	// run has stopped.
	backAfterCancel bool
	// attempt counts the runs of this plan (retry adds one); earlier
	// says how the previous ones ended, so a retry shows it is new.
	attempt int
	earlier []string
	// cancelled: the last run was stopped by the user (esc), for the
	// plan screen to say so.
	cancelled bool
}

type issueEventMsg struct {
	gen int
	ev  acmeflow.Event
}

type issueDoneMsg struct {
	gen       int
	iss       *acmeflow.Issued
	err       error
	rehearsal bool
	ca        *cachoice.CA
	// recordErr: the failure could not be recorded for doctor.
	recordErr error
}

func (issueEventMsg) stepOf() Step { return StepIssue }
func (issueDoneMsg) stepOf() Step  { return StepIssue }

func (s *issueStep) running() bool     { return s.phase == phaseRunning }
func (s *issueStep) busy() bool        { return s.running() }
func (s *issueStep) textFocused() bool { return false }

// followsLog: the viewport follows the end of the live log, except on
// the failure's explanation, which is read from its top.
func (s *issueStep) followsLog() bool { return s.phase != phaseFailed }

func (s *issueStep) back(m *Model) tea.Cmd {
	switch {
	case s.running():
		s.cancel()
		s.backAfterCancel = true
		return nil
	case s.phase == phaseAskProduction:
		// the rehearsal stands: going back means "not now"
		return m.follow(s.question(m).choices[1])
	case s.phase == phaseIssued:
		// the certificate stands: back to the plan would order another
		return nil
	case s.cancelled:
		return m.arrive(StepPlan, arriveCancelled)
	}
	return m.arrive(StepPlan, arriveBack)
}

func (s *issueStep) cancel() {
	if s.cancelFn != nil {
		s.cancelFn()
	}
}

func (s *issueStep) enter(m *Model, _ arrival) tea.Cmd {
	if !m.ans.AgreeTOS {
		// Never to the CA without the user's agreement to its terms.
		return m.arrive(StepPlan, arriveRefused)
	}
	s.attempt, s.earlier = 0, nil
	if m.ans.CA == PlanRehearse {
		return s.start(m, true, cachoice.Staging)
	}
	return s.start(m, false, m.ans.Choice())
}

// buildRequest is the engine request for answers a from CA ca. It reads
// only its arguments: it runs inside the command's goroutine.
func buildRequest(a Answers, ca *cachoice.CA) acmeflow.Request {
	is := a.Issuance(string(ca.Choice))
	req := acmeflow.RequestFor(&is, a.Addrs)
	req.AgreeTOS = a.AgreeTOS
	// The local CA's own ports replace the responders' addresses.
	ca.Apply(&req)
	return req
}

// issuance is one run of the order, ready to go: begin captured what it
// needs, so it reads nothing of the model while it runs (in a command's
// goroutine, or in accessible mode's flow). Both renderings run it.
type issuance func(ctx context.Context, events func(acmeflow.Event)) issueDoneMsg

// begin starts a new attempt on the screen's state and returns the run:
// the one issuance runner of the full-screen and the accessible wizard.
func (s *issueStep) begin(m *Model, rehearsal bool, choice string) issuance {
	s.gen++
	gen := s.gen
	if rehearsal != s.rehearsal || choice != s.choice {
		// Production after the rehearsal is a new order, not a retry.
		s.attempt, s.earlier = 0, nil
	}
	s.attempt++
	s.cancelled = false
	s.phase = phaseRunning
	s.rehearsal, s.choice = rehearsal, choice
	s.lines, s.seen, s.err, s.failCursor, s.backAfterCancel = nil, 0, nil, 0, false
	ans := m.ans
	ans.Addrs = append(ans.Addrs[:0:0], ans.Addrs...)
	issuer := m.deps.Issuer
	if rehearsal && m.deps.Rehearsal != nil {
		issuer = m.deps.Rehearsal
	}
	pool := m.cas
	root := ans.root(choice)
	record := m.deps.RecordFailure
	rep, now, stateDir := m.pre.report, m.deps.Now, m.cfg.StateDir
	m.logf("issue run %d: CA %s (rehearsal %v) for %v, %s", gen, choice, rehearsal, ans.Addrs, ans.Challenge)
	return func(ctx context.Context, events func(acmeflow.Event)) issueDoneMsg {
		ca, err := pool.get(choice, root)
		if err != nil {
			return issueDoneMsg{gen: gen, err: fmt.Errorf("open the CA %q: %w", choice, err), rehearsal: rehearsal}
		}
		if issuer == nil {
			return issueDoneMsg{gen: gen, err: errors.New("no issuer configured; this is a bug"), rehearsal: rehearsal, ca: ca}
		}
		req := buildRequest(ans, ca)
		req.Events = events
		var rootPEM []byte
		if ca.Local {
			rootPEM = ca.RootPEM
		}
		// What "ipcert issue --ca URL --ca-root FILE" keeps, so that renew
		// asks the same CA, trusting the same root (an absolute path: the
		// timer runs from /).
		tmpl := &store.Renewal{Issuance: ans.Issuance(choice)}
		iss, err := issuer.Issue(ctx, req, acmeflow.IssueOptions{Renewal: tmpl, RootPEM: rootPEM})
		err = diagnosis.WithEvidence(err, runEvidence(ans, ca, choice, rep, now(), stateDir))
		var rerr error
		if err != nil && ctx.Err() == nil && record != nil {
			// A rehearsal's failure too: it is the one the user saw, and
			// the record names its CA.
			rerr = record(store.NameFor(acmeflow.AddrStrings(ans.Addrs)), err)
		}
		return issueDoneMsg{gen: gen, iss: iss, err: err, rehearsal: rehearsal, ca: ca, recordErr: rerr}
	}
}

func (s *issueStep) start(m *Model, rehearsal bool, choice string) tea.Cmd {
	run := s.begin(m, rehearsal, choice)
	gen := s.gen
	ctx, cancel := context.WithCancel(m.ctx)
	s.cancelFn = cancel
	if m.step == StepIssue {
		m.rescroll(true)
	}
	return tea.Batch(m.stream(func(send func(tea.Msg)) {
		defer cancel()
		send(run(ctx, func(ev acmeflow.Event) { send(issueEventMsg{gen, ev}) }))
	}), m.tick())
}

func (s *issueStep) addEvent(t ui.Theme, ev acmeflow.Event) {
	finishRunning := func(st ui.Status) {
		for i := range s.lines {
			if s.lines[i].status == ui.Running {
				s.lines[i].status = st
			}
		}
	}
	switch ev.Kind {
	case acmeflow.EventStep:
		finishRunning(ui.OK)
		s.lines = append(s.lines, issueLine{status: ui.Running, text: ev.Message})
	case acmeflow.EventInfo:
		s.lines = append(s.lines, issueLine{status: ui.Pending, text: ev.Message})
	case acmeflow.EventValidator:
		s.seen++
		text := validatorText(t, ev)
		s.lines = append(s.lines, issueLine{status: ui.OK, text: text, validator: true})
	case acmeflow.EventWarning:
		s.lines = append(s.lines, issueLine{status: ui.Warn, text: ev.Message})
	case acmeflow.EventDone:
		finishRunning(ui.OK)
		s.lines = append(s.lines, issueLine{status: ui.OK, text: ev.Message})
	}
}

// finish takes a run's result.
func (s *issueStep) finish(m *Model, msg issueDoneMsg) tea.Cmd {
	if msg.gen != s.gen {
		return nil
	}
	s.cancel()
	for i := range s.lines {
		if s.lines[i].status == ui.Running {
			s.lines[i].status = ui.Fail
			if msg.err == nil {
				s.lines[i].status = ui.OK
			}
		}
	}
	if msg.err == nil && msg.iss != nil {
		local := msg.ca != nil && msg.ca.Local
		m.outcome.CA = msg.ca
		if msg.rehearsal {
			m.outcome.Rehearsal = msg.iss
			st := m.deps.RehearsalStore
			if st == nil {
				st = m.deps.Store
			}
			m.outcome.RehearsalFiles = filesOf(st, msg.iss.Name, local)
			s.phase = phaseAskProduction
			m.logf("rehearsal issued %s", msg.iss.Name)
			return nil
		}
		m.outcome.Issued = msg.iss
		m.outcome.Files = filesOf(m.deps.Store, msg.iss.Name, local)
		m.outcome.Err, m.outcome.RecordErr = nil, nil
		m.outcome.Aborted = false
		s.phase = phaseIssued
		m.logf("issued %s version %d", msg.iss.Name, msg.iss.Version.N)
		return nil
	}
	err := msg.err
	if err == nil {
		err = errors.New("the issuer returned neither a certificate nor an error; this is a bug")
	}
	// The user cancelled (esc, q): whatever the engine's error says, this
	// is not a failure to diagnose.
	if m.ctx.Err() != nil || errors.Is(err, context.Canceled) || s.backAfterCancel || m.quitting {
		s.phase = phaseIdle
		s.cancelled = true
		m.logf("issue run %d cancelled", msg.gen)
		if s.backAfterCancel && !m.quitting {
			s.backAfterCancel = false
			return m.arrive(StepPlan, arriveCancelled)
		}
		return nil
	}
	s.phase = phaseFailed
	seen := seenText(s.seen)
	if m.ans.Challenge == ChallengeWebroot {
		seen = "answered by the web server"
	}
	s.earlier = append(s.earlier, fmt.Sprintf("attempt %d failed at %s: %s (%s)", s.attempt, clock(m.deps.Now()), m.diagnose(err, msg.ca, s.choice).Title, seen))
	if m.step == StepIssue {
		m.rescroll(false)
	}
	s.err = err
	s.diag = m.diagnose(err, msg.ca, s.choice)
	m.outcome.Err, m.outcome.RecordErr = err, msg.recordErr
	m.logf("issue run %d failed: %v", msg.gen, err)
	return nil
}

// failureChoices are what the failure screen offers: its rows and keys
// on the full screen, its options in accessible mode (with Quit), and
// where each leads (a retry stays: a new run).
var failureChoices = []choice{
	{label: "Retry", value: "retry", key: "r"},
	{label: "Change the challenge (back to the plan)", value: "plan", key: "c", next: StepPlan, why: arriveChangeChallenge},
	{label: "Back to preflight", value: "preflight", key: "p", next: StepPreflight, why: arriveRecheck},
}

var failChoices = labels(failureChoices)

// askProduction is the question after a staging rehearsal worked.
const askProduction = "Get the real certificate now from Let's Encrypt production?"

// question is what the issue step asks after a run: what now after a
// failure, production after a rehearsal, and after the certificate only
// the way on (the full screen waits for enter under the log).
func (s *issueStep) question(m *Model) *question {
	switch s.phase {
	case phaseFailed:
		return &question{title: "What now?", choices: append(slices.Clone(failureChoices), choiceQuit)}
	case phaseAskProduction:
		return &question{title: askProduction, yesNo: true, choices: []choice{
			{label: "yes, production", value: "production", key: "y"},
			{label: "not now", value: "not-now", key: "n", next: StepSummary},
		}}
	case phaseIssued:
		return &question{screenOnly: true, choices: []choice{{label: "continue to Install", value: "go", key: "enter", next: StepInstall}}}
	}
	return nil
}

func (s *issueStep) update(m *Model, msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case issueEventMsg:
		if msg.gen == s.gen {
			s.addEvent(m.theme, msg.ev)
		}
		return nil
	case issueDoneMsg:
		return s.finish(m, msg)
	case tea.KeyMsg:
		q := s.question(m)
		if q == nil {
			return nil
		}
		k := msg.String()
		if q.yesNo {
			k = strings.ToLower(k) // Y and N too
		}
		if s.phase == phaseFailed {
			switch k {
			case "up", "k":
				if s.failCursor > 0 {
					s.failCursor--
				}
				return nil
			case "down", "j", "tab":
				if s.failCursor < len(failChoices)-1 {
					s.failCursor++
				}
				return nil
			case "enter":
				return s.choose(m, failureChoices[s.failCursor])
			}
		}
		if c, ok := byKey(q.choices, k); ok {
			return s.choose(m, c)
		}
	}
	return nil
}

// choose does what an answer to the step's question says: a new run
// (retry, production), or where the choice leads.
func (s *issueStep) choose(m *Model, c choice) tea.Cmd {
	switch {
	case c.value == "retry":
		return s.start(m, s.rehearsal, s.choice)
	case c.value == "production":
		return s.start(m, false, cachoice.Production)
	case c.leaves() && s.phase == phaseFailed:
		s.phase = phaseIdle
	}
	return m.follow(c)
}

// prepare (accessible mode) runs the issuance in place, the one runner of
// both (begin), saying the log as it grows, then how it ended: the
// next run is the rehearsal or the plan's CA at first, the same again
// after a failure (retry), production after the rehearsal.
func (s *issueStep) prepare(a *accessible) error {
	m := a.m
	rehearsal, choice := m.ans.CA == PlanRehearse, m.ans.Choice()
	if rehearsal {
		choice = cachoice.Staging
	}
	switch s.phase {
	case phaseFailed:
		rehearsal, choice = s.rehearsal, s.choice
	case phaseAskProduction:
		rehearsal, choice = false, cachoice.Production
	}
	run := s.begin(m, rehearsal, choice)
	title := runTitle(rehearsal, choice, m.ans.Addrs)
	if s.attempt > 1 && len(s.earlier) > 0 {
		title = fmt.Sprintf("Attempt %d (%s). %s", s.attempt, s.earlier[len(s.earlier)-1], title)
	}
	a.say("%s. %s", StepIssue.heading(), title)
	done := run(m.ctx, func(ev acmeflow.Event) {
		s.addEvent(m.theme, ev) // the same log; said as it grows
		a.say("  %s", eventText(m.theme, ev))
	})
	s.finish(m, done)
	switch {
	case m.ctx.Err() != nil:
		return ErrAborted
	case s.phase == phaseAskProduction:
		a.say("The rehearsal worked: staging validated %s and issued a test certificate (kept apart, never renewed).", addrList(m.ans.Addrs))
	case s.phase == phaseFailed:
		fb := canvas{focus: -1}
		s.failureView(m, 80, &fb)
		a.say("%s", plain(fb.String()))
	case s.phase == phaseIssued && m.outcome.Issued != nil:
	default:
		return ErrAborted
	}
	return nil
}

// chosen (accessible mode): a retry or production runs in prepare; an
// answer that leaves the failure leaves it behind, as on the full screen.
func (s *issueStep) chosen(_ *accessible, c choice) (choice, error) {
	if c.leaves() && s.phase == phaseFailed {
		s.phase = phaseIdle
	}
	return c, nil
}

// seenText says how often the validator reached ipcert's responder.
func seenText(n int) string {
	switch n {
	case 0:
		return "no validator request reached ipcert's responder"
	case 1:
		return "1 validator request reached ipcert's responder"
	}
	return fmt.Sprintf("%d validator requests reached ipcert's responder", n)
}

func clock(t time.Time) string { return t.Local().Format("15:04:05") }

// when is a moment on another day, in the one format the screens use for
// dates (clock is the time of day of what happens now).
func when(t time.Time) string { return t.Local().Format("2006-01-02 15:04 MST") }

func (s *issueStep) view(m *Model, w int) drawn {
	t := m.theme
	b := canvas{focus: -1}
	title := runTitle(s.rehearsal, s.choice, m.ans.Addrs)
	if s.attempt > 1 {
		title = fmt.Sprintf("Attempt %d. %s", s.attempt, title)
	}
	b.WriteString(ui.Wrap(title, w) + "\n")
	if s.attempt > 1 {
		// A retry is a new run: say how the earlier ones ended.
		for i, e := range s.earlier {
			if s.phase == phaseFailed && i == len(s.earlier)-1 {
				continue // the failure below
			}
			b.WriteString(t.Dim.Render(ui.Indent(e, 2, w)) + "\n")
		}
	}
	b.WriteString("\n")
	if s.phase == phaseFailed {
		s.failureView(m, w, &b)
		return b.drawn([]ui.KeyHelp{{Key: "enter", What: "choose"}, {Key: "r", What: "retry"}, {Key: "c", What: "change challenge"}, {Key: "p", What: "preflight"}, keysBack, keysQuit})
	}
	// The whole log is drawn; the viewport follows its end while it runs
	// (Model.View) and the user scrolls back with pgup.
	ask := ""
	if s.phase == phaseAskProduction {
		ask = "\n" + ui.Wrap(t.OK.Render("The rehearsal worked: staging validated "+addrList(m.ans.Addrs)+" from the internet and issued a test certificate.")+" It is kept apart from the real one and never renewed.", w) + "\n\n" +
			t.Strong.Render(askProduction) + " y / n\n"
	}
	if s.phase == phaseIssued {
		ask = s.issuedText(m, w)
	}
	rendered := make([]string, len(s.lines))
	for i, l := range s.lines {
		text, indent := l.text, 2
		if l.validator || l.status == ui.Pending {
			text, indent = t.Dim.Render(text), 4
		}
		// Continuations line up under the text, not under the mark.
		rendered[i] = ui.Hang(strings.Repeat(" ", indent)+t.Mark(l.status, m.spinner())+" "+text, indent+2, w)
	}
	for _, r := range rendered {
		b.WriteString(r + "\n")
	}
	if s.phase == phaseRunning && len(s.lines) == 0 {
		b.WriteString("  " + m.spinner() + " opening the CA" + m.theme.Dots() + "\n")
	}
	keys := []ui.KeyHelp{{Key: "esc", What: "cancel, back to the plan"}, {Key: "q", What: "cancel and quit"}}
	if s.phase == phaseIssued {
		b.WriteString(ask)
		keys = []ui.KeyHelp{{Key: "enter", What: "continue to Install"}, keysQuit}
	}
	if s.phase == phaseAskProduction {
		b.WriteString(ask)
		keys = []ui.KeyHelp{{Key: "y", What: "yes, production"}, {Key: "n", What: "not now"}, keysQuit}
	}
	return b.drawn(keys)
}

// issuedText closes the log of a successful run: what was validated, how
// often the validator came, where the certificate is.
func (s *issueStep) issuedText(m *Model, w int) string {
	t := m.theme
	iss := m.outcome.Issued
	if iss == nil {
		return ""
	}
	seen := "validated"
	switch s.seen {
	case 0:
	case 1:
		seen = "validated by 1 request to ipcert's responder (above)"
	default:
		seen = fmt.Sprintf("validated by %d requests to ipcert's responder (above)", s.seen)
	}
	return "\n" + ui.Wrap(t.OK.Render(t.Mark(ui.OK, "")+" Certificate issued for "+addrList(m.ans.Addrs))+": "+seen+"; version "+fmt.Sprint(iss.Version.N)+" of "+iss.Name+" is current.", w) + "\n"
}

// runTitle says what the run does.
func runTitle(rehearsal bool, choice string, addrs []netip.Addr) string {
	if rehearsal {
		return fmt.Sprintf("Rehearsal on Let's Encrypt staging for %s.", addrList(addrs))
	}
	return fmt.Sprintf("Getting the certificate for %s from %s.", addrList(addrs), cachoice.Short(spec.CAChoice(choice)))
}
