package rules

import (
	"errors"
	"fmt"
	"path"
	"slices"
	"strconv"
	"strings"
)

// COPY and ADD: sources, destinations and flags.

// destPath resolves a COPY destination against the working directory,
// keeping a trailing slash (BuildKit's pathRelativeToWorkingDir).
func destPath(dir, p string) string {
	if path.IsAbs(p) {
		return p
	}
	if p == "." || p == "" {
		p = "./"
	}
	if dir == "" {
		dir = "/"
	}
	if !path.IsAbs(dir) {
		dir = path.Join("/", dir)
	}
	out := path.Join(dir, p)
	if strings.HasSuffix(p, "/") && !strings.HasSuffix(out, "/") {
		out += "/"
	} else if strings.HasSuffix(p, "/.") {
		if out != "/" {
			out += "/"
		}
		out += "."
	}
	return out
}

// absPath is BuildKit's system.NormalizePath("/", p, false) for Linux:
// relative paths are joined to "/" and cleaned, absolute ones kept.
func absPath(p string) string {
	if path.IsAbs(p) {
		return p
	}
	return path.Join("/", p)
}

// cleanKeepSlash cleans an absolute path keeping a trailing "/" or "/."
// (LLB's normalizePath with keepSlash).
func cleanKeepSlash(orig string) string {
	p := path.Clean(orig)
	if strings.HasSuffix(orig, "/") && !strings.HasSuffix(p, "/") {
		p += "/"
	} else if strings.HasSuffix(orig, "/.") {
		if p != "/" {
			p += "/"
		}
		p += "."
	}
	return p
}

// copySource resolves one COPY/ADD source path as dispatchCopy and LLB do.
func copySource(src string, parents bool) CopySource {
	var cs CopySource
	if parents {
		parent, pattern, ok := strings.Cut(src, "/./")
		if !ok {
			pattern, src = src, "/"
		} else {
			src = parent
		}
		pattern = absPath(pattern)
		cs.Include = []string{strings.TrimPrefix(pattern, "/")}
		if !containsWildcards(src) && !containsWildcards(pattern) {
			cs.Required = []string{absPath(path.Join(src, pattern))}
		}
	}
	cs.Path = path.Clean(absPath(src))
	cs.Pattern = containsWildcards(cs.Path)
	return cs
}

func containsWildcards(name string) bool {
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '*', '?', '[':
			return true
		case '\\':
			i++
		}
	}
	return false
}

// checkChmod validates a --chmod value as BuildKit does: an octal mode
// up to 07777 or a symbolic mode such as "u+x,go=rX".
func checkChmod(v string) error {
	n, err := strconv.ParseUint(v, 8, 32)
	if err == nil {
		if n > 0o7777 {
			return fmt.Errorf("invalid chmod parameter: '%v'. it should be octal string and between 0 and 07777", v)
		}
		return nil
	}
	if v != "" && v[0] >= '0' && v[0] <= '9' {
		return fmt.Errorf("invalid chmod parameter: '%v'. it should be octal string and between 0 and 07777", v)
	}
	if !symbolicMode(v) {
		return errors.New("invalid syntax")
	}
	return nil
}

// symbolicMode reports whether s is a chmod(1) symbolic mode:
// clauses of [ugoa]* followed by one or more op [rwxXstugo]* groups,
// separated by commas.
func symbolicMode(s string) bool {
	for {
		for len(s) > 0 && strings.IndexByte("augo", s[0]) >= 0 {
			s = s[1:]
		}
		if s == "" {
			return false
		}
		for {
			if strings.IndexByte("+-=", s[0]) < 0 {
				return false
			}
			s = s[1:]
			for len(s) > 0 && strings.IndexByte("rwxXstugo", s[0]) >= 0 {
				s = s[1:]
			}
			if s == "" {
				return true
			}
			if s[0] == ',' {
				s = s[1:]
				break
			}
		}
	}
}

// ownerName returns the first part of a --chown value ("user" or
// "user:group") that BuildKit looks up by name: not empty, "root" or a
// number.
func ownerName(chown string) string {
	for _, part := range strings.SplitN(chown, ":", 2) {
		if _, err := strconv.ParseInt(part, 10, 32); err != nil && part != "" && part != "root" {
			return part
		}
	}
	return ""
}

func isURL(src string) bool {
	return strings.HasPrefix(src, "http://") || strings.HasPrefix(src, "https://") || strings.HasPrefix(src, "git@")
}

