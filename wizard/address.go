package wizard

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/charmbracelet/bubbles/cursor"
	"github.com/charmbracelet/bubbles/textinput"
	tea "github.com/charmbracelet/bubbletea"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/preflight"
	"github.com/ipcert/ipcert/ui"
)

// candidate is one address the user may pick.
type candidate struct {
	Addr     netip.Addr
	Sources  []string // the sources that gave this address
	Others   []string // sources that said something else ("ifconfig.me: 198.51.100.4")
	Votes    int
	Answered int
	Asked    int
	Iface    string // the local interface holding it, "" when none (NAT)
	Typed    bool
	Refused  string // why the CA would refuse it
	// LENote says why Let's Encrypt would refuse it: still a choice, for
	// an own ACME CA (the plan's CA question then refuses Let's Encrypt).
	LENote  string
	Checked bool
}

// addressStep finds the public addresses and lets the user pick one or
// both, or type one (validated as it is typed).
type addressStep struct {
	detecting bool
	detected  bool
	cands     []candidate
	cursor    int
	typing    bool
	input     textinput.Model
	inputOK   string // what the typed text is, when valid
	inputErr  string // why it is refused
	inputWarn string // why Let's Encrypt would refuse it (an own CA may not)
	note      string // "pick at least one address"
	offline   bool
	// What detection found, for the certificates whose address this
	// machine no longer has: the interfaces' addresses and which
	// families the public-address sources answered for.
	ifaceAddrs         []netip.Addr
	answered4, answer6 bool
}

type addrMsg struct {
	public preflight.PublicAddrs
	ifaces []preflight.IfaceAddr
}

func (addrMsg) stepOf() Step { return StepAddress }

func (s *addressStep) busy() bool        { return s.detecting }
func (s *addressStep) textFocused() bool { return s.typing }

// addressChosen is where a picked address leads: the full screen's
// enter (the ticked candidates) and accessible mode's options follow it.
var addressChosen = choice{next: StepPreflight}

// choices are the address question: each address the CA would accept,
// all of them, typing one (checked as it is typed: validText), asking
// again. The full screen shows the same candidates as a list to tick
// (space), with t and r for typing and asking again.
func (s *addressStep) choices(m *Model) (cs []choice, valid []string) {
	pick := func(label, value string) choice {
		c := addressChosen
		c.label, c.value = label, value
		return c
	}
	for _, c := range s.cands {
		if c.Refused == "" {
			label := "Use " + c.Addr.String()
			if c.LENote != "" {
				label += " (with your own ACME CA only: Let's Encrypt refuses it)"
			}
			cs = append(cs, pick(label, c.Addr.String()))
			valid = append(valid, c.Addr.String())
		}
	}
	if len(valid) > 1 {
		cs = append(cs, pick("Use all: "+strings.Join(valid, " and "), "all"))
	}
	typed := pick("Type an address", "type")
	typed.key, typed.text = "t", &textQuestion{title: "Address:", valid: s.validText(m)}
	cs = append(cs, typed)
	if !m.cfg.Demo {
		cs = append(cs, choice{label: "Ask the address sources again", value: "again", key: "r"})
	}
	return append(cs, choiceQuit), valid
}

// question is the address question (choices).
func (s *addressStep) question(m *Model) *question {
	cs, _ := s.choices(m)
	return &question{title: "Which address should the certificate name?", choices: cs}
}

// validText is the typed address's check, the one the full screen's
// field runs on every key (validate).
func (s *addressStep) validText(m *Model) func(string) error {
	return func(v string) error {
		s.setupInput(m.cfg.Caps)
		s.input.SetValue(v)
		if _, why := s.validate(m); why != "" {
			return errors.New("refused: " + why)
		}
		return nil
	}
}

// detect is the address step's work, ready to run (as a command by
// enter, in place in accessible mode); its result goes to update.
func (s *addressStep) detect(m *Model) func(ctx context.Context) addrMsg {
	detect, local := m.deps.DetectPublic, m.deps.LocalAddrs
	return func(ctx context.Context) addrMsg {
		var msg addrMsg
		if local != nil {
			msg.ifaces, _ = local()
		}
		if detect != nil {
			msg.public = detect(ctx)
		}
		return msg
	}
}

