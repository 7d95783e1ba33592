package rules

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// envList is an ordered environment with BuildKit's llb.EnvList
// semantics: setting a key moves it to the end.
type envList struct {
	keys []string
	vals map[string]string
	snap []string // cached slice(), nil when stale
}

func newEnvList() *envList { return &envList{vals: map[string]string{}} }

func (e *envList) Get(k string) (string, bool) {
	v, ok := e.vals[k]
	return v, ok
}

// set adds or replaces k, moving it to the end.
func (e *envList) set(k, v string) {
	if _, ok := e.vals[k]; ok {
		for i, x := range e.keys {
			if x == k {
				e.keys = append(e.keys[:i], e.keys[i+1:]...)
				break
			}
		}
	}
	e.keys = append(e.keys, k)
	e.vals[k] = v
	e.snap = nil
}

func (e *envList) clone() *envList {
	c := &envList{keys: append([]string(nil), e.keys...), vals: make(map[string]string, len(e.vals))}
	for k, v := range e.vals {
		c.vals[k] = v
	}
	return c
}

// slice returns the environment as K=V strings in order. The result is
// shared between calls until the next set and must not be modified.
func (e *envList) slice() []string {
	if e.snap != nil {
		return e.snap
	}
	out := make([]string, 0, len(e.keys))
	for _, k := range e.keys {
		out = append(out, k+"="+e.vals[k])
	}
	e.snap = out
	return out
}

// globalArgs computes the arguments usable in FROM lines: the automatic
// platform arguments, then the global ARGs with their defaults or the given
// build arguments (BuildKit's defaultArgs and buildMetaArgs).
func (f *File) globalArgs(target string, build, tgt Platform, buildArgs map[string]string) (*envList, error) {
	return f.addMetaArgs(f.autoArgs(target, build, tgt, buildArgs), buildArgs)
}

// autoArgs are the automatic platform and target arguments, each
// overridden by a build arg of its name.
func (f *File) autoArgs(target string, build, tgt Platform, buildArgs map[string]string) *envList {
	if target == "" {
		target = f.stages[len(f.stages)-1].from.cmd.(*fromCmd).name
	}
	if target == "" {
		target = "default"
	}
	env := &envList{keys: make([]string, 0, 16), vals: make(map[string]string, 16)}
	for _, kv := range [...][2]string{
		{"BUILDPLATFORM", build.String()},
		{"BUILDOS", build.OS},
		{"BUILDOSVERSION", ""},
		{"BUILDARCH", build.Arch},
		{"BUILDVARIANT", build.Variant},
		{"TARGETPLATFORM", tgt.String()},
		{"TARGETOS", tgt.OS},
		{"TARGETOSVERSION", ""},
		{"TARGETARCH", tgt.Arch},
		{"TARGETVARIANT", tgt.Variant},
		{"TARGETSTAGE", target},
	} {
		v := kv[1]
		if o, ok := buildArgs[kv[0]]; ok {
			v = o
		}
		env.set(kv[0], v)
	}
	return env
}

// addMetaArgs adds the global ARGs to env, each with its build arg or else
// its default expanded in env.
func (f *File) addMetaArgs(env *envList, buildArgs map[string]string) (*envList, error) {
	lx := lexer{escape: f.Escape, budget: newBudget()}
	for _, in := range f.metaArgs {
		for _, a := range in.cmd.(*argCmd).args {
			if v, ok := buildArgs[a.Key]; ok {
				env.set(a.Key, v)
				continue
			}
			if a.Value == nil {
				continue
			}
			v, err := lx.word(*a.Value, env)
			if err != nil {
				return nil, f.errorf(in.Pos, "%v", err)
			}
			env.set(a.Key, v)
		}
	}
	return env, nil
}

// stageNode is a stage with its base and COPY --from sources resolved.
type stageNode struct {
	def       *stageDef
	name      string // lower-case stage name, "" if unnamed
	base      string // expanded base name
	baseStage *stageNode
	deps      []*fromRef
}

