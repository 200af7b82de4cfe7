package wizard

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/preflight"
	"github.com/ipcert/ipcert/ui"
)

// preflightStep runs the checks and shows them filling in live.
type preflightStep struct {
	running  bool
	gen      int
	cancelFn context.CancelFunc
	items    []ui.Item
	report   *preflight.Report
	cursor   int
	askMap   bool // "may I ask the router to map the ports?"
	mapPorts bool
	ranFor   string // the addresses of the last run
	// mapRun: the last run asked the router for the mappings; runs counts
	// the runs, so a re-run shows that it ran.
	mapRun bool
	runs   int
}

type preflightEventMsg struct {
	gen int
	ev  preflight.Event
}

type preflightDoneMsg struct {
	gen    int
	report preflight.Report
}

func (preflightEventMsg) stepOf() Step { return StepPreflight }
func (preflightDoneMsg) stepOf() Step  { return StepPreflight }

func (s *preflightStep) busy() bool        { return s.running }
func (s *preflightStep) textFocused() bool { return false }

// choices are what the user can do once the checks have run: keys on
// the full screen, options in accessible mode; where each leads.
func (s *preflightStep) choices(m *Model) []choice {
	cs := []choice{
		{label: "Go on to the plan", value: "go", key: "enter", next: StepPlan},
		{label: "Run the checks again", value: "again", key: "r"},
	}
	if !m.cfg.Demo {
		cs = append(cs, choice{label: "Ask the router (UPnP/NAT-PMP) to map ports 80 and 443, and check again", value: "map", key: "m"})
	}
	return append(cs, choice{label: "Back to the address", value: "back", key: "esc", next: StepAddress, why: arriveBack}, choiceQuit)
}

// question is the preflight's question once its checks have run.
func (s *preflightStep) question(m *Model) *question {
	return &question{title: "What next?", choices: s.choices(m)}
}

// prepare (accessible mode) runs the checks in place, saying each as it
// finishes, then the problems and the verdict.
func (s *preflightStep) prepare(a *accessible) error {
	m := a.m
	a.say("%s: checking what would make validation of %s fail.", StepPreflight.heading(), addrList(m.ans.Addrs))
	// The report lands where the full-screen wizard keeps it: the
	// failure diagnosis reads its NAT and port findings from there.
	s.update(m, s.begin(m)(m.ctx, func(ev preflight.Event) {
		if ev.Kind == preflight.EventFinish && ev.Result != nil {
			r := ev.Result
			a.say("  %s: %s. %s", r.Title, statusOf(r.Status).Word(), r.Summary)
		}
	}))
	var rep preflight.Report
	if s.report != nil {
		rep = *s.report
	}
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
	return nil
}

// chosen (accessible mode): "map" is the consent for the next run (the
// option says what it asks); back to the address asks the sources again.
func (s *preflightStep) chosen(a *accessible, c choice) (choice, error) {
	switch c.value {
	case "map":
		s.mapPorts = true
	case "back":
		a.m.address.forget()
	}
	return c, nil
}

func (s *preflightStep) back(m *Model) tea.Cmd {
	s.stop()
	m.show(StepAddress)
	return nil
}

func statusOf(s preflight.Status) ui.Status {
	switch s {
	case preflight.StatusOK:
		return ui.OK
	case preflight.StatusWarn:
		return ui.Warn
	case preflight.StatusFail:
		return ui.Fail
	}
	return ui.Skipped
}

// itemOf is a check's row; the commands in its fix are made complete for
// this run and kept whole (prose). The summary and the evidence are what
// was seen (process names, answers of the address sources): shown as they
// are, never made into a suggested command.
func (m *Model) itemOf(r preflight.Result) ui.Item {
	it := ui.Item{ID: r.ID, Title: r.Title, Status: statusOf(r.Status), Summary: r.Summary, Detail: r.Evidence, Fix: m.prose(r.Fix)}
	if r.Advisory && it.Status == ui.Fail {
		it.Status = ui.Warn
	}
	return it
}

func (s *preflightStep) enter(m *Model, why arrival) tea.Cmd {
	if why == arriveRecheck {
		s.report = nil // something changed since: check again
	}
	key := fmt.Sprint(m.ans.Addrs)
	if s.report != nil && s.ranFor == key {
		return nil
	}
	return s.run(m)
}

// stop cancels a running check run; its late results are ignored (a new
// generation) and its partial report is not kept as if it were complete.
func (s *preflightStep) stop() {
	if s.cancelFn != nil {
		s.cancelFn()
	}
	if s.running {
		s.gen++
		s.report = nil
	}
	s.running = false
}

func (s *preflightStep) run(m *Model) tea.Cmd {
	s.stop()
	if m.deps.Preflight == nil {
		return nil
	}
	run := s.begin(m)
	gen := s.gen
	ctx, cancel := context.WithCancel(m.ctx)
	s.cancelFn = cancel
	return tea.Batch(m.stream(func(send func(tea.Msg)) {
		defer cancel()
		send(run(ctx, func(ev preflight.Event) { send(preflightEventMsg{gen, ev}) }))
	}), m.tick())
}

