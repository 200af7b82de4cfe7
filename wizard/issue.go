package wizard

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/lipgloss"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/acmeflow/store"
	"github.com/ipcert/ipcert/diagnosis"
	"github.com/ipcert/ipcert/ui"
)

type issuePhase int

const (
	phaseIdle issuePhase = iota
	phaseRunning
	phaseFailed
	phaseAskProduction
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
}

func (s *issueStep) running() bool { return s.phase == phaseRunning }

func (s *issueStep) cancel() {
	if s.cancelFn != nil {
		s.cancelFn()
	}
}

func (s *issueStep) enter(m *Model) tea.Cmd {
	if m.ans.CA == PlanRehearse {
		return s.start(m, true, cachoice.Staging)
	}
	return s.start(m, false, m.ans.CA)
}

// buildRequest is the engine request for answers a from CA ca. It reads
// only its arguments: it runs inside the command's goroutine.
func buildRequest(a Answers, ca *cachoice.CA) acmeflow.Request {
	req := acmeflow.Request{
		Identifiers: a.Addrs,
		Challenge:   a.Challenge,
		KeyType:     a.KeyType,
		Email:       a.Email,
		AgreeTOS:    a.AgreeTOS,
	}
	if a.Challenge == ChallengeWebroot {
		req.Challenge = acmeflow.ChallengeHTTP01
		req.WebRoot = a.WebRoot
	}
	ca.Apply(&req)
	return req
}

func (s *issueStep) start(m *Model, rehearsal bool, choice string) tea.Cmd {
	s.gen++
	gen := s.gen
	s.phase = phaseRunning
	s.rehearsal, s.choice = rehearsal, choice
	s.lines, s.seen, s.err, s.failCursor, s.backAfterCancel = nil, 0, nil, 0, false
	ctx, cancel := context.WithCancel(m.ctx)
	s.cancelFn = cancel
	ans := m.ans
	ans.Addrs = append(ans.Addrs[:0:0], ans.Addrs...)
	issuer := m.deps.Issuer
	if rehearsal && m.deps.Rehearsal != nil {
		issuer = m.deps.Rehearsal
	}
	pool := m.cas
	record := m.deps.RecordFailure
	rep, now := m.pre.report, m.deps.Now
	m.logf("issue run %d: CA %s (rehearsal %v) for %v, %s", gen, choice, rehearsal, ans.Addrs, ans.Challenge)
	return tea.Batch(m.stream(func(send func(tea.Msg)) {
		defer cancel()
		ca, err := pool.get(choice)
		if err != nil {
			send(issueDoneMsg{gen: gen, err: fmt.Errorf("open the CA %q: %w", choice, err), rehearsal: rehearsal})
			return
		}
		if issuer == nil {
			send(issueDoneMsg{gen: gen, err: errors.New("no issuer configured; this is a bug"), rehearsal: rehearsal, ca: ca})
			return
		}
		req := buildRequest(ans, ca)
		req.Events = func(ev acmeflow.Event) { send(issueEventMsg{gen, ev}) }
		var root []byte
		if ca.Local {
			root = ca.RootPEM
		}
		iss, err := issuer.Issue(ctx, req, acmeflow.IssueOptions{Renewal: &store.Renewal{CA: choice}, RootPEM: root})
		err = diagnosis.WithEvidence(err, runEvidence(ans, ca, choice, rep, now()))
		if err != nil && ctx.Err() == nil && record != nil && !rehearsal {
			record(store.NameFor(acmeflow.AddrStrings(ans.Addrs)), err)
		}
		send(issueDoneMsg{gen: gen, iss: iss, err: err, rehearsal: rehearsal, ca: ca})
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
		m.outcome.Err = nil
		m.outcome.Aborted = false
		s.phase = phaseIdle
		m.logf("issued %s version %d", msg.iss.Name, msg.iss.Version.N)
		if m.quitting {
			return nil
		}
		return m.goTo(StepInstall)
	}
	err := msg.err
	if err == nil {
		err = errors.New("the issuer returned neither a certificate nor an error; this is a bug")
	}
	// The user cancelled (esc, q): whatever the engine's error says, this
	// is not a failure to diagnose.
	if m.ctx.Err() != nil || errors.Is(err, context.Canceled) || s.backAfterCancel || m.quitting {
		s.phase = phaseIdle
		m.logf("issue run %d cancelled", msg.gen)
		if s.backAfterCancel && !m.quitting {
			s.backAfterCancel = false
			return m.goTo(StepPlan)
		}
		return nil
	}
	s.phase = phaseFailed
	s.err = err
	s.diag = m.diagnose(err, msg.ca, s.choice)
	m.outcome.Err = err
	m.logf("issue run %d failed: %v", msg.gen, err)
	return nil
}

var failChoices = []string{"Retry", "Change the challenge (back to the plan)", "Back to preflight"}

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
		switch s.phase {
		case phaseFailed:
			switch msg.String() {
			case "up", "k":
				if s.failCursor > 0 {
					s.failCursor--
				}
			case "down", "j", "tab":
				if s.failCursor < len(failChoices)-1 {
					s.failCursor++
				}
			case "r":
				return s.choose(m, 0)
			case "c":
				return s.choose(m, 1)
			case "p":
				return s.choose(m, 2)
			case "enter":
				return s.choose(m, s.failCursor)
			}
		case phaseAskProduction:
			switch msg.String() {
			case "y", "Y":
				return s.start(m, false, cachoice.Production)
			case "n", "N":
				return m.goTo(StepSummary)
			}
		}
	}
	return nil
}

