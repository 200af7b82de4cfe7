package deploy

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"path/filepath"
	"strings"

	"github.com/ipcert/ipcert/internal/safefs"
)

// CheckHookProgram refuses, when run as root, a deploy hook that names a
// file or folder another user could change (the file, or a folder above
// it): renew runs hooks as root after every renewal (issues 12 and 22,
// docs/security.md). The command is split into words as the shell would
// (quotes, backslashes, VAR=value prefixes, ;, &&, ||, |, &, redirections,
// $(...) and `...`), and every word that is a path (absolute, ./ or ../,
// ~) is checked with its parents, wherever it stands: the program, the
// script given to sh, an argument, the value of a variable, a
// redirection's file. A command found through PATH is as trusted as root's
// PATH, and is not checked; nor is what a script itself runs.
func CheckHookProgram(command string) error {
	if os.Geteuid() != 0 {
		return nil
	}
	for _, w := range HookWords(command) {
		p, ok := hookPath(w)
		if !ok {
			continue
		}
		if err := checkHookPath(p); err != nil {
			return err
		}
	}
	return nil
}

// checkHookPath is safefs.CheckOwned, but a device (/dev/null) and a
// sticky folder root owns (/tmp) are fine as words: only what is in them
// counts, and that is a word of its own.
func checkHookPath(p string) error {
	err := safefs.CheckOwned(p, fmt.Sprintf("make it root's (chown root:root %s && chmod go-w %s), or move it to /usr/local/sbin", p, p))
	var ue *safefs.UntrustedError
	if errors.As(err, &ue) && !ue.Link && ue.Uid == 0 {
		if fi, serr := os.Lstat(ue.Path); serr == nil {
			m := fi.Mode()
			if m&os.ModeCharDevice != 0 || (m.IsDir() && m&os.ModeSticky != 0) {
				return nil
			}
		}
	}
	return err
}

// hookPath is the file a word names, when it names one: an absolute path,
// one starting with ./ or ../, or ~ / ~user. A word with a variable or a
// glob is what the shell makes of it at run time and cannot be checked.
func hookPath(w string) (string, bool) {
	if w == "" || strings.ContainsAny(w, "$*?[") {
		return "", false
	}
	if strings.HasPrefix(w, "~") {
		name, rest, _ := strings.Cut(w[1:], "/")
		var home string
		if name == "" {
			home, _ = os.UserHomeDir()
		} else if u, err := user.Lookup(name); err == nil {
			home = u.HomeDir
		}
		if home == "" {
			return "", false
		}
		return filepath.Join(home, rest), true
	}
	if filepath.IsAbs(w) || strings.HasPrefix(w, "./") || strings.HasPrefix(w, "../") || w == "." || w == ".." {
		return w, true
	}
	return "", false
}

// HookWords splits a shell command into the non-empty words the shell
// would see:
// quotes removed, backslash escapes resolved, the value of a VAR=value
// word as a word of its own, operators (; & | && || ( ) < > and
// redirections such as 2>&1) between words, and the commands inside $(...)
// and `...` split too.
func HookWords(cmd string) []string {
	var words []string
	var b strings.Builder
	inWord := false
	flush := func() {
		if inWord && b.Len() > 0 {
			w := b.String()
			if name, val, ok := strings.Cut(w, "="); ok && isShellName(name) {
				words = append(words, val)
			} else {
				words = append(words, w)
			}
		}
		b.Reset()
		inWord = false
	}
	for i := 0; i < len(cmd); i++ {
		c := cmd[i]
		switch {
		case c == '\\' && i+1 < len(cmd):
			i++
			if cmd[i] != '\n' {
				b.WriteByte(cmd[i])
				inWord = true
			}
		case c == '\'':
			j := strings.IndexByte(cmd[i+1:], '\'')
			if j < 0 {
				j = len(cmd) - i - 1
			}
			b.WriteString(cmd[i+1 : i+1+j])
			inWord = true
			i += j + 1
		case c == '"':
			inWord = true
			for i++; i < len(cmd) && cmd[i] != '"'; i++ {
				switch {
				case cmd[i] == '\\' && i+1 < len(cmd) && strings.IndexByte("\"\\$`\n", cmd[i+1]) >= 0:
					i++
					if cmd[i] != '\n' {
						b.WriteByte(cmd[i])
					}
				case cmd[i] == '$' && i+1 < len(cmd) && cmd[i+1] == '(':
					// A command inside the quotes: its words are words.
					flush()
					i++
				case cmd[i] == '`' || cmd[i] == ')':
					flush()
				default:
					b.WriteByte(cmd[i])
					inWord = true
				}
			}
		case c == '$' && i+1 < len(cmd) && cmd[i+1] == '(':
			flush()
			i++
		case strings.IndexByte(" \t\n;&|()<>`", c) >= 0:
			flush()
		default:
			b.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return words
}

func isShellName(s string) bool {
	if s == "" || (s[0] >= '0' && s[0] <= '9') {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}
