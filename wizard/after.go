package wizard

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/internal/untrusted"
	"github.com/ipcert/ipcert/ui"
)

// InstallTarget is a web server the certificate can be installed for.
type InstallTarget struct {
	Kind       string // nginx, apache, haproxy, caddy
	Running    bool
	ConfigPath string // where the snippet goes
	Snippet    string // the configuration itself, for preview
	// CanInstall is false where ipcert must not write (the demo, no root):
	// the screen then shows the snippet and the command.
	CanInstall bool
	Note       string
	// WebRoot is the web root the snippet serves the challenge path from
	// over plain HTTP: where renewals must answer once the server holds
	// port 80.
	WebRoot string
}

// Report is what an after-issuance action did, in words: what was done or
// seen, line by line, and the fix when it went wrong.
type Report struct {
	Status  ui.Status // OK, Warn or Fail
	Summary string
	Lines   []string
	Fix     string
}

// action is one choice of an after-issuance screen.
type action struct {
	label   string
	run     func(ctx context.Context) Report // nil: a choice without side effects
	preview string                           // shown when chosen (a snippet)
	whole   string                           // the command that prints the preview whole
	next    bool                             // go on to the next step
	// done is what the action does for the summary's "Next" commands
	// ("install", "renewal", "verify"): done unless it failed.
	done string
}

type actionResult struct {
	step  Step
	label string
	r     Report
}

// actionStep is the shape of the Install, Renewal and Verify screens: an
// introduction, a list of actions (each run as a command), their results,
// and "continue".
type actionStep struct {
	step      Step
	preparing bool
	prepared  bool
	intro     string
	actions   []action
	cursor    int
	running   int // index of the running action, -1 when none
	gen       int
	cancelFn  context.CancelFunc
	results   []actionResult
	preview   string
	whole     string
	started   time.Time // when the running action started
}

type actionPreparedMsg struct {
	step    Step
	gen     int
	targets []InstallTarget
}

type actionDoneMsg struct {
	step  Step
	gen   int
	label string
	done  string
	r     Report
}

func (m actionPreparedMsg) stepOf() Step { return m.step }
func (m actionDoneMsg) stepOf() Step     { return m.step }

func (s *actionStep) isRunning() bool   { return s.running >= 0 && s.prepared }
func (s *actionStep) busy() bool        { return s.preparing || s.isRunning() }
func (s *actionStep) textFocused() bool { return false }

// back: Install is the first screen after the certificate (back would
// be the Issue log); the others go to the previous one, unless their
// action runs.
func (s *actionStep) back(m *Model) tea.Cmd {
	if s.step != StepInstall && !s.isRunning() {
		m.show(s.step - 1)
	}
	return nil
}

// afterStep is the Install, Renewal or Verify step; nil for another.
func (m *Model) afterStep(st Step) *actionStep {
	if st < 0 || st >= numSteps {
		return nil
	}
	s, _ := m.steps[st].(*actionStep)
	return s
}

func (s *actionStep) enter(m *Model, _ arrival) tea.Cmd {
	if s.prepared || s.preparing {
		return nil
	}
	s.running = -1
	iss := m.outcome.Issued
	if iss == nil {
		// The user stopped after the rehearsal: there is nothing to
		// install, renew or verify.
		s.prepared = true
		s.intro = "No certificate for production yet: nothing to do here."
		s.actions = []action{{label: "Continue", next: true}}
		return nil
	}
	if s.step == StepInstall && m.deps.Servers != nil {
		s.preparing = true
		ctx, look := m.ctx, s.look(m)
		return tea.Batch(m.stream(func(send func(tea.Msg)) {
			send(look(ctx))
		}), m.tick())
	}
	s.build(m, nil)
	return nil
}

// look is the Install step's work, ready to run (as a command by enter,
// in place in accessible mode): the web servers the certificate can be
// installed for; its result goes to update.
func (s *actionStep) look(m *Model) func(ctx context.Context) actionPreparedMsg {
	s.gen++
	gen, step, servers, iss := s.gen, s.step, m.deps.Servers, m.outcome.Issued
	return func(ctx context.Context) actionPreparedMsg {
		return actionPreparedMsg{step: step, gen: gen, targets: servers(ctx, iss)}
	}
}