// begin starts a new run of the checks on the screen's state and returns
// it, ready to go: the one runner of the full screen (run, as a command)
// and accessible mode (in place); its result goes to update.
func (s *preflightStep) begin(m *Model) func(ctx context.Context, progress func(preflight.Event)) preflightDoneMsg {
	s.gen++
	gen := s.gen
	s.running = true
	s.report = nil
	// A re-run keeps the rows where they were (waiting until their check
	// reports again): rows that jump about cannot be read.
	for i := range s.items {
		s.items[i] = ui.Item{ID: s.items[i].ID, Title: s.items[i].Title, Status: ui.Pending}
	}
	s.cursor = 0
	s.ranFor = fmt.Sprint(m.ans.Addrs)
	req := m.preflightRequest(s.mapPorts)
	s.mapPorts = false // consent is for one run
	s.mapRun = req.MapPorts
	s.runs++
	runPF := m.deps.Preflight
	m.logf("preflight run %d for %v (map ports: %v)", gen, req.Addrs, req.MapPorts)
	return func(ctx context.Context, progress func(preflight.Event)) preflightDoneMsg {
		if runPF == nil {
			return preflightDoneMsg{gen: gen}
		}
		return preflightDoneMsg{gen, runPF(ctx, req, progress)}
	}
}

func (s *preflightStep) update(m *Model, msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case preflightEventMsg:
		if msg.gen != s.gen {
			return nil
		}
		s.apply(m, msg.ev)
		return nil
	case preflightDoneMsg:
		if msg.gen != s.gen {
			return nil
		}
		s.running = false
		rep := msg.report
		s.report = &rep
		// The rows stay in the order they appeared; the report fills
		// them in (and adds any check that sent no event).
		byID := map[string]ui.Item{}
		for _, r := range rep.Results {
			byID[r.ID] = m.itemOf(r)
		}
		var items []ui.Item
		for _, it := range s.items {
			if r, ok := byID[it.ID]; ok {
				items = append(items, r)
				delete(byID, it.ID)
			}
		}
		for _, r := range rep.Results {
			if _, ok := byID[r.ID]; ok {
				items = append(items, byID[r.ID])
			}
		}
		s.items = items
		// Put the cursor on the first problem: that is what to read.
		s.cursor = 0
		for i, it := range s.items {
			if it.Status == ui.Fail {
				s.cursor = i
				break
			}
		}
		if s.cursor == 0 {
			for i, it := range s.items {
				if it.Status == ui.Warn {
					s.cursor = i
					break
				}
			}
		}
		m.logf("preflight run %d: verdict %s", msg.gen, rep.Verdict)
		return nil
	case tea.KeyMsg:
		if s.askMap {
			switch msg.String() {
			case "y", "Y":
				s.askMap = false
				s.mapPorts = true
				return s.run(m)
			case "n", "N", "enter":
				s.askMap = false
			}
			return nil
		}
		switch msg.String() {
		case "up", "k":
			if s.cursor > 0 {
				s.cursor--
			}
			return nil
		case "down", "j":
			if s.cursor < len(s.items)-1 {
				s.cursor++
			}
			return nil
		}
		c, _ := byKey(s.question(m).choices, msg.String())
		switch {
		case c.value == "again":
			return s.run(m)
		case c.value == "map":
			if !s.running {
				s.askMap = true
			}
		case c.leaves() && !s.running:
			return m.follow(c)
		}
	}
	return nil
}

// checkOrder is the rows' order: the report's (preflight's checks), the
// same in every run, whichever check starts first (issue 24 item 12).
var checkOrder = []string{preflight.IDPublic4, preflight.IDPublic6, preflight.IDInterfaces, preflight.IDNAT, preflight.IDPorts,
	preflight.IDPrivilege, preflight.IDWebServers, preflight.IDFirewall, preflight.IDSelfFetch, preflight.IDAddress}

// rank is id's place in checkOrder; an unknown check goes last.
func rank(id string) int {
	if i := slices.Index(checkOrder, id); i >= 0 {
		return i
	}
	return len(checkOrder)
}

func (s *preflightStep) apply(m *Model, ev preflight.Event) {
	i := slices.IndexFunc(s.items, func(it ui.Item) bool { return it.ID == ev.ID })
	if i < 0 {
		// In its place, not where it happened to start.
		i = len(s.items)
		for j, it := range s.items {
			if rank(it.ID) > rank(ev.ID) {
				i = j
				break
			}
		}
		s.items = slices.Insert(s.items, i, ui.Item{ID: ev.ID, Title: ev.Title, Status: ui.Running})
	}
	if ev.Kind == preflight.EventFinish && ev.Result != nil {
		s.items[i] = m.itemOf(*ev.Result)
	}
}