func (ev *evaluator) copy(s *stageState, in *Instruction, c *copyCmd) (*Step, error) {
	kind := Copy
	if c.add {
		kind = Add
	}
	step := s.newStep(kind, in)
	step.EmptyLayer = false
	var err error
	if step.Chown, err = ev.expand(s, in, c.chown); err != nil {
		return nil, err
	}
	if step.Chmod, err = ev.expand(s, in, c.chmod); err != nil {
		return nil, err
	}
	if step.Checksum, err = ev.expand(s, in, c.checksum); err != nil {
		return nil, err
	}
	srcs, err := ev.expandAll(s, in, c.srcs)
	if err != nil {
		return nil, err
	}
	dest, err := ev.expand(s, in, c.dest)
	if err != nil {
		return nil, err
	}
	if c.from != "" {
		if step.From, err = ev.copyFrom(s, in, c); err != nil {
			return nil, err
		}
	}
	step.Dest = cleanKeepSlash(destPath(s.dir, dest))
	step.DestIsDir = strings.HasSuffix(step.Dest, "/") || strings.HasSuffix(step.Dest, "/.")
	step.Link, step.Parents, step.KeepGitDir = c.link, c.parents, c.keepGitDir
	step.Excludes = slices.Clone(c.excludes)
	step.Unpack = c.add
	if c.unpack != nil {
		step.Unpack = *c.unpack
	}
	if step.Chmod != "" {
		if err := checkChmod(step.Chmod); err != nil {
			return nil, ev.f.errorf(in.Pos, "%v", err)
		}
	}
	if name := ownerName(step.Chown); step.Link && step.Chmod == "" && name != "" {
		// --link copies onto an empty file system, which has no users:
		// BuildKit fails ("invalid user index: -1").
		return nil, ev.f.errorf(in.Pos, "--chown=%s with --link: %q is a name, and --link copies onto nothing, where no name can be looked up; use numeric ids", step.Chown, name)
	}
	if step.Checksum != "" {
		switch {
		case len(srcs) != 1:
			return nil, ev.f.errorf(in.Pos, "checksum can't be specified for multiple sources")
		case !isURL(srcs[0]):
			return nil, ev.f.errorf(in.Pos, "checksum requires HTTP(S) or Git sources")
		}
	}
	var b strings.Builder
	b.WriteString(in.Cmd)
	if c.parents {
		b.WriteString(" --parents")
	}
	if step.Chown != "" {
		b.WriteString(" --chown=" + step.Chown)
	}
	if step.Chmod != "" {
		b.WriteString(" --chmod=" + step.Chmod)
	}
	for _, src := range srcs {
		b.WriteString(" " + src)
		if isURL(src) {
			return nil, ev.f.errorf(in.Pos, "%s: remote sources are not supported", src)
		}
		step.Sources = append(step.Sources, copySource(src, c.parents))
	}
	hl := lexer{escape: '\\', skipQuotes: true}
	for _, sc := range c.contents {
		b.WriteString(" <<" + sc.Path)
		data := sc.Data
		if sc.Expand {
			if data, err = ev.expandWith(hl, s, in, data); err != nil {
				return nil, err
			}
		}
		step.Sources = append(step.Sources, CopySource{Heredoc: true, Name: sc.Path, Data: data, Expand: sc.Expand, Mode: 0o644})
	}
	b.WriteString(" " + dest + " # buildkit")
	step.CreatedBy = b.String()
	return step, nil
}

// copyFrom resolves the --from of a COPY at dispatch time.
func (ev *evaluator) copyFrom(s *stageState, in *Instruction, c *copyCmd) (From, error) {
	var ref *fromRef
	for _, d := range s.node.deps {
		if d.in == in {
			ref = d
		}
	}
	if ref == nil {
		return From{}, ev.f.errorf(in.Pos, "COPY --from=%s: unresolved source", c.from)
	}
	switch {
	case ref.stage != nil:
		src, ok := ev.states[ref.stage]
		if !ok || !src.done {
			return From{}, ev.f.errorf(in.Pos, "cannot copy from stage %q, it needs to be defined before current stage %q", c.from, s.node.label())
		}
		return From{Kind: StageSource, Stage: src.out}, nil
	case ref.scratch:
		return From{Kind: ScratchSource}, nil
	case ev.opt.NamedContexts[ref.image]:
		return From{Kind: NamedContext, Ref: ref.image}, nil
	}
	return From{Kind: ImageSource, Ref: ref.image}, nil
}
