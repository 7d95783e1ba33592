package rules

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode"
)

// File is a parsed Containerfile: its instructions in source order, split
// into global ARGs and stages. A File is immutable once Parse returns it.
type File struct {
	Name         string
	Instructions []*Instruction
	Escape       rune   // the escape character: '\\' or '`' (# escape=)
	Syntax       string // the # syntax= directive, if any

	src      []byte
	metaArgs []*Instruction // ARGs before the first FROM
	stages   []*stageDef
}

// stageDef is a stage as written: its FROM and the instructions under it.
type stageDef struct {
	index int
	from  *Instruction
	cmds  []*Instruction
}

// Instruction is one instruction as written. Args are the arguments as
// BuildKit's parser splits them, before variable expansion.
type Instruction struct {
	Cmd      string    // upper-case keyword: "RUN", "COPY", ...
	Pos      Pos       // position of the keyword
	EndLine  int       // last source line, heredoc bodies included
	Original string    // the logical line: continuations joined, comments dropped
	Flags    []string  // builder flags as written, e.g. "--network=none"
	Args     []string  // arguments (ENV/LABEL: key, value, separator triples)
	JSON     bool      // the arguments were a JSON array (exec form)
	Heredocs []Heredoc // here-documents, in the order they appear

	flagPos []Pos
	cmd     command // typed form, set by Parse

	// What the checks read (check.go): the keyword as written, the
	// first physical line (BuildKit's location starts there), the line
	// of an empty continuation line's warning (0: none) and the comment
	// lines just above the instruction.
	keyword   string
	startLine int
	emptyCont int
	comments  []string
}

// Heredoc is a here-document attached to an instruction.
type Heredoc struct {
	Name    string // the delimiter word, quotes removed
	FD      int    // the file descriptor written before <<, 0 if none
	Expand  bool   // the delimiter was unquoted: the body is expanded
	Chomp   bool   // <<- : leading tabs are stripped from body lines
	Content string // the body as written, each line with its newline
}

const maxLine = 64 * 1024 // bufio.MaxScanTokenSize, BuildKit's line limit

// Parse parses a Containerfile. It checks syntax only: instructions,
// flags, arguments, heredocs and the stage structure. Every error is an
// *Error carrying the position of the offending text.
func Parse(name string, src []byte) (*File, error) {
	p := &parser{f: &File{Name: name, Escape: '\\', src: src}, src: src}
	if len(src) == 0 {
		return nil, p.f.errorf(Pos{File: name, Line: 1, Col: 1}, "the Dockerfile cannot be empty")
	}
	p.setEscape('\\')
	if err := p.scan(); err != nil {
		return nil, err
	}
	if err := p.f.split(); err != nil {
		return nil, err
	}
	return p.f, nil
}

// Source returns the text f was parsed from; it must not be modified.
func (f *File) Source() []byte { return f.src }

// errorf returns an *Error at pos.
func (f *File) errorf(pos Pos, format string, args ...any) *Error {
	var ie *instrError
	if len(args) == 1 {
		if err, ok := args[0].(error); ok && errors.As(err, &ie) && format == "%v" {
			if ie.pos.Line > 0 {
				pos = ie.pos
			}
		}
	}
	return &Error{Pos: pos, Msg: fmt.Sprintf(format, args...), Source: sourceLine(f.src, pos.Line)}
}

// instrError is an error with a more precise position than the instruction.
type instrError struct {
	pos Pos
	msg string
}

func (e *instrError) Error() string { return e.msg }

// split compiles the instructions and sorts them into global ARGs and
// stages, reporting the first error in source order as BuildKit does.
func (f *File) split() error {
	for _, in := range f.Instructions {
		if err := compile(in); err != nil {
			return f.errorf(in.Pos, "%v", err)
		}
		switch {
		case in.Cmd == "FROM":
			f.stages = append(f.stages, &stageDef{index: len(f.stages), from: in})
		case len(f.stages) == 0 && in.Cmd == "ARG":
			f.metaArgs = append(f.metaArgs, in)
		case len(f.stages) == 0:
			return f.errorf(in.Pos, "no build stage in current context")
		default:
			st := f.stages[len(f.stages)-1]
			st.cmds = append(st.cmds, in)
		}
	}
	if len(f.stages) == 0 {
		return f.errorf(Pos{File: f.Name, Line: 1, Col: 1}, "dockerfile contains no stages to build")
	}
	return nil
}

