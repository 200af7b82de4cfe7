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
	return diagnosis.Diagnose(err, diagnosis.EvidenceOf(err, runEvidence(m.ans, ca, choice, m.pre.report, m.deps.Now())))
}

// runEvidence is what the wizard knows locally of a run: the attempt
// (challenge, web root, the ports the validator knocks on: diagnosis's
// one evidence builder, as for issue and renew) and the preflight's NAT,
// firewall and port findings. It reads only its arguments: it runs inside
// the command's goroutine.
func runEvidence(a Answers, ca *cachoice.CA, choice string, rep *preflight.Report, now time.Time) diagnosis.Evidence {
	req := acmeflow.Request{Challenge: a.Challenge}
	if a.Challenge == ChallengeWebroot {
		req.Challenge, req.WebRoot = acmeflow.ChallengeHTTP01, a.WebRoot
	}
	ev := diagnosis.AttemptOf(&req, ca, choice).Evidence(now)
	if rep != nil {
		ev.AddPreflight(*rep)
	}
	return ev
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
