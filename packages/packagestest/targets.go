package packagestest

import (
	"bufio"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
)

// Rule is one image's rule in the targets.mk StageX's generator
// (src/targets.py) writes: the out/<image>/index.json target, its
// prerequisites, and the `docker buildx build` command of its recipe.
type Rule struct {
	Image string   // "core-llvm"
	Line  int      // where the rule starts in targets.mk
	Deps  []string // images of the out/<image>/index.json prerequisites, as listed (with repeats)
	Files []string // the other prerequisites: the package's files

	// Flags are the build command's options in order. Make variables are
	// replaced by StageX's defaults (see makeDefaults).
	Flags []Flag
	// Args are the build command's operands after "build": the context
	// directory.
	Args []string
}

// Flag is one option of a build command: "--build-arg" with
// "VERSION=1.0", "--provenance" with "false", "--no-cache" with "".
type Flag struct{ Name, Value string }

// MarshalText writes f as "name=value", or "name" for a flag of boolFlags.
func (f Flag) MarshalText() ([]byte, error) {
	if boolFlags[f.Name] && f.Value == "" {
		return []byte(f.Name), nil
	}
	return []byte(f.Name + "=" + f.Value), nil
}

// UnmarshalText reads what MarshalText writes.
func (f *Flag) UnmarshalText(b []byte) error {
	f.Name, f.Value, _ = strings.Cut(string(b), "=")
	return nil
}

// Values returns the values of every flag named name, in order.
func (r *Rule) Values(name string) []string {
	var out []string
	for _, f := range r.Flags {
		if f.Name == name {
			out = append(out, f.Value)
		}
	}
	return out
}

// Value returns the value of the flag named name, "" when it is absent,
// and an error when it is given more than once.
func (r *Rule) Value(name string) (string, error) {
	vs := r.Values(name)
	switch len(vs) {
	case 0:
		return "", nil
	case 1:
		return vs[0], nil
	}
	return "", fmt.Errorf("%s: %s given %d times", r.Image, name, len(vs))
}

// KeyValues splits the values of every flag named name at their first
// "=" into a map. A key given twice keeps its last value, as buildx does.
func (r *Rule) KeyValues(name string) map[string]string {
	m := map[string]string{}
	for _, v := range r.Values(name) {
		k, val, _ := strings.Cut(v, "=")
		m[k] = val
	}
	return m
}

// UniqueDeps returns Deps sorted, without repeats.
func (r *Rule) UniqueDeps() []string {
	seen := map[string]bool{}
	var out []string
	for _, d := range r.Deps {
		if !seen[d] {
			seen[d] = true
			out = append(out, d)
		}
	}
	sort.Strings(out)
	return out
}

// makeDefaults are the values StageX's Makefile gives the variables a
// rule's build command uses ("make core-llvm" with no overrides).
var makeDefaults = map[string]string{
	"$(BUILDER)":      "docker",
	"$(PLATFORM)":     "linux/amd64",
	"$(PROGRESS)":     "auto",
	"$(EXTRA_ARGS)":   "",
	"$(NOCACHE_FLAG)": "",
	"$(CHECK_FLAG)":   "",
}

// boolFlags are the build options that take no value.
var boolFlags = map[string]bool{"--no-cache": true, "--check": true, "--pull": true, "--load": true, "--push": true}

var ruleStart = regexp.MustCompile(`^out/([^/]+)/index\.json:`)

// ParseTargets reads the image rules of a targets.mk, in file order.
func ParseTargets(r io.Reader) ([]Rule, error) {
	var lines []string
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	var rules []Rule
	for i := 0; i < len(lines); i++ {
		m := ruleStart.FindStringSubmatch(lines[i])
		if m == nil {
			continue
		}
		rule, next, err := parseRule(lines, i, m[1])
		if err != nil {
			return nil, fmt.Errorf("targets.mk:%d: %s: %w", i+1, m[1], err)
		}
		rules = append(rules, rule)
		i = next - 1
	}
	return rules, nil
}

