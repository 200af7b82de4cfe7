package wizard

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"sync"

	"github.com/charmbracelet/huh"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/internal/untrusted"
	"github.com/ipcert/ipcert/preflight"
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

func (a *accessible) run() error {
	m := a.m
	a.say("ipcert setup (accessible mode: plain prompts; answer by typing and Enter).")
	if m.deps.Machine != nil {
		mc := m.deps.Machine(m.ctx)
		m.welcome.machine = &mc
		m.welcome.update(m, machineMsg{mc})
	}
	a.say("%s\n", plain(m.welcome.view(m, 80).body))
	// The same steps as the full screen's table, as question flows; each
	// returns the step to ask next. Install runs Renewal and Verify too.
	flows := map[Step]func() (Step, error){
		StepAddress:   a.address,
		StepPreflight: a.preflight,
		StepPlan:      a.plan,
		StepIssue:     a.issue,
		StepInstall:   a.after,
	}
	step := StepAddress
	for step != StepSummary {
		if err := a.check(); err != nil {
			return err
		}
		flow, ok := flows[step]
		if !ok {
			return fmt.Errorf("wizard: accessible step %v has no handler; this is a bug", step)
		}
		var err error
		if step, err = flow(); err != nil {
			return err
		}
	}
	if err := a.check(); err != nil {
		return err
	}
	m.step = StepSummary
	if m.cfg.SummaryOnStdout {
		// Said once: the caller prints it on standard output.
		a.say("\nStep 9 of 9, Summary: it follows.")
	} else {
		a.say("\n%s", plain(m.summary.view(m, 80).body))
	}
	if m.outcome.Issued == nil && m.outcome.Rehearsal == nil {
		return ErrAborted
	}
	return nil
}

func (a *accessible) address() (Step, error) {
	m := a.m
	s := &m.address
	m.step = StepAddress
	a.say("Step 2 of 9, Address.")
	if !s.detected {
		a.say("Finding this machine's public address...")
		var msg addrMsg
		if m.deps.LocalAddrs != nil {
			msg.ifaces, _ = m.deps.LocalAddrs()
		}
		if m.deps.DetectPublic != nil {
			msg.public = m.deps.DetectPublic(m.ctx)
		}
		s.setDetected(m, msg)
		s.typing = false
	}
	for _, c := range s.cands {
		a.say("%s", plain(strings.Join(s.facts(m, c), "; ")))
	}
	if len(s.cands) == 0 {
		a.say("No public address found: no echo, DNS or STUN service answered (offline, or outbound traffic blocked). Type the address, ask again once the network is back, or quit and run \"ipcert preflight\" (what is missing) or \"ipcert demo\" (the whole setup with a local test CA, no internet). An internal machine can get its certificate from your own ACME CA: type its address, then choose \"My own ACME CA\" in the plan.")
	}
	cs, valid := s.choices(m)
	choice := ""
	if err := a.choose("Which address should the certificate name?", options(cs), &choice); err != nil {
		return 0, err
	}
	switch choice {
	case "again":
		s.detected = false
		var keep []candidate
		for _, c := range s.cands {
			if c.Typed {
				keep = append(keep, c)
			}
		}
		s.cands = keep
		return StepAddress, nil
	case "quit":
		return 0, ErrAborted
	case "all":
		m.ans.Addrs = nil
		for _, v := range valid {
			m.ans.Addrs = append(m.ans.Addrs, netip.MustParseAddr(v))
		}
	case "type":
		typed := ""
		s.setupInput(m.cfg.Caps)
		in := huh.NewInput().Title("Address:").Value(&typed).Validate(func(v string) error {
			s.input.SetValue(v)
			if _, why := s.validate(m); why != "" {
				return errors.New("refused: " + why)
			}
			return nil
		})
		if err := a.ask(in); err != nil {
			return 0, err
		}
		a.say("") // the answer ends its line (typed input is not echoed when piped)
		if err := a.check(); err != nil {
			return 0, err
		}
		v, _ := typedAddress(typed)
		addr, err := acmeflow.ParseIP(v)
		if err != nil {
			return StepAddress, nil
		}
		m.ans.Addrs = []netip.Addr{addr}
		if note := m.leNote(addr); note != "" {
			a.say("Not for Let's Encrypt: %s.", note)
		}
	default:
		m.ans.Addrs = []netip.Addr{netip.MustParseAddr(choice)}
	}
	a.say("Address: %s\n", addrList(m.ans.Addrs))
	return StepPreflight, nil
}