// question is the screen's list of actions; "continue" goes on to the
// next step, the others stay (a run, a preview).
func (s *actionStep) question(m *Model) *question {
	q := &question{title: "What now?", def: fmt.Sprint(min(s.cursor, len(s.actions)-1))}
	for i, a := range s.actions {
		c := choice{label: a.label, value: fmt.Sprint(i)}
		if a.next {
			c.next = s.step + 1
		}
		q.choices = append(q.choices, c)
	}
	return q
}

// prepare (accessible mode) finds the web servers in place (Install),
// once, and says the screen's introduction.
func (s *actionStep) prepare(a *accessible) error {
	m := a.m
	if s.prepared {
		return nil
	}
	s.running = -1
	if s.step == StepInstall && m.deps.Servers != nil && m.outcome.Issued != nil {
		s.update(m, s.look(m)(m.ctx))
	} else {
		s.enter(m, arriveForward)
	}
	a.say("%s. %s", s.step.heading(), plain(s.intro))
	return nil
}

// chosen (accessible mode) runs an action in place and says its report,
// or shows a preview.
func (s *actionStep) chosen(a *accessible, c choice) (choice, error) {
	m := a.m
	var i int
	fmt.Sscan(c.value, &i)
	if c.leaves() || i < 0 || i >= len(s.actions) {
		return c, nil
	}
	ac := s.actions[i]
	if ac.preview != "" {
		a.say("%s", ac.preview)
	}
	if ac.run == nil {
		return c, nil
	}
	a.say("Running: %s", ac.label)
	r := ac.run(m.ctx)
	s.results = append(s.results, actionResult{s.step, ac.label, r})
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
	return c, a.check()
}

