package cli

import (
	"bytes"
	"cmp"
	"context"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/ipcert/ipcert/deploy"
	"github.com/ipcert/ipcert/internal/safefs"
	"github.com/ipcert/ipcert/internal/store"
)

const manHelp = `
ipcert man: write the manual pages, ipcert(1) and one per command
(ipcert-issue(1), ...), into a folder. They are made from the commands'
own --help texts and flag definitions, so they say what the binary does.

Usage:
  ipcert man DIR

Example:
  ipcert man /usr/local/share/man/man1 && man ipcert-renew
`

const completionHelp = `
ipcert completion: print the shell completion script for bash, zsh or
fish. It completes commands, flags, --ca values and, for renew, status,
doctor, deploy, snippet and verify, the certificate names in the state
directory (the one --state-dir names on the line, else the default).

Usage:
  ipcert completion bash|zsh|fish

Examples:
  ipcert completion bash | sudo tee /etc/bash_completion.d/ipcert
  ipcert completion zsh > "${fpath[1]}/_ipcert"
  ipcert completion fish > ~/.config/fish/completions/ipcert.fish
`

func init() {
	register(command{name: "man", summary: "write the manual pages into a folder", run: runMan})
	register(command{name: "completion", summary: "print the shell completion script (bash, zsh, fish)", run: runCompletion})
	register(command{name: "__names", summary: "", run: runNames})
}

// cmdDoc is one command as its --help describes it.
type cmdDoc struct {
	name, summary, text string
	flags               []flagDoc
}

type flagDoc struct{ name, arg, usage string }

// docsOf asks every command for its --help (in this process, nothing
// else runs) and reads its text and flags back.
func docsOf(ctx context.Context) []cmdDoc {
	var names []string
	for n, c := range commands {
		if c.summary != "" {
			names = append(names, n)
		}
	}
	slices.Sort(names)
	var out []cmdDoc
	for _, n := range names {
		var b bytes.Buffer
		commands[n].call(ctx, []string{"--help"}, stdio{In: strings.NewReader(""), Out: &b, Err: io.Discard, Env: func(string) string { return "" }})
		d := cmdDoc{name: n, summary: commands[n].summary}
		text, flags, _ := strings.Cut(b.String(), "\nFlags (each also read from the IPCERT_* variable named after it):\n")
		d.text = strings.TrimSpace(text)
		for line := range strings.SplitSeq(flags, "\n") {
			switch {
			case strings.HasPrefix(line, "  --"):
				name, arg, _ := strings.Cut(strings.TrimPrefix(line, "  --"), " ")
				d.flags = append(d.flags, flagDoc{name: name, arg: strings.TrimSpace(arg)})
			case strings.HasPrefix(line, "    \t") && len(d.flags) > 0:
				f := &d.flags[len(d.flags)-1]
				f.usage = strings.TrimSpace(f.usage + " " + strings.TrimPrefix(line, "    \t"))
			}
		}
		out = append(out, d)
	}
	return out
}

func runMan(ctx context.Context, args []string, s stdio) error {
	fs := newFlagSet("man", manHelp, s.Out, s.Err)
	if err := parseFlags(fs, args, s.Env); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return usageErr("give the folder to write the pages into: ipcert man DIR")
	}
	dir := fs.Arg(0)
	// As root: a link another user planted on the way is refused, and
	// each page is renamed into the folder, replacing a link, never
	// following one.
	if err := safefs.MkdirAll(dir, safefs.WriteOptions{}); err != nil {
		return failure("%v", err)
	}
	docs := docsOf(ctx)
	date := time.Now().UTC().Format("2006-01-02")
	pages := map[string]string{"ipcert.1": manMain(docs, date)}
	for _, d := range docs {
		pages["ipcert-"+d.name+".1"] = manPage(d, date)
	}
	for name, page := range pages {
		if err := safefs.WriteFile(filepath.Join(dir, name), []byte(page), 0o644, -1, safefs.WriteOptions{}); err != nil {
			return failure("%v", err)
		}
	}
	fmt.Fprintf(s.Out, "Wrote %d manual pages into %s\n", len(pages), dir)
	return nil
}

// roff escapes text for a man page: backslashes, and a leading dot or
// quote that roff would take for a request.
func roff(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	s = strings.ReplaceAll(s, "-", `\-`)
	var b strings.Builder
	for line := range strings.SplitSeq(s, "\n") {
		if strings.HasPrefix(line, ".") || strings.HasPrefix(line, "'") {
			line = `\&` + line
		}
		b.WriteString(line + "\n")
	}
	return strings.TrimSuffix(b.String(), "\n")
}