func (a *accessible) preflight() (Step, error) {
	m := a.m
	m.step = StepPreflight
	mapPorts := false
	for {
		a.say("Step 3 of 9, Preflight: checking what would make validation of %s fail.", addrList(m.ans.Addrs))
		var rep preflight.Report
		if m.deps.Preflight != nil {
			rep = m.deps.Preflight(m.ctx, m.preflightRequest(mapPorts), func(ev preflight.Event) {
				if ev.Kind == preflight.EventFinish && ev.Result != nil {
					r := ev.Result
					a.say("  %s: %s. %s", r.Title, statusOf(r.Status).Word(), r.Summary)
				}
			})
		}
		mapPorts = false
		// The report lands where the full-screen wizard keeps it: the
		// failure diagnosis reads its NAT and port findings from there.
		m.pre.took(m, rep)
		for _, r := range rep.Results {
			if r.Status != preflight.StatusWarn && r.Status != preflight.StatusFail {
				continue
			}
			a.say("%s (%s):", r.Title, statusOf(r.Status).Word())
			for _, e := range r.Evidence {
				a.say("  seen: %s", e)
			}
			if r.Fix != "" {
				a.say("  fix: %s", r.Fix)
			}
		}
		switch rep.Verdict {
		case preflight.StatusFail:
			a.say("Verdict: validation will probably fail until the failures are fixed; %s.", m.realTest())
		case preflight.StatusWarn:
			a.say("Verdict: no blocker found, but read the warnings.")
		default:
			a.say("Verdict: everything checked looks right.")
		}
		choice := ""
		if err := a.choose("What next?", options(m.pre.choices(m)), &choice); err != nil {
			return 0, err
		}
		switch choice {
		case "go":
			return StepPlan, nil
		case "back":
			m.address.detected = false
			return StepAddress, nil
		case "quit":
			return 0, ErrAborted
		case "map":
			mapPorts = true
		}
	}
}

func (a *accessible) plan() (Step, error) {
	m := a.m
	m.step = StepPlan
	a.say("Step 4 of 9, Plan.")
	p := &m.plan
	p.enter(m, arriveForward)
	// The plan's own questions (planStep.build), asked one by one.
	for _, f := range p.fields {
		if f == huh.Field(p.consent) {
			break // below: it may be asked twice
		}
		if !p.asked(f.GetKey()) {
			continue // the own CA's questions, for another CA
		}
		a.say("%s", p.note(m, f.GetKey()))
		for {
			f.Focus()
			if err := a.ask(f); err != nil {
				return 0, err
			}
			a.say("")
			if err := a.check(); err != nil {
				return 0, err
			}
			// The full screen's CA question refuses a Let's Encrypt choice
			// for an address it will not certify (planStep.caError); here
			// it is checked after the answer, and asked again.
			if f.GetKey() != "ca" {
				break
			}
			err := p.caError(p.a.CA)
			if err == nil {
				break
			}
			a.say("%s\n", err)
		}
		if f.GetKey() == "ca" && (p.a.CA == cachoice.Production || p.a.CA == PlanOwnCA) {
			a.say("%s\n", caDescription(m.cfg.Demo, p.a.CA))
		}
	}
	p.a.keepConsent(p.a.AgreeTOS) // agreed to another CA's terms: asked again
	p.consent.answered = p.a.AgreeTOS
	p.consent.title = tosQuestion(m.cfg.Demo, p.a.CA)
	a.say("%s", p.note(m, "tos"))
	for try := 0; !p.a.AgreeTOS; try++ {
		if try == 2 {
			return 0, ErrAborted
		}
		c := p.consent // the plan's own question, asked as a typed y or n
		if err := a.ask(c); err != nil {
			return 0, err
		}
		a.say("")
		if err := a.check(); err != nil {
			return 0, err
		}
		if !p.a.AgreeTOS {
			a.say("The CA issues only to accounts that accept its terms. Answer y to go on, or n again to stop.")
		}
	}
	p.a.AgreedFor = p.a.Terms()
	p.save(m)
	return StepIssue, nil
}