// build fills the screen's text and actions from what is wired and known.
func (s *actionStep) build(m *Model, targets []InstallTarget) {
	s.prepared, s.preparing = true, false
	iss := m.outcome.Issued
	name := iss.Name
	addr := iss.Renewal.Identifiers[0]
	cont := action{label: "Continue", next: true}
	switch s.step {
	case StepInstall:
		s.intro = "Web servers find the certificate at the files' fixed path (the current link), so after this one-time install a renewal needs only a reload."
		if m.deps.Servers == nil {
			s.intro += "\n\nInstall it with: " + m.theme.Command("sudo ipcert snippet nginx "+name+m.stateArg()+" --write") + " (or apache, haproxy, caddy): it tests the config, writes the file, tests again and reloads."
			s.actions = []action{cont}
			return
		}
		if len(targets) == 0 {
			s.intro += "\n\nNo web server found on this machine. Point your server at the files, or install nginx and run: " + m.theme.Command("sudo ipcert snippet nginx "+name+m.stateArg()+" --write")
		}
		if port := heldPort(iss.Renewal); port != 0 && len(targets) > 0 {
			s.intro += "\n\n" + m.theme.Warn.Render("Before you install:") + " " + iss.Name + heldNote(port) + " Switch it to the web root the snippet serves, once, after installing:"
			seen := map[string]bool{}
			for _, t := range targets {
				if t.CanInstall && !seen[t.WebRoot] {
					seen[t.WebRoot] = true
					s.intro += "\n" + m.theme.Verbatim(switchCommand(iss.Renewal, t.WebRoot, m.cfg.StateDir), 2)
				}
			}
		}
		for _, t := range targets {
			state := "stopped"
			if t.Running {
				state = "running"
			}
			if t.CanInstall {
				tgt := t
				install := m.deps.Install
				s.actions = append(s.actions, action{
					label: fmt.Sprintf("Install for %s (%s): writes %s, tests, reloads", t.Kind, state, filepath.Base(t.ConfigPath)),
					run: func(ctx context.Context) Report {
						return installed(install(ctx, iss, tgt), iss.Renewal, tgt.WebRoot, m.cfg.StateDir)
					},
					done: "install",
				})
			}
			lbl := fmt.Sprintf("Show the %s snippet", t.Kind)
			if t.Note != "" {
				lbl += " (" + t.Note + ")"
			}
			s.actions = append(s.actions, action{label: lbl, preview: t.Snippet, whole: "ipcert snippet " + t.Kind + " " + name + m.stateArg()})
		}
		cont.label = "Continue without installing"
		s.actions = append(s.actions, cont)
	case StepRenewal:
		s.intro = fmt.Sprintf("The certificate lasts %s: ipcert renew must run on its own. It renews in the CA's renewal window (about half-way), and only then.", humanHours(iss.Renewal.NotAfter.Sub(iss.Renewal.NotBefore)))
		if m.cfg.Demo {
			s.intro += " The demo installs no timer: its test CA lives only inside this program. A dry renewal against a fresh test CA shows what the timer's renew does."
		} else if m.deps.Timer != nil {
			kind := "a systemd timer, or a cron job without systemd"
			if mc := m.machine(); mc != nil {
				kind = "cron job: no systemd here"
				if mc.Systemd {
					kind = "systemd timer"
				}
				// Said before the user chooses: a job that will not run.
				if !mc.Systemd && !mc.Cron {
					kind = "cron job; but NO cron daemon runs here"
					s.intro += "\n\n" + m.theme.Warn.Render("No cron daemon runs on this machine") + " (and no systemd): a cron job would never run. Install and start cron first (Debian: " + m.theme.Command("sudo apt install cron") + "), or run " + m.theme.Command("ipcert renew"+m.stateArg()) + " hourly some other way."
				}
				if TempBinary(mc.Binary) {
					s.intro += "\n\n" + m.theme.Warn.Render("This ipcert runs from a temporary folder") + ": " + m.theme.Command(mc.Binary) + " may be gone after a reboot or a clean-up, and the job with it. Copy it to /usr/local/bin first, then install the job from there: " + m.theme.Command("sudo install -m 0755 "+shellWord(mc.Binary)+" /usr/local/bin/ipcert && sudo /usr/local/bin/ipcert timer install"+m.stateArg())
				}
			}
			s.actions = append(s.actions, action{label: "Install the renewal job (" + kind + ")", run: func(ctx context.Context) Report { return m.deps.Timer(ctx, iss) }, done: "renewal"})
		} else {
			s.intro += "\n\nInstall the renewal timer with: " + m.theme.Command("sudo ipcert timer install"+m.stateArg())
		}
		if m.deps.DryRenew != nil {
			s.actions = append(s.actions, action{label: "Dry renewal: rehearse a renewal now, keep nothing", run: func(ctx context.Context) Report { return m.deps.DryRenew(ctx, iss) }})
		} else {
			s.intro += "\nRehearse a renewal with: " + m.theme.Command("sudo ipcert renew --dry-run"+m.stateArg())
		}
		s.actions = append(s.actions, cont)
	case StepVerify:
		s.intro = "A browser's view: connect to the address on port 443, with no server name, and check that the certificate served is the new one, with its chain."
		label := "Check https://" + hostForURL(addr) + "/ now"
		if m.cfg.Demo {
			s.intro = "A browser's view: the demo serves the certificate on a loopback port for a moment, connects with no server name, trusting only the test CA's root, and checks that it is the new one, with its chain."
			label = "Serve it on " + addr + " and check it"
		}
		if m.deps.Verify != nil {
			s.actions = append(s.actions, action{label: label, run: func(ctx context.Context) Report { return m.deps.Verify(ctx, iss) }, done: "verify"})
		} else {
			s.intro += "\n\nCheck it with: " + m.theme.Command("ipcert verify "+addr)
		}
		s.actions = append(s.actions, cont)
	}
}

