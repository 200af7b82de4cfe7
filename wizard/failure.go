package wizard

import (
	"fmt"
	"strings"
	"time"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/diagnosis"
	"github.com/ipcert/ipcert/preflight"
	"github.com/ipcert/ipcert/ui"
)

// diagnose explains a failed run with the diagnosis catalogue. The
// evidence is the one the run attached to its error (runEvidence; the
// renewal.json record of RecordFailure is made from it too), else the
// same builder's from what the wizard knows now.
func (m *Model) diagnose(err error, ca *cachoice.CA, choice string) diagnosis.Diagnosis {
	return diagnosis.Diagnose(err, diagnosis.EvidenceOf(err, runEvidence(m.ans, ca, choice, m.pre.report, m.deps.Now(), m.cfg.StateDir)))
}

// runEvidence is what the wizard knows locally of a run: the attempt
// (challenge, web root, the ports the validator knocks on: diagnosis's
// one evidence builder, as for issue and renew) and the preflight's NAT,
// firewall and port findings. It reads only its arguments: it runs inside
// the command's goroutine.
func runEvidence(a Answers, ca *cachoice.CA, choice string, rep *preflight.Report, now time.Time, stateDir string) diagnosis.Evidence {
	is := a.Issuance(choice)
	req := acmeflow.RequestFor(&is, a.Addrs)
	att := diagnosis.AttemptOf(&req, ca, is.CA)
	att.StateDir = stateDir
	ev := att.Evidence(now)
	if rep != nil {
		ev.AddPreflight(*rep)
	}
	return ev
}

func (s *issueStep) failureView(m *Model, w int, b *canvas) {
	t := m.theme
	d := s.diag
	b.WriteString(ui.Wrap(t.Fail.Render(t.Mark(ui.Fail, "")+" "+d.Title), w) + "\n")
	if d.Step != "" {
		where := "at the " + string(d.Step) + " step"
		if d.Identifier != "" {
			where += ", " + d.Identifier
		}
		if s.attempt > 1 {
			where = fmt.Sprintf("attempt %d, %s", s.attempt, where)
		}
		if m.ans.Challenge != ChallengeWebroot { // the web server answers; ipcert sees nothing
			where += "; " + seenText(s.seen)
		}
		b.WriteString(t.Dim.Render(ui.Indent(where, 2, w)) + "\n")
	}
	// What to do comes first: on a small terminal the CA's words and the
	// evidence are what gets clipped, not the choices.
	if d.Cause != "" {
		b.WriteString(ui.Indent(m.prose(d.Cause), 2, w) + "\n")
	}
	if d.Fix != "" {
		fix := "Fix: " + m.prose(d.Fix)
		// A fix that names its command already shows it (prose).
		if d.Command != "" && !strings.Contains(d.Fix, d.Command) {
			fix = strings.TrimRight(fix, ".") + ": " + t.Command(m.wizardCommand(d.Args))
		}
		b.WriteString(ui.Indent(fix, 2, w) + "\n")
	}
	b.WriteString("\n")
	for i, c := range failChoices {
		cur := "  "
		if i == s.failCursor {
			cur = t.Selected.Render(t.Cursor()) + " "
			c = t.Selected.Render(c)
			b.focusHere()
		}
		b.WriteString(cur + c + "\n")
	}
	b.WriteString("\n")
	switch {
	case d.Problem != nil:
		b.WriteString(t.Strong.Render("The CA said") + "\n")
		b.WriteString(t.Dim.Render(ui.Indent(d.Problem.String(), 2, w)) + "\n")
	case d.Error != "":
		b.WriteString(t.Strong.Render("What failed") + "\n")
		b.WriteString(t.Dim.Render(ui.Indent(d.Error, 2, w)) + "\n")
	}
	if len(d.Evidence) > 0 {
		b.WriteString(t.Strong.Render("What ipcert saw here") + "\n")
		for _, e := range d.Evidence {
			b.WriteString(t.Dim.Render(ui.Indent(e, 2, w)) + "\n")
		}
	}
	if d.Retry != "" {
		b.WriteString(t.Dim.Render(ui.Indent("Retry: "+m.prose(d.Retry), 2, w)) + "\n")
	}
}

// wizardCommand makes a diagnosis's command work as printed for this run:
// "ipcert issue" gets this run's addresses, CA, challenge, web root, key
// and state directory (the fix's own flags win, except a CA the demo does
// not have); doctor and status get the state directory; preflight the
// addresses.
func (m *Model) wizardCommand(c diagnosis.Cmd) string {
	cmd := c.String()
	f := []string(c) // the words as the diagnosis built them, never re-split
	if len(f) < 2 || f[0] != "ipcert" && !(f[0] == "sudo" && len(f) > 2 && f[1] == "ipcert") {
		return cmd
	}
	sudo := f[0] == "sudo"
	if sudo {
		f = f[1:]
	}
	var ips []string
	for _, a := range m.ans.Addrs {
		ips = append(ips, "--ip", a.String())
	}
	out := ""
	switch f[1] {
	case "issue":
		type flag struct{ name, value string }
		var flags []flag
		set := func(n, v string) {
			for i := range flags {
				if flags[i].name == n {
					flags[i].value = v
					return
				}
			}
			flags = append(flags, flag{n, v})
		}
		ca := m.ans.Choice()
		if ca == PlanRehearse {
			ca = cachoice.Staging
		}
		set("--ca", ca)
		if root := m.ans.root(ca); root != "" {
			set("--ca-root", root)
		}
		ch := m.ans.Challenge
		if ch == ChallengeWebroot {
			ch = ChallengeHTTP
			set("--webroot", m.ans.WebRoot)
		}
		if ch != "" {
			set("--challenge", ch)
		}
		if m.ans.KeyType != "" && m.ans.KeyType != "ec256" {
			set("--key-type", m.ans.KeyType)
		}
		if m.ans.Email != "" {
			set("--email", m.ans.Email)
		}
		for i := 2; i < len(f); i++ {
			n, v := f[i], ""
			if !strings.HasPrefix(n, "--") {
				continue // "..." and the like
			}
			if i+1 < len(f) && !strings.HasPrefix(f[i+1], "--") {
				v = f[i+1]
				i++
			}
			switch {
			case n == "--ip", n == "--agree-tos", n == "--state-dir":
			case n == "--ca" && (m.cfg.Demo || m.ans.CA == PlanOwnCA):
				// The demo's CA, or the user's own: a fix's rehearsal on
				// Let's Encrypt staging is no test of that CA.
			case n == "--challenge" && v == ChallengeHTTP && m.ans.Challenge == ChallengeWebroot:
			default:
				set(n, v)
			}
		}
		parts := append([]string{"ipcert", "issue"}, ips...)
		for _, fl := range flags {
			parts = append(parts, fl.name)
			if fl.value != "" {
				parts = append(parts, fl.value)
			}
		}
		out = strings.Join(parts, " ") + " --agree-tos" + m.stateArg()
	case "doctor", "status", "renew", "timer", "snippet", "deploy":
		out = diagnosis.Cmd(f).String() // without the sudo, added below
		if _, ok := c.Flag("--state-dir"); !ok {
			out += m.stateArg()
		}
	case "preflight":
		out = strings.Join(f, " ")
		if !strings.Contains(out, "--ip") {
			out += " " + strings.Join(ips, " ")
		}
	default:
		return cmd
	}
	if sudo || (!m.cfg.Demo && f[1] == "issue") {
		out = "sudo " + out
	}
	return out
}