// forget drops what detection found (typed addresses stay), so that the
// sources are asked again.
func (s *addressStep) forget() {
	var keep []candidate
	for _, c := range s.cands {
		if c.Typed {
			keep = append(keep, c)
		}
	}
	s.cands, s.cursor, s.detected, s.offline = keep, 0, false, false
}

// prepare (accessible mode) asks the sources when due and says what is
// known of each address.
func (s *addressStep) prepare(a *accessible) error {
	m := a.m
	a.say("%s.", StepAddress.heading())
	if !s.detected {
		a.say("Finding this machine's public address...")
		s.update(m, s.detect(m)(m.ctx))
		s.typing = false
	}
	for _, c := range s.cands {
		a.say("%s", plain(strings.Join(s.facts(m, c), "; ")))
	}
	if len(s.cands) == 0 {
		a.say("No public address found: no echo, DNS or STUN service answered (offline, or outbound traffic blocked). Type the address, ask again once the network is back, or quit and run \"ipcert preflight\" (what is missing) or \"ipcert demo\" (the whole setup with a local test CA, no internet). An internal machine can get its certificate from your own ACME CA: type its address, then choose \"My own ACME CA\" in the plan.")
	}
	return nil
}

// chosen (accessible mode) takes the picked or typed address.
func (s *addressStep) chosen(a *accessible, c choice) (choice, error) {
	m := a.m
	switch {
	case c.value == "again":
		s.forget()
		return c, nil
	case !c.leaves() || c.quits:
		return c, nil
	case c.value == "all":
		_, valid := s.choices(m)
		m.ans.Addrs = nil
		for _, v := range valid {
			m.ans.Addrs = append(m.ans.Addrs, netip.MustParseAddr(v))
		}
	case c.text != nil:
		v, _ := typedAddress(c.typed)
		addr, err := acmeflow.ParseIP(v)
		if err != nil {
			return choice{}, nil // asked again
		}
		m.ans.Addrs = []netip.Addr{addr}
		if note := m.leNote(addr); note != "" {
			a.say("Not for Let's Encrypt: %s.", note)
		}
	default:
		m.ans.Addrs = []netip.Addr{netip.MustParseAddr(c.value)}
	}
	a.say("Address: %s\n", addrList(m.ans.Addrs))
	return c, nil
}

func (s *addressStep) back(m *Model) tea.Cmd {
	m.show(StepWelcome)
	return nil
}

// setupInput makes the text field once; every path that types (the
// screen, the offline start, accessible mode) goes through it.
func (s *addressStep) setupInput(c ui.Caps) {
	if s.input.Prompt != "" {
		return
	}
	s.input = textinput.New()
	s.input.Prompt = "address: "
	// Words, not an address: a documentation address would be refused
	// when typed as shown.
	s.input.Placeholder = placeholder(c, "this machine's public IPv4 or IPv6 address")
	s.input.CharLimit = 64
	s.input.Width = 44
	s.input.Cursor.SetMode(cursor.CursorStatic)
}

func (s *addressStep) enter(m *Model, _ arrival) tea.Cmd {
	s.setupInput(m.cfg.Caps)
	// Refresh refusals: the CA choice may have changed since.
	for i := range s.cands {
		s.cands[i].Refused = m.refusal(s.cands[i].Addr)
		s.cands[i].LENote = m.leNote(s.cands[i].Addr)
		if s.cands[i].Refused != "" {
			s.cands[i].Checked = false
		}
	}
	if s.detected || s.detecting {
		return nil
	}
	s.detecting = true
	ctx, detect := m.ctx, s.detect(m)
	return tea.Batch(m.stream(func(send func(tea.Msg)) {
		send(detect(ctx))
	}), m.tick())
}

// demoAddr is the one address the demo can certify: its test CA
// validates by connecting to the address, and the demo's responder
// listens on 127.0.0.1 (cachoice's local listen address).
var demoAddr = netip.MustParseAddr("127.0.0.1")

