package untrusted

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// Hostile is the corpus the output-path tests of other packages use too
// (copied there: a test package cannot import another's test file).
var hostile = []string{
	"\x1b]0;owned\x07",            // OSC: set the window title, BEL
	"\x1b[2J\x1b[H",               // clear the screen
	"csi \u009b31m red",           // C1 CSI alone
	"line\nipcert: forged ok\r\n", // a forged log line
	"rtl \u202eexe.txt",           // bidi override
	"iso \u2066x\u2069",           // bidi isolate
	"zw \u200b\u200d\ufeff",       // zero-width, BOM
	"ls \u2028ps \u2029",          // line and paragraph separators
	"nbsp\u00a0x",                 // a space that is not a space
	"fill\u3164er",                // Hangul filler
	"bad \xff\xfe utf8",           // invalid UTF-8
	"tag \U000e0041",              // tag character
	"del \x7f",
	strings.Repeat("A", 100000),
}

func TestTextEscapes(t *testing.T) {
	for in, want := range map[string]string{
		"/.well-known/acme-challenge/abc_-": "/.well-known/acme-challenge/abc_-",
		"/\x1b]0;owned\x07\x1b[2J":          `/\x1b]0;owned\x07\x1b[2J`,
		"line\nforged: ok":                  `line\x0aforged: ok`,
		"csi \u009b2J":                      `csi \u009b2J`,
		"rtl \u202eevil":                    `rtl \u202eevil`,
		"iso \u2066x\u2069":                 `iso \u2066x\u2069`,
		"bad \xff utf8":                     `bad \xff utf8`,
		"café 127.0.0.1 日本":                 "café 127.0.0.1 日本",
		"del \x7f":                          `del \x7f`,
		"zw\u200bj\u200d":                   `zw\u200bj\u200d`,
		"nb\u00a0sp":                        `nb\u00a0sp`,
		"fill\u3164":                        `fill\u3164`,
		"vs\ufe0f":                          `vs\ufe0f`,
		"tag\U000e0041":                     `tag\U000e0041`,
		"sep\u2028":                         `sep\u2028`,
		"priv\ue000":                        `priv\ue000`,
	} {
		if got := Text(in); got != want {
			t.Errorf("Text(%q) = %q, want %q", in, got, want)
		}
	}
	if got := Lines("a\n\tb\x1b[2J\r"); got != "a\n\tb\\x1b[2J\\x0d" {
		t.Errorf("Lines = %q", got)
	}
}

func TestTextCaps(t *testing.T) {
	long := strings.Repeat("A", 5000)
	got := Text(long)
	if !strings.HasPrefix(got, strings.Repeat("A", MaxText)) || !strings.HasSuffix(got, " [... 3976 more bytes]") {
		t.Errorf("Text of 5000 bytes = %.40q...%q", got, got[len(got)-30:])
	}
	// A character the limit would cut in two is left out whole.
	got = TextN("ab日本", 4)
	if got != "ab [... 6 more bytes]" {
		t.Errorf("TextN cut a character: %q", got)
	}
	if TextN(long, 0) != long || Lines(long) != long {
		t.Error("no limit cut the text")
	}
}

// Whatever comes in, what goes out holds nothing a terminal acts on, is
// valid UTF-8, one line, and bounded.
func TestTextHostileCorpus(t *testing.T) {
	for _, in := range hostile {
		for _, out := range []string{Text(in), Lines(in)} {
			if !utf8.ValidString(out) {
				t.Errorf("%.40q: not valid UTF-8: %.60q", in, out)
			}
			for _, r := range out {
				if r != '\n' && r != '\t' && !Safe(r) {
					t.Errorf("%.40q: %U left in %.60q", in, r, out)
				}
			}
		}
		if out := Text(in); strings.ContainsAny(out, "\n\t") || len(out) > MaxText+40 {
			t.Errorf("Text(%.40q) = %.60q (%d bytes)", in, out, len(out))
		}
	}
}

func FuzzText(f *testing.F) {
	for _, s := range hostile {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		out := Text(s)
		if !utf8.ValidString(out) || len(out) > MaxText+40 {
			t.Fatalf("Text(%q) = %q", s, out)
		}
		for _, r := range out {
			if !Safe(r) {
				t.Fatalf("Text(%q) kept %U", s, r)
			}
		}
	})
}

func BenchmarkTextClean(b *testing.B) {
	s := "validator 23.178.112.105:41234 -> 203.0.113.7:80: GET /.well-known/acme-challenge/abc (Host 203.0.113.7) -> 200"
	for b.Loop() {
		Text(s)
	}
}
