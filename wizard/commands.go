package wizard

import (
	"strings"

	"github.com/ipcert/ipcert/diagnosis"
)

// ipcertVerbs are the subcommands after which "ipcert" in a text starts
// a command.
var ipcertVerbs = map[string]bool{
	"issue": true, "renew": true, "preflight": true, "doctor": true, "status": true, "snippet": true,
	"timer": true, "verify": true, "deploy": true, "demo": true, "map-ports": true,
}

// prose prepares a fix written by ipcert (a preflight check's fix, the
// diagnosis's cause, fix and retry advice, an install's fix) for a screen:
// every ipcert command in it is made complete for this run (wizardCommand:
// the run's addresses, CA and state directory) and kept on one line as a
// command (Theme.Command), as is a "getent hosts NAME". A command runs to
// the end of its sentence: the end of the text, or a ". ", "; " or ", "
// followed by a word that is no flag. Never for what was seen (evidence, a
// server's output, a process name): another user's text must not become
// a suggested command.
func (m *Model) prose(s string) string {
	var b strings.Builder
	for {
		i, n := commandAt(s)
		if i < 0 {
			b.WriteString(s)
			return b.String()
		}
		cmd := s[i : i+n]
		b.WriteString(s[:i])
		if strings.HasPrefix(cmd, "ipcert ") || strings.HasPrefix(cmd, "sudo ipcert ") {
			cmd = m.wizardCommand(diagnosis.Cmd(strings.Fields(cmd)))
		}
		b.WriteString(m.theme.Command(cmd))
		s = s[i+n:]
	}
}

// commandAt finds the first command in s: its start and length, or -1.
func commandAt(s string) (int, int) {
	words := strings.Split(s, " ")
	pos := 0
	for k, w := range words {
		start := pos
		pos += len(w) + 1
		// "(ipcert preflight ...)": the command starts after the bracket.
		if t := strings.TrimLeft(w, "(\"'`"); t != w {
			start += len(w) - len(t)
			w = t
		}
		var rest []string
		switch {
		case w == "sudo" && k+2 < len(words) && words[k+1] == "ipcert" && ipcertVerbs[words[k+2]]:
			rest = words[k+3:]
			w = "sudo ipcert " + words[k+2]
		case w == "ipcert" && k+1 < len(words) && ipcertVerbs[strings.TrimRight(words[k+1], ".,;:)")]:
			if v := words[k+1]; strings.ContainsAny(v[len(v)-1:], ".,;:)") {
				return start, len(w) + len(v) // "ipcert doctor." ends with the sentence
			}
			rest = words[k+2:]
			w = "ipcert " + words[k+1]
		case w == "getent" && k+2 < len(words) && words[k+1] == "hosts":
			rest = words[k+3:]
			w = "getent hosts " + strings.TrimRight(words[k+2], ".,;:)")
			if len(w) < len("getent hosts ")+len(words[k+2]) {
				return start, len(w)
			}
		default:
			continue
		}
		n := len(w)
		for j, a := range rest {
			end := strings.TrimRight(a, ".,;:)")
			value := j > 0 && strings.HasPrefix(rest[j-1], "--") && !boolFlags[rest[j-1]]
			if end == "" || !strings.HasPrefix(a, "-") && !value && !looksLikeArg(a) {
				break
			}
			n += 1 + len(end)
			if end != a { // the sentence (or the clause) ends here
				break
			}
		}
		return start, n
	}
	return -1, 0
}

// boolFlags are the flags that take no value.
var boolFlags = map[string]bool{
	"--agree-tos": true, "--dry-run": true, "--write": true, "--force": true, "--json": true,
	"--offline": true, "--map-ports": true, "--check": true, "--quiet": true, "--debug": true,
}

// looksLikeArg: an argument of a command, not a word of prose: an
// address, a path, a number, a name with a dot or a dash.
func looksLikeArg(a string) bool {
	a = strings.TrimRight(a, ".,;:)")
	if a == "" {
		return false
	}
	if strings.ContainsAny(a, "/.:-_0123456789") {
		return true
	}
	switch a {
	case "nginx", "apache", "haproxy", "caddy", "install", "status", "remove", "staging", "production", "local":
		return true
	}
	return false
}
