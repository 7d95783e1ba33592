package main

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// safe returns s fit for a terminal: whatever in it a terminal would act
// on, but newlines and tabs, is written out visibly instead. Package
// definitions are hostile input, and so is what their steps print: a
// step's output, a Containerfile's text, a file or directory name could
// otherwise move the cursor, rewrite lines already printed ("\r[x] done"),
// set the window title, or send a terminal's answer back as input. Every
// text sxmake prints that it did not write itself goes through safe.
// Escaped are the C0 and C1 control characters and DEL (as \x1b or
// \u009b), bytes that are not UTF-8 (\xff: a terminal in 8-bit mode reads
// 0x9b as CSI), and the bidirectional formatting characters (\u202e),
// which reorder what a reader sees.
func safe(s string) string {
	if !needsEscape(s) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n' || r == '\t':
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, `\x%02x`, r)
		case r >= 0x80 && r < 0xa0 || isBidi(r):
			fmt.Fprintf(&b, `\u%04x`, r)
		default:
			b.WriteString(s[i : i+size])
		}
		i += size
	}
	return b.String()
}

// needsEscape reports whether safe would change s.
func needsEscape(s string) bool {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c < 0x20 && c != '\n' && c != '\t' || c >= 0x7f {
			// Non-ASCII: look closer (most of it is plain UTF-8).
			return c < 0x80 || needsEscapeUTF8(s[i:])
		}
	}
	return false
}

func needsEscapeUTF8(s string) bool {
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 || r < 0x20 && r != '\n' && r != '\t' || r >= 0x7f && r < 0xa0 || isBidi(r) {
			return true
		}
		i += size
	}
	return false
}

// isBidi reports whether r is a bidirectional embedding, override or
// isolate character.
func isBidi(r rune) bool {
	return r >= 0x202a && r <= 0x202e || r >= 0x2066 && r <= 0x2069
}

// safeLine is safe(s) on one line: newlines are escaped too.
func safeLine(s string) string {
	return strings.ReplaceAll(safe(s), "\n", `\x0a`)
}