// refusal says why the CA of this run would refuse a, "" when it would
// not. The fixes name what the wizard offers (ipcert demo), not the
// flags of ipcert issue.
func (m *Model) refusal(a netip.Addr) string {
	if m.cfg.Demo && a.IsValid() && a != demoAddr {
		why := "the demo's test CA validates by connecting to the address, and the demo answers only on 127.0.0.1"
		if !a.IsLoopback() && !a.IsPrivate() {
			why = "the demo's test CA would connect to " + a.String() + " (another machine) to validate it, and the demo answers only on 127.0.0.1"
		}
		return why + "; use 127.0.0.1 here, and run \"sudo ipcert\" on the server for its public address"
	}
	// Let's Encrypt's refusals (private, loopback, CGNAT, documentation
	// ranges: docs/letsencrypt.md) are not final here: the plan still offers an own
	// ACME CA, which may certify exactly those (leNote says so, and the
	// plan's CA question refuses Let's Encrypt for them). What no CA can
	// validate is refused.
	if err := acmeflow.CheckAddr(a, false); err != nil {
		var ae *acmeflow.AddrError
		if asAddrError(err, &ae) {
			return ae.Reason + "; " + wizardFix(ae.Fix)
		}
		return err.Error()
	}
	return ""
}

// wizardFix is an address fix in the wizard's terms: it names what the
// wizard offers (ipcert demo), not the flags of ipcert issue.
func wizardFix(fix string) string {
	// The own CA is offered on the Plan screen (leNote says so).
	fix = strings.TrimSuffix(fix, "; "+acmeflow.OwnCAHint)
	if strings.Contains(fix, "--ca local") {
		return "to try ipcert without a public address run \"ipcert demo\"; for a real certificate use the public address"
	}
	return fix
}

// leNote says why Let's Encrypt would refuse a while the plan could
// still choose it: "" when it would not, or when the CA is not Let's
// Encrypt's (the demo's, or an own CA).
func (m *Model) leNote(a netip.Addr) string {
	if !m.publicCA() || !a.IsValid() {
		return ""
	}
	err := acmeflow.CheckAddr(a, true)
	var ae *acmeflow.AddrError
	if err == nil || !asAddrError(err, &ae) {
		return ""
	}
	return ae.Reason + "; " + wizardFix(ae.Fix) + ". Only your own ACME CA can certify it (the Plan's \"My own ACME CA\")"
}

func asAddrError(err error, out **acmeflow.AddrError) bool { return errors.As(err, out) }

func (s *addressStep) setDetected(m *Model, msg addrMsg) {
	s.detecting, s.detected = false, true
	s.offline = msg.public.V4.Answered == 0 && msg.public.V6.Answered == 0
	s.answered4, s.answer6 = msg.public.V4.Answered > 0, msg.public.V6.Answered > 0
	s.ifaceAddrs = s.ifaceAddrs[:0]
	for _, ia := range msg.ifaces {
		s.ifaceAddrs = append(s.ifaceAddrs, ia.Addr)
	}
	for _, fam := range []preflight.FamilyResult{msg.public.V4, msg.public.V6} {
		if !fam.Addr.IsValid() {
			continue
		}
		c := candidate{Addr: fam.Addr, Votes: fam.Votes, Answered: fam.Answered, Asked: fam.Asked}
		for _, src := range fam.Sources {
			switch {
			case src.Addr == fam.Addr:
				c.Sources = append(c.Sources, src.Source)
			case src.Addr.IsValid():
				c.Others = append(c.Others, src.Source+": "+src.Addr.String())
			}
		}
		for _, ia := range msg.ifaces {
			if ia.Addr == fam.Addr {
				c.Iface = ia.Iface
			}
		}
		c.Refused, c.LENote = m.refusal(c.Addr), m.leNote(c.Addr)
		s.cands = append(s.cands, c)
	}
	// Preset addresses (flags) that detection did not find come first.
	for _, a := range m.ans.Addrs {
		if !slices.ContainsFunc(s.cands, func(c candidate) bool { return c.Addr == a }) {
			s.cands = append(s.cands, candidate{Addr: a, Typed: true, Refused: m.refusal(a), LENote: m.leNote(a)})
		}
	}
	for i := range s.cands {
		c := &s.cands[i]
		if c.Refused != "" {
			continue
		}
		// One Let's Encrypt refuses is picked only on purpose.
		c.Checked = len(m.ans.Addrs) == 0 && c.LENote == "" || slices.Contains(m.ans.Addrs, c.Addr)
	}
	if len(s.cands) == 0 && !s.offline {
		s.cursor = 0 // the "type one" row
		s.startTyping(m)
	}
}

// redetect asks the address sources again (offline, or after a change);
// typed addresses stay.
func (s *addressStep) redetect(m *Model) tea.Cmd {
	if s.detecting {
		return nil
	}
	s.forget()
	return s.enter(m, arriveForward)
}