func manHeader(title, date, what string) string {
	// .nh: no hyphenation, so a path or a flag is never split with a hyphen.
	return fmt.Sprintf(".TH %s 1 %s \"ipcert %s\" \"ipcert manual\"\n.nh\n.SH NAME\n%s\n", strings.ToUpper(title), date, version, what)
}

func manMain(docs []cmdDoc, date string) string {
	var b strings.Builder
	b.WriteString(manHeader("ipcert", date, `ipcert \- publicly trusted HTTPS certificates for bare IP addresses, kept fresh`))
	b.WriteString(".SH SYNOPSIS\n.B ipcert\n.br\n.B ipcert\n.I COMMAND\n[flags]\n.SH DESCRIPTION\n")
	b.WriteString(roff("ipcert gets a certificate for a public IPv4 or IPv6 address from Let's Encrypt (160-hour certificates of the shortlived profile, validated over port 80 or 443) and renews it on time. Without a command on a terminal it runs the setup wizard; ipcert demo runs it against a built-in test CA with no internet and no root.") + "\n")
	b.WriteString(".SH COMMANDS\n")
	for _, d := range docs {
		fmt.Fprintf(&b, ".TP\n.B %s\n%s (see \\fBipcert\\-%s\\fR(1))\n", d.name, roff(d.summary), d.name)
	}
	b.WriteString(".SH EXIT STATUS\n0 done; 1 failed (the message says why and what to do); 2 bad flags or arguments; 130 interrupted. Each command's page lists its own codes.\n")
	b.WriteString(".SH EXAMPLES\n.nf\n" + roff("# the whole setup against a built-in test CA: no internet, no root\nipcert demo\n# the setup wizard\nsudo ipcert\n# every certificate, and whether the renewal timer is installed\nipcert status") + "\n.fi\n")
	b.WriteString(".SH FILES\n.TP\n.I /etc/ipcert\nthe state as root: accounts, certificates (certs/NAME/current/ is what web servers read), renewal.json\n")
	b.WriteString(".SH SEE ALSO\n")
	var refs []string
	for _, d := range docs {
		refs = append(refs, fmt.Sprintf("\\fBipcert\\-%s\\fR(1)", d.name))
	}
	b.WriteString(strings.Join(refs, ", ") + "\n")
	return b.String()
}

// manWidth is the widest line of a no-fill block: man indents a
// section's body by 7 columns, and pages read on 80.
const manWidth = 72

// helpSections splits a command's --help into the man page's sections:
// the usage lines, the description's paragraphs, the exit codes and the
// examples.
func helpSections(text string) (usage []string, desc [][]string, exit string, examples []string) {
	var paras [][]string
	var cur []string
	for _, l := range strings.Split(text, "\n") {
		if strings.TrimSpace(l) == "" {
			if len(cur) > 0 {
				paras = append(paras, cur)
			}
			cur = nil
			continue
		}
		cur = append(cur, l)
	}
	if len(cur) > 0 {
		paras = append(paras, cur)
	}
	section := ""
	for _, p := range paras {
		head := strings.TrimSpace(p[0])
		switch {
		case head == "Usage:":
			section = "usage"
			p = p[1:]
		case head == "Examples:" || head == "Example:":
			section = "examples"
			p = p[1:]
		case strings.HasPrefix(head, "Exit codes:"):
			exit = strings.TrimSpace(strings.TrimPrefix(strings.Join(p, " "), "Exit codes:"))
			section = ""
			continue
		case !strings.HasPrefix(p[0], " "):
			section = "" // a paragraph of prose ends a list
		}
		switch section {
		case "usage":
			for _, l := range p {
				usage = append(usage, strings.TrimSpace(l))
			}
		case "examples":
			if len(examples) > 0 {
				examples = append(examples, "")
			}
			for _, l := range p {
				l = strings.TrimPrefix(l, "  ")
				// "COMMAND     what it does": the words as a comment above.
				if cmd, what, ok := strings.Cut(l, "   "); ok && !strings.HasPrefix(l, "#") && strings.TrimSpace(what) != "" {
					examples = append(examples, "# "+strings.TrimSpace(what), strings.TrimSpace(cmd))
					continue
				}
				examples = append(examples, l)
			}
		default:
			desc = append(desc, p)
		}
	}
	return usage, desc, exit, examples
}

// manLines breaks a no-fill line wider than manWidth at spaces: a
// command with a shell continuation (" \\"), so it still runs when
// copied; a comment as more comment lines; else with an indent.
func manLines(l string) []string {
	return manLinesAs(l, true)
}

