package diagnosis

import (
	"strings"

	"github.com/ipcert/ipcert/acmeflow"
	"github.com/ipcert/ipcert/acmeflow/cachoice"
	"github.com/ipcert/ipcert/internal/spec"
)

// Cmd is a command a diagnosis suggests, as its words: built as a value
// (the builders below fill every flag it needs: --ip, --ca, --state-dir,
// --agree-tos) and rendered once by String, never a string parsed back.
// The wizard adds its run's settings to it with Set.
type Cmd []string

// String is the command on one line, each word quoted for a POSIX shell
// when it needs it.
func (c Cmd) String() string {
	out := make([]string, len(c))
	for i, w := range c {
		out[i] = shellQuote(w)
	}
	return strings.Join(out, " ")
}

// shellQuote quotes w for a POSIX shell unless it is made only of
// characters no shell treats specially.
func shellQuote(w string) string {
	if w == "" {
		return "''"
	}
	if strings.Trim(w, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./:=@,+%[]") == "" {
		return w
	}
	// "$(command -v ipcert)" is meant to be expanded.
	if strings.HasPrefix(w, "\"$(") && strings.HasSuffix(w, ")\"") && !strings.ContainsAny(w[3:len(w)-2], "\"`$\\") {
		return w
	}
	return "'" + strings.ReplaceAll(w, "'", `'\''`) + "'"
}

// Ipcert says whether the command runs ipcert (perhaps through sudo), and
// which subcommand.
func (c Cmd) Ipcert() (sub string, ok bool) {
	w := c
	if len(w) > 0 && w[0] == "sudo" {
		w = w[1:]
	}
	if len(w) < 2 || w[0] != "ipcert" {
		return "", false
	}
	return w[1], true
}

// Flag is the value of --name in the command (a flag with no value gives
// ""), and whether it is there.
func (c Cmd) Flag(name string) (string, bool) {
	for i, w := range c {
		if w != name {
			continue
		}
		if i+1 < len(c) && !strings.HasPrefix(c[i+1], "--") {
			return c[i+1], true
		}
		return "", true
	}
	return "", false
}

// Set gives --name the value v (a boolean flag when v is ""), replacing
// the value it has; a new flag goes last.
func (c Cmd) Set(name, v string) Cmd {
	out := append(Cmd(nil), c...)
	for i, w := range out {
		if w != name {
			continue
		}
		hasValue := i+1 < len(out) && !strings.HasPrefix(out[i+1], "--")
		switch {
		case v == "" && hasValue:
			out = append(out[:i+1], out[i+2:]...)
		case v != "" && hasValue:
			out[i+1] = v
		case v != "":
			out = append(out[:i+1], append(Cmd{v}, out[i+1:]...)...)
		}
		return out
	}
	out = append(out, name)
	if v != "" {
		out = append(out, v)
	}
	return out
}

// Drop removes --name (and its value) from the command.
func (c Cmd) Drop(name string) Cmd {
	var out Cmd
	for i := 0; i < len(c); i++ {
		if c[i] == name {
			if i+1 < len(c) && !strings.HasPrefix(c[i+1], "--") {
				i++
			}
			continue
		}
		out = append(out, c[i])
	}
	return out
}

// StateDirArgs is --state-dir DIR, or nothing for the default /etc/ipcert.
func StateDirArgs(dir string) []string {
	if dir == "" || dir == "/etc/ipcert" {
		return nil
	}
	return []string{"--state-dir", dir}
}

// cmd is a command that is not ipcert's (ss -ltnp, df -h, nft ...).
func cmd(words ...string) Cmd { return Cmd(words) }

// issueArgs are the settings of a suggested "ipcert issue" that differ
// from the failed attempt's.
type issueArgs struct {
	challenge spec.Challenge // "" keeps the attempt's
	webroot   string         // "" keeps the attempt's
	noWebroot bool           // the standalone responder
	ips       []string
	extra     []string
	sudo      bool
	// rehearse: on Let's Encrypt staging (or the user's own CA again).
	rehearse bool
}