func (s *addressStep) startTyping(m *Model) tea.Cmd {
	s.setupInput(m.cfg.Caps)
	s.typing = true
	s.cursor = len(s.cands)
	return s.input.Focus()
}

func (s *addressStep) update(m *Model, msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case addrMsg:
		s.setDetected(m, msg)
		return nil
	case tea.KeyMsg:
		if s.typing {
			return s.updateTyping(m, msg)
		}
		s.note = ""
		switch msg.String() {
		case "up", "k":
			if s.cursor > 0 {
				s.cursor--
			}
		case "down", "j", "tab":
			if s.cursor < len(s.cands) {
				s.cursor++
			}
		case " ", "x":
			if s.cursor < len(s.cands) {
				c := &s.cands[s.cursor]
				if c.Refused == "" {
					c.Checked = !c.Checked
				}
			} else {
				return s.startTyping(m)
			}
		case "enter":
			if s.detecting {
				return nil
			}
			if s.cursor == len(s.cands) {
				return s.startTyping(m)
			}
			var picked []netip.Addr
			for _, c := range s.cands {
				if c.Checked {
					picked = append(picked, c.Addr)
				}
			}
			if len(picked) == 0 {
				s.note = "Pick at least one address (space), or type one (t)."
				return nil
			}
			m.ans.Addrs = picked
			return m.follow(addressChosen)
		default:
			if c, ok := byKey(s.question(m).choices, msg.String()); ok {
				switch c.value {
				case "type":
					return s.startTyping(m)
				case "again":
					return s.redetect(m)
				}
			}
		}
	}
	return nil
}

func (s *addressStep) updateTyping(m *Model, msg tea.KeyMsg) tea.Cmd {
	switch msg.String() {
	case "esc":
		s.typing = false
		s.input.Blur()
		s.input.SetValue("")
		s.inputErr, s.inputOK = "", ""
		if len(s.cands) > 0 {
			s.cursor = len(s.cands) - 1
		}
		return nil
	case "up", "shift+tab":
		if len(s.cands) > 0 {
			s.typing = false
			s.input.Blur()
			s.cursor = len(s.cands) - 1
		}
		return nil
	case "enter":
		a, err := s.validate(m)
		if err != "" {
			return nil
		}
		if i := slices.IndexFunc(s.cands, func(c candidate) bool { return c.Addr == a }); i >= 0 {
			s.cands[i].Checked = true
		} else {
			s.cands = append(s.cands, candidate{Addr: a, Typed: true, Checked: true, LENote: m.leNote(a)})
		}
		s.input.SetValue("")
		s.inputOK, s.inputErr, s.inputWarn = "", "", ""
		s.typing = false
		s.input.Blur()
		// On the address just added, so that enter goes on.
		s.cursor = slices.IndexFunc(s.cands, func(c candidate) bool { return c.Addr == a })
		return nil
	}
	var cmd tea.Cmd
	s.input, cmd = s.input.Update(msg)
	s.validate(m)
	return cmd
}

// validate checks the typed text as the user types: the parser's rules
// (canonical form, no zone, no port) and the CA's address policy.
func (s *addressStep) validate(m *Model) (netip.Addr, string) {
	s.inputOK, s.inputErr, s.inputWarn = "", "", ""
	v, from := typedAddress(s.input.Value())
	if v == "" {
		return netip.Addr{}, "empty"
	}
	a, err := acmeflow.ParseIP(v)
	if err != nil {
		var ae *acmeflow.AddrError
		if asAddrError(err, &ae) {
			s.inputErr = ae.Reason
			if ae.Fix != "" {
				s.inputErr += "; " + ae.Fix
			}
		} else {
			s.inputErr = err.Error()
		}
		return netip.Addr{}, s.inputErr
	}
	if r := m.refusal(a); r != "" {
		s.inputErr = r
		return netip.Addr{}, r
	}
	class, _ := acmeflow.Classify(a)
	fam := "IPv4"
	if a.Is6() {
		fam = "IPv6"
	}
	s.inputOK = fmt.Sprintf("%s is a %s %s address%s", a, class, fam, from)
	s.inputWarn = m.leNote(a)
	return a, ""
}

func plural(n int, one, many string) string {
	if n == 1 {
		return "1 " + one
	}
	return fmt.Sprintf("%d %s", n, many)
}