// parser holds the scanning state of Parse.
type parser struct {
	f   *File
	src []byte
	off int // offset of the next physical line
	ln  int // number of physical lines consumed

	escape        rune
	directiveDone bool
	seen          map[string]bool
	comments      []string // comment lines since the last instruction
}

var directiveRe = regexp.MustCompile(`^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$`)

func (p *parser) setEscape(r rune) {
	p.escape = r
	p.f.Escape = r
}

// nextLine returns the next physical line including its newline.
func (p *parser) nextLine() ([]byte, bool, error) {
	if p.off >= len(p.src) {
		return nil, false, nil
	}
	rest := p.src[p.off:]
	n := bytes.IndexByte(rest, '\n')
	if n < 0 {
		n = len(rest)
	} else {
		n++
	}
	if n > maxLine {
		return nil, false, p.f.errorf(Pos{File: p.f.Name, Line: p.ln + 1, Col: 1},
			"dockerfile line greater than max allowed size of %d", maxLine-1)
	}
	line := rest[:n]
	if p.off == 0 {
		line = bytes.TrimPrefix(line, []byte{0xEF, 0xBB, 0xBF})
	}
	p.off += n
	return line, true, nil
}

func trimNewline(b []byte) []byte { return bytes.TrimRight(b, "\r\n") }

func isComment(b []byte) bool {
	b = bytes.TrimLeftFunc(b, unicode.IsSpace)
	return len(b) > 0 && b[0] == '#'
}

// directive handles a possible parser directive on a processed line and
// reports whether the line was one.
func (p *parser) directive(line []byte) (bool, error) {
	if p.directiveDone {
		return false, nil
	}
	m := directiveRe.FindSubmatch(line)
	if m == nil {
		p.directiveDone = true
		return false, nil
	}
	k := strings.ToLower(string(m[1]))
	if k != "syntax" && k != "escape" && k != "check" {
		p.directiveDone = true
		return false, nil
	}
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	if p.seen[k] {
		return false, fmt.Errorf("only one %s parser directive can be used", k)
	}
	p.seen[k] = true
	v := string(m[2])
	switch k {
	case "escape":
		if v != "`" && v != `\` {
			return false, fmt.Errorf("invalid escape token '%s' does not match ` or \\", v)
		}
		p.setEscape(rune(v[0]))
	case "syntax":
		p.f.Syntax = v
	}
	return true, nil
}

// comment keeps the comment lines above an instruction as BuildKit's
// parser does (its PrevComment): an empty comment forgets them, a parser
// directive is not one. Blank lines keep them.
func (p *parser) comment(raw []byte, directive bool) {
	if isComment(raw) {
		// BuildKit drops the first byte, not the '#': an indented
		// comment keeps its '#'.
		if c := strings.TrimSpace(string(raw[1:])); c == "" {
			p.comments = nil
		} else {
			p.comments = append(p.comments, c)
		}
	}
	if directive && len(p.comments) > 0 {
		p.comments = p.comments[:len(p.comments)-1]
	}
}

// continuation strips a trailing escape (and blanks after it) from line.
func (p *parser) continuation(line []byte) ([]byte, bool) {
	t := bytes.TrimRight(line, " \t")
	if len(t) == 0 || rune(t[len(t)-1]) != p.escape {
		return line, false
	}
	if len(t) >= 2 && rune(t[len(t)-2]) == p.escape {
		return line, false
	}
	return t[:len(t)-1], true
}

// segment maps a range of the logical line back to the source.
type segment struct{ off, line, col int }

