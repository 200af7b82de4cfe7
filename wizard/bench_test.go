package wizard

import (
	"context"
	"testing"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/ipcert/ipcert/acmeflow"
)

// BenchmarkUpdateView measures one key press (Update) followed by a full
// redraw (View) at 120x40 on the busiest screens: go test ./wizard
// -run '^$' -bench UpdateView -benchmem. bench/wizard.md has the figures.
func BenchmarkUpdateView(b *testing.B) {
	screens := []struct {
		name string
		to   func(d *driver)
		keys []string
	}{
		{"preflight", func(d *driver) {
			d.until("machine", func() bool { return d.m.welcome.machine != nil })
			d.key("enter")
			d.until("addresses", func() bool { return d.m.address.detected })
			d.key("enter")
			d.until("report", func() bool { return d.m.pre.report != nil })
		}, []string{"down", "up"}},
		{"plan", func(d *driver) {
			d.until("machine", func() bool { return d.m.welcome.machine != nil })
			d.key("enter")
			d.until("addresses", func() bool { return d.m.address.detected })
			d.key("enter")
			d.until("report", func() bool { return d.m.pre.report != nil })
			d.key("enter")
			d.until("plan", func() bool { return d.focused() == "ca" })
		}, []string{"down", "up"}},
		{"issue-log", func(d *driver) {
			d.m.step = StepIssue
			d.m.issue.phase = phaseRunning
			for i := 0; i < 40; i++ {
				d.m.issue.addEvent(d.m.theme, validatorEvent("66.133.109.36:41234"))
			}
		}, []string{"x", "x"}},
	}
	for _, sc := range screens {
		b.Run(sc.name, func(b *testing.B) {
			iss := issuerFunc(func(ctx context.Context, req acmeflow.Request, opts acmeflow.IssueOptions) (*acmeflow.Issued, error) {
				<-ctx.Done()
				return nil, ctx.Err()
			})
			d := newDriver(b, fakeDeps(iss), testConfig(false), 120, 40)
			sc.to(d)
			msgs := []tea.Msg{keyMsg(sc.keys[0]), keyMsg(sc.keys[1])}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				d.m.Update(msgs[i%2])
				_ = d.m.View()
			}
		})
	}
}
