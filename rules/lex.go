package rules

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"
)

// eof is returned by the lexer's peek and next at the end of the word; it
// prints as U+FFFD like text/scanner's EOF does in BuildKit's messages.
const eof rune = -1

// envGetter looks up a variable for expansion.
type envGetter interface {
	Get(key string) (string, bool)
}

// noEnv is an empty environment.
type noEnv struct{}

func (noEnv) Get(string) (string, bool) { return "", false }

// lexer expands variables and processes quotes in one word the way
// BuildKit's shell.Lex does. The zero value with escape set is the default
// mode used for instruction arguments.
type lexer struct {
	escape     rune
	rawQuotes  bool    // keep quote characters in the result
	rawEscapes bool    // keep escape characters in the result
	skipQuotes bool    // quotes are plain characters
	skipUnset  bool    // leave references to unset variables as written
	vars       *varUse // when set, records the variables looked up
	// budget is what variable expansions may still produce, in bytes,
	// shared by the copies of the lexer of one evaluation; nil gives each
	// run its own maxExpansion.
	budget *int

	env   envGetter
	src   string
	pos   int
	wbuf  strings.Builder // the word buffer, shared by nested stopOn calls
	split bool            // words are wanted, not just the result
}

// varUse is what an expansion looked up, each name once in first-use
// order: the variables found and those unset (BuildKit's
// ProcessWordWithMatches, which the checks read).
type varUse struct {
	matched, unmatched []string
}

// get looks name up, recording the lookup when lx.vars is set.
func (lx *lexer) get(name string) (string, bool) {
	v, ok := lx.env.Get(name)
	if u := lx.vars; u != nil {
		list := &u.unmatched
		if ok {
			list = &u.matched
		}
		if !slices.Contains(*list, name) {
			*list = append(*list, name)
		}
	}
	return v, ok
}

// word expands s as a single word.
func (lx lexer) word(s string, env envGetter) (string, error) {
	if lx.plain(s) {
		return s, nil
	}
	res, _, err := lx.run(s, env, false)
	return res, err
}

// words expands s and splits the result into words.
func (lx lexer) words(s string, env envGetter) ([]string, error) {
	_, words, err := lx.run(s, env, true)
	return words, err
}

// plain reports whether processing s cannot change it: it has no
// variables, quotes or escapes.
func (lx lexer) plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == '$' || c == '\'' || c == '"' || rune(c) == lx.escape || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// maxExpansion bounds the bytes variable expansions produce in one
// evaluation of a Containerfile. A hostile one doubling a value line after
// line, or copying a large one many times, would otherwise ask for more
// memory than any machine has; StageX's largest evaluations produce a few
// hundred kilobytes.
const maxExpansion = 64 << 20

// newBudget returns a budget of maxExpansion bytes, for the lexers of one
// evaluation to share.
func newBudget() *int {
	n := maxExpansion
	return &n
}

// spend takes n bytes from the budget.
func (lx *lexer) spend(n int) error {
	if *lx.budget -= n; *lx.budget < 0 {
		return fmt.Errorf("variable expansions exceed %d MiB", maxExpansion>>20)
	}
	return nil
}

func (lx lexer) run(s string, env envGetter, split bool) (string, []string, error) {
	if lx.budget == nil {
		lx.budget = newBudget()
	}
	lx.split = split
	if env == nil {
		env = noEnv{}
	}
	lx.env = env
	lx.src = s
	lx.pos = 0
	if strings.HasPrefix(s, "\uFEFF") {
		lx.pos = len("\uFEFF") // text/scanner drops a leading BOM
	}
	res, words, err := lx.stopOn(eof, lx.rawEscapes)
	if err != nil {
		return "", []string{}, fmt.Errorf("failed to process %q: %w", s, err)
	}
	return res, words, nil
}

func (lx *lexer) peek() rune {
	if lx.pos >= len(lx.src) {
		return eof
	}
	c := lx.src[lx.pos]
	if c < utf8.RuneSelf {
		return rune(c)
	}
	r, _ := utf8.DecodeRuneInString(lx.src[lx.pos:])
	return r
}

