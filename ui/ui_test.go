package ui

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/charmbracelet/x/ansi"
	"github.com/muesli/termenv"
)

func env(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

func TestDetectCaps(t *testing.T) {
	for _, c := range []struct {
		env  map[string]string
		flag bool
		want Caps
	}{
		{nil, false, Caps{}},
		{map[string]string{"NO_COLOR": "1"}, false, Caps{NoColor: true}},
		{map[string]string{"TERM": "dumb"}, false, Caps{NoColor: true, Dumb: true, ASCII: true}},
		{map[string]string{"ACCESSIBLE": "1"}, false, Caps{Accessible: true}},
		{map[string]string{"ACCESSIBLE": "0"}, false, Caps{}},
		{nil, true, Caps{Accessible: true}},
		{map[string]string{"LANG": "C"}, false, Caps{ASCII: true}},
		{map[string]string{"LANG": "C", "LC_ALL": "en_US.UTF-8"}, false, Caps{}},
		{map[string]string{"COLORFGBG": "0;15"}, false, Caps{Light: true}},
		{map[string]string{"COLORFGBG": "15;default;0"}, false, Caps{}},
	} {
		if got := DetectCaps(env(c.env), c.flag); got != c.want {
			t.Errorf("DetectCaps(%v, %v) = %+v, want %+v", c.env, c.flag, got, c.want)
		}
	}
}

// TestNoColor: with NO_COLOR the theme renders no colour escapes even on a
// renderer that could.
func TestNoColor(t *testing.T) {
	var buf bytes.Buffer
	r := Renderer(&buf, Caps{NoColor: true})
	if r.ColorProfile() != termenv.Ascii {
		t.Fatalf("profile %v, want Ascii", r.ColorProfile())
	}
	th := NewTheme(r, Caps{NoColor: true})
	s := th.Fail.Render("x") + th.OK.Render("y") + th.Code.Render("z")
	if strings.Contains(s, "\x1b[3") || strings.Contains(s, "\x1b[9") {
		t.Errorf("colour escapes with NO_COLOR: %q", s)
	}
	r2 := Renderer(&buf, Caps{})
	r2.SetColorProfile(termenv.TrueColor)
	if s := NewTheme(r2, Caps{}).Fail.Render("x"); !strings.Contains(s, "\x1b[") {
		t.Errorf("no styling with colours on: %q", s)
	}
}

func TestFrameFitsExactly(t *testing.T) {
	th := NewTheme(Renderer(&bytes.Buffer{}, Caps{NoColor: true}), Caps{NoColor: true})
	body := strings.Repeat("a long line of body text that goes on and on and on and on and on\n", 40)
	for _, sz := range [][2]int{{80, 24}, {60, 20}, {120, 40}, {30, 8}} {
		f := th.Frame(sz[0], sz[1], th.Header(sz[0], 2, 6, "Address", "Preflight"), body, th.HelpLine(sz[0], []KeyHelp{{"enter", "go on"}, {"esc", "back"}, {"q", "quit"}}), nil)
		lines := strings.Split(f, "\n")
		if len(lines) != sz[1] {
			t.Errorf("%v: %d lines", sz, len(lines))
		}
		for _, l := range lines {
			if ansi.StringWidth(l) > sz[0] {
				t.Errorf("%v: line wider than the terminal: %q", sz, l)
			}
		}
		if !strings.Contains(lines[len(lines)-1], "q quit") || !strings.Contains(f, "more below") {
			t.Errorf("%v: help line or clipping marker missing:\n%s", sz, f)
		}
	}
}

func TestHelpLineDropsFromTheEnd(t *testing.T) {
	th := NewTheme(Renderer(&bytes.Buffer{}, Caps{NoColor: true}), Caps{NoColor: true})
	keys := []KeyHelp{{"enter", "continue"}, {"esc", "back"}, {"q", "quit"}}
	// The keys that leave the screen always show (issue 24 item 6).
	if got := th.HelpLine(20, keys); got != "esc back · q quit" {
		t.Errorf("HelpLine(20) = %q", got)
	}
	long := []KeyHelp{{"enter", "choose"}, {"pgup/pgdn", "scroll"}, {"r", "retry"}, {"c", "change challenge"}, {"p", "preflight"}, {"esc", "back"}, {"q", "quit"}}
	if got := th.HelpLine(70, long); got != "enter choose · pgup/pgdn scroll · r retry · esc back · q quit" {
		t.Errorf("HelpLine(70) = %q", got)
	}
	if got := th.HelpLine(80, keys); got != "enter continue · esc back · q quit" {
		t.Errorf("HelpLine(80) = %q", got)
	}
}

func TestChecklistExpandsSelected(t *testing.T) {
	th := NewTheme(Renderer(&bytes.Buffer{}, Caps{NoColor: true, ASCII: true}), Caps{NoColor: true, ASCII: true})
	c := Checklist{Selected: 1, Items: []Item{
		{Title: "Ports", Status: OK, Summary: "free"},
		{Title: "Firewall", Status: Fail, Summary: "tcp 80 dropped", Detail: []string{"nft: drop tcp dport 80"}, Fix: "open tcp 80"},
		{Title: "NAT", Status: Running},
	}}
	got := c.View(th, 60, "|")
	for _, want := range []string{"+ Ports", "> x Firewall", "nft: drop tcp dport 80", "fix: open tcp 80", "| NAT", "checking..."} {
		if !strings.Contains(got, want) {
			t.Errorf("checklist lacks %q:\n%s", want, got)
		}
	}
}

// TestWrapKeepsCommandsWhole: wrapping breaks at spaces only, never
// inside "--agree-tos"; a command stays on one line, or is split between
// its arguments with a shell continuation when it is wider than a line.
func TestWrapKeepsCommandsWhole(t *testing.T) {
	th := NewTheme(Renderer(&bytes.Buffer{}, Caps{NoColor: true}), Caps{NoColor: true})
	for _, w := range []int{30, 44, 56, 60, 80} {
		s := "Fix: read the terms, then run again with --agree-tos: " + th.Command("ipcert issue --ca local --ip 127.0.0.1 --agree-tos") + " and check with " + th.Command("ss -ltnp")
		got := Wrap(s, w)
		f := Plain(got)
		for i, l := range strings.Split(f, "\n") {
			// A command wider than the line stands alone, verbatim.
			if strings.Contains(strings.Split(got, "\n")[i], verbatim) {
				if strings.TrimSpace(l) != "ipcert issue --ca local --ip 127.0.0.1 --agree-tos" {
					t.Errorf("width %d: a verbatim line is not the command alone: %q", w, l)
				}
				continue
			}
			if ansi.StringWidth(l) > w {
				t.Errorf("width %d: line too wide: %q", w, l)
			}
			if strings.HasSuffix(l, "-") || strings.HasPrefix(strings.TrimSpace(l), "tos") || strings.HasSuffix(l, " ss") {
				t.Errorf("width %d: a word or command was split:\n%s", w, f)
			}
		}
		if !strings.Contains(f, "ipcert issue --ca local --ip 127.0.0.1 --agree-tos") || !strings.Contains(f, "ss -ltnp") {
			t.Errorf("width %d: the commands do not survive as printed:\n%s", w, f)
		}
		if w >= 56 && !strings.Contains(f, "ipcert issue --ca local --ip 127.0.0.1 --agree-tos") {
			t.Errorf("width %d: a command that fits a line was split:\n%s", w, f)
		}
	}
	if got := Hang("  web server nginx running, web root /var/www/html with a long tail of words", 13, 40); !strings.Contains(got, "\n             ") {
		t.Errorf("Hang does not indent the continuation:\n%s", got)
	}
	// A break at a double space starts the next line at the indent.
	if got := Hang("             fullchain.pem  privkey.pem  cert.pem  chain.pem  root.pem", 13, 60); got != "             fullchain.pem  privkey.pem  cert.pem  chain.pem\n             root.pem" {
		t.Errorf("Hang at a double space: %q", got)
	}
}

// TestFrameScrolls: a body taller than the room scrolls; every line is
// reachable, the markers say how much is above and below, and the focus
// line is kept in view.
func TestFrameScrolls(t *testing.T) {
	th := NewTheme(Renderer(&bytes.Buffer{}, Caps{NoColor: true}), Caps{NoColor: true})
	var lines []string
	for i := 0; i < 50; i++ {
		lines = append(lines, fmt.Sprintf("line %02d", i))
	}
	body := strings.Join(lines, "\n")
	sc := &Scroll{Focus: -1, FocusSeen: -1}
	f := th.Frame(60, 20, "head", body, "keys", sc)
	if !strings.Contains(f, "line 00") || !strings.Contains(f, "34 more below (pgdn)") {
		t.Fatalf("first frame:\n%s", f)
	}
	seen := map[string]bool{}
	for i := 0; i < 10; i++ {
		for _, l := range strings.Split(th.Frame(60, 20, "head", body, "keys", sc), "\n") {
			seen[l] = true
		}
		sc.Page(1, false)
	}
	for _, l := range lines {
		if !seen[l] {
			t.Errorf("%q never in view", l)
		}
	}
	if !strings.Contains(th.Frame(60, 20, "head", body, "keys", sc), "more above (pgup)") {
		t.Error("no marker for the lines above")
	}
	sc = &Scroll{Focus: 40, FocusSeen: -1}
	if f := th.Frame(60, 20, "head", body, "keys", sc); !strings.Contains(f, "line 40") {
		t.Errorf("the focus line is not in view:\n%s", f)
	}
	sc = &Scroll{Focus: -1, FocusSeen: -1, Follow: true}
	if f := th.Frame(60, 20, "head", body, "keys", sc); !strings.Contains(f, "line 49") {
		t.Errorf("follow does not show the end:\n%s", f)
	}
}

// TestWrapKeepsFlagsInProse: a command written in plain prose is not
// broken before its flags or between a long flag and its value.
func TestWrapKeepsFlagsInProse(t *testing.T) {
	th := NewTheme(Renderer(&bytes.Buffer{}, Caps{NoColor: true}), Caps{NoColor: true})
	s := "Nothing listens: check what holds the port with ss -ltnp and then run again with --ca staging --webroot /var/www/html, or read the docs."
	for w := 20; w <= 80; w++ {
		f := th.fit(Wrap(s, w), 1000)
		for _, l := range strings.Split(f, "\n") {
			if strings.HasSuffix(l, " ss") || strings.HasPrefix(strings.TrimSpace(l), "-ltnp") || strings.HasSuffix(l, "--ca") || strings.HasSuffix(l, "--webroot") {
				t.Errorf("width %d: a command was split:\n%s", w, f)
				break
			}
		}
	}
}

// TestVerbatimNeverReflows: a copyable block (issue 24 item 1) keeps every
// line as it is: no line is wrapped, no token gets a space inside; a line
// wider than the terminal is cut at the edge with a marker, and scrolling
// sideways shows the rest of it, column for column; Plain has it whole.
func TestVerbatimNeverReflows(t *testing.T) {
	th := NewTheme(Renderer(&bytes.Buffer{}, Caps{NoColor: true}), Caps{NoColor: true})
	snippet := "# Written by ipcert: a comment long enough to wrap on a narrow terminal, it must keep its hash\n" +
		"server {\n" +
		"    ssl_certificate /var/lib/ipcert/certs/81.2.69.160/current/fullchain.pem;\n" +
		"    ssl_ciphers ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:ECDHE-ECDSA-AES256-GCM-SHA384;\n" +
		"}"
	body := "The file:\n" + th.Verbatim(snippet, 2)
	if got := Plain(body); got != "The file:\n  "+strings.ReplaceAll(snippet, "\n", "\n  ") {
		t.Fatalf("Plain does not give the block whole:\n%s", got)
	}
	for _, w := range []int{60, 80, 120} {
		sc := &Scroll{Focus: -1, FocusSeen: -1}
		// Which columns of each line were shown, across the shifts.
		shown := make([][]bool, 5)
		for i, l := range strings.Split(snippet, "\n") {
			shown[i] = make([]bool, len(l))
		}
		for range 40 {
			f := th.Frame(w, 24, "head", body, "keys", sc)
			lines := strings.Split(f, "\n")
			if len(lines) != 24 {
				t.Fatalf("%d: %d lines", w, len(lines))
			}
			for i, full := range strings.Split(snippet, "\n") {
				l := strings.TrimRight(lines[3+i], " ")
				if ansi.StringWidth(l) > w {
					t.Errorf("%d: line wider than the terminal: %q", w, l)
				}
				if !strings.HasPrefix(l, "  ") {
					t.Fatalf("%d: the indent is lost: %q", w, l)
				}
				in := l[2:]
				from := 0
				if s, ok := strings.CutPrefix(in, "←"); ok {
					in, from = s, sc.Shift+1
				}
				cut := false
				in, cut = strings.CutSuffix(in, "→")
				if in == "" {
					continue // shifted past its end
				}
				if from+len(in) > len(full) || full[from:from+len(in)] != in {
					t.Fatalf("%d shift %d: %q is not columns %d.. of %q", w, sc.Shift, l, from, full)
				}
				if cut != (from+len(in) < len(full)) {
					t.Errorf("%d shift %d: the marker on the right is wrong: %q", w, sc.Shift, l)
				}
				for c := from; c < from+len(in); c++ {
					shown[i][c] = true
				}
			}
			sc.Sideways(1)
		}
		for i, cols := range shown {
			for c, ok := range cols {
				if !ok {
					t.Errorf("%d: line %d column %d never shown", w, i, c)
					break
				}
			}
		}
		if w >= 120 && sc.Wide != 0 {
			t.Errorf("120: nothing should overflow, Wide=%d", sc.Wide)
		}
	}
}