// parseRule parses the rule whose header is lines[i] and returns it with
// the index of the first line after its recipe.
func parseRule(lines []string, i int, image string) (Rule, int, error) {
	rule := Rule{Image: image, Line: i + 1}
	// Prerequisites: the header and its continuation lines.
	prereq := strings.TrimPrefix(lines[i], "out/"+image+"/index.json:")
	for strings.HasSuffix(lines[i], `\`) && i+1 < len(lines) {
		prereq = strings.TrimSuffix(prereq, `\`)
		i++
		prereq += " " + lines[i]
	}
	i++
	for _, f := range strings.Fields(prereq) {
		if d, ok := strings.CutPrefix(f, "out/"); ok && strings.HasSuffix(d, "/index.json") {
			rule.Deps = append(rule.Deps, strings.TrimSuffix(d, "/index.json"))
		} else {
			rule.Files = append(rule.Files, f)
		}
	}
	// The recipe: tab-indented lines, joined where they end in "\".
	var recipe strings.Builder
	for ; i < len(lines) && strings.HasPrefix(lines[i], "\t"); i++ {
		line := strings.TrimPrefix(lines[i], "\t")
		if cont, ok := strings.CutSuffix(line, `\`); ok {
			recipe.WriteString(cont + " ")
			continue
		}
		recipe.WriteString(line + "\n")
	}
	cmd, err := buildCommand(recipe.String())
	if err != nil {
		return rule, i, err
	}
	rule.Flags, rule.Args, err = parseFlags(cmd)
	return rule, i, err
}

// buildCommand returns the words of the recipe's "$(BUILDER) build ..."
// command, up to the pipe into tar, with Make's variables and "$$"
// replaced.
func buildCommand(recipe string) ([]string, error) {
	start := strings.Index(recipe, "$(BUILDER)")
	if start < 0 {
		return nil, fmt.Errorf("no $(BUILDER) build command in the recipe")
	}
	words, err := shellWords(recipe[start:])
	if err != nil {
		return nil, err
	}
	var cmd []string
	for _, w := range words {
		if w == "|" || w == "&&" || w == ";" {
			break
		}
		if v, ok := makeDefaults[w]; ok {
			if v != "" {
				cmd = append(cmd, v)
			}
			continue
		}
		for k, v := range makeDefaults {
			w = strings.ReplaceAll(w, k, v)
		}
		if strings.Contains(w, "$(") {
			return nil, fmt.Errorf("unknown Make variable in %q", w)
		}
		cmd = append(cmd, strings.ReplaceAll(w, "$$", "$"))
	}
	if len(cmd) < 2 || cmd[1] != "build" {
		return nil, fmt.Errorf("build command %q is not \"$(BUILDER) build ...\"", strings.Join(cmd, " "))
	}
	return cmd[2:], nil
}

// parseFlags splits a build command's words (after "build") into options
// and operands: "--name=value", "--name value", "-f value", or a flag
// of boolFlags alone.
func parseFlags(words []string) ([]Flag, []string, error) {
	var flags []Flag
	var args []string
	for i := 0; i < len(words); i++ {
		w := words[i]
		if !strings.HasPrefix(w, "-") {
			args = append(args, w)
			continue
		}
		if name, value, ok := strings.Cut(w, "="); ok {
			flags = append(flags, Flag{name, value})
			continue
		}
		if boolFlags[w] {
			flags = append(flags, Flag{Name: w})
			continue
		}
		if i+1 == len(words) {
			return nil, nil, fmt.Errorf("%s has no value", w)
		}
		flags = append(flags, Flag{w, words[i+1]})
		i++
	}
	return flags, args, nil
}

// shellWords splits s into words the way sh would for the simple commands
// targets.mk holds: blanks separate words, single and double quotes group
// (backslash escapes inside double quotes), and "|", "&&" and ";" are
// words of their own.
func shellWords(s string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	flush := func() {
		if inWord {
			words = append(words, cur.String())
			cur.Reset()
			inWord = false
		}
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			flush()
		case c == '|' || c == ';':
			flush()
			words = append(words, string(c))
		case c == '&' && i+1 < len(s) && s[i+1] == '&':
			flush()
			words = append(words, "&&")
			i++
		case c == '\'':
			end := strings.IndexByte(s[i+1:], '\'')
			if end < 0 {
				return nil, fmt.Errorf("unterminated ' in %q", s)
			}
			cur.WriteString(s[i+1 : i+1+end])
			inWord = true
			i += end + 1
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i == len(s) {
				return nil, fmt.Errorf("unterminated \" in %q", s)
			}
			inWord = true
		default:
			cur.WriteByte(c)
			inWord = true
		}
	}
	flush()
	return words, nil
}
