package wizard

import (
	"fmt"
	"net/mail"
	"strings"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/huh"
	"github.com/charmbracelet/lipgloss"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/ui"
)

// planStep asks the questions of the plan as a huh form of two groups.
type planStep struct {
	form *huh.Form
	a    Answers // the form writes here; saved into the model on leave
	// webServer names the server whose web root is offered.
	webServer string
	consent   *consentField
	// fields are the form's questions in order: accessible mode asks
	// these same fields (their RunAccessible), so the questions are
	// described once, here.
	fields []huh.Field
	// toChallenge: the next enter starts on the challenge question
	// ("Change the challenge" on the failure screen).
	toChallenge bool
	// refused is set when the form ended without the terms agreed (it
	// cannot, but the wizard never goes on to the CA without them).
	refused bool
	// cancelled: the user stopped the issuance (esc) and is back here.
	cancelled bool
}

func (s *planStep) busy() bool { return false }

func (s *planStep) back(m *Model) tea.Cmd {
	s.save(m)
	m.show(StepPreflight)
	return nil
}

// dns01Why is shown wherever challenges are offered (FACTS.md
// "Validation": only http-01 and tls-alpn-01 for IP identifiers).
const dns01Why = "dns-01 is impossible for IP addresses: there is no DNS name to put a TXT record under, so Let's Encrypt validates an IP only by connecting to it (http-01 on port 80, tls-alpn-01 on port 443)."

func (s *planStep) enter(m *Model, why arrival) tea.Cmd {
	switch why {
	case arriveChangeChallenge:
		s.toChallenge = true
	case arriveRefused:
		s.refused = true
	case arriveCancelled:
		s.cancelled = true
	}
	s.a = m.ans
	s.webServer = ""
	if mc := m.machine(); mc != nil {
		for _, ws := range mc.WebServers {
			if ws.WebRoot != "" && ws.WebRoot == s.a.WebRoot {
				s.webServer = ws.Name
			}
		}
	}
	s.form = s.build(m)
	s.resize(m)
	cmd := s.form.Init()
	if s.toChallenge {
		s.toChallenge = false
		return tea.Batch(cmd, s.form.NextField())
	}
	return cmd
}

// CAOptions are the plan's CA choices, in order.
func caOptions(demo bool) []huh.Option[string] {
	if demo {
		return []huh.Option[string]{huh.NewOption("Local test CA (this demo: Pebble on 127.0.0.1)", cachoice.Local)}
	}
	return []huh.Option[string]{
		huh.NewOption("Rehearse on staging, then production (recommended)", PlanRehearse),
		huh.NewOption("Staging only (a test certificate browsers do not trust)", cachoice.Staging),
		huh.NewOption("Production directly, no rehearsal (failures count against limits)", cachoice.Production),
	}
}

func caDescription(demo bool, choice string) string {
	switch {
	case demo:
		return "For a real certificate the choices are: a staging rehearsal then production (the default), staging only, or production directly."
	case choice == cachoice.Production:
		return "Warning: without a rehearsal, every failed validation counts against Let's Encrypt's limit of 5 failures per address per hour."
	case choice == cachoice.Staging:
		return "Staging's limits are generous; its certificates are for testing only."
	}
	return "Staging proves validation works at no cost; production without a rehearsal spends Let's Encrypt's limit of 5 failed validations per hour."
}

func challengeOptions(demo bool, webroot, server string) []huh.Option[string] {
	port80, port443 := "port 80", "port 443"
	if demo {
		port80, port443 = "a loopback port", "a loopback port"
	}
	opts := []huh.Option[string]{
		huh.NewOption("http-01, ipcert answers on "+port80+" itself", ChallengeHTTP),
	}
	if webroot != "" && !demo {
		label := "http-01 into the web root " + webroot
		if server != "" {
			label += " (" + server + ")"
		}
		opts = append(opts, huh.NewOption(label, ChallengeWebroot))
	}
	opts = append(opts, huh.NewOption("tls-alpn-01, ipcert answers on "+port443+" itself", ChallengeTLSALPN))
	return opts
}