// label is the stage's Label.
func (s *stageNode) label() string { return stageLabel(s.name, s.def.index) }

// fromRef is the source of a COPY --from.
type fromRef struct {
	in      *Instruction
	from    string
	stage   *stageNode // an earlier or later stage
	image   string     // an external image or named context
	scratch bool
}

// graph is the resolved stage graph of a File for one set of global args.
type graph struct {
	f      *File
	stages []*stageNode
	byName map[string]*stageNode
}

// resolveGraph expands FROM lines with the global args and links stages.
func (f *File) resolveGraph(global *envList) (*graph, error) {
	g := &graph{f: f, byName: map[string]*stageNode{}}
	lx := lexer{escape: f.Escape, budget: newBudget()}
	for _, sd := range f.stages {
		fc := sd.from.cmd.(*fromCmd)
		base, err := lx.word(fc.base, global)
		if err != nil {
			return nil, f.errorf(sd.from.Pos, "%v", err)
		}
		if base == "" {
			return nil, f.errorf(sd.from.Pos, "base name (%s) should not be blank", fc.base)
		}
		n := &stageNode{def: sd, name: fc.name, base: base}
		if b, ok := g.byName[base]; ok {
			n.baseStage = b
		} else if base != "scratch" {
			if err := checkImageRef(base); err != nil {
				return nil, f.errorf(sd.from.Pos, "failed to parse stage name %q: %v", base, err)
			}
		}
		g.stages = append(g.stages, n)
		if n.name != "" {
			g.byName[n.name] = n
		}
	}
	for _, n := range g.stages {
		for _, in := range n.def.cmds {
			c, ok := in.cmd.(*copyCmd)
			if !ok || c.from == "" {
				continue
			}
			ref, err := g.fromRef(in, c.from)
			if err != nil {
				return nil, err
			}
			n.deps = append(n.deps, ref)
		}
	}
	if err := g.checkCycles(); err != nil {
		return nil, err
	}
	return g, nil
}

// fromRef resolves the --from value of a COPY.
func (g *graph) fromRef(in *Instruction, from string) (*fromRef, error) {
	lx := lexer{escape: g.f.Escape}
	if res, err := lx.word(from, nil); err != nil || res != from {
		if err != nil {
			return nil, g.f.errorf(in.Pos, "%v", err)
		}
		return nil, g.f.errorf(in.Pos, "variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround")
	}
	ref := &fromRef{in: in, from: from}
	if i, err := stageIndex(from); err == nil {
		if i < 0 || i >= len(g.stages) {
			return nil, g.f.errorf(in.Pos, "invalid stage index %d", i)
		}
		ref.stage = g.stages[i]
		return ref, nil
	}
	if s, ok := g.byName[strings.ToLower(from)]; ok {
		ref.stage = s
		return ref, nil
	}
	if from == "scratch" {
		ref.scratch = true
		return ref, nil
	}
	if err := checkImageRef(from); err != nil {
		return nil, g.f.errorf(in.Pos, "failed to parse stage name %q: %v", from, err)
	}
	ref.image = from
	return ref, nil
}

// stageIndex is the stage index a --from value names, strconv.Atoi's
// answer without its error value for the names most --from values are.
func stageIndex(from string) (int, error) {
	if from == "" || !strings.ContainsAny(from[:1], "+-0123456789") {
		return 0, errNotIndex
	}
	return strconv.Atoi(from)
}

var errNotIndex = errors.New("not a stage index")

// checkCycles reports a COPY --from cycle between stages.
func (g *graph) checkCycles() error {
	visited := map[*stageNode]bool{}
	onPath := map[*stageNode]bool{}
	var visit func(s *stageNode, first *Instruction) *Instruction
	visit = func(s *stageNode, first *Instruction) *Instruction {
		if visited[s] {
			return nil
		}
		visited[s] = true
		onPath[s] = true
		for _, d := range s.deps {
			if d.stage == nil {
				continue
			}
			f := first
			if f == nil {
				f = d.in
			}
			if onPath[d.stage] {
				return f
			}
			if in := visit(d.stage, f); in != nil {
				return in
			}
		}
		delete(onPath, s)
		return nil
	}
	for _, s := range g.stages {
		if in := visit(s, nil); in != nil {
			return g.f.errorf(in.Pos, "circular dependency detected on stage: %s", s.label())
		}
	}
	return nil
}