type logical struct {
	buf  []byte
	segs []segment
}

func (l *logical) add(b []byte, line, col int) {
	l.segs = append(l.segs, segment{off: len(l.buf), line: line, col: col})
	l.buf = append(l.buf, b...)
}

func (l *logical) pos(file string, off int) Pos {
	s := segment{line: 1, col: 1}
	for _, sg := range l.segs {
		if sg.off > off {
			break
		}
		s = sg
	}
	return Pos{File: file, Line: s.line, Col: s.col + off - s.off}
}

// scan reads the file into instructions (BuildKit's parser.Parse).
func (p *parser) scan() error {
	for {
		raw, ok, err := p.nextLine()
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		p.ln++
		startLine := p.ln
		t := trimNewline(raw)
		trimmed := bytes.TrimLeftFunc(t, unicode.IsSpace)
		col := len(t) - len(trimmed) + 1
		isDirective, err := p.directive(trimmed)
		if err != nil {
			return p.f.errorf(Pos{File: p.f.Name, Line: p.ln, Col: col}, "%v", err)
		}
		p.comment(raw, isDirective)
		if isComment(trimmed) {
			trimmed = nil
		}
		body, cont := p.continuation(trimmed)
		if !cont && len(body) == 0 {
			continue
		}
		var l logical
		l.add(body, startLine, col)
		emptyCont := false
		for cont {
			raw, ok, err := p.nextLine()
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			p.ln++
			t := trimNewline(raw)
			if _, err := p.directive(t); err != nil {
				return p.f.errorf(Pos{File: p.f.Name, Line: p.ln, Col: 1}, "%v", err)
			}
			if isComment(raw) {
				continue
			}
			if len(bytes.TrimLeftFunc(t, unicode.IsSpace)) == 0 {
				emptyCont = true
				continue
			}
			body, cont = p.continuation(t)
			l.add(body, p.ln, 1)
		}
		in, err := p.instruction(&l)
		if err != nil {
			return err
		}
		in.startLine, in.comments = startLine, p.comments
		p.comments = nil
		if emptyCont {
			in.emptyCont = p.ln
		}
		if err := p.heredocs(in, &l); err != nil {
			return err
		}
		in.EndLine = p.ln
		p.f.Instructions = append(p.f.Instructions, in)
	}
	if len(p.f.Instructions) == 0 {
		return p.f.errorf(Pos{File: p.f.Name, Line: max(p.ln, 1), Col: 1}, "file with no instructions")
	}
	return nil
}

// isCmdSpace is BuildKit's reWhitespace class [\t\v\f\r ].
func isCmdSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\v' || c == '\f' || c == '\r'
}

// splitCmd splits s (already trimmed) at the first run of white space.
func splitCmd(s string) (string, string, int) {
	i := 0
	for i < len(s) && !isCmdSpace(s[i]) {
		i++
	}
	j := i
	for j < len(s) && isCmdSpace(s[j]) {
		j++
	}
	return s[:i], s[j:], j
}

// instruction builds an Instruction from a logical line.
func (p *parser) instruction(l *logical) (*Instruction, error) {
	line := string(l.buf)
	lead := len(line) - len(strings.TrimLeftFunc(line, unicode.IsSpace))
	trimmed := strings.TrimSpace(line)
	kw, rest, restOff := splitCmd(trimmed)
	in := &Instruction{
		Cmd:      strings.ToUpper(kw),
		Pos:      l.pos(p.f.Name, lead),
		Original: line,
		keyword:  kw,
	}
	if err := p.node(in, kw, rest, lead+restOff, l); err != nil {
		return nil, err
	}
	return in, nil
}