func (s *preflightStep) view(m *Model, w int) drawn {
	t := m.theme
	b := canvas{focus: -1}
	b.WriteString(ui.Wrap(fmt.Sprintf("What would make validation of %s fail, checked before asking the CA.", addrList(m.ans.Addrs)), w) + "\n\n")
	if s.askMap {
		// At the top, in view: the question is what the screen is about now.
		b.focusHere()
		b.WriteString(ui.Wrap(t.Strong.Render("Ask your router (UPnP IGD / NAT-PMP) to forward ports 80 and 443 to this machine")+" for this check? The mappings are removed again at the end. y / n", w) + "\n\n")
	}
	if s.runs > 1 || s.mapRun {
		what := fmt.Sprintf("Run %d", s.runs)
		if s.mapRun {
			what += ", with the router asked to map the ports"
		}
		if s.running {
			what += m.theme.Dots()
		} else if s.report != nil && !s.report.Started.IsZero() {
			what += " (started " + s.report.Started.Local().Format("15:04:05") + ")"
		}
		b.WriteString(ui.Wrap(t.Dim.Render(what), w) + "\n")
		if s.mapRun && s.report != nil {
			b.WriteString(ui.Indent(mappingText(s.report.NAT), 2, w) + "\n")
		}
		b.WriteString("\n")
	}
	focus := -1
	cl := ui.Checklist{Items: s.items, Selected: -1, FocusLine: &focus}
	if !s.running {
		cl.Selected = s.cursor
	}
	before := strings.Count(b.String(), "\n")
	b.WriteString(cl.View(t, w, m.spinner()))
	if focus >= 0 {
		b.focus = before + focus
	}
	if s.running && len(s.items) == 0 {
		b.WriteString("  " + m.spinner() + " starting the checks" + m.theme.Dots() + "\n")
	}
	keys := []ui.KeyHelp{{Key: "enter", What: "go on"}, {Key: "↑/↓", What: "details"}, {Key: "r", What: "re-run"}}
	if t.Caps.ASCII {
		keys[1].Key = "up/down"
	}
	if !m.cfg.Demo {
		keys = append(keys, ui.KeyHelp{Key: "m", What: "map ports"})
	}
	keys = append(keys, keysBack, keysQuit)
	if s.report != nil {
		b.WriteString("\n")
		// What settles it: staging's validators from the internet; in the
		// demo, the test CA's validation over loopback.
		real := m.realTest()
		switch s.report.Verdict {
		case preflight.StatusFail:
			b.WriteString(ui.Wrap(t.Fail.Render("Validation will probably fail")+" until the failures above are fixed. You may still go on: "+real+".", w))
		case preflight.StatusWarn:
			b.WriteString(ui.Wrap(t.Warn.Render("No blocker found")+", but read the warnings: "+real+".", w))
		default:
			b.WriteString(ui.Wrap(t.OK.Render("Everything checked looks right."), w))
		}
		b.WriteString("\n")
	}
	if s.askMap {
		keys = []ui.KeyHelp{{Key: "y", What: "map the ports"}, {Key: "n", What: "no"}, keysQuit}
	}
	return b.drawn(keys)
}

// mappingText says what the router did with the mapping requests of a
// run with --map-ports: each port granted (and removed again) or refused,
// or that no router answered.
func mappingText(n preflight.NATInfo) string {
	if len(n.Mappings) == 0 {
		return "No mapping was made: no router answered UPnP IGD or NAT-PMP."
	}
	var parts []string
	for _, mp := range n.Mappings {
		switch {
		case mp.Granted == 0:
			why := "refused"
			if mp.Error != "" {
				why += " (" + mp.Error + ")"
			}
			parts = append(parts, fmt.Sprintf("port %d %s by %s", mp.Internal, why, mp.Proto))
		default:
			p := fmt.Sprintf("port %d mapped by %s (external %d)", mp.Internal, mp.Proto, mp.Granted)
			if mp.Removed {
				p += ", removed again"
			} else {
				p += ", NOT removed: remove it in the router"
			}
			parts = append(parts, p)
		}
	}
	return "The router: " + strings.Join(parts, "; ") + "."
}

func addrList(as []netip.Addr) string {
	if len(as) == 0 {
		return "(no address)"
	}
	return strings.Join(acmeflow.AddrStrings(as), " and ")
}

// preflightRequest is the preflight run for the answers so far (the
// full screen and accessible mode ask the same).
func (m *Model) preflightRequest(mapPorts bool) PreflightRequest {
	req := PreflightRequest{Addrs: slices.Clone(m.ans.Addrs), MapPorts: mapPorts, OwnCA: m.ownCA()}
	internal := len(m.ans.Addrs) > 0
	for _, a := range m.ans.Addrs {
		if m.leNote(a) != "" {
			req.OwnCA = true
		}
		class, _ := acmeflow.Classify(a)
		internal = internal && class != acmeflow.ClassPublic
	}
	req.Internal = internal && req.OwnCA && !m.cfg.Demo
	return req
}

// realTest says what settles whether validation works: staging's
// validators from the internet; in the demo, the test CA's validation
// over loopback; for an own ACME CA, that CA's validation.
func (m *Model) realTest() string {
	switch {
	case m.cfg.Demo:
		return "the test CA's own validation is the real test"
	case m.preflightRequest(false).OwnCA:
		return "your CA's own validation is the real test"
	}
	return "a staging rehearsal is the real test and costs nothing"
}
