package wizard

import (
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"slices"
	"strings"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/charmbracelet/huh"
	"github.com/charmbracelet/lipgloss"
	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/internal/spec"
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
	// backward: the user leaves a field backwards (shift+tab, esc): huh
	// validates a field it leaves either way and keeps a group with an
	// error, so an empty URL would not let the user back to the CA
	// question (forward, the checks hold).
	backward bool
	// moving is the field a key (enter, tab, shift+tab) is leaving: huh
	// moves the focus through commands, so until another field has it,
	// keys typed ahead ("enter y" in one burst over ssh) would land in the
	// field being left. They wait in ahead and go to the new field (the
	// terms question drops and counts keys that come before it has been
	// on screen long enough).
	moving huh.Field
	ahead  []tea.Msg
}

func (s *planStep) busy() bool { return false }

func (s *planStep) back(m *Model) tea.Cmd {
	s.save(m)
	m.show(StepPreflight)
	return nil
}

// dns01Why is shown wherever challenges are offered (docs/letsencrypt.md
// "Validation": only http-01 and tls-alpn-01 for IP identifiers).
const dns01Why = "dns-01 is impossible for IP addresses: there is no DNS name to put a TXT record under, so Let's Encrypt validates an IP only by connecting to it (http-01 on port 80, tls-alpn-01 on port 443)."

// dns01WhyOwn is dns01Why for an own CA (RFC 8555 sections 8.3 and 8.4,
// RFC 8737/8738: the same ports for every CA).
const dns01WhyOwn = "dns-01 is impossible for IP addresses: there is no DNS name to put a TXT record under, so an ACME CA validates an IP only by connecting to it (http-01 on port 80, tls-alpn-01 on port 443)."

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
	s.a.keepConsent(s.a.AgreeTOS)
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

// caOptions are the plan's CA choices, in order. The demo has only its
// local test CA: an own CA would validate over the network, which the
// demo promises never to use.
func caOptions(demo bool) []huh.Option[string] {
	if demo {
		return []huh.Option[string]{huh.NewOption("Local test CA (this demo: Pebble on 127.0.0.1)", cachoice.Local)}
	}
	return []huh.Option[string]{
		huh.NewOption("Rehearse on staging, then production (recommended)", PlanRehearse),
		huh.NewOption("Staging only (a test certificate browsers do not trust)", cachoice.Staging),
		huh.NewOption("Production directly, no rehearsal (failures count against limits)", cachoice.Production),
		huh.NewOption("My own ACME CA (directory URL), e.g. step-ca for internal addresses", PlanOwnCA),
	}
}

func caDescription(demo bool, choice string) string {
	switch {
	case demo:
		return "For a real certificate the choices are: a staging rehearsal then production (the default), staging only, production directly, or your own ACME CA."
	case choice == cachoice.Production:
		return "Warning: without a rehearsal, every failed validation counts against Let's Encrypt's limit of 5 failures per address per hour."
	case choice == cachoice.Staging:
		return "Staging's limits are generous; its certificates are for testing only."
	case choice == PlanOwnCA:
		return ownCANote
	}
	return "Staging proves validation works at no cost; production without a rehearsal spends Let's Encrypt's limit of 5 failed validations per hour."
}

// ownCANote says what changes with an own CA (acmeflow.NoProfileNotice
// says the same during the issuance).
const ownCANote = "Your own ACME CA (step-ca, or another RFC 8555 CA): Let's Encrypt's rules do not apply to it: private and internal addresses are allowed, the validity is the one the CA gives (no shortlived profile), Let's Encrypt's rate limits and staging rehearsal do not apply, and renew asks the same CA again."

// ownCAQuestions are the plan's keys asked only for PlanOwnCA.
var ownCAQuestions = []string{"ca-url", "ca-root"}

// validCAURL checks the own CA's directory URL (internal/spec's rule, the
// command line's too); an empty field says what to type.
func validCAURL(v string) error {
	if strings.TrimSpace(v) == "" {
		return errors.New("type the ACME directory URL of your CA, such as https://ca.internal:9000/acme/acme/directory (step-ca: https://HOST:PORT/acme/PROVISIONER/directory)")
	}
	return spec.CAURL(v)
}