// answeredNote says how many sources did not answer at all.
func answeredNote(c candidate) string {
	if n := c.Asked - c.Answered; n > 0 {
		return fmt.Sprintf(" (%s no answer)", plural(n, "source gave", "sources gave"))
	}
	return ""
}

// typedAddress reads what people paste: a URL (http://ADDR/, https://[ADDR]/)
// is its address; anything else is left to the parser, which explains.
func typedAddress(v string) (string, string) {
	v = strings.TrimSpace(v)
	for _, p := range []string{"http://", "https://"} {
		if rest, ok := strings.CutPrefix(strings.ToLower(v), p); ok {
			host := strings.TrimRight(rest, "/")
			if h, ok := strings.CutPrefix(host, "["); ok {
				host = strings.TrimSuffix(h, "]")
			}
			if _, err := netip.ParseAddr(host); err == nil {
				return host, " (read from the URL " + v + ")"
			}
		}
	}
	return v, ""
}

// facts say what is known about a candidate: the address, who said so,
// which interface holds it, why it is refused.
func (s *addressStep) facts(m *Model, c candidate) []string {
	t := m.theme
	fam := "IPv4"
	if c.Addr.Is6() {
		fam = "IPv6"
	}
	facts := []string{c.Addr.String() + " (" + fam + ")"}
	switch {
	case c.Typed:
		facts = append(facts, "typed by you")
	case len(c.Sources) > 0:
		facts = append(facts, fmt.Sprintf("%s agreed, of %s asked: %s", plural(c.Votes, "source", "sources"), plural(c.Asked, "source", "sources"), strings.Join(c.Sources, ", "))+answeredNote(c))
	}
	if len(c.Others) > 0 {
		facts = append(facts, t.Warn.Render("disagreeing: "+strings.Join(c.Others, ", ")))
	}
	if c.Iface != "" {
		facts = append(facts, "on interface "+c.Iface)
	} else if !c.Typed {
		facts = append(facts, "on no local interface (NAT or cloud 1:1 NAT: the router must forward the ports)")
	}
	if c.Refused != "" {
		facts = append(facts, t.Fail.Render("refused: "+c.Refused))
	}
	if c.LENote != "" {
		facts = append(facts, t.Warn.Render("not for Let's Encrypt: "+c.LENote))
	}
	return facts
}