// node fills in the flags and arguments of in from rest, the text after
// the keyword at offset off of the logical line, splitting it the way
// BuildKit's per-instruction line parsers do.
func (p *parser) node(in *Instruction, kw, rest string, off int, l *logical) error {
	args, flags, flagOffs, argOff := extractFlags(rest, p.escape)
	for _, fo := range flagOffs {
		in.flagPos = append(in.flagPos, l.pos(p.f.Name, off+fo))
	}
	in.Flags = flags
	trimmedArgs := strings.TrimSpace(args)
	argOff += off + len(args) - len(strings.TrimLeftFunc(args, unicode.IsSpace))
	var err error
	switch strings.ToLower(kw) {
	case "add", "copy", "volume":
		in.Args, in.JSON, err = maybeJSONList(trimmedArgs)
	case "run", "cmd", "entrypoint", "shell":
		in.Args, in.JSON, err = maybeJSON(trimmedArgs)
	case "arg":
		in.Args = parseWords(trimmedArgs, p.escape)
	case "env", "label":
		in.Args, err = parseNameVal(trimmedArgs, strings.ToUpper(kw), p.escape)
	case "expose", "from":
		in.Args = splitWhitespace(trimmedArgs)
	case "maintainer", "user", "workdir", "stopsignal":
		if trimmedArgs != "" {
			in.Args = []string{trimmedArgs}
		}
	case "healthcheck":
		in.Args, in.JSON, err = parseHealth(trimmedArgs)
	case "onbuild":
		if trimmedArgs != "" {
			// the trigger is parsed as an instruction of its own
			sub := &Instruction{}
			k2, r2, o2 := splitCmd(trimmedArgs)
			if err := p.node(sub, k2, r2, argOff+o2, l); err != nil {
				return err
			}
			sub.Cmd = strings.ToUpper(k2)
			sub.Pos = l.pos(p.f.Name, argOff)
			in.Args = append([]string{k2}, sub.Args...)
			in.JSON = sub.JSON
			in.cmd = &onbuildCmd{trigger: sub}
		}
	default:
		in.Args = []string{""}
	}
	if err != nil {
		return p.f.errorf(l.pos(p.f.Name, argOff), "%v", err)
	}
	return nil
}

// extractFlags splits leading --flags off line (BuildKit's
// extractBuilderFlags). It returns the rest of the line, the flags, their
// offsets and the offset of the rest.
func extractFlags(line string, escape rune) (string, []string, []int, int) {
	const (
		inSpaces = iota
		inWord
		inQuote
	)
	var words []string
	var offs []int
	phase := inSpaces
	var sb strings.Builder
	quote := byte(0)
	blankOK := false
	start := 0
	var ch byte
	for pos := 0; pos <= len(line); pos++ {
		if pos != len(line) {
			ch = line[pos]
		}
		if phase == inSpaces {
			if pos == len(line) {
				break
			}
			if unicode.IsSpace(rune(ch)) {
				continue
			}
			if ch != '-' || pos+1 == len(line) || line[pos+1] != '-' {
				return line[pos:], words, offs, pos
			}
			phase = inWord
			start = pos
		}
		if (phase == inWord || phase == inQuote) && pos == len(line) {
			if w := sb.String(); w != "--" && (blankOK || len(w) > 0) {
				words = append(words, w)
				offs = append(offs, start)
			}
			break
		}
		if phase == inWord {
			if unicode.IsSpace(rune(ch)) {
				w := sb.String()
				phase = inSpaces
				if w == "--" {
					return line[pos:], words, offs, pos
				}
				if blankOK || len(w) > 0 {
					words = append(words, w)
					offs = append(offs, start)
				}
				sb.Reset()
				blankOK = false
				continue
			}
			if ch == '\'' || ch == '"' {
				quote = ch
				blankOK = true
				phase = inQuote
				continue
			}
			if rune(ch) == escape {
				if pos+1 == len(line) {
					continue
				}
				pos++
				ch = line[pos]
			}
			sb.WriteRune(rune(ch))
			continue
		}
		if phase == inQuote {
			if ch == quote {
				phase = inWord
				continue
			}
			if rune(ch) == escape {
				if pos+1 == len(line) {
					phase = inWord
					continue
				}
				pos++
				ch = line[pos]
			}
			sb.WriteRune(rune(ch))
		}
	}
	return "", words, offs, len(line)
}