// validCARoot checks the PEM root file of the own CA: empty trusts the
// system's roots. It reads one small local file, the way the form's
// other checks read the typed text.
func validCARoot(v string) error { return spec.CARoot(v) }

// leRefused says why Let's Encrypt would refuse a ("" when it would
// not): such an address can still be certified by an own CA.
func leRefused(a netip.Addr) string {
	if err := acmeflow.CheckAddr(a, true); err != nil {
		var ae *acmeflow.AddrError
		if asAddrError(err, &ae) {
			return ae.Reason
		}
		return err.Error()
	}
	return ""
}

// caError refuses a Let's Encrypt choice for addresses it will not
// certify, with the way out.
func (s *planStep) caError(choice string) error {
	if choice == PlanOwnCA || choice == cachoice.Local {
		return nil
	}
	for _, a := range s.a.Addrs {
		if why := leRefused(a); why != "" {
			return fmt.Errorf("%s %s: choose \"My own ACME CA\", or go back (esc) to the Address step and pick a public address", a, why)
		}
	}
	return nil
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

func tosQuestion(demo bool, ca string) string {
	switch {
	case demo:
		return "Agree to the test CA's terms of service?"
	case ca == PlanOwnCA:
		return "Agree to your CA's terms of service?"
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

func validEmail(v string) error { return spec.Email(strings.TrimSpace(v)) }

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
	if !demo && s.a.CA != PlanOwnCA && s.caError(s.a.CA) != nil {
		// Let's Encrypt refuses an address the user picked: only an own
		// CA can certify it, so that is the answer to start from.
		s.a.CA = PlanOwnCA
	}
	tos := tosQuestion(demo, s.a.CA)
	caOpts := caOptions(demo)
	chOpts := challengeOptions(demo, s.a.WebRoot, s.webServer)
	s.consent = newConsentField("tos", tos, &s.a.AgreeTOS, m.theme, m.cfg.ConsentDelay)
	// The explanations are drawn above the form, not as field
	// descriptions: huh sizes a field before it knows the width, and a
	// wrapped description would push the last options out of view.
	ca := huh.NewSelect[string]().Key("ca").Title("Certificate authority").
		Options(caOpts...).
		Value(&s.a.CA)
	if !m.cfg.Caps.Accessible {
		// Accessible mode checks after the answer (accessible.plan): huh's
		// accessible Select asks again on an error, forever once the input
		// has ended.
		ca = ca.Validate(s.caError)
	}
	caURL := huh.NewInput().Key("ca-url").Title("ACME directory URL of your CA").
		Placeholder(placeholder(m.cfg.Caps, "https://ca.internal:9000/acme/acme/directory")).
		Validate(s.forward(validCAURL)).
		Value(&s.a.CAURL)
	caRoot := huh.NewInput().Key("ca-root").Title("Root certificate of your CA (PEM file; empty: the system's roots)").
		Placeholder(placeholder(m.cfg.Caps, "/etc/step-ca/certs/root_ca.crt")).
		Validate(s.forward(validCARoot)).
		Value(&s.a.CARoot)
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
	s.fields = []huh.Field{ca, caURL, caRoot, challenge, keyType, email, s.consent}
	own := func() bool { return s.a.CA != PlanOwnCA }
	f := huh.NewForm(
		huh.NewGroup(ca).WithShowErrors(false),
		// Asked only for an own CA (hidden otherwise, also when going
		// back); accessible mode skips them the same way (asked).
		huh.NewGroup(caURL, caRoot).WithHideFunc(own).WithShowErrors(false),
		huh.NewGroup(challenge),
		// The answer's error is drawn once, above the form (view).
		huh.NewGroup(keyType, email).WithShowErrors(false),
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

// forward is check, applied only when the user leaves the field forward.
func (s *planStep) forward(check func(string) error) func(string) error {
	return func(v string) error {
		if s.backward {
			return nil
		}
		return check(v)
	}
}

// asked says whether the plan asks the question key with the answers so
// far: the own CA's URL and root only for PlanOwnCA.
func (s *planStep) asked(key string) bool {
	if slices.Contains(ownCAQuestions, key) {
		return s.a.CA == PlanOwnCA
	}
	return true
}

// save keeps the answers given so far (Esc back keeps them). The root
// file is kept absolute: renew runs from another directory (the timer: /).
func (s *planStep) save(m *Model) {
	s.a.Email = strings.TrimSpace(s.a.Email)
	s.a.CAURL = strings.TrimSpace(s.a.CAURL)
	s.a.CARoot = strings.TrimSpace(s.a.CARoot)
	if s.a.CARoot != "" {
		if abs, err := filepath.Abs(s.a.CARoot); err == nil {
			s.a.CARoot = abs
		}
	}
	m.ans = s.a
}

func (s *planStep) update(m *Model, msg tea.Msg) tea.Cmd {
	if s.form == nil {
		return nil
	}
	// The lists are short: huh's "/" filter would only turn q into a
	// letter the user cannot see is being typed. In a text field "/" is
	// a character (the own CA's URL and root file are paths).
	if k, ok := msg.(tea.KeyMsg); ok && k.String() == "/" && !s.textFocused() {
		return nil
	}
	k, isKey := msg.(tea.KeyMsg)
	if isKey && s.moving != nil {
		s.ahead = append(s.ahead, msg)
		return nil
	}
	if isKey {
		s.backward = k.String() == "shift+tab" || k.String() == "esc" && s.textFocused()
	}
	before := s.form.GetFocusedField()
	// esc in the e-mail field leaves the field (back to the key type),
	// as in the address field; the typed text stays.
	if isKey && k.String() == "esc" && s.textFocused() {
		return s.form.PrevField() // moves the focus at once
	}
	wasAgreed := s.a.AgreeTOS
	fm, cmd := s.form.Update(msg)
	if f, ok := fm.(*huh.Form); ok {
		s.form = f
	}
	// Consent belongs to one CA: another CA's terms are asked again.
	agreed := s.a.AgreeTOS
	if s.a.keepConsent(wasAgreed); agreed && !s.a.AgreeTOS && s.consent != nil {
		s.consent.answered = false // nothing chosen for this CA yet
	}
	after := s.form.GetFocusedField()
	switch {
	case isKey && cmd != nil && after == before && slices.Contains([]string{"enter", "tab", "shift+tab"}, k.String()):
		s.moving = before // the focus moves when huh's commands come back
	case s.moving != nil && (after != s.moving || s.form.State != huh.StateNormal || after != nil && after.Error() != nil):
		// Settled: another field has the focus (or the move was refused).
		// The keys typed meanwhile go to it, in order; those after a key
		// that moves on again wait for that move.
		s.moving = nil
		ahead := s.ahead
		s.ahead = nil
		if s.form.State == huh.StateNormal {
			cmds := []tea.Cmd{cmd}
			for _, a := range ahead {
				cmds = append(cmds, s.update(m, a))
			}
			cmd = tea.Batch(cmds...)
		}
	}
	if s.consent != nil {
		s.consent.title = tosQuestion(m.cfg.Demo, s.a.CA)
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
		return tea.Batch(cmd, m.follow(planDone))
	case huh.StateAborted:
		return m.quit()
	}
	return cmd
}

func (s *planStep) view(m *Model, w int) drawn {
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
		// The answer's error goes first, in view: huh draws it below the
		// group, which a short terminal clips. The terms question says
		// its own (consentField).
		if f := s.form.GetFocusedField(); f != nil && f.Error() != nil && f.GetKey() != "tos" {
			body = ui.Wrap(t.Fail.Render(t.Mark(ui.Fail, "")+" "+f.Error().Error()), w) + "\n\n" + body
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
	return drawn{body: body, focus: -1, keys: keys}
}

// note is the explanation drawn above a question (the full-screen form)
// or said before it (accessible mode).
func (s *planStep) note(m *Model, key string) string {
	switch key {
	case "ca":
		return caDescription(m.cfg.Demo, s.a.CA)
	case "ca-url":
		return "The URL of your ACME CA's directory, https:// only. step-ca: https://HOST:PORT/acme/PROVISIONER/directory (step ca provisioner list names the ACME provisioner)."
	case "ca-root":
		return "The PEM file of the root certificate your CA's HTTPS is signed with, when the system does not trust it (a private CA: step-ca keeps it in $(step path)/certs/root_ca.crt). Leave it empty for the system's roots. renew reads it again from this path."
	case "challenge":
		if s.a.CA == PlanOwnCA {
			return dns01WhyOwn
		}
		return dns01Why
	case "key":
		return "The certificate's key type: ec256 is small, fast and accepted everywhere."
	case "email":
		if s.a.CA == PlanOwnCA {
			return "Optional, for the CA's account only."
		}
		return "Optional, for the CA's account only: Let's Encrypt no longer sends expiry mail."
	case "tos":
		return "The CA issues only to accounts that accept its terms: y agrees."
	}
	return ""
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

// planDone is where the plan leads once its form is answered: the full
// screen's completed form and accessible mode follow it.
var planDone = choice{label: "Get the certificate", value: "issue", next: StepIssue}

// question is the plan's way on: its questions are the form's fields
// (build), asked in place by accessible mode (prepare).
func (s *planStep) question(*Model) *question {
	return &question{screenOnly: true, choices: []choice{planDone}}
}

// prepare (accessible mode) asks the plan's own questions, the form's
// fields (build), one by one: the own CA's only for an own CA, the CA
// again when Let's Encrypt would refuse the addresses, the terms until
// agreed (twice at most).
func (s *planStep) prepare(a *accessible) error {
	m := a.m
	a.say("%s.", StepPlan.heading())
	s.enter(m, arriveForward)
	for _, f := range s.fields {
		if f == huh.Field(s.consent) {
			break // below: it may be asked twice
		}
		if !s.asked(f.GetKey()) {
			continue // the own CA's questions, for another CA
		}
		a.say("%s", s.note(m, f.GetKey()))
		for {
			f.Focus()
			if err := a.ask(f); err != nil {
				return err
			}
			a.say("")
			if err := a.check(); err != nil {
				return err
			}
			// The full screen's CA question refuses a Let's Encrypt choice
			// for an address it will not certify (caError, its Validate);
			// here it is checked after the answer, and asked again.
			if f.GetKey() != "ca" {
				break
			}
			err := s.caError(s.a.CA)
			if err == nil {
				break
			}
			a.say("%s\n", err)
		}
		if f.GetKey() == "ca" && (s.a.CA == cachoice.Production || s.a.CA == PlanOwnCA) {
			a.say("%s\n", caDescription(m.cfg.Demo, s.a.CA))
		}
	}
	s.a.keepConsent(s.a.AgreeTOS) // agreed to another CA's terms: asked again
	s.consent.answered = s.a.AgreeTOS
	s.consent.title = tosQuestion(m.cfg.Demo, s.a.CA)
	a.say("%s", s.note(m, "tos"))
	for try := 0; !s.a.AgreeTOS; try++ {
		if try == 2 {
			return ErrAborted
		}
		if err := a.ask(s.consent); err != nil { // the plan's own question, asked as a typed y or n
			return err
		}
		a.say("")
		if err := a.check(); err != nil {
			return err
		}
		if !s.a.AgreeTOS {
			a.say("The CA issues only to accounts that accept its terms. Answer y to go on, or n again to stop.")
		}
	}
	s.a.AgreedFor = s.a.Terms()
	s.save(m)
	return nil
}

// chosen (accessible mode): the form was answered in prepare.
func (s *planStep) chosen(_ *accessible, c choice) (choice, error) { return c, nil }