func (s *addressStep) view(m *Model, w int) drawn {
	t := m.theme
	b := canvas{focus: -1}
	if m.cfg.Demo {
		b.WriteString(ui.Wrap("The demo's CA validates over loopback, so it offers 127.0.0.1. For a real certificate this screen shows the public IPv4 and IPv6 addresses the internet sees.", w) + "\n\n")
	} else {
		who := "Let's Encrypt connects"
		if m.ownCA() {
			who = "Your ACME CA connects"
		}
		b.WriteString(ui.Wrap("The address the certificate will name. "+who+" to it on port 80 or 443 to check that it is yours.", w) + "\n\n")
	}
	if s.detecting {
		b.WriteString("  " + m.spinner() + " asking echo, DNS and STUN services for this machine's address" + m.theme.Dots() + "\n")
	}
	for i, c := range s.cands {
		cur := "  "
		if i == s.cursor && !s.typing {
			cur = t.Selected.Render(t.Cursor()) + " "
			b.focusHere()
		}
		box := "[ ]"
		if c.Checked {
			box = "[x]"
		}
		if c.Refused != "" {
			box = t.Fail.Render("[-]")
		}
		fam := "IPv4"
		if c.Addr.Is6() {
			fam = "IPv6"
		}
		line := fmt.Sprintf("%s%s %s %s", cur, box, t.Strong.Render(c.Addr.String()), t.Dim.Render(fam))
		b.WriteString(line + "\n")
		facts := s.facts(m, c)[1:]
		for _, f := range facts {
			b.WriteString(t.Dim.Render(ui.Indent(f, 8, w)) + "\n")
		}
	}
	if s.detected && !slices.ContainsFunc(s.cands, func(c candidate) bool { return !c.Typed }) {
		msg := "No public address found: no source answered with one."
		if s.offline {
			msg = "No public address found: no echo, DNS or STUN service answered (offline, or outbound traffic blocked)."
		}
		b.WriteString(ui.Wrap(t.Warn.Render(msg), w) + "\n")
		if m.ownCA() {
			// An internal machine: the internet does not know it, and the
			// own CA validates over its own network.
			b.WriteString(ui.Wrap("Type this machine's address on your CA's network (t): your own ACME CA validates it there, no internet needed.", w) + "\n\n")
		} else {
			b.WriteString(ui.Wrap("Type the address (t), or ask again (r) once the network is back. "+
				"Let's Encrypt must reach this machine from the internet to validate, so an offline machine cannot get a certificate from it ("+
				"an internal one can from your own ACME CA: type its address, then choose \"My own ACME CA\" on the Plan screen); "+
				t.Command("ipcert preflight")+" says what is missing, and "+t.Command("ipcert demo")+" walks the whole setup with a local test CA, no internet needed.", w) + "\n\n")
		}
	}
	cur := "  "
	if s.cursor == len(s.cands) && !s.typing {
		cur = t.Selected.Render(t.Cursor()) + " "
		b.focusHere()
	}
	if s.typing {
		b.WriteString("\n")
		b.focusHere()
		b.WriteString("  " + s.input.View() + "\n")
		switch {
		case s.inputErr != "":
			b.WriteString(t.Fail.Render(ui.Indent(t.Mark(ui.Fail, "")+" "+s.inputErr, 4, w)) + "\n")
		case s.inputOK != "" && s.inputWarn != "":
			// One mark for one verdict: a ✓ above a "not for Let's
			// Encrypt" would say two things (issue 24 item 11).
			b.WriteString(t.Warn.Render(ui.Indent(t.Mark(ui.Warn, "")+" "+s.inputOK+", not for Let's Encrypt: it "+s.inputWarn, 4, w)) + "\n")
		case s.inputOK != "":
			b.WriteString(ui.Indent(t.Mark(ui.OK, "")+" "+s.inputOK, 4, w) + "\n")
		}
		if s.inputErr != "" || s.inputOK != "" {
			// The verdict under the field is kept in view with it: its
			// last line is the row to show (the field is above it).
			b.focus = strings.Count(b.String(), "\n") - 1
		}
	} else if !s.detecting {
		b.WriteString(cur + t.Dim.Render("type another address (t)") + "\n")
	}
	for _, g := range s.gone(m) {
		b.WriteString("\n" + ui.Wrap(t.Warn.Render(fmt.Sprintf("ipcert renews %s for %s, which this machine no longer has (the address changed?). If it is gone for good, ", g.Name, acmeflow.JoinAddrs(g.Addrs)))+
			t.Command("sudo ipcert remove "+g.Name+" --revoke"+m.stateArg())+" stops renewing it, revokes it and takes back its configs.", w) + "\n")
	}
	if s.note != "" {
		b.WriteString("\n" + t.Warn.Render(s.note) + "\n")
	}
	keys := []ui.KeyHelp{{Key: "space", What: "pick"}, {Key: "enter", What: "continue"}, {Key: "t", What: "type one"}, keysBack, keysQuit}
	if !m.cfg.Demo {
		keys = append(keys, ui.KeyHelp{Key: "r", What: "ask again"})
	}
	if len(s.cands) == 0 {
		keys = []ui.KeyHelp{{Key: "t", What: "type the address"}, {Key: "r", What: "ask again"}, keysBack, keysQuit}
	}
	if s.typing {
		keys = []ui.KeyHelp{{Key: "enter", What: "add"}, {Key: "esc", What: "cancel typing"}, {Key: "ctrl+c", What: "quit"}}
	}
	return b.drawn(keys)
}

// gone are the certificates the state directory renews none of whose
// addresses this machine has now: not on an interface, not what the
// public-address sources answered (only for a family they answered for,
// so an unanswered IPv6 never makes an IPv6 certificate look gone).
func (s *addressStep) gone(m *Model) []ManagedCert {
	mc := m.machine()
	if mc == nil || m.cfg.Demo || !s.detected || s.offline {
		return nil
	}
	have := map[netip.Addr]bool{}
	for _, a := range s.ifaceAddrs {
		have[a] = true
	}
	for _, c := range s.cands {
		if !c.Typed {
			have[c.Addr] = true
		}
	}
	var out []ManagedCert
	for _, cert := range mc.Managed {
		judged, held := false, false
		for _, a := range cert.Addrs {
			if have[a] {
				held = true
			}
			if a.Is4() && s.answered4 || a.Is6() && s.answer6 {
				judged = true
			}
		}
		if judged && !held {
			out = append(out, cert)
		}
	}
	return out
}
