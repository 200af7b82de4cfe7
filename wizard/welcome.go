package wizard

import (
	"context"
	"fmt"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/ipcert/ipcert/ui"
)

// welcomeStep says what will happen and what the machine looks like.
type welcomeStep struct {
	quiet
	loading bool
	machine *Machine
}

type machineMsg struct{ machine Machine }

func (machineMsg) stepOf() Step { return StepWelcome }

// machine is what the welcome screen found (nil: not known yet), for the
// steps that adapt to it.
func (m *Model) machine() *Machine { return m.welcome.machine }

func (s *welcomeStep) busy() bool { return s.loading }

func (s *welcomeStep) enter(m *Model, _ arrival) tea.Cmd {
	if s.machine != nil || s.loading || m.deps.Machine == nil {
		return nil
	}
	s.loading = true
	ctx, look := m.ctx, s.look(m)
	return tea.Batch(m.stream(func(send func(tea.Msg)) {
		send(look(ctx))
	}), m.tick())
}

// look is the welcome's work, ready to run (as a command by enter, in
// place in accessible mode); its result goes to update.
func (s *welcomeStep) look(m *Model) func(ctx context.Context) machineMsg {
	machine := m.deps.Machine
	return func(ctx context.Context) machineMsg { return machineMsg{machine(ctx)} }
}

func (s *welcomeStep) update(m *Model, msg tea.Msg) tea.Cmd {
	switch msg := msg.(type) {
	case machineMsg:
		s.loading = false
		mc := msg.machine
		s.machine = &mc
		// A detected web root makes webroot the natural http-01 choice
		// when the user did not choose already.
		if m.ans.WebRoot == "" {
			for _, ws := range mc.WebServers {
				if ws.Running && ws.WebRoot != "" {
					m.ans.WebRoot = ws.WebRoot
					break
				}
			}
		}
	case tea.KeyMsg:
		if c, ok := byKey(s.question(m).choices, msg.String()); ok {
			return m.follow(c)
		}
	}
	return nil
}

// question is the welcome's way on: enter starts; accessible mode, which
// said the screen, goes on at once.
func (s *welcomeStep) question(*Model) *question {
	return &question{screenOnly: true, choices: []choice{{label: "start", value: "start", key: "enter", next: StepAddress}}}
}

// prepare (accessible mode) looks at the machine in place and says the
// screen.
func (s *welcomeStep) prepare(a *accessible) error {
	m := a.m
	if m.deps.Machine != nil && s.machine == nil {
		s.update(m, s.look(m)(m.ctx))
	}
	a.say("%s\n", plain(s.view(m, 80).body))
	return nil
}

// chosen (accessible mode): nothing to do but go on.
func (s *welcomeStep) chosen(_ *accessible, c choice) (choice, error) { return c, nil }

func (s *welcomeStep) view(m *Model, w int) drawn {
	t := m.theme
	b := canvas{focus: -1}
	if m.cfg.Demo {
		b.WriteString(ui.Wrap(t.Strong.Render("ipcert demo")+": the whole wizard against a test CA running inside this program (Pebble, Let's Encrypt's own test CA) on 127.0.0.1. No internet, no root; the certificate it ends with is real, but trusted only with the test CA's root.", w))
	} else {
		b.WriteString(ui.Wrap("ipcert gets a Let's Encrypt certificate for this machine's IP address. It lasts 160 hours (the \"shortlived\" profile), so ipcert also keeps it fresh.", w))
	}
	b.WriteString("\n\n" + t.Strong.Render("What will happen") + "\n")
	// The steps to come, numbered as declared (Step.number); Install,
	// Renewal and Verify are one row.
	rows := []struct {
		from, to Step
		what     string
	}{
		{StepAddress, StepAddress, "find this machine's public address; you pick"},
		{StepPreflight, StepPreflight, "check ports, NAT and firewall before asking the CA"},
		{StepPlan, StepPlan, "choose the CA, the challenge, the key, an e-mail"},
		{StepIssue, StepIssue, "a staging rehearsal, then the real certificate"},
		{StepInstall, StepVerify, "web server config, renewal timer, a browser's check"},
		{StepSummary, StepSummary, "the files and the commands to remember"},
	}
	if m.cfg.Demo {
		rows[3].what = "get the certificate from the local test CA"
		rows[4].what = "what ipcert would do with a web server; a dry renewal"
	}
	for _, r := range rows {
		n := fmt.Sprint(r.from.number())
		if r.to != r.from {
			n += fmt.Sprintf("-%d", r.to.number())
		}
		b.WriteString(ui.Hang(fmt.Sprintf("  %-3s %-10s %s", n, r.from, t.Dim.Render(r.what)), 17, w) + "\n")
	}
	b.WriteString("\n" + t.Strong.Render("This machine") + "\n")
	if s.machine == nil {
		if s.loading {
			b.WriteString("  " + m.spinner() + " looking at users, systemd and web servers" + m.theme.Dots() + "\n")
		}
	} else {
		mc := s.machine
		user := fmt.Sprintf("uid %d", mc.UID)
		if mc.UID == 0 {
			user = "root"
		}
		if mc.CanBindLow {
			user += t.Dim.Render(" (may bind ports 80 and 443)")
		} else {
			user += t.Dim.Render(" (may not bind ports 80/443: use sudo, or a web root)")
		}
		b.WriteString(ui.Hang(fmt.Sprintf("  %-11s%s", "user", user), 13, w) + "\n")
		sd := "no " + t.Dim.Render("(renewal will use cron)")
		if mc.Systemd {
			sd = "yes " + t.Dim.Render("(renewal will use a systemd timer)")
		}
		b.WriteString(ui.Hang(fmt.Sprintf("  %-11s%s", "systemd", sd), 13, w) + "\n")
		var ws []string
		for _, x := range mc.WebServers {
			if !x.Running && !x.Installed {
				continue
			}
			d := x.Name
			switch {
			case x.Running && x.WebRoot != "":
				d += t.Dim.Render(" running, web root " + x.WebRoot)
			case x.Running:
				d += t.Dim.Render(" running")
			default:
				d += t.Dim.Render(" installed, not running")
			}
			ws = append(ws, d)
		}
		if len(ws) == 0 {
			ws = []string{"none found"}
		}
		for i, x := range ws {
			label := ""
			if i == 0 {
				label = "web server"
			}
			b.WriteString(ui.Hang(fmt.Sprintf("  %-11s%s", label, x), 13, w) + "\n")
		}
	}
	if m.cfg.StateDir != "" {
		b.WriteString(ui.Hang(fmt.Sprintf("  %-11s%s", "files in", t.Code.Render(m.cfg.StateDir)), 13, w) + "\n")
	}
	b.WriteString("\n" + ui.Wrap(t.Dim.Render("Nothing is sent to a CA before the Issue step."), w))
	return b.drawn([]ui.KeyHelp{{Key: "enter", What: "start"}, keysQuit})
}