// manLinesAs is manLines; shell false: never a continuation (a synopsis).
func manLinesAs(l string, shell bool) []string {
	if len(l) <= manWidth {
		return []string{l}
	}
	lead := l[:len(l)-len(strings.TrimLeft(l, " "))]
	body := strings.TrimLeft(l, " ")
	cont, tail := lead+"    ", ""
	switch {
	case strings.HasPrefix(body, "#"):
		cont = lead + "# "
	case shell && (strings.HasPrefix(body, "ipcert ") || strings.HasPrefix(body, "sudo ") || strings.HasPrefix(body, "curl ") || strings.HasPrefix(body, "openssl ")):
		tail = " \\"
	}
	var out []string
	line := lead
	for _, w := range strings.Fields(body) {
		if line != lead && line != cont && len(line)+1+len(w)+len(tail) > manWidth {
			out = append(out, line+tail)
			line = cont
		}
		if line != lead && line != cont {
			line += " "
		}
		line += w
	}
	return append(out, line)
}

func manPage(d cmdDoc, date string) string {
	var b strings.Builder
	b.WriteString(manHeader("ipcert-"+d.name, date, fmt.Sprintf(`ipcert\-%s \- %s`, d.name, roff(d.summary))))
	usage, desc, exit, examples := helpSections(d.text)
	if len(usage) == 0 {
		usage = []string{"ipcert " + d.name + " [flags]"}
	}
	b.WriteString(".SH SYNOPSIS\n.nf\n")
	for _, u := range usage {
		for _, l := range manLinesAs(u, false) {
			b.WriteString(roff(l) + "\n")
		}
	}
	b.WriteString(".fi\n.SH DESCRIPTION\n")
	for _, p := range desc {
		if strings.HasPrefix(p[0], " ") {
			b.WriteString(".PP\n.nf\n")
			for _, l := range p {
				for _, x := range manLines(l) {
					b.WriteString(roff(x) + "\n")
				}
			}
			b.WriteString(".fi\n")
			continue
		}
		b.WriteString(".PP\n" + roff(strings.Join(p, "\n")) + "\n")
	}
	if len(d.flags) > 0 {
		b.WriteString(".SH OPTIONS\nEach flag can also be given as the IPCERT_* variable named after it (\\-\\-state\\-dir is IPCERT_STATE_DIR).\n")
		for _, f := range d.flags {
			fmt.Fprintf(&b, ".TP\n\\fB\\-\\-%s\\fR", roff(f.name))
			if f.arg != "" {
				fmt.Fprintf(&b, " \\fI%s\\fR", roff(f.arg))
			}
			fmt.Fprintf(&b, "\n%s\n", roff(f.usage))
		}
	}
	if exit == "" {
		exit = "0 done; 1 failed; 2 bad flags or arguments."
	}
	b.WriteString(".SH EXIT STATUS\n" + roff(exit) + "\n")
	if len(examples) > 0 {
		b.WriteString(".SH EXAMPLES\n.nf\n")
		for _, e := range examples {
			for _, l := range manLines(e) {
				b.WriteString(roff(l) + "\n")
			}
		}
		b.WriteString(".fi\n")
	}
	b.WriteString(".SH SEE ALSO\n\\fBipcert\\fR(1)\n")
	return b.String()
}

func runCompletion(ctx context.Context, args []string, s stdio) error {
	fs := newFlagSet("completion", completionHelp, s.Out, s.Err)
	if err := parseFlags(fs, args, s.Env); err != nil {
		return err
	}
	shells := map[string]func([]cmdDoc) string{"bash": completionBash, "zsh": completionZsh, "fish": completionFish}
	gen, ok := shells[fs.Arg(0)]
	if fs.NArg() == 1 && !ok {
		return usageErr("%q is not supported: ipcert has completion scripts for bash, zsh and fish only", fs.Arg(0))
	}
	if fs.NArg() != 1 {
		return usageErr("give the shell: bash, zsh or fish (ipcert completion bash)")
	}
	fmt.Fprint(s.Out, gen(docsOf(ctx)))
	return nil
}

// runNames lists the certificate names of the state directory, for the
// completion scripts (hidden).
func runNames(ctx context.Context, args []string, s stdio) error {
	var cf commonFlags
	fs := newFlagSet("__names", "", io.Discard, io.Discard)
	cf.register(fs)
	if err := parseFlags(fs, args, s.Env); err != nil {
		// Completion shows nothing of it: the exit code only.
		return exitCode(exitStatus("", err, io.Discard))
	}
	// Completion must never create a state directory: only an existing
	// one is opened.
	root := cmp.Or(cf.stateDir, store.DefaultRoot(s.Env, os.Getuid()))
	if _, err := os.Stat(filepath.Join(root, "certs")); err != nil {
		return exitCode(exitFailure)
	}
	st, err := cf.openStore(func(k string) string { return map[string]string{"IPCERT_STATE_DIR": root}[k] })
	if err != nil {
		return exitCode(exitFailure)
	}
	names, _ := st.Names()
	for _, n := range names {
		fmt.Fprintln(s.Out, n)
	}
	return nil
}