func (a *accessible) issue() (Step, error) {
	m := a.m
	m.step = StepIssue
	s := &m.issue
	rehearsal, choice := m.ans.CA == PlanRehearse, m.ans.Choice()
	if rehearsal {
		choice = cachoice.Staging
	}
	for {
		run := s.begin(m, rehearsal, choice)
		title := runTitle(rehearsal, choice, m.ans.Addrs)
		if s.attempt > 1 && len(s.earlier) > 0 {
			title = fmt.Sprintf("Attempt %d (%s). %s", s.attempt, s.earlier[len(s.earlier)-1], title)
		}
		a.say("Step 5 of 9, Issue. %s", title)
		done := run(m.ctx, func(ev acmeflow.Event) {
			s.addEvent(m.theme, ev) // the same log; said as it grows
			a.say("  %s", eventText(m.theme, ev))
		})
		s.finish(m, done)
		switch {
		case m.ctx.Err() != nil:
			return 0, ErrAborted
		case s.phase == phaseAskProduction:
			a.say("The rehearsal worked: staging validated %s and issued a test certificate (kept apart, never renewed).", addrList(m.ans.Addrs))
			yes := true
			c := huh.NewConfirm().Title(askProduction).Value(&yes)
			if err := a.ask(c); err != nil {
				return 0, err
			}
			a.say("")
			if err := a.check(); err != nil {
				return 0, err
			}
			if !yes {
				return StepSummary, nil
			}
			rehearsal, choice = false, cachoice.Production
		case s.phase == phaseFailed:
			fb := canvas{focus: -1}
			s.failureView(m, 80, &fb)
			a.say("%s", plain(fb.String()))
			c := ""
			if err := a.choose("What now?", options(append(slices.Clone(failureChoices), choiceQuit)), &c); err != nil {
				return 0, err
			}
			switch c {
			case "plan":
				return StepPlan, nil
			case "preflight":
				return StepPreflight, nil
			case "quit":
				return 0, ErrAborted
			}
		case m.outcome.Issued != nil:
			return StepInstall, nil
		default:
			return 0, ErrAborted
		}
	}
}

// after runs the Install, Renewal and Verify screens as prompts.
func (a *accessible) after() (Step, error) {
	m := a.m
	iss := m.outcome.Issued
	for _, st := range []Step{StepInstall, StepRenewal, StepVerify} {
		m.step = st
		s := m.afterStep(st)
		s.step, s.running = st, -1
		var targets []InstallTarget
		if st == StepInstall && m.deps.Servers != nil {
			targets = m.deps.Servers(m.ctx, iss)
		}
		s.build(m, targets)
		a.say("Step %d of %d, %s. %s", int(st)+1, int(numSteps), st, plain(s.intro))
		for {
			opts := make([]huh.Option[string], len(s.actions))
			for i, ac := range s.actions {
				opts[i] = huh.NewOption(ac.label, fmt.Sprint(i))
			}
			// The default is where the full screen's cursor would be
			// (nextChoice): after an install, "continue".
			choice := fmt.Sprint(min(s.cursor, len(s.actions)-1))
			if err := a.choose("What now?", opts, &choice); err != nil {
				return 0, err
			}
			var i int
			fmt.Sscan(choice, &i)
			ac := s.actions[i]
			if ac.next {
				break
			}
			if ac.preview != "" {
				a.say("%s", ac.preview)
			}
			if ac.run == nil {
				continue
			}
			a.say("Running: %s", ac.label)
			r := ac.run(m.ctx)
			s.results = append(s.results, actionResult{st, ac.label, r})
			m.noteDone(ac.done, r)
			s.cursor = i
			s.cursor = s.nextChoice(r.Status)
			a.say("%s: %s", r.Status.Word(), untrusted.Text(r.Summary))
			for _, l := range r.Lines {
				a.say("  %s", untrusted.Text(l))
			}
			if r.Fix != "" && r.Status != ui.OK {
				a.say("  fix: %s", untrusted.Text(r.Fix))
			}
			if err := a.check(); err != nil {
				return 0, err
			}
		}
	}
	return StepSummary, nil
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