// heldPort is the port where the certificate's renewal answers with
// ipcert's own responder, which a web server installed for it will hold:
// 80 for http-01 without a web root, 443 for tls-alpn-01; 0 when renewal
// goes through a web root or another port.
func heldPort(r *store.Renewal) int {
	port := func(listen string, def int) int {
		if listen == "" {
			return def
		}
		ap, err := netip.ParseAddrPort(listen)
		if err != nil {
			_, p, _ := strings.Cut(listen, ":")
			n, _ := strconv.Atoi(p)
			return n
		}
		return int(ap.Port())
	}
	switch {
	case r == nil:
		return 0
	case r.Challenge == "http-01" && r.WebRoot == "" && port(r.HTTPListen, 80) == 80:
		return 80
	case r.Challenge == "tls-alpn-01" && port(r.TLSListen, 443) == 443:
		return 443
	}
	return 0
}

// heldNote says what an install does to a renewal on port.
func heldNote(port int) string {
	if port == 443 {
		return " renews with tls-alpn-01 on port 443, which the web server will hold: renewals would fail."
	}
	return " renews with ipcert's own responder on port 80, which the web server will hold: renewals would fail."
}

// switchCommand re-issues r through http-01 in webroot, with the same CA,
// name and addresses ("ipcert snippet" prints the same): from then on
// renewals answer through the web server.
func switchCommand(r *store.Renewal, webroot, stateDir string) string {
	cmd := "sudo ipcert issue"
	for _, a := range r.Identifiers {
		cmd += " --ip " + a
	}
	cmd += " --webroot " + shellWord(webroot) + " --ca " + shellWord(string(r.CA))
	if r.CARoot != "" {
		cmd += " --ca-root " + shellWord(r.CARoot)
	}
	return cmd + " --name " + shellWord(r.Name) + StateArg(stateDir)
}

// installed is an install's report, with the renewal's switch to the web
// root as its fix when the web server now holds the renewal's port.
func installed(r Report, ren *store.Renewal, webroot, stateDir string) Report {
	port := heldPort(ren)
	if port == 0 || r.Status == ui.Fail {
		return r
	}
	r.Status = ui.Warn
	r.Lines = append(r.Lines, ren.Name+heldNote(port))
	r.Fix = "switch renewal to the web root, once: " + switchCommand(ren, webroot, stateDir)
	return r
}

// shellWord quotes s for a POSIX shell when it needs it.
func shellWord(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_./:@%+=,-") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

func hostForURL(a string) string {
	if strings.Contains(a, ":") {
		return "[" + a + "]"
	}
	return a
}

func (s *actionStep) update(m *Model, msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case actionPreparedMsg:
		if msg.step == s.step && msg.gen == s.gen {
			s.build(m, msg.targets)
		}
		return nil
	case actionDoneMsg:
		if msg.step != s.step || msg.gen != s.gen {
			return nil
		}
		s.running = -1
		s.results = append(s.results, actionResult{s.step, msg.label, msg.r})
		m.noteDone(msg.done, msg.r)
		m.logf("%s: %s: %s", s.step, msg.label, msg.r.Summary)
		s.cursor = s.nextChoice(msg.r.Status)
		return nil
	case tea.KeyMsg:
		if !s.prepared || s.isRunning() {
			return nil
		}
		switch msg.String() {
		case "up", "k":
			if s.cursor > 0 {
				s.cursor--
			}
		case "down", "j", "tab":
			if s.cursor < len(s.actions)-1 {
				s.cursor++
			}
		case "enter":
			return s.choose(m, s.cursor)
		}
	}
	return nil
}

// nextChoice puts the cursor where the user most likely goes next: after
// a failure, on the same action (to retry after a fix); after an install,
// on "continue" (one web server is enough); else on the first action not
// run yet.
func (s *actionStep) nextChoice(st ui.Status) int {
	last := len(s.actions) - 1
	if st == ui.Fail {
		return s.cursor
	}
	if s.step == StepInstall {
		return last
	}
	ran := map[string]bool{}
	for _, r := range s.results {
		ran[r.label] = true
	}
	for i, a := range s.actions {
		if a.run != nil && !ran[a.label] {
			return i
		}
	}
	return last
}