func tosQuestion(demo bool) string {
	if demo {
		return "Agree to the test CA's terms of service?"
	}
	return "Agree to Let's Encrypt's Subscriber Agreement? (letsencrypt.org/repository)"
}

// placeholder is a field's example when the terminal can show it dimmed;
// without colour it would look like a typed value, so there is none.
func placeholder(c ui.Caps, example string) string {
	if c.NoColor {
		return ""
	}
	return example
}

func validEmail(v string) error {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	a, err := mail.ParseAddress(v)
	if err != nil || a.Address != v || !strings.Contains(v, "@") {
		return fmt.Errorf("%q is not an e-mail address like you@example.org (or leave it empty)", v)
	}
	return nil
}

func (s *planStep) build(m *Model) *huh.Form {
	demo := m.cfg.Demo
	if demo {
		s.a.CA = cachoice.Local
	}
	if s.a.Challenge == "" {
		// A running web server with a known web root holds port 80:
		// answering through it needs no downtime.
		s.a.Challenge = ChallengeHTTP
		if s.a.WebRoot != "" && !demo {
			s.a.Challenge = ChallengeWebroot
		}
	}
	if s.a.Challenge == ChallengeWebroot && (s.a.WebRoot == "" || demo) {
		s.a.Challenge = ChallengeHTTP
	}
	tos := tosQuestion(demo)
	caOpts := caOptions(demo)
	chOpts := challengeOptions(demo, s.a.WebRoot, s.webServer)
	s.consent = newConsentField("tos", tos, &s.a.AgreeTOS, m.theme, m.cfg.ConsentDelay)
	// The explanations are drawn above the form, not as field
	// descriptions: huh sizes a field before it knows the width, and a
	// wrapped description would push the last options out of view.
	ca := huh.NewSelect[string]().Key("ca").Title("Certificate authority").
		Options(caOpts...).
		Value(&s.a.CA)
	challenge := huh.NewSelect[string]().Key("challenge").Title("Challenge").
		Options(chOpts...).
		Value(&s.a.Challenge)
	keyType := huh.NewSelect[string]().Key("key").Title("Key type").
		Options(huh.NewOptions(acmeflow.KeyTypes...)...).
		Value(&s.a.KeyType)
	email := huh.NewInput().Key("email").Title("E-mail (optional)").
		Placeholder(placeholder(m.cfg.Caps, "you@example.org")).
		Validate(validEmail).
		Value(&s.a.Email)
	s.fields = []huh.Field{ca, challenge, keyType, email, s.consent}
	f := huh.NewForm(
		huh.NewGroup(ca, challenge),
		huh.NewGroup(keyType, email),
		// The terms are a group of their own: huh moves on by group, and
		// a group is left only when none of its fields has an error
		// (consentField has one until y), even by a nextGroup message
		// queued by typed-ahead Enters on an earlier group.
		huh.NewGroup(s.consent).WithShowErrors(false),
	).WithShowHelp(false).WithWidth(ui.ContentWidth(m.width))
	return f.WithTheme(formTheme(m.cfg.Caps))
}

// formTheme is huh's theme for these caps: without colour the base theme
// (selection marked by "> ", not by colour), and in ASCII terminals an
// ASCII bar for the focused field.
func formTheme(c ui.Caps) *huh.Theme {
	t := huh.ThemeCharm()
	if c.NoColor {
		t = huh.ThemeBase()
	}
	if c.ASCII {
		bar := lipgloss.Border{Left: "|"}
		t.Focused.Base = t.Focused.Base.BorderStyle(bar)
		t.Blurred.Base = t.Blurred.Base.BorderStyle(lipgloss.HiddenBorder())
		t.Focused.NextIndicator = t.Focused.NextIndicator.SetString(" >")
		t.Focused.PrevIndicator = t.Focused.PrevIndicator.SetString("< ")
		t.Blurred.NextIndicator = t.Blurred.NextIndicator.SetString(" >")
		t.Blurred.PrevIndicator = t.Blurred.PrevIndicator.SetString("< ")
	}
	return t
}

