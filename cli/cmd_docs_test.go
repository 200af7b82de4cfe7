package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/ipcert/ipcert/internal/testkit"
)

// TestManPagesRender: the pages made from the commands' own help render
// with man without a warning, and name every flag the command has.
func TestManPagesRender(t *testing.T) {
	man := testkit.NeedProgram(t, "man", "man-db")
	dir := t.TempDir()
	if code, _, errs := issueRun(t, nil, "man", dir); code != exitOK {
		t.Fatalf("ipcert man: exit %d %s", code, errs)
	}
	pages, _ := filepath.Glob(filepath.Join(dir, "*.1"))
	if len(pages) < 12 {
		t.Fatalf("%d pages: %v", len(pages), pages)
	}
	for _, p := range pages {
		cmd := exec.Command(man, "--warnings", "-E", "UTF-8", "-l", p)
		cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat")
		var errb strings.Builder
		cmd.Stderr = &errb
		out, err := cmd.Output()
		if err != nil || errb.Len() > 0 || len(out) == 0 {
			t.Errorf("man -l %s: %v\n%s", filepath.Base(p), err, errb.String())
		}
		// The usual sections, and nothing past 80 columns (issue 24 item 13).
		for _, sec := range []string{"\nNAME\n", "\nSYNOPSIS\n", "\nDESCRIPTION\n", "\nEXIT STATUS\n", "\nSEE ALSO\n"} {
			if !strings.Contains(string(out), sec) {
				t.Errorf("%s has no %s section", filepath.Base(p), strings.TrimSpace(sec))
			}
		}
		for _, l := range strings.Split(string(out), "\n") {
			if n := len([]rune(l)); n > 80 {
				t.Errorf("%s: a line of %d columns: %q", filepath.Base(p), n, l)
			}
		}
	}
	for _, page := range []string{"ipcert.1", "ipcert-issue.1", "ipcert-renew.1", "ipcert-timer.1", "ipcert-snippet.1"} {
		cmd := exec.Command(man, "-l", filepath.Join(dir, page))
		cmd.Env = append(os.Environ(), "MANWIDTH=80", "MANPAGER=cat", "PAGER=cat")
		if out, _ := cmd.Output(); !strings.Contains(string(out), "\nEXAMPLES\n") {
			t.Errorf("%s has no EXAMPLES section", page)
		}
	}
	cmd := exec.Command(man, "-l", filepath.Join(dir, "ipcert-issue.1"))
	cmd.Env = append(os.Environ(), "MANWIDTH=200", "MANPAGER=cat", "PAGER=cat")
	out, _ := cmd.Output()
	for _, flag := range []string{"--ip", "--ca", "--webroot-port", "--agree-tos", "--deploy-hook", "--wait"} {
		if !strings.Contains(string(out), flag) {
			t.Errorf("ipcert-issue(1) does not name %s", flag)
		}
	}
}

// TestBashCompletion drives the completion in a real bash: `ipcert
// sn<TAB>` gives snippet, `ipcert renew <TAB>` the certificates of the
// state directory, `--ca <TAB>` its values, a flag of the command.
func TestBashCompletion(t *testing.T) {
	bash := testkit.NeedProgram(t, "bash", "bash")
	// On the PATH as "ipcert", as installed.
	bin := filepath.Join(t.TempDir(), "ipcert")
	if err := os.Symlink(renewBuild(t), bin); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(t.TempDir(), "ipcert.bash")
	out, err := exec.Command(bin, "completion", "bash").Output()
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(script, out, 0o644)
	state := t.TempDir()
	renewIssueLocal(t, state, "--name", "web")
	renewIssueLocal(t, state, "--name", "mail")
	complete := func(words ...string) []string {
		t.Helper()
		line := "source " + script + "; COMP_WORDS=(" + strings.Join(words, " ") + "); COMP_CWORD=" + strconv.Itoa(len(words)-1) + `; _ipcert; printf '%s\n' "${COMPREPLY[@]}"`
		cmd := exec.Command(bash, "--norc", "--noprofile", "-c", line)
		cmd.Env = []string{"PATH=" + filepath.Dir(bin) + ":/usr/bin:/bin", "IPCERT_STATE_DIR=" + state, "HOME=" + t.TempDir()}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("bash: %v\n%s", err, out)
		}
		return strings.Fields(string(out))
	}
	if got := complete("ipcert", "sn"); strings.Join(got, " ") != "snippet" {
		t.Errorf("ipcert sn<TAB>: %q", got)
	}
	if got := complete("ipcert", "renew", "''"); strings.Join(got, " ") != "mail web" {
		t.Errorf("ipcert renew <TAB>: %q", got)
	}
	if got := complete("ipcert", "issue", "--ca", "''"); strings.Join(got, " ") != "staging production local" {
		t.Errorf("ipcert issue --ca <TAB>: %q", got)
	}
	if got := complete("ipcert", "renew", "--for"); strings.Join(got, " ") != "--force" {
		t.Errorf("ipcert renew --for<TAB>: %q", got)
	}
	// The wizard's own flags after a bare ipcert, timer's flags (issue 24
	// item 13).
	if got := complete("ipcert", "--acc"); strings.Join(got, " ") != "--accessible" {
		t.Errorf("ipcert --acc<TAB>: %q", got)
	}
	if got := complete("ipcert", "--ip", "1.2.3.4", "--agr"); strings.Join(got, " ") != "--agree-tos" {
		t.Errorf("ipcert --ip 1.2.3.4 --agr<TAB>: %q", got)
	}
	if got := complete("ipcert", "timer", "install", "--unit"); strings.Join(got, " ") != "--unit-dir" {
		t.Errorf("ipcert timer install --unit<TAB>: %q", got)
	}
	if got := complete("ipcert", "snippet", "nginx", "w"); strings.Join(got, " ") != "web" {
		t.Errorf("ipcert snippet nginx w<TAB>: %q", got)
	}
}