func (lx *lexer) next() rune {
	if lx.pos >= len(lx.src) {
		return eof
	}
	c := lx.src[lx.pos]
	if c < utf8.RuneSelf {
		lx.pos++
		return rune(c)
	}
	r, n := utf8.DecodeRuneInString(lx.src[lx.pos:])
	lx.pos += n
	return r
}

// wordSplitter accumulates words: unquoted white space separates them.
// Its buffer is the lexer's, shared with nested ${...} processing, which
// empties it: BuildKit's lexer does the same, so a word such as
// "<<x${V#p}" splits as "${V#p}" when V is unset and kept as written.
type wordSplitter struct {
	buf    *strings.Builder
	words  []string
	inWord bool
}

func (w *wordSplitter) addChar(ch rune) {
	if w.buf == nil {
		return
	}
	if unicode.IsSpace(ch) {
		if w.inWord && w.buf.Len() != 0 {
			w.words = append(w.words, w.buf.String())
			w.buf.Reset()
			w.inWord = false
		}
		return
	}
	w.addRawChar(ch)
}

func (w *wordSplitter) addRawChar(ch rune) {
	if w.buf == nil {
		return
	}
	w.buf.WriteRune(ch)
	w.inWord = true
}

func (w *wordSplitter) addString(s string) {
	if w.buf == nil {
		return
	}
	for _, ch := range s {
		w.addChar(ch)
	}
}

func (w *wordSplitter) addRawString(s string) {
	if w.buf == nil {
		return
	}
	w.buf.WriteString(s)
	w.inWord = true
}

func (w *wordSplitter) result() []string {
	if w.buf != nil && w.buf.Len() > 0 {
		w.words = append(w.words, w.buf.String())
		w.buf.Reset()
		w.inWord = false
	}
	return w.words
}

// stopOn processes input up to stop (consumed) or the end of input.
func (lx *lexer) stopOn(stop rune, rawEscapes bool) (string, []string, error) {
	var result strings.Builder
	result.Grow(len(lx.src) - lx.pos)
	lx.wbuf.Reset()
	words := wordSplitter{buf: &lx.wbuf}
	if !lx.split {
		words.buf = nil // only the result is wanted
	}
	saved := lx.rawEscapes
	lx.rawEscapes = rawEscapes
	defer func() { lx.rawEscapes = saved }()

	for lx.peek() != eof {
		ch := lx.peek()
		if stop != eof && ch == stop {
			lx.next()
			return result.String(), words.result(), nil
		}
		var special func() (string, error)
		switch {
		case ch == '$':
			special = lx.dollar
		case ch == '<':
			special = lx.possibleHeredoc
		case ch == '\'' && !lx.skipQuotes:
			special = lx.singleQuote
		case ch == '"' && !lx.skipQuotes:
			special = lx.doubleQuote
		}
		if special != nil {
			s, err := special()
			if err == nil && ch == '$' {
				err = lx.spend(len(s))
			}
			if err != nil {
				return "", []string{}, err
			}
			result.WriteString(s)
			if ch == '$' {
				words.addString(s)
			} else {
				words.addRawString(s)
			}
			continue
		}
		ch = lx.next()
		if ch == lx.escape {
			if lx.rawEscapes {
				words.addRawChar(ch)
				result.WriteRune(ch)
			}
			ch = lx.next()
			if ch == eof {
				break
			}
			words.addRawChar(ch)
		} else {
			words.addChar(ch)
		}
		result.WriteRune(ch)
	}
	if stop != eof {
		return "", []string{}, fmt.Errorf("unexpected end of statement while looking for matching %s", string(stop))
	}
	return result.String(), words.result(), nil
}

func (lx *lexer) singleQuote() (string, error) {
	var result strings.Builder
	ch := lx.next()
	if lx.rawQuotes {
		result.WriteRune(ch)
	}
	for {
		ch = lx.next()
		switch ch {
		case eof:
			return "", errors.New("unexpected end of statement while looking for matching single-quote")
		case '\'':
			if lx.rawQuotes {
				result.WriteRune(ch)
			}
			return result.String(), nil
		}
		result.WriteRune(ch)
	}
}

