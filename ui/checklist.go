package ui

import (
	"strings"

	"github.com/charmbracelet/x/ansi"
)

// Item is one row of a checklist: a preflight check, an ACME step.
type Item struct {
	ID      string
	Title   string
	Status  Status
	Summary string
	// Detail is shown under the row when it is selected (or always, with
	// Checklist.Expand): the evidence, then the fix.
	Detail []string
	Fix    string
}

// Checklist renders items one line each, the selected one expanded with
// its evidence and fix. spin is the spinner's current frame.
type Checklist struct {
	Items    []Item
	Selected int // -1: none
	Expand   bool
	// MaxDetail bounds the evidence lines shown for the selected row
	// (0: all of them; the wizard's viewport scrolls).
	MaxDetail int
	// FocusLine, when set, receives the output line of the selected row.
	FocusLine *int
}

// View renders the list at width.
func (c Checklist) View(t Theme, width int, spin string) string {
	var b strings.Builder
	titleW := 0
	for _, it := range c.Items {
		titleW = max(titleW, len([]rune(it.Title)))
	}
	// Titles get at most a third of the line so the summaries stay
	// readable at 80 columns; a longer title has its summary below it.
	titleW = min(titleW, max(width/3, 16))
	for i, it := range c.Items {
		cur := "  "
		if i == c.Selected {
			cur = t.Selected.Render(t.Cursor()) + " "
		}
		summary := it.Summary
		if it.Status == Pending {
			summary = t.Dim.Render("waiting")
		} else if it.Status == Running {
			summary = t.Dim.Render("checking" + t.Dots())
		}
		if i == c.Selected && c.FocusLine != nil {
			*c.FocusLine = strings.Count(b.String(), "\n")
		}
		// Nothing is cut: a long summary wraps under itself, a long title
		// puts the summary on the lines below.
		title, hang := it.Title, 4+titleW+2
		if i == c.Selected {
			title = t.Selected.Render(title)
		}
		head := cur + t.Mark(it.Status, spin) + " "
		if tw := ansi.StringWidth(it.Title); tw <= titleW {
			b.WriteString(Hang(head+title+strings.Repeat(" ", titleW-tw)+"  "+summary, hang, width) + "\n")
		} else {
			b.WriteString(Hang(head+title, 4, width) + "\n")
			b.WriteString(Indent(summary, hang, width) + "\n")
		}
		if i == c.Selected || c.Expand {
			n := 0
			for _, d := range it.Detail {
				if c.MaxDetail > 0 && n >= c.MaxDetail {
					b.WriteString(Indent(t.Dim.Render(t.Ellipsis()), 6, width) + "\n")
					break
				}
				b.WriteString(t.Dim.Render(Indent(d, 6, width)) + "\n")
				n++
			}
			if it.Fix != "" && it.Status != OK {
				b.WriteString(Indent("fix: "+it.Fix, 6, width) + "\n")
			}
		}
	}
	return b.String()
}
