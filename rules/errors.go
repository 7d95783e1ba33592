package rules

import (
	"bytes"
	"fmt"
	"strings"
)

// Pos is a position in a Containerfile: the file name, a 1-based line and
// a 1-based byte column.
type Pos struct {
	File      string
	Line, Col int
}

// String returns "file:line:col".
// A Line or Col of 0 means unknown and is left out ("file:line", "file").
func (p Pos) String() string {
	switch {
	case p.Line > 0 && p.Col > 0:
		return fmt.Sprintf("%s:%d:%d", p.File, p.Line, p.Col)
	case p.Line > 0:
		return fmt.Sprintf("%s:%d", p.File, p.Line)
	}
	return p.File
}

// Error is a problem located in an input file: a syntax or evaluation
// error in a Containerfile (every error returned by Parse, ImageRefs and
// Evaluate is an *Error), or a package.toml problem (packages.Error).
type Error struct {
	Pos    Pos
	Msg    string
	Source string // the source line at Pos.Line, without its newline
}

// Error returns "file:line:col: msg".
func (e *Error) Error() string {
	return e.Pos.String() + ": " + e.Msg
}

// Detail returns the message, the offending source line and a caret under
// the column, in the style of ninja's lexer errors.
func (e *Error) Detail() string {
	if e.Source == "" || e.Pos.Col == 0 {
		return e.Error()
	}
	var b strings.Builder
	b.WriteString(e.Error())
	b.WriteByte('\n')
	b.WriteString(e.Source)
	b.WriteByte('\n')
	for i := 0; i < e.Pos.Col-1 && i < len(e.Source); i++ {
		if e.Source[i] == '\t' {
			b.WriteByte('\t')
		} else {
			b.WriteByte(' ')
		}
	}
	b.WriteByte('^')
	return b.String()
}

// sourceLine returns line n (1-based) of src without its line ending.
func sourceLine(src []byte, n int) string {
	for i := 1; i < n; i++ {
		j := bytes.IndexByte(src, '\n')
		if j < 0 {
			return ""
		}
		src = src[j+1:]
	}
	if j := bytes.IndexByte(src, '\n'); j >= 0 {
		src = src[:j]
	}
	return strings.TrimRight(string(src), "\r")
}