func (s *actionStep) choose(m *Model, i int) tea.Cmd {
	a := s.actions[i]
	switch {
	case a.next:
		return m.follow(s.question(m).choices[i])
	case a.run != nil:
		s.gen++
		s.running = i
		s.started = m.deps.Now()
		s.preview = ""
		ctx, cancel := context.WithCancel(m.ctx)
		s.cancelFn = cancel
		gen, step, label, run, done := s.gen, s.step, a.label, a.run, a.done
		return tea.Batch(m.stream(func(send func(tea.Msg)) {
			defer cancel()
			send(actionDoneMsg{step: step, gen: gen, label: label, done: done, r: run(ctx)})
		}), m.tick())
	default:
		if s.preview == a.preview {
			s.preview, s.whole = "", ""
		} else {
			s.preview, s.whole = a.preview, a.whole
		}
	}
	return nil
}

func (s *actionStep) view(m *Model, w int) drawn {
	t := m.theme
	b := canvas{focus: -1}
	if !s.prepared {
		b.WriteString("  " + m.spinner() + " looking for web servers" + m.theme.Dots() + "\n")
		return b.drawn([]ui.KeyHelp{keysQuit})
	}
	b.WriteString(ui.Wrap(s.intro, w) + "\n\n")
	for _, r := range s.results {
		b.WriteString(ui.Hang("  "+t.Mark(r.r.Status, "")+" "+t.Strong.Render(untrusted.Text(r.r.Summary)), 4, w) + "\n")
		for _, l := range r.r.Lines {
			b.WriteString(t.Dim.Render(ui.Indent(untrusted.Text(l), 4, w)) + "\n") // what was seen, escaped (issue 22)
		}
		if r.r.Fix != "" && r.r.Status != ui.OK {
			b.WriteString(ui.Indent("fix: "+m.prose(untrusted.Text(r.r.Fix)), 4, w) + "\n")
		}
	}
	if len(s.results) > 0 {
		b.WriteString("\n")
	}
	for i, a := range s.actions {
		cur := "  "
		label := a.label
		if i == s.cursor {
			cur = t.Selected.Render(t.Cursor()) + " "
			label = t.Selected.Render(label)
			b.focusHere()
		}
		if i == s.running {
			cur = m.spinner() + " "
			// A check that takes a while says for how long.
			if d := m.deps.Now().Sub(s.started); d >= time.Second {
				label += t.Dim.Render(fmt.Sprintf(" (%d s)", int(d.Seconds())))
			}
		}
		b.WriteString(ui.Hang(cur+label, 4, w) + "\n")
	}
	if s.preview != "" {
		b.WriteString("\n" + t.Dim.Render(ui.Wrap("The file as it would be installed, verbatim (all of it: "+t.Command(s.whole)+"):", w)) + "\n")
		b.WriteString(t.Verbatim(s.preview, 2) + "\n")
	}
	keys := []ui.KeyHelp{{Key: "enter", What: "choose"}, {Key: "↑/↓", What: "move"}}
	if t.Caps.ASCII {
		keys[1].Key = "up/down"
	}
	if s.step != StepInstall {
		keys = append(keys, keysBack)
	}
	keys = append(keys, keysQuit)
	if s.isRunning() {
		keys = []ui.KeyHelp{{Key: "q", What: "cancel and quit"}}
	}
	return b.drawn(keys)
}

// noteDone keeps what an action did for the commands that come next: done
// unless it failed (a warning, such as renewal still on port 80, is done
// with its fix shown).
func (m *Model) noteDone(done string, r Report) {
	if done == "" || r.Status == ui.Fail {
		return
	}
	if m.outcome.Done == nil {
		m.outcome.Done = map[string]bool{}
	}
	m.outcome.Done[done] = true
}

// afterSummary is what the after-issuance steps did, for the summary.
func (m *Model) afterSummary() []actionResult {
	var out []actionResult
	for st := range numSteps {
		if s := m.afterStep(st); s != nil {
			out = append(out, s.results...)
		}
	}
	return out
}
