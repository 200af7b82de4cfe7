package wizard

import (
	"fmt"
	"strings"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/preflight"
	"github.com/ipcert/ipcert/ui"
)

// diagnose explains a failed run with the diagnosis catalogue, giving it
// what the wizard knows locally: the challenge, the ports the validator
// knocks on, and the preflight's NAT and port findings.
func (m *Model) diagnose(err error, ca *cachoice.CA, choice string) acmeflow.Diagnosis {
	ev := acmeflow.Evidence{Challenge: m.ans.Challenge, CA: choice, HTTPPort: 80, TLSPort: 443, Now: m.deps.Now()}
	if m.ans.Challenge == ChallengeWebroot {
		ev.Challenge, ev.WebRoot = acmeflow.ChallengeHTTP01, m.ans.WebRoot
	}
	if ca != nil && ca.Local {
		ev.HTTPPort, ev.TLSPort = acmeflow.PortOf(ca.HTTPListen), acmeflow.PortOf(ca.TLSListen)
	}
	if rep := m.pre.report; rep != nil {
		ev.NAT, ev.Cloud = string(rep.NAT.Kind), rep.NAT.Cloud
		ev.PortOwner = portOwner(rep.Ports, ev.Challenge, ev.HTTPPort, ev.TLSPort)
	}
	return acmeflow.Diagnose(err, ev)
}

// portOwner names who held the validation port at preflight time.
func portOwner(ports []preflight.PortState, challenge string, httpPort, tlsPort int) string {
	want := httpPort
	if challenge == acmeflow.ChallengeTLSALPN01 {
		want = tlsPort
	}
	for _, p := range ports {
		if p.Port == want && !p.Free && p.Process != "" {
			return fmt.Sprintf("%s (pid %d) on %s", p.Process, p.PID, p.Local)
		}
	}
	return ""
}

func (s *issueStep) failureView(m *Model, w int) string {
	t := m.theme
	d := s.diag
	var b strings.Builder
	b.WriteString(ui.Wrap(t.Fail.Render(t.Mark(ui.Fail, "")+" "+d.Title), w) + "\n")
	if d.Step != "" {
		where := "at the " + string(d.Step) + " step"
		if d.Identifier != "" {
			where += ", " + d.Identifier
		}
		b.WriteString(t.Dim.Render("  "+where) + "\n")
	}
	// What to do comes first: on a small terminal the CA's words and the
	// evidence are what gets clipped, not the choices.
	if d.Cause != "" {
		b.WriteString(ui.Indent(d.Cause, 2, w) + "\n")
	}
	if d.Fix != "" {
		fix := "Fix: " + d.Fix
		if d.Command != "" {
			fix = strings.TrimRight(fix, ".") + ": " + t.Code.Render(d.Command)
		}
		b.WriteString(ui.Indent(fix, 2, w) + "\n")
	}
	b.WriteString("\n")
	for i, c := range failChoices {
		cur := "  "
		if i == s.failCursor {
			cur = t.Selected.Render(t.Cursor()) + " "
			c = t.Selected.Render(c)
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
		for i, e := range d.Evidence {
			if i == 6 {
				b.WriteString(t.Dim.Render(ui.Indent(fmt.Sprintf("… and %d more", len(d.Evidence)-i), 2, w)) + "\n")
				break
			}
			b.WriteString(t.Dim.Render(ui.Indent(e, 2, w)) + "\n")
		}
	}
	if d.Retry != "" {
		b.WriteString(t.Dim.Render(ui.Indent("Retry: "+d.Retry, 2, w)) + "\n")
	}
	return b.String()
}
