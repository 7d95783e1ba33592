package packages

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/stagex/sxmake/rules"
)

// Error is a problem in the package tree's input files. Pos.File is relative
// to the tree root; Pos.Line and Pos.Col are 0 when unknown.
type Error = rules.Error

// newError returns an *Error at pos in src (the text of pos.File).
func newError(pos rules.Pos, src []byte, msg string) *Error {
	return &Error{Pos: pos, Msg: msg, Source: sourceLine(src, pos.Line)}
}

// sourceLine returns line n (1-based) of src without its line ending, or ""
// when there is no such line.
func sourceLine(src []byte, n int) string {
	if n < 1 {
		return ""
	}
	lines := strings.SplitN(string(src), "\n", n+1)
	if len(lines) < n {
		return ""
	}
	return strings.TrimSuffix(lines[n-1], "\r")
}

// manifest is the decoded form of package.toml.
type manifest struct {
	Package struct {
		Name        string   `toml:"name"`
		Version     string   `toml:"version"`
		VersionFrom string   `toml:"version_from"`
		Description string   `toml:"description"`
		License     string   `toml:"license"`
		Website     string   `toml:"website"`
		Subpackages []string `toml:"subpackages"`
		Platforms   []string `toml:"platforms"`
	} `toml:"package"`
	Sources map[string]sourceManifest `toml:"sources"`

	file string               // display path, for errors
	data []byte               // the text, to find positions for errors
	pos  map[string]rules.Pos // position of each key by dotted path; nil until needed
}

type sourceManifest struct {
	Hash    string   `toml:"hash"`
	Mirrors []string `toml:"mirrors"`
	File    string   `toml:"file"`
	Format  string   `toml:"format"`
	Version string   `toml:"version"`
	GitSHA  string   `toml:"git_sha"`
}

// errorf returns an *Error positioned at key (a dotted path such as
// "sources.foo.hash"), or at the nearest enclosing table that has a known
// position, or at no line at all.
func (m *manifest) errorf(key string, format string, args ...any) error {
	return newError(m.keyPos(key), m.data, oneLine(fmt.Sprintf(format, args...)))
}

// oneLine escapes line breaks so that a message quoting input stays on one
// line.
func oneLine(s string) string {
	return strings.NewReplacer("\n", `\n`, "\r", `\r`).Replace(s)
}

func (m *manifest) keyPos(key string) rules.Pos {
	if m.pos == nil {
		m.pos = keyPositions(m.file, m.data)
	}
	for k := key; k != ""; {
		if p, ok := m.pos[k]; ok {
			return p
		}
		i := strings.LastIndexByte(k, '.')
		if i < 0 {
			break
		}
		k = k[:i]
	}
	return rules.Pos{File: m.file}
}

var tomlLineErr = regexp.MustCompile(`^toml: line (\d+) \(last key "([^"]*)"\): (.*)$`)

// decodeManifest decodes package.toml strictly: syntax errors, type errors
// and keys this package does not know are all errors naming file, line and
// column.
func decodeManifest(file string, data []byte) (*manifest, error) {
	m := &manifest{file: file, data: data}
	md, err := toml.Decode(string(data), m)
	if err != nil {
		var pe toml.ParseError
		if errors.As(err, &pe) {
			return nil, newError(rules.Pos{File: file, Line: pe.Position.Line, Col: pe.Position.Col}, data, oneLine(pe.Message))
		}
		if sm := tomlLineErr.FindStringSubmatch(err.Error()); sm != nil {
			pos := m.keyPos(sm[2])
			if pos.Line == 0 {
				pos.Line, _ = strconv.Atoi(sm[1])
			}
			return nil, newError(pos, data, oneLine(sm[2]+": "+sm[3]))
		}
		return nil, &Error{Pos: rules.Pos{File: file}, Msg: oneLine(strings.TrimPrefix(err.Error(), "toml: "))}
	}
	if undecoded := md.Undecoded(); len(undecoded) > 0 {
		var errs []error
		for _, k := range undecoded {
			errs = append(errs, m.errorf(k.String(), "unknown key %s", k))
		}
		return nil, errors.Join(errs...)
	}
	if !md.IsDefined("package") {
		return nil, m.errorf("", "missing [package] table")
	}
	return m, nil
}

// keyPositions finds where each key and table header of a TOML document is,
// by dotted path ("package.name", "sources.foo"). It understands the subset
// of TOML that package.toml files use (tables, bare and quoted keys, dotted
// keys, multi-line strings and arrays); keys it cannot place are simply
// absent.
func keyPositions(file string, data []byte) map[string]rules.Pos {
	pos := make(map[string]rules.Pos)
	var table []string
	inMulti := ""
	for n, line := range strings.Split(string(data), "\n") {
		if inMulti != "" {
			if strings.Count(line, inMulti)%2 == 1 {
				inMulti = ""
			}
			continue
		}
		trimmed := strings.TrimLeft(line, " \t")
		col := len(line) - len(trimmed) + 1
		at := rules.Pos{File: file, Line: n + 1, Col: col}
		if strings.HasPrefix(trimmed, "[") && !strings.HasPrefix(trimmed, "[[") {
			end := strings.IndexByte(trimmed, ']')
			if end < 0 {
				continue
			}
			if k, ok := splitKey(trimmed[1:end]); ok {
				table = k
				pos[strings.Join(k, ".")] = at
			}
			continue
		}
		eq := strings.IndexByte(trimmed, '=')
		if eq < 0 {
			continue
		}
		k, ok := splitKey(trimmed[:eq])
		if !ok {
			continue
		}
		full := append(append([]string(nil), table...), k...)
		pos[strings.Join(full, ".")] = at
		for _, q := range []string{`"""`, `'''`} {
			if strings.Count(trimmed[eq:], q)%2 == 1 {
				inMulti = q
			}
		}
	}
	return pos
}

// splitKey splits a TOML key ("a.b", `a."b.c"`) into its parts.
func splitKey(s string) ([]string, bool) {
	var parts []string
	s = strings.TrimSpace(s)
	for {
		var part string
		switch {
		case strings.HasPrefix(s, `"`) || strings.HasPrefix(s, `'`):
			end := strings.IndexByte(s[1:], s[0])
			if end < 0 {
				return nil, false
			}
			part, s = s[1:end+1], s[end+2:]
		default:
			i := 0
			for i < len(s) && isBareKeyChar(s[i]) {
				i++
			}
			if i == 0 {
				return nil, false
			}
			part, s = s[:i], s[i:]
		}
		parts = append(parts, part)
		s = strings.TrimSpace(s)
		if s == "" {
			return parts, true
		}
		if s[0] != '.' {
			return nil, false
		}
		s = strings.TrimSpace(s[1:])
	}
}

func isBareKeyChar(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-'
}

// sortedKeys returns m's keys in order.
func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