// resize gives the form the room between the header and the help line.
// Setting the height explicitly matters: huh sizes its groups before it
// knows the width, and wrapped descriptions would push the last options
// out of view.
func (s *planStep) resize(m *Model) tea.Cmd {
	if s.form != nil {
		s.form = s.form.WithWidth(ui.ContentWidth(m.width)).WithHeight(max(m.height-8, 8))
	}
	return nil
}

func (s *planStep) textFocused() bool {
	if s.form == nil {
		return false
	}
	_, ok := s.form.GetFocusedField().(*huh.Input)
	return ok
}

// save keeps the answers given so far (Esc back keeps them).
func (s *planStep) save(m *Model) {
	s.a.Email = strings.TrimSpace(s.a.Email)
	m.ans = s.a
}

func (s *planStep) update(m *Model, msg tea.Msg) tea.Cmd {
	if s.form == nil {
		return nil
	}
	// The lists are short: huh's "/" filter would only turn q into a
	// letter the user cannot see is being typed.
	if k, ok := msg.(tea.KeyMsg); ok && k.String() == "/" {
		return nil
	}
	// esc in the e-mail field leaves the field (back to the key type),
	// as in the address field; the typed text stays.
	if k, ok := msg.(tea.KeyMsg); ok && k.String() == "esc" && s.textFocused() {
		return s.form.PrevField()
	}
	fm, cmd := s.form.Update(msg)
	if f, ok := fm.(*huh.Form); ok {
		s.form = f
	}
	switch s.form.State {
	case huh.StateCompleted:
		s.save(m)
		if !m.ans.AgreeTOS {
			s.refused = true
			s.form = s.build(m)
			s.resize(m)
			return s.form.Init()
		}
		s.cancelled = false // a new run starts
		return tea.Batch(cmd, m.goTo(StepIssue))
	case huh.StateAborted:
		return m.quit()
	}
	return cmd
}

func (s *planStep) view(m *Model, w int) (string, []ui.KeyHelp) {
	t := m.theme
	body := ""
	if s.form != nil {
		note := s.note(m, s.focusedKey())
		if s.refused {
			note = "The terms of service were not agreed, so nothing was sent to the CA. " + note
		}
		if s.cancelled {
			note = "The issuance was cancelled (esc): the challenge server is closed and nothing was stored. Answering the last question starts it again. " + note
		}
		if note != "" {
			body = ui.Wrap(t.Dim.Render(note), w) + "\n\n"
		}
		body += strings.TrimRight(s.form.View(), "\n")
	}
	keys := []ui.KeyHelp{{Key: "enter", What: "next"}, {Key: "shift+tab", What: "previous"}, keysBack, keysQuit}
	if s.focusedKey() == "tos" {
		keys = []ui.KeyHelp{{Key: "y", What: "agree"}, {Key: "n", What: "no"}, {Key: "shift+tab", What: "previous"}, keysBack, keysQuit}
	}
	if s.textFocused() {
		keys[2] = ui.KeyHelp{Key: "esc", What: "leave the field"}
		keys[3] = ui.KeyHelp{Key: "ctrl+c", What: "quit"}
	}
	return body, keys
}

// note is the explanation drawn above a question (the full-screen form)
// or said before it (accessible mode).
func (s *planStep) note(m *Model, key string) string {
	switch key {
	case "ca":
		return caDescription(m.cfg.Demo, s.a.CA)
	case "challenge":
		return dns01Why
	case "key":
		return "The certificate's key type: ec256 is small, fast and accepted everywhere."
	case "email":
		return "Optional, for the CA's account only: Let's Encrypt no longer sends expiry mail."
	case "tos":
		return "The CA issues only to accounts that accept its terms: y agrees."
	}
	return ""
}

// consentReady says the terms question is current and takes keys.
func (s *planStep) consentReady() bool {
	return s.focusedKey() == "tos" && s.consent != nil && s.consent.armed
}

func (s *planStep) focusedKey() string {
	if s.form == nil {
		return ""
	}
	if f := s.form.GetFocusedField(); f != nil {
		return f.GetKey()
	}
	return ""
}