func (lx *lexer) doubleQuote() (string, error) {
	var result strings.Builder
	ch := lx.next()
	if lx.rawQuotes {
		result.WriteRune(ch)
	}
	for {
		switch lx.peek() {
		case eof:
			return "", errors.New("unexpected end of statement while looking for matching double-quote")
		case '"':
			ch := lx.next()
			if lx.rawQuotes {
				result.WriteRune(ch)
			}
			return result.String(), nil
		case '$':
			v, err := lx.dollar()
			if err != nil {
				return "", err
			}
			result.WriteString(v)
		default:
			ch := lx.next()
			if ch == lx.escape {
				if lx.rawEscapes {
					result.WriteRune(ch)
				}
				switch lx.peek() {
				case eof:
					continue
				case '"', '$', lx.escape:
					ch = lx.next()
				}
			}
			result.WriteRune(ch)
		}
	}
}

func (lx *lexer) possibleHeredoc() (string, error) {
	lx.next()
	if lx.peek() != '<' {
		return "<", nil
	}
	lx.next()
	start := lx.pos
	for c := lx.peek(); c == '\t' || c == '\r' || c == ' '; c = lx.peek() {
		lx.next()
	}
	return "<<" + lx.src[start:lx.pos], nil
}

func isSpecialParam(ch rune) bool {
	switch ch {
	case '@', '*', '#', '?', '-', '$', '!', '0':
		return true
	}
	return false
}

func (lx *lexer) name() string {
	start := lx.pos
	for lx.peek() != eof {
		ch := lx.peek()
		if lx.pos == start && unicode.IsDigit(ch) {
			for lx.peek() != eof && unicode.IsDigit(lx.peek()) {
				lx.next()
			}
			return lx.src[start:lx.pos]
		}
		if lx.pos == start && isSpecialParam(ch) {
			lx.next()
			return lx.src[start:lx.pos]
		}
		if !unicode.IsLetter(ch) && !unicode.IsDigit(ch) && ch != '_' {
			break
		}
		lx.next()
	}
	return lx.src[start:lx.pos]
}

func (lx *lexer) dollar() (string, error) {
	lx.next()
	if lx.peek() != '{' {
		name := lx.name()
		if name == "" {
			return "$", nil
		}
		v, ok := lx.get(name)
		if !ok && lx.skipUnset {
			return "$" + name, nil
		}
		return v, nil
	}
	lx.next()
	switch lx.peek() {
	case eof:
		return "", errors.New("syntax error: missing '}'")
	case '{', '}', ':':
		return "", errors.New("syntax error: bad substitution")
	}
	name := lx.name()
	ch := lx.next()
	chs := string(ch)
	nullIsUnset := false
	switch ch {
	case '}':
		v, ok := lx.get(name)
		if !ok && lx.skipUnset {
			return "${" + name + "}", nil
		}
		return v, nil
	case ':':
		nullIsUnset = true
		ch = lx.next()
		chs += string(ch)
		return lx.modifier(name, ch, chs, nullIsUnset)
	case '+', '-', '?', '#', '%':
		return lx.modifier(name, ch, chs, nullIsUnset)
	case '/':
		return lx.replace(name)
	}
	return "", fmt.Errorf("unsupported modifier (%s) in substitution", chs)
}

// modifier handles ${name[:]op word}.
func (lx *lexer) modifier(name string, op rune, ops string, nullIsUnset bool) (string, error) {
	raw := op == '#' || op == '%'
	if nullIsUnset && raw {
		return "", fmt.Errorf("unsupported modifier (%s) in substitution", ops)
	}
	word, _, err := lx.stopOn('}', raw)
	if err != nil {
		if lx.peek() == eof {
			return "", errors.New("syntax error: missing '}'")
		}
		return "", err
	}
	v, set := lx.get(name)
	if lx.skipUnset && !set {
		return "${" + name + ops + word + "}", nil
	}
	switch op {
	case '-':
		if !set || (nullIsUnset && v == "") {
			return word, nil
		}
		return v, nil
	case '+':
		if !set || (nullIsUnset && v == "") {
			return "", nil
		}
		return word, nil
	case '?':
		if !set {
			msg := "is not allowed to be unset"
			if word != "" {
				msg = word
			}
			return "", fmt.Errorf("%s: %s", name, msg)
		}
		if nullIsUnset && v == "" {
			msg := "is not allowed to be empty"
			if word != "" {
				msg = word
			}
			return "", fmt.Errorf("%s: %s", name, msg)
		}
		return v, nil
	case '%', '#':
		greedy := false
		if len(word) > 0 && rune(word[0]) == op {
			greedy = true
			word = word[1:]
		}
		if op == '%' {
			return trimSuffix(word, v, greedy)
		}
		return trimPrefix(word, v, greedy)
	}
	return "", fmt.Errorf("unsupported modifier (%s) in substitution", ops)
}

