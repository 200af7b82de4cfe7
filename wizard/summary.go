package wizard

import (
	"fmt"
	"strings"
	"time"

	tea "github.com/charmbracelet/bubbletea"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/diagnosis"
	"github.com/ipcert/ipcert/internal/store"
	"github.com/ipcert/ipcert/renew"
	"github.com/ipcert/ipcert/ui"
)

// summaryStep shows the files, the validity and the next commands.
type summaryStep struct{ quiet }

func (s *summaryStep) enter(m *Model, _ arrival) tea.Cmd { return nil }

func (s *summaryStep) update(m *Model, msg tea.Msg) tea.Cmd {
	if k, ok := msg.(tea.KeyMsg); ok && k.String() == "enter" {
		m.done = true
		m.cancel()
		return tea.Quit
	}
	return nil
}

// humanHours says a duration the way a person would: "160 hours".
func humanHours(d time.Duration) string {
	if d < 0 {
		d = 0
	}
	h := d.Round(time.Hour).Hours()
	if h < 48 {
		return fmt.Sprintf("%.0f hours", h)
	}
	return fmt.Sprintf("%.0f hours (%.1f days)", h, h/24)
}

// StateArg is the --state-dir the printed commands need to find the
// wizard's state: none for /etc/ipcert, the default under sudo.
func StateArg(dir string) string {
	if dir == "" || dir == "/etc/ipcert" {
		return ""
	}
	// Quoted for the shell where it needs it: the commands are meant to be
	// copied as they are.
	return " " + diagnosis.Cmd{"--state-dir", dir}.String()
}

func (m *Model) stateArg() string { return StateArg(m.cfg.StateDir) }

// NextCommands are the commands the summary names after a real
// certificate: install, renewal, verify, status; each {what, command,
// note}. stateDir is the wizard's state directory; r the certificate's
// renewal record (an own CA's root makes verify trust it, as "ipcert
// verify --root" does).
func NextCommands(name, addr, stateDir string, r *store.Renewal) [][3]string {
	sa := StateArg(stateDir)
	verify := "ipcert verify " + addr
	if r != nil && r.CARoot != "" && cachoice.IsOwn(r.CA) {
		verify += " --root " + shellWord(r.CARoot)
	}
	return [][3]string{
		{"install", "sudo ipcert snippet nginx " + name + sa + " --write", "(or apache, haproxy, caddy)"},
		{"renewal", "sudo ipcert timer install" + sa, ""},
		{"verify", verify, ""},
		{"status", "ipcert status" + sa, ""},
	}
}

// OpensslCommands check a demo certificate against the test CA's root.
func OpensslCommands(f Files) []string {
	return []string{
		"openssl verify -CAfile " + f.Root + " -untrusted " + f.Chain + " " + f.Cert,
		"openssl x509 -noout -text -in " + f.Cert,
	}
}

// opensslShort are the same commands run from inside the files' folder.
func opensslShort(f Files) []string {
	return []string{
		"cd " + f.Dir,
		"openssl verify -CAfile root.pem -untrusted chain.pem cert.pem",
		"openssl x509 -noout -text -in cert.pem",
	}
}

func (s *summaryStep) view(m *Model, w int) drawn {
	t := m.theme
	b := canvas{focus: -1}
	o := m.outcome
	keys := []ui.KeyHelp{{Key: "enter", What: "finish"}, keysQuit}
	iss := o.Issued
	files := o.Files
	rehearsalOnly := iss == nil && o.Rehearsal != nil
	if rehearsalOnly {
		iss, files = o.Rehearsal, o.RehearsalFiles
	}
	if iss == nil {
		b.WriteString(ui.Wrap("No certificate was issued.", w))
		return b.drawn(keys)
	}
	r := iss.Renewal
	head := fmt.Sprintf("%s Certificate for %s", t.Mark(ui.OK, ""), strings.Join(r.Identifiers, ", "))
	if rehearsalOnly {
		head = fmt.Sprintf("%s Staging rehearsal certificate for %s (not trusted by browsers)", t.Mark(ui.Warn, ""), strings.Join(r.Identifiers, ", "))
	}
	b.WriteString(ui.Wrap(t.Strong.Render(head), w) + "\n")
	b.WriteString(ui.Wrap(t.Dim.Render(fmt.Sprintf("from %s, version %d of %q", cachoice.Short(r.CA), iss.Version.N, iss.Name)), w) + "\n\n")
	now := m.deps.Now()
	b.WriteString(fmt.Sprintf("  %-10s %s until %s\n", "valid", when(r.NotBefore), when(r.NotAfter)))
	b.WriteString(fmt.Sprintf("  %-10s %s left\n", "", humanHours(r.NotAfter.Sub(now))))
	if !rehearsalOnly && !m.cfg.Demo {
		// renew's own decision: the summary never promises another time
		// than the renewal job keeps.
		c := *r
		c.Current = iss.Version.N
		next, _ := renew.Next(&c, now)
		b.WriteString(fmt.Sprintf("  %-10s around %s\n", "renew", when(next)))
	}
	b.WriteString(ui.Hang(fmt.Sprintf("  %-10s %s", "files in", t.Code.Render(files.Dir+"/")), 13, w) + "\n")
	names := []string{"fullchain.pem", "privkey.pem", "cert.pem", "chain.pem"}
	if files.Root != "" {
		names = append(names, "root.pem")
	}
	b.WriteString(ui.Hang(fmt.Sprintf("  %-10s %s", "", strings.Join(names, "  ")), 13, w) + "\n\n")
	done := o.Done
	if res := m.afterSummary(); len(res) > 0 {
		b.WriteString(t.Strong.Render("Done") + "\n")
		for _, x := range res {
			b.WriteString(ui.Hang("  "+t.Mark(x.r.Status, "")+" "+x.r.Summary, 4, w) + "\n")
			if x.r.Fix != "" && x.r.Status != ui.OK {
				// Still to do: the one-line command, whole.
				b.WriteString(ui.Indent("fix: "+m.prose(x.r.Fix), 4, w) + "\n")
			}
		}
		b.WriteString("\n")
	}
	switch {
	case m.cfg.Demo:
		b.WriteString(t.Strong.Render("Check it with openssl") + "\n")
		for _, c := range opensslShort(files) {
			b.WriteString(ui.Hang("  "+t.Command(c), 4, w) + "\n")
		}
		b.WriteString(ui.Wrap(t.Dim.Render("The files stay. A real certificate: sudo ipcert, on the server."), w) + "\n")
	case rehearsalOnly:
		b.WriteString(ui.Wrap("Validation works. Get the real certificate any time: "+t.Command("sudo ipcert issue --ip "+r.Identifiers[0]+" --ca production --agree-tos"+m.stateArg())+", or run the wizard again.", w) + "\n")
	default:
		b.WriteString(t.Strong.Render("Next") + "\n")
		cmds := NextCommands(iss.Name, r.Identifiers[0], m.cfg.StateDir, r)
		for _, c := range cmds {
			if done[c[0]] {
				continue
			}
			line := fmt.Sprintf("  %-10s %s", c[0], t.Command(c[1]))
			if c[2] != "" {
				line += " " + t.Dim.Render(c[2])
			}
			b.WriteString(ui.Hang(line, 4, w) + "\n")
		}
		for _, h := range m.cfg.InstallHint {
			b.WriteString(ui.Wrap("  "+h, w) + "\n")
		}
	}
	return b.drawn(keys)
}