func (s *issueStep) choose(m *Model, i int) tea.Cmd {
	switch i {
	case 0:
		return s.start(m, s.rehearsal, s.choice)
	case 1:
		s.phase = phaseIdle
		return m.goTo(StepPlan)
	case 2:
		s.phase = phaseIdle
		m.pre.report = nil // run the checks again: something changed
		return m.goTo(StepPreflight)
	}
	return nil
}

func (s *issueStep) view(m *Model, w int) (string, []ui.KeyHelp) {
	t := m.theme
	var b strings.Builder
	b.WriteString(ui.Wrap(runTitle(s.rehearsal, s.choice, m.ans.Addrs), w) + "\n\n")
	if s.phase == phaseFailed {
		return b.String() + s.failureView(m, w), []ui.KeyHelp{{Key: "enter", What: "choose"}, {Key: "r", What: "retry"}, {Key: "c", What: "change challenge"}, {Key: "p", What: "preflight"}, keysBack, keysQuit}
	}
	// The log keeps its tail in view: the newest step matters most. Rows
	// are counted after wrapping, so long validator lines cannot push the
	// newest ones below the screen.
	ask := ""
	if s.phase == phaseAskProduction {
		ask = "\n" + ui.Wrap(t.OK.Render("The rehearsal worked: staging validated "+addrList(m.ans.Addrs)+" from the internet and issued a test certificate.")+" It is kept apart from the real one and never renewed.", w) + "\n\n" +
			t.Strong.Render("Get the real certificate now from Let's Encrypt production?") + " y / n\n"
	}
	// The frame gives the body height-4 rows; one more is kept for the
	// "stopping" line or the small-terminal note.
	room := m.height - 5 - lipgloss.Height(strings.TrimRight(b.String(), "\n")) - strings.Count(ask, "\n")
	room = max(room, 3)
	rendered := make([]string, len(s.lines))
	for i, l := range s.lines {
		text, indent := l.text, 2
		if l.validator || l.status == ui.Pending {
			text, indent = t.Dim.Render(text), 4
		}
		rendered[i] = ui.Indent(t.Mark(l.status, m.spinner())+" "+text, indent, w)
	}
	first, rows := len(rendered), 0
	for first > 0 {
		h := lipgloss.Height(rendered[first-1])
		if rows+h > room-1 && first < len(rendered) {
			break
		}
		rows += h
		first--
	}
	if first > 0 {
		b.WriteString(t.Dim.Render(fmt.Sprintf("  (%d earlier lines)", first)) + "\n")
	}
	for _, r := range rendered[first:] {
		b.WriteString(r + "\n")
	}
	if s.phase == phaseRunning && len(s.lines) == 0 {
		b.WriteString("  " + m.spinner() + " opening the CA…\n")
	}
	keys := []ui.KeyHelp{{Key: "esc", What: "cancel, back to the plan"}, {Key: "q", What: "cancel and quit"}}
	if s.phase == phaseAskProduction {
		b.WriteString(ask)
		keys = []ui.KeyHelp{{Key: "y", What: "yes, production"}, {Key: "n", What: "not now"}, keysQuit}
	}
	return b.String(), keys
}

// runTitle says what the run does.
func runTitle(rehearsal bool, choice string, addrs []netip.Addr) string {
	if rehearsal {
		return fmt.Sprintf("Rehearsal on Let's Encrypt staging for %s.", addrList(addrs))
	}
	return fmt.Sprintf("Getting the certificate for %s from %s.", addrList(addrs), shortCA(choice))
}

func shortCA(choice string) string {
	switch choice {
	case cachoice.Staging:
		return "Let's Encrypt staging"
	case cachoice.Production:
		return "Let's Encrypt production"
	case cachoice.Local:
		return "the local test CA"
	}
	return choice
}
