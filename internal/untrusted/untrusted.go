// Package untrusted is the one place that makes text from outside ipcert
// (the network: a CA's problem documents, a validator's request, a UPnP
// gateway's names and errors, a served certificate's names and issuer; and
// files another program wrote) safe to print on a terminal, in a log line,
// in JSON meant for people or on a wizard screen.
//
// Escaped, as visible \xNN, \uNNNN or \UNNNNNNNN: C0 controls (ESC, BEL,
// line breaks: a forged log line), DEL, C1 controls (U+009B is a CSI on
// its own), invalid UTF-8, the direction overrides and isolates
// (U+202A-U+202E, U+2066-U+2069), every other invisible format character
// (zero-width spaces and joiners, U+2028/U+2029, the BOM, tag characters),
// spaces other than U+0020, and the default-ignorable characters that are
// letters or marks (Hangul fillers, variation selectors). Everything else
// stays as it is, so an address, a path or a word in any script reads as
// sent. Long text is cut, and the cut is marked with how much was left out.
//
// The package is a leaf: it imports only the standard library, so every
// package (acmeflow, preflight, deploy, diagnosis, monitor, cli, wizard)
// can use it.
package untrusted

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// MaxText is how many bytes Text prints of one piece of outside text,
// escapes included (the mark of a cut comes on top): a Let's Encrypt
// problem detail, a certificate's issuer or a gateway's error fits many
// times over; a flood does not.
const MaxText = 1024

// Text is s made safe to print on one line, at most MaxText bytes of it
// plus the mark of a cut.
func Text(s string) string { return escape(s, MaxText, false) }

// TextN is Text with its own limit of max bytes (max <= 0: no limit).
func TextN(s string, max int) string { return escape(s, max, false) }

// Lines is Text for whole blocks of text (a log write, a rendered report):
// line breaks and tabs are kept, everything else escaped, nothing cut.
func Lines(s string) string { return escape(s, 0, true) }

// Strings is Text applied to each element of a copy of ss.
func Strings(ss []string) []string {
	if ss == nil {
		return nil
	}
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = Text(s)
	}
	return out
}

// truncated is the mark put after text that was cut.
func truncated(rest int) string {
	return " [... " + strconv.Itoa(rest) + " more bytes]"
}

func escape(s string, max int, keepLines bool) string {
	if max <= 0 || len(s) <= max {
		clean := true
		for i := 0; i < len(s); i++ {
			if c := s[i]; c < 0x20 || c >= 0x7f {
				clean = false
				break
			}
		}
		if clean {
			return s
		}
	}
	var b strings.Builder
	if max > 0 {
		b.Grow(min(len(s), max) + 32)
	} else {
		b.Grow(len(s) + len(s)/8)
	}
	var esc [10]byte
	i := 0
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		var piece []byte
		switch {
		case r == utf8.RuneError && n == 1:
			piece = hexEscape(esc[:0], 'x', uint32(s[i]), 2)
		case keepLines && (r == '\n' || r == '\t'):
			piece = append(esc[:0], byte(r))
		case Safe(r):
			piece = append(esc[:0], s[i:i+n]...)
		case r < 0x80:
			piece = hexEscape(esc[:0], 'x', uint32(r), 2)
		case r <= 0xffff:
			piece = hexEscape(esc[:0], 'u', uint32(r), 4)
		default:
			piece = hexEscape(esc[:0], 'U', uint32(r), 8)
		}
		if max > 0 && b.Len()+len(piece) > max {
			break
		}
		b.Write(piece)
		i += n
	}
	if i < len(s) {
		b.WriteString(truncated(len(s) - i))
	}
	return b.String()
}

func hexEscape(dst []byte, kind byte, v uint32, digits int) []byte {
	const hex = "0123456789abcdef"
	dst = append(dst, '\\', kind)
	for d := digits - 1; d >= 0; d-- {
		dst = append(dst, hex[(v>>(4*uint(d)))&0xf])
	}
	return dst
}

// Safe reports whether r is printed as itself: a visible character or the
// ASCII space. Controls, format characters (the bidi overrides among
// them), separators other than U+0020, private-use and unassigned code
// points, and the invisible default-ignorable letters and marks are not.
func Safe(r rune) bool {
	if r == ' ' {
		return true
	}
	if r < 0x80 {
		return r > 0x20 && r < 0x7f
	}
	if !unicode.IsPrint(r) {
		return false
	}
	return !invisible(r)
}

// invisible are the Default_Ignorable_Code_Point characters that
// unicode.IsPrint accepts (letters and marks that draw nothing).
func invisible(r rune) bool {
	switch {
	case r == 0x034f, r == 0x115f, r == 0x1160, r == 0x17b4, r == 0x17b5,
		r == 0x3164, r == 0xffa0:
		return true
	case r >= 0x180b && r <= 0x180f:
		return true
	case r >= 0xfe00 && r <= 0xfe0f:
		return true
	case r >= 0xe0000 && r <= 0xe0fff:
		return true
	}
	return false
}