// Words completed as arguments: the services of the catalogue
// (deploy.Kinds, for snippet and --reload), timer's verbs, the shells of
// completion.
var (
	completionServers = kindWords()
	completionTimer   = "install remove status"
	completionShells  = "bash zsh fish"
)

func kindWords() string { return strings.Join(kindNames(), " ") }

func kindNames() []string {
	var w []string
	for _, k := range deploy.Kinds {
		w = append(w, string(k))
	}
	return w
}

// Values completed after a flag, whatever the command.
var completionValues = map[string]string{
	"ca": "staging production local", "challenge": "http-01 tls-alpn-01", "key-type": "ec256 ec384 rsa2048 rsa3072 rsa4096",
	"reload": completionServers, "mode": "systemd cron", "distro": "debian rhel",
}

// Flags that take a file or folder.
var completionFiles = []string{"state-dir", "webroot", "debug", "ca-root", "binary", "unit-dir", "cron-dir", "prometheus"}

// Commands whose arguments are certificate names.
var completionNameCmds = []string{"renew", "status", "doctor", "deploy", "verify"}

// wizardFlagNames are the wizard's flags, offered after a bare "ipcert".
func wizardFlagNames(docs []cmdDoc) string {
	for _, d := range docs {
		if d.name == "wizard" {
			return flagNames(d)
		}
	}
	return ""
}

func flagNames(d cmdDoc) string {
	var f []string
	for _, x := range d.flags {
		f = append(f, "--"+x.name)
	}
	return strings.Join(f, " ")
}

func completionBash(docs []cmdDoc) string {
	var b strings.Builder
	var cmds []string
	for _, d := range docs {
		cmds = append(cmds, d.name)
	}
	b.WriteString("# bash completion for ipcert (ipcert completion bash)\n")
	b.WriteString("_ipcert_names() {\n\tlocal i sd=()\n\tfor ((i = 1; i < ${#COMP_WORDS[@]}; i++)); do\n\t\tif [[ ${COMP_WORDS[i]} == --state-dir ]]; then sd=(--state-dir \"${COMP_WORDS[i+1]}\"); fi\n\tdone\n\t\"${COMP_WORDS[0]}\" __names \"${sd[@]}\" 2>/dev/null\n}\n")
	b.WriteString("_ipcert() {\n\tlocal cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]} cmd=${COMP_WORDS[1]}\n")
	// "ipcert --ip ADDR": flags without a command are the wizard's.
	fmt.Fprintf(&b, "\tif ((COMP_CWORD == 1)); then\n\t\tif [[ $cur == -* ]]; then COMPREPLY=($(compgen -W %q -- \"$cur\")); else COMPREPLY=($(compgen -W %q -- \"$cur\")); fi\n\t\treturn\n\tfi\n", wizardFlagNames(docs), strings.Join(cmds, " "))
	b.WriteString("\t[[ $cmd == -* ]] && cmd=wizard\n")
	b.WriteString("\tcase $prev in\n")
	for _, k := range slices.Sorted(maps.Keys(completionValues)) {
		fmt.Fprintf(&b, "\t--%s) COMPREPLY=($(compgen -W %q -- \"$cur\")); return ;;\n", k, completionValues[k])
	}
	fmt.Fprintf(&b, "\t--%s) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n", strings.Join(completionFiles, "|--"))
	b.WriteString("\tesac\n\tif [[ $cur == -* ]]; then\n\t\tcase $cmd in\n")
	for _, d := range docs {
		fmt.Fprintf(&b, "\t\t%s) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", d.name, flagNames(d))
	}
	b.WriteString("\t\tesac\n\t\treturn\n\tfi\n\tcase $cmd in\n")
	fmt.Fprintf(&b, "\t%s) COMPREPLY=($(compgen -W \"$(_ipcert_names)\" -- \"$cur\")) ;;\n", strings.Join(completionNameCmds, "|"))
	fmt.Fprintf(&b, "\tsnippet)\n\t\tif ((COMP_CWORD == 2)); then COMPREPLY=($(compgen -W %q -- \"$cur\")); else COMPREPLY=($(compgen -W \"$(_ipcert_names)\" -- \"$cur\")); fi ;;\n", completionServers)
	fmt.Fprintf(&b, "\ttimer) ((COMP_CWORD == 2)) && COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", completionTimer)
	fmt.Fprintf(&b, "\tcompletion) COMPREPLY=($(compgen -W %q -- \"$cur\")) ;;\n", completionShells)
	b.WriteString("\tman) COMPREPLY=($(compgen -d -- \"$cur\")) ;;\n")
	b.WriteString("\tesac\n}\ncomplete -F _ipcert ipcert\n")
	return b.String()
}