// splitWhitespace splits s on runs of [\t\v\f\r ] (s is trimmed).
func splitWhitespace(s string) []string {
	if s == "" {
		return nil
	}
	var out []string
	for {
		w, rest, _ := splitCmd(s)
		out = append(out, w)
		if len(w) == len(s) {
			return out
		}
		s = rest
	}
}

var (
	errNotStringArray = errors.New("when using JSON array syntax, arrays must be comprised of strings only")
	errNotJSONArray   = errors.New("not a JSON array")
)

func parseJSON(rest string) ([]string, error) {
	rest = strings.TrimLeftFunc(rest, unicode.IsSpace)
	if !strings.HasPrefix(rest, "[") {
		return nil, errNotJSONArray
	}
	var arr []any
	if err := json.Unmarshal([]byte(rest), &arr); err != nil {
		return nil, err
	}
	out := make([]string, 0, len(arr))
	for _, v := range arr {
		s, ok := v.(string)
		if !ok {
			return nil, errNotStringArray
		}
		out = append(out, s)
	}
	return out, nil
}

func maybeJSON(rest string) ([]string, bool, error) {
	if rest == "" {
		return nil, false, nil
	}
	args, err := parseJSON(rest)
	if err == nil {
		return args, true, nil
	}
	if err == errNotStringArray {
		return nil, false, err
	}
	return []string{rest}, false, nil
}

func maybeJSONList(rest string) ([]string, bool, error) {
	args, err := parseJSON(rest)
	if err == nil {
		return args, true, nil
	}
	if err == errNotStringArray {
		return nil, false, err
	}
	return splitWhitespace(rest), false, nil
}

func parseHealth(rest string) ([]string, bool, error) {
	sep := 0
	for sep < len(rest) && !unicode.IsSpace(rune(rest[sep])) {
		sep++
	}
	next := sep
	for next < len(rest) && unicode.IsSpace(rune(rest[next])) {
		next++
	}
	if sep == 0 {
		return nil, false, nil
	}
	cmd, isJSON, err := maybeJSON(rest[next:])
	if err != nil {
		return nil, false, err
	}
	return append([]string{rest[:sep]}, cmd...), isJSON, nil
}

// parseWords splits rest into words, keeping quotes and escapes
// (BuildKit's parseWords, used for ARG, ENV and LABEL).
func parseWords(rest string, escape rune) []string {
	const (
		inSpaces = iota
		inWord
		inQuote
	)
	var words []string
	phase := inSpaces
	quote := rune(0)
	blankOK := false
	var sb strings.Builder
	rs := []rune(rest)
	for pos := 0; pos <= len(rs); pos++ {
		var ch rune
		if pos != len(rs) {
			ch = rs[pos]
		}
		if phase == inSpaces {
			if pos == len(rs) {
				break
			}
			if unicode.IsSpace(ch) {
				continue
			}
			phase = inWord
		}
		if (phase == inWord || phase == inQuote) && pos == len(rs) {
			if blankOK || sb.Len() > 0 {
				words = append(words, sb.String())
			}
			break
		}
		if phase == inWord {
			if unicode.IsSpace(ch) {
				phase = inSpaces
				if blankOK || sb.Len() > 0 {
					words = append(words, sb.String())
				}
				sb.Reset()
				blankOK = false
				continue
			}
			if ch == '\'' || ch == '"' {
				quote = ch
				blankOK = true
				phase = inQuote
			}
			if ch == escape {
				if pos+1 == len(rs) {
					continue
				}
				sb.WriteRune(ch)
				pos++
				ch = rs[pos]
			}
			sb.WriteRune(ch)
			continue
		}
		if phase == inQuote {
			if ch == quote {
				phase = inWord
			}
			if ch == escape && quote != '\'' {
				if pos+1 == len(rs) {
					phase = inWord
					continue
				}
				pos++
				sb.WriteRune(ch)
				ch = rs[pos]
			}
			sb.WriteRune(ch)
		}
	}
	return words
}