// issueCmd is a complete "ipcert issue" for the failed attempt with the
// changes a fix names: its addresses, its CA (staging for a rehearsal of
// Let's Encrypt), the CA's root, the challenge and web root, --agree-tos
// (a rehearsal may need a new account) and the state directory.
func (g *diag) issueCmd(a issueArgs) Cmd {
	c := Cmd{"ipcert", "issue"}
	if a.sudo {
		c = append(Cmd{"sudo"}, c...)
	}
	ca := g.ev.CA
	switch {
	case g.own() || ca == cachoice.Local:
	case a.rehearse || ca == "":
		ca = cachoice.Staging
	}
	c = append(c, "--ca", string(ca))
	if g.ev.CARoot != "" && g.own() {
		c = append(c, "--ca-root", g.ev.CARoot)
	}
	ips := a.ips
	if len(ips) == 0 {
		ips = g.idents()
	}
	if len(ips) == 0 {
		// The failure named no address (an account or order step): the
		// one this machine has now.
		ips = []string{"auto"}
	}
	for _, ip := range ips {
		c = append(c, "--ip", ip)
	}
	ch := g.ev.Challenge
	if a.challenge != "" {
		ch = a.challenge
	}
	wr := g.ev.WebRoot
	if a.webroot != "" {
		wr = a.webroot
	}
	if a.noWebroot || ch == acmeflow.ChallengeTLSALPN01 {
		wr = ""
	}
	if ch != "" && (ch != acmeflow.ChallengeHTTP01 || a.challenge != "") {
		c = append(c, "--challenge", string(ch))
	}
	if wr != "" {
		c = append(c, "--webroot", wr)
	}
	c = append(c, a.extra...)
	c = append(c, "--agree-tos")
	return append(c, StateDirArgs(g.ev.StateDir)...)
}

// stagingCmd is the rehearsal of the failed attempt, with extra flags.
func (g *diag) stagingCmd(extra ...string) Cmd {
	a := issueArgs{rehearse: true}
	for i := 0; i < len(extra); i++ {
		switch extra[i] {
		case "--challenge":
			a.challenge = spec.Challenge(extra[i+1])
			i++
		case "--webroot":
			a.webroot = extra[i+1]
			i++
		default:
			a.extra = append(a.extra, extra[i])
		}
	}
	return g.issueCmd(a)
}

// doctorCmd is "ipcert doctor ADDR", with a real order from outside when
// probe is set (--agree-tos: the probe may register a staging account).
func (g *diag) doctorCmd(probe bool) Cmd {
	a := g.addr()
	if ids := g.idents(); a == "" && len(ids) > 0 {
		a = ids[0]
	}
	return doctorCmd(a, g.ev.StateDir, probe)
}

// doctorCmd is "ipcert doctor ADDR" of the state directory, with a real
// order from outside when probe is set (--probe needs an address).
func doctorCmd(addr, stateDir string, probe bool) Cmd {
	c := Cmd{"ipcert", "doctor"}
	if addr != "" {
		c = append(c, addr)
		if probe {
			c = append(c, "--probe", "--agree-tos")
		}
	}
	return append(c, StateDirArgs(stateDir)...)
}

// preflightCmd is "ipcert preflight" for the attempt's addresses and CA.
func (g *diag) preflightCmd(extra ...string) Cmd {
	c := Cmd{"ipcert", "preflight"}
	for _, ip := range g.idents() {
		c = append(c, "--ip", ip)
	}
	switch {
	case g.ev.CA == cachoice.Local:
		c = append(c, "--ca", cachoice.Local)
	case g.own() && strings.HasPrefix(string(g.ev.CA), "https://"):
		c = append(c, "--ca", string(g.ev.CA))
	}
	return append(c, extra...)
}

// statusCmd is "ipcert status" of the attempt's state directory.
func (g *diag) statusCmd() Cmd {
	return append(Cmd{"ipcert", "status"}, StateDirArgs(g.ev.StateDir)...)
}

// idents are the attempt's addresses: all of the order's, else the one
// that failed.
func (g *diag) idents() []string {
	if len(g.ev.Identifiers) > 0 {
		return g.ev.Identifiers
	}
	if g.d.Identifier != "" {
		return []string{g.d.Identifier}
	}
	return nil
}

// stateDir is the attempt's state directory, for commands that look at it.
func (g *diag) stateDir() string {
	if g.ev.StateDir != "" {
		return g.ev.StateDir
	}
	return "/etc/ipcert"
}