func completionZsh(docs []cmdDoc) string {
	var b strings.Builder
	b.WriteString("#compdef ipcert\n# zsh completion for ipcert (ipcert completion zsh)\n_ipcert() {\n\tlocal -a cmds\n\tcmds=(\n")
	for _, d := range docs {
		fmt.Fprintf(&b, "\t\t%q\n", d.name+":"+d.summary)
	}
	fmt.Fprintf(&b, "\t)\n\tif (( CURRENT == 2 )); then\n\t\tif [[ $PREFIX == -* ]]; then compadd -- %s; else _describe command cmds; fi\n\t\treturn\n\tfi\n", wizardFlagNames(docs))
	b.WriteString("\tlocal prev=${words[CURRENT-1]}\n\tcase $prev in\n")
	for _, k := range slices.Sorted(maps.Keys(completionValues)) {
		fmt.Fprintf(&b, "\t--%s) compadd -- %s; return ;;\n", k, completionValues[k])
	}
	fmt.Fprintf(&b, "\t--%s) _files; return ;;\n\tesac\n", strings.Join(completionFiles, "|--"))
	b.WriteString("\tlocal cmd=${words[2]}\n\t[[ $cmd == -* ]] && cmd=wizard\n")
	b.WriteString("\tif [[ $PREFIX == -* ]]; then\n\t\tcase $cmd in\n")
	for _, d := range docs {
		fmt.Fprintf(&b, "\t\t%s) compadd -- %s ;;\n", d.name, flagNames(d))
	}
	b.WriteString("\t\tesac\n\t\treturn\n\tfi\n\tcase ${words[2]} in\n")
	fmt.Fprintf(&b, "\t%s) compadd -- ${(f)\"$(${words[1]} __names 2>/dev/null)\"} ;;\n", strings.Join(completionNameCmds, "|"))
	fmt.Fprintf(&b, "\tsnippet) if (( CURRENT == 3 )); then compadd -- %s; else compadd -- ${(f)\"$(${words[1]} __names 2>/dev/null)\"}; fi ;;\n", completionServers)
	fmt.Fprintf(&b, "\ttimer) compadd -- %s ;;\n\tcompletion) compadd -- %s ;;\n\tesac\n}\n_ipcert \"$@\"\n", completionTimer, completionShells)
	return b.String()
}

func completionFish(docs []cmdDoc) string {
	var b strings.Builder
	b.WriteString("# fish completion for ipcert (ipcert completion fish)\ncomplete -c ipcert -f\n")
	for _, d := range docs {
		fmt.Fprintf(&b, "complete -c ipcert -n __fish_use_subcommand -a %s -d %q\n", d.name, d.summary)
		for _, f := range d.flags {
			line := fmt.Sprintf("complete -c ipcert -n '__fish_seen_subcommand_from %s' -l %s", d.name, f.name)
			if v, ok := completionValues[f.name]; ok {
				line += fmt.Sprintf(" -x -a %q", v)
			} else if slices.Contains(completionFiles, f.name) {
				line += " -r -F"
			} else if f.arg != "" {
				line += " -x"
			}
			fmt.Fprintf(&b, "%s -d %q\n", line, f.usage)
		}
	}
	for _, d := range docs {
		if d.name != "wizard" {
			continue
		}
		for _, f := range d.flags { // "ipcert --ip ADDR": the wizard's flags
			fmt.Fprintf(&b, "complete -c ipcert -n __fish_use_subcommand -l %s -d %q\n", f.name, f.usage)
		}
	}
	fmt.Fprintf(&b, "complete -c ipcert -n '__fish_seen_subcommand_from %s snippet' -a '(ipcert __names 2>/dev/null)'\n", strings.Join(completionNameCmds, " "))
	fmt.Fprintf(&b, "complete -c ipcert -n '__fish_seen_subcommand_from timer' -a '%s'\n", completionTimer)
	fmt.Fprintf(&b, "complete -c ipcert -n '__fish_seen_subcommand_from completion' -a '%s'\n", completionShells)
	return b.String()
}
