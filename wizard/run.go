package wizard

import (
	"context"
	"errors"
	"io"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/ipcert/ipcert/ui"
)

// ErrAborted is returned when the user quit before a certificate was
// issued (main maps it to exit code 130).
var ErrAborted = errors.New("wizard: quit before a certificate was issued")

// Run runs the full-screen wizard on in/out (the terminal; out is stderr)
// until the user finishes or quits, then stops everything it started and
// returns the outcome. extra options are for tests and benchmarks.
func Run(ctx context.Context, deps Deps, cfg Config, in io.Reader, out io.Writer, extra ...tea.ProgramOption) (Outcome, error) {
	m := New(ctx, deps, cfg)
	m.WithTheme(ui.NewTheme(ui.Renderer(out, cfg.Caps), cfg.Caps))
	opts := []tea.ProgramOption{tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out), tea.WithAltScreen()}
	opts = append(opts, extra...)
	p := tea.NewProgram(m, opts...)
	_, err := p.Run()
	m.Shutdown()
	o := m.Outcome()
	switch {
	case errors.Is(err, tea.ErrProgramKilled), errors.Is(err, tea.ErrInterrupted):
		if o.Issued == nil {
			o.Aborted = true
		}
		return o, ErrAborted
	case err != nil:
		return o, err
	case o.Aborted:
		return o, ErrAborted
	}
	return o, nil
}