// replace handles ${name/pattern/replacement} and ${name//pattern/replacement}.
func (lx *lexer) replace(name string) (string, error) {
	all := lx.peek() == '/'
	if all {
		lx.next()
	}
	pattern, _, err := lx.stopOn('/', true)
	if err != nil {
		if lx.peek() == eof {
			return "", errors.New("syntax error: missing '/' in ${}")
		}
		return "", err
	}
	repl, _, err := lx.stopOn('}', true)
	if err != nil {
		if lx.peek() == eof {
			return "", errors.New("syntax error: missing '}'")
		}
		return "", err
	}
	v, set := lx.get(name)
	if lx.skipUnset && !set {
		return "${" + name + "/" + pattern + "/" + repl + "}", nil
	}
	re, err := shellPatternRegexp(pattern, true, false)
	if err != nil {
		return "", fmt.Errorf("invalid pattern (%s) in substitution: %s", pattern, err)
	}
	if all {
		// Every position may match: check the most it can make first.
		if most := len(v) + (len(v)+1)*len(repl); most > *lx.budget {
			if err := lx.spend(most); err != nil {
				return "", err
			}
		}
		return re.ReplaceAllString(v, repl), nil
	}
	if loc := re.FindStringIndex(v); loc != nil {
		v = v[:loc[0]] + repl + v[loc[1]:]
	}
	return v, nil
}

// shellPatternRegexp converts a shell pattern (* ? and \-escapes) to a
// regular expression.
func shellPatternRegexp(pattern string, greedy, anchored bool) (*regexp.Regexp, error) {
	var out strings.Builder
	if anchored {
		out.WriteByte('^')
	}
	star := ".*?"
	if greedy {
		star = ".*"
	}
	rs := []rune(pattern)
	for i := 0; i < len(rs); i++ {
		tok := rs[i]
		switch tok {
		case '*':
			out.WriteString(star)
			continue
		case '?':
			out.WriteByte('.')
			continue
		case '\\':
			if i+1 < len(rs) && (rs[i+1] == '}' || rs[i+1] == '/') {
				continue
			}
			out.WriteByte('\\')
			i++
			tok = eof
			if i < len(rs) {
				tok = rs[i]
			}
			if tok != '*' && tok != '?' && tok != '\\' {
				return nil, fmt.Errorf("invalid escape '\\%c'", tok)
			}
		case '[', ']', '{', '}', '.', '+', '(', ')', '|', '^', '$':
			out.WriteByte('\\')
		}
		out.WriteRune(tok)
	}
	return regexp.Compile(out.String())
}

func trimPrefix(pattern, v string, greedy bool) (string, error) {
	re, err := shellPatternRegexp(pattern, greedy, true)
	if err != nil {
		return "", fmt.Errorf("invalid pattern (%s) in substitution: %s", pattern, err)
	}
	if loc := re.FindStringIndex(v); loc != nil {
		v = v[loc[1]:]
	}
	return v, nil
}

// reversePattern reverses a pattern keeping each \-escape pair in order.
func reversePattern(pattern string) string {
	rs := []rune(pattern)
	out := make([]rune, len(rs))
	last := len(rs) - 1
	for i := 0; i <= last; {
		o := last - i
		if rs[i] == '\\' && i != last {
			out[o-1] = rs[i]
			out[o] = rs[i+1]
			i += 2
			continue
		}
		out[o] = rs[i]
		i++
	}
	return string(out)
}

func reverseString(s string) string {
	rs := []rune(s)
	slices.Reverse(rs)
	return string(rs)
}

func trimSuffix(pattern, v string, greedy bool) (string, error) {
	s, err := trimPrefix(reversePattern(pattern), reverseString(v), greedy)
	if err != nil {
		return "", err
	}
	return reverseString(s), nil
}