// target finds the target stage ("" = the last one).
func (g *graph) target(name string) (*stageNode, error) {
	if name == "" {
		return g.stages[len(g.stages)-1], nil
	}
	if s, ok := g.byName[strings.ToLower(name)]; ok {
		return s, nil
	}
	msg := fmt.Sprintf("target stage %q could not be found", name)
	var names []string
	for _, s := range g.stages {
		if s.name != "" {
			names = append(names, s.name)
		}
	}
	if s, ok := suggest(name, names, true); ok {
		msg += " (did you mean " + s + "?)"
	}
	return nil, &Error{Pos: Pos{File: g.f.Name, Line: 1, Col: 1}, Msg: msg, Source: sourceLine(g.f.src, 1)}
}

// reachable returns the set of stages the target needs.
func (g *graph) reachable(t *stageNode) map[*stageNode]bool {
	seen := map[*stageNode]bool{}
	var walk func(*stageNode)
	walk = func(s *stageNode) {
		if seen[s] {
			return
		}
		seen[s] = true
		if s.baseStage != nil {
			walk(s.baseStage)
		}
		for _, d := range s.deps {
			if d.stage != nil {
				walk(d.stage)
			}
		}
	}
	walk(t)
	return seen
}

// ImageRef is an external image a Containerfile uses, with the position of
// its first use.
type ImageRef struct {
	Name string
	Pos  Pos
}

// RefOption changes what ImageRefs reports.
type RefOption func(*refOptions)

type refOptions struct {
	named     map[string]bool
	platform  Platform
	allStages bool
}

// WithNamedContexts makes ImageRefs skip the given names: they are named
// build contexts (such as "fetch"), not images.
func WithNamedContexts(names ...string) RefOption {
	return func(o *refOptions) {
		for _, n := range names {
			o.named[n] = true
		}
	}
}

// WithRefPlatform sets the target (and build) platform used for the
// automatic platform args; the default is DefaultPlatform().
func WithRefPlatform(p Platform) RefOption {
	return func(o *refOptions) { o.platform = p }
}

// WithAllStages makes ImageRefs list the images of every stage, not only
// those of the stages the target needs (what BuildKit's lint request
// resolves when it is given no target).
func WithAllStages() RefOption {
	return func(o *refOptions) { o.allStages = true }
}

// ImageRefs lists the external images (FROM bases and COPY --from sources
// that are neither "scratch", a stage, nor a named context) used by the
// stages the target stage needs ("" = the last stage), in source order,
// without duplicates. Global ARG defaults and buildArgs are expanded in
// FROM lines.
func (f *File) ImageRefs(target string, buildArgs map[string]string, opts ...RefOption) ([]ImageRef, error) {
	o := refOptions{named: map[string]bool{}, platform: DefaultPlatform()}
	for _, opt := range opts {
		opt(&o)
	}
	global, err := f.globalArgs(target, o.platform, o.platform, buildArgs)
	if err != nil {
		return nil, err
	}
	g, err := f.resolveGraph(global)
	if err != nil {
		return nil, err
	}
	t, err := g.target(target)
	if err != nil {
		return nil, err
	}
	need := g.reachable(t)
	var refs []ImageRef
	seen := map[string]bool{}
	add := func(name string, pos Pos) {
		if name == "scratch" || o.named[name] || seen[name] {
			return
		}
		seen[name] = true
		refs = append(refs, ImageRef{Name: name, Pos: pos})
	}
	for _, s := range g.stages {
		if !need[s] && !o.allStages {
			continue
		}
		if s.baseStage == nil {
			add(s.base, s.def.from.Pos)
		}
		for _, d := range s.deps {
			if d.image != "" {
				add(d.image, d.in.Pos)
			}
		}
	}
	return refs, nil
}