// parseNameVal parses ENV/LABEL arguments into key, value, separator triples.
func parseNameVal(rest, key string, escape rune) ([]string, error) {
	words := parseWords(rest, escape)
	if len(words) == 0 {
		return nil, nil
	}
	if !strings.Contains(words[0], "=") {
		k, v, _ := splitCmd(rest)
		if v == "" && len(k) == len(rest) {
			return nil, fmt.Errorf("%s must have two arguments", key)
		}
		return []string{k, v, ""}, nil
	}
	var out []string
	for _, w := range words {
		k, v, ok := strings.Cut(w, "=")
		if !ok {
			//lint:ignore ST1005 BuildKit's wording, kept verbatim
			return nil, fmt.Errorf("Syntax error - can't find = in %q. Must be of the form: name=value", w)
		}
		out = append(out, k, v, "=")
	}
	return out, nil
}

var heredocRe = regexp.MustCompile(`^(\d*)<<(-?)\s*([^<]*)$`)

// parseHeredoc recognises a heredoc operator word such as <<-'EOF'.
func parseHeredoc(word string) (*Heredoc, error) {
	if !strings.Contains(word, "<<") {
		return nil, nil
	}
	m := heredocRe.FindStringSubmatch(word)
	if m == nil || m[3] == "" {
		return nil, nil
	}
	fd, _ := strconv.ParseUint(m[1], 10, 0)
	lx := lexer{escape: '\\', skipUnset: true}
	words, err := lx.words(m[3], nil)
	if err != nil {
		return nil, err
	}
	if len(words) != 1 {
		return nil, nil
	}
	lx.rawQuotes = true
	raw, err := lx.words(m[3], nil)
	if err != nil {
		return nil, err
	}
	if len(raw) != len(words) {
		return nil, fmt.Errorf("internal lexing of heredoc produced inconsistent results: %s", m[3])
	}
	quotes := func(s string) int { return strings.Count(s, "'") + strings.Count(s, `"`) }
	return &Heredoc{
		Name:   words[0],
		FD:     int(fd),
		Expand: quotes(words[0]) == quotes(raw[0]),
		Chomp:  m[2] == "-",
	}, nil
}

// canHaveHeredoc reports whether in may carry heredocs.
func canHaveHeredoc(in *Instruction) bool {
	cmd := in.Cmd
	if o, ok := in.cmd.(*onbuildCmd); ok {
		cmd = o.trigger.Cmd
	}
	switch cmd {
	case "RUN", "COPY", "ADD":
		return !in.JSON
	}
	return false
}

// heredocs reads the bodies of the heredocs opened on in's line.
func (p *parser) heredocs(in *Instruction, l *logical) error {
	line := in.Original
	if !canHaveHeredoc(in) || !strings.Contains(line, "<<") {
		return nil
	}
	lx := lexer{escape: '\\', rawQuotes: true, rawEscapes: true, skipUnset: true}
	words, _ := lx.words(line, nil)
	for _, w := range words {
		h, err := parseHeredoc(w)
		if err != nil {
			return p.f.errorf(in.Pos, "%v", err)
		}
		if h == nil {
			continue
		}
		pos := in.Pos
		if i := strings.Index(line, w); i >= 0 {
			pos = l.pos(p.f.Name, i)
		}
		var body strings.Builder
		done := false
		for {
			raw, ok, err := p.nextLine()
			if err != nil {
				return err
			}
			if !ok {
				break
			}
			p.ln++
			t := trimNewline(raw)
			if h.Chomp {
				t = bytes.TrimLeft(t, "\t")
			}
			if string(t) == h.Name {
				done = true
				break
			}
			body.Write(raw)
		}
		if !done {
			return p.f.errorf(pos, "unterminated heredoc")
		}
		h.Content = body.String()
		in.Heredocs = append(in.Heredocs, *h)
	}
	return nil
}
