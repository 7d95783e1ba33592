package rules

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
)

// defaultPath is the PATH BuildKit sets when an image has none.
const defaultPath = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// ImageConfig is the part of an OCI image configuration that instructions
// read and write.
type ImageConfig struct {
	Env          []string
	WorkingDir   string
	Shell        []string
	User         string
	Entrypoint   []string
	Cmd          []string
	ArgsEscaped  bool // set by CMD, as BuildKit does
	Labels       map[string]string
	ExposedPorts []string // sorted "port/proto"
	Volumes      []string // sorted
	StopSignal   string
	Healthcheck  *Healthcheck
	OnBuild      []string
	Author       string // MAINTAINER (the image's author field)
}

func (c ImageConfig) clone() ImageConfig {
	c.Env = slices.Clone(c.Env)
	c.Shell = slices.Clone(c.Shell)
	c.Entrypoint = slices.Clone(c.Entrypoint)
	c.Cmd = slices.Clone(c.Cmd)
	c.Labels = maps.Clone(c.Labels)
	c.ExposedPorts = slices.Clone(c.ExposedPorts)
	c.Volumes = slices.Clone(c.Volumes)
	c.OnBuild = slices.Clone(c.OnBuild)
	if c.Healthcheck != nil {
		h := *c.Healthcheck
		h.Test = slices.Clone(h.Test)
		c.Healthcheck = &h
	}
	return c
}

// EvalOptions are the inputs of Evaluate besides the file.
type EvalOptions struct {
	BuildArgs map[string]string // --build-arg values
	Target    string            // stage name, "" = the last stage
	Platform  Platform          // target platform (TARGETPLATFORM); zero = DefaultPlatform()
	// BuildPlatform is BUILDPLATFORM; zero means DefaultPlatform(), the
	// host, as a buildkitd sets it from its worker's platform.
	BuildPlatform Platform
	// NamedContexts are names that are named build contexts, not images.
	NamedContexts map[string]bool
	// ImageConfig returns the configuration of an external base image;
	// nil means every image has an empty configuration.
	ImageConfig func(ref string, p Platform) (ImageConfig, error)
	// AllStages evaluates every stage, not only those the target needs,
	// as BuildKit's lint request does when it is given no target.
	AllStages bool
	// Report, when set, runs the checks Checks enables (check.go) as
	// BuildKit runs them during a build, and is given each finding as it
	// is found. Findings of an evaluation that fails are reported up to
	// the error, as BuildKit's lint request reports them.
	Report func(Finding)
	Checks CheckConfig
}

// Build is an evaluated Containerfile.
type Build struct {
	Stages []*Stage // the stages the target needs, in source order
	Target *Stage
}

// Stage is an evaluated stage.
type Stage struct {
	Index     int
	Name      string // lower-case; "" if unnamed
	Pos       Pos
	Base      Base
	Platform  Platform
	Steps     []*Step
	Config    ImageConfig // after all steps
	BuildArgs []string    // K=V build args in effect at the end
}

// Label names the stage as BuildKit does in its messages: its name, or
// "stage-N" for an unnamed stage (N its index). Every label of a stage in
// sxmake's output is this one.
func (s *Stage) Label() string { return stageLabel(s.Name, s.Index) }

func stageLabel(name string, index int) string {
	if name != "" {
		return name
	}
	return fmt.Sprintf("stage-%d", index)
}

// stageState is the dispatch state of one stage (BuildKit's dispatchState).
type stageState struct {
	node      *stageNode
	out       *Stage
	env       *envList // the LLB state's environment
	img       ImageConfig
	dir       string // the LLB state's working directory
	user      string
	buildArgs []argDef
	cmdSet    bool         // CMD was used in this stage
	imgSnap   *ImageConfig // shared copy of img, nil when img changed
	done      bool
	triggers  []*Instruction

	// For the checks: a WORKDIR was set in this stage or a base stage;
	// the last CMD, ENTRYPOINT and HEALTHCHECK of this stage.
	workdirSet                     bool
	lastCmd, lastEntry, lastHealth *Instruction
}

type evaluator struct {
	f      *File
	opt    EvalOptions
	global *envList
	lx     lexer
	states map[*stageNode]*stageState
	lint   *linter // nil: no checks
}

// Evaluate computes the steps of every stage the target needs, with
// variables expanded exactly as BuildKit's Dockerfile frontend does.
// Errors are *Error values pointing at the offending instruction.
func Evaluate(f *File, opt EvalOptions) (*Build, error) {
	if opt.Platform.IsZero() {
		opt.Platform = DefaultPlatform()
	}
	if opt.BuildPlatform.IsZero() {
		opt.BuildPlatform = DefaultPlatform()
	}
	var lint *linter
	if opt.Report != nil {
		lint = &linter{f: f, cfg: opt.Checks, report: opt.Report}
	}
	lint.checkFile()
	auto := f.autoArgs(opt.Target, opt.BuildPlatform, opt.Platform, opt.BuildArgs)
	lint.checkDefaultArgs(auto)
	global, err := f.addMetaArgs(auto, opt.BuildArgs)
	if err != nil {
		return nil, err
	}
	lint.checkFroms(global)
	g, err := f.resolveGraph(global)
	if err != nil {
		return nil, err
	}
	t, err := g.target(opt.Target)
	if err != nil {
		return nil, err
	}
	need := g.reachable(t)
	ev := &evaluator{f: f, opt: opt, global: global, lx: lexer{escape: f.Escape, budget: newBudget()}, states: map[*stageNode]*stageState{}, lint: lint}
	b := &Build{}
	for _, n := range g.stages {
		if !need[n] && !opt.AllStages {
			continue
		}
		st, err := ev.stage(n)
		if err != nil {
			return nil, err
		}
		b.Stages = append(b.Stages, st.out)
		if n == t {
			b.Target = st.out
		}
	}
	return b, nil
}

// stage evaluates one stage.
func (ev *evaluator) stage(n *stageNode) (*stageState, error) {
	s := &stageState{node: n, out: &Stage{Index: n.def.index, Name: n.name, Pos: n.def.from.Pos}}
	ev.states[n] = s
	if err := ev.initStage(s); err != nil {
		return nil, err
	}
	for _, in := range append(s.triggers, n.def.cmds...) {
		step, err := ev.dispatch(s, in)
		if err != nil {
			return nil, err
		}
		s.out.Steps = append(s.out.Steps, step)
	}
	s.done = true
	s.out.Config = s.img.clone()
	s.out.BuildArgs = buildArgStrings(s.buildArgs, s.env)
	return s, nil
}

// initStage sets up the base image, platform and environment of a stage.
func (ev *evaluator) initStage(s *stageState) error {
	n := s.node
	fc := n.def.from.cmd.(*fromCmd)
	switch {
	case n.baseStage != nil:
		b := ev.states[n.baseStage]
		s.out.Base = Base{Kind: StageBase, Stage: b.out}
		s.out.Platform = b.out.Platform
		s.env = b.env.clone()
		s.img = b.img.clone()
		s.img.OnBuild = nil
		s.dir, s.user = b.dir, b.user
		s.buildArgs = slices.Clone(b.buildArgs)
		s.workdirSet = b.workdirSet
		for _, in := range n.baseStage.def.cmds {
			if o, ok := in.cmd.(*onbuildCmd); ok {
				if err := ev.addTrigger(s, o.expression); err != nil {
					return err
				}
			}
		}
	case n.base == "scratch" && !ev.opt.NamedContexts[n.base]:
		s.out.Base = Base{Kind: Scratch}
		s.out.Platform = ev.opt.Platform
		s.env = newEnvList()
		s.img = ImageConfig{WorkingDir: "/", Env: []string{"PATH=" + defaultPath}}
	default:
		p := ev.opt.Platform
		if fc.platform != "" {
			v, err := ev.lx.word(fc.platform, ev.global)
			if err != nil {
				return ev.f.errorf(n.def.from.Pos, "failed to process arguments for platform %s: %v", v, err)
			}
			if v == "" {
				return ev.f.errorf(n.def.from.Pos, "empty platform value from expression %s", fc.platform)
			}
			if p, err = ParsePlatform(v); err != nil {
				return ev.f.errorf(n.def.from.Pos, "failed to parse platform %s: %v", fc.platform, err)
			}
		}
		named := ev.opt.NamedContexts[n.base]
		s.out.Base = Base{Kind: ImageBase, Ref: n.base, Named: named}
		s.out.Platform = p
		s.env = newEnvList()
		if ev.opt.ImageConfig != nil {
			cfg, err := ev.opt.ImageConfig(n.base, p)
			if err != nil {
				return ev.f.errorf(n.def.from.Pos, "%s: %v", n.base, err)
			}
			s.img = cfg.clone()
		}
		for _, expr := range s.img.OnBuild {
			if err := ev.addTrigger(s, expr); err != nil {
				return err
			}
		}
		s.img.OnBuild = nil
	}
	if !hasEnv(s.img.Env, "PATH") {
		s.img.Env = append(s.img.Env, "PATH="+defaultPath)
	}
	for _, e := range s.img.Env {
		k, v, _ := strings.Cut(e, "=")
		s.env.set(k, v)
	}
	if s.img.WorkingDir != "" {
		s.img.WorkingDir = normalizeWorkdir(s.img.WorkingDir, s.img.WorkingDir)
		s.dir = s.img.WorkingDir
	}
	if s.img.User != "" {
		s.user = s.img.User
	}
	if s.dir == "" {
		s.dir = "/" // LLB's default working directory
	}
	return nil
}

// addTrigger parses an ONBUILD trigger to run at the start of s.
func (ev *evaluator) addTrigger(s *stageState, expr string) error {
	tf := &File{Name: ev.f.Name, Escape: '\\', src: []byte(expr)}
	p := &parser{f: tf, src: tf.src}
	p.setEscape('\\')
	err := p.scan()
	if err == nil && len(tf.Instructions) != 1 {
		err = fmt.Errorf("onbuild trigger should be a single expression")
	}
	if err == nil {
		err = compile(tf.Instructions[0])
	}
	if err != nil {
		return ev.f.errorf(s.node.def.from.Pos, "%v", err)
	}
	in := tf.Instructions[0]
	from := s.node.def.from
	in.Pos, in.startLine, in.EndLine = from.Pos, from.startLine, from.EndLine
	if c, ok := in.cmd.(*copyCmd); ok && c.from != "" {
		return ev.f.errorf(in.Pos, "ONBUILD COPY --from is not supported")
	}
	s.triggers = append(s.triggers, in)
	return nil
}

func hasEnv(env []string, key string) bool {
	for _, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			return true
		}
	}
	return false
}

// buildArgStrings renders the build args as BuildKit's runCommandString
// does: each key once, at its first position, with its current value.
func buildArgStrings(args []argDef, env *envList) []string {
	var out []string
	idx := map[string]int{}
	for _, a := range args {
		v, ok := env.Get(a.Key)
		if !ok && a.Value != nil {
			v = *a.Value
		}
		if i, ok := idx[a.Key]; ok {
			out[i] = a.Key + "=" + v
			continue
		}
		idx[a.Key] = len(out)
		out = append(out, a.Key+"="+v)
	}
	return out
}

// newStep starts a step with the stage's current context.
func (s *stageState) newStep(kind StepKind, in *Instruction) *Step {
	return &Step{
		Kind:        kind,
		Instruction: in.Cmd,
		Pos:         in.Pos,
		Env:         s.env.slice(),
		Workdir:     s.dir,
		User:        s.user,
		Shell:       s.img.Shell,
		Platform:    s.out.Platform,
		EmptyLayer:  true,
	}
}

// expand expands one word in the stage's environment.
func (ev *evaluator) expand(s *stageState, in *Instruction, w string) (string, error) {
	return ev.expandWith(ev.lx, s, in, w)
}

// expandWith expands w with lx, reporting the unset variables it uses
// when checks run.
func (ev *evaluator) expandWith(lx lexer, s *stageState, in *Instruction, w string) (string, error) {
	if ev.lint != nil {
		use := &varUse{}
		lx.vars = use
		defer func() { ev.lint.undefinedVars(s, in, use.unmatched) }()
	}
	v, err := lx.word(w, s.env)
	if err != nil {
		return "", ev.f.errorf(in.Pos, "%v", err)
	}
	return v, nil
}

func (ev *evaluator) expandAll(s *stageState, in *Instruction, ws []string) ([]string, error) {
	out := make([]string, len(ws))
	for i, w := range ws {
		v, err := ev.expand(s, in, w)
		if err != nil {
			return nil, err
		}
		out[i] = v
	}
	return out, nil
}

// dispatch evaluates one instruction of a stage.
func (ev *evaluator) dispatch(s *stageState, in *Instruction) (*Step, error) {
	var step *Step
	var err error
	switch c := in.cmd.(type) {
	case *runCmd:
		step, err = ev.run(s, in, c)
	case *copyCmd:
		step, err = ev.copy(s, in, c)
	case *argCmd:
		step, err = ev.arg(s, in, c)
	case *workdirCmd:
		step, err = ev.workdir(s, in, c)
	default:
		step, err = ev.config(s, in)
	}
	if err != nil {
		return nil, err
	}
	switch in.cmd.(type) {
	case *runCmd, *copyCmd:
	default:
		s.imgSnap = nil
	}
	if s.imgSnap == nil {
		c := s.img.clone()
		s.imgSnap = &c
	}
	step.Config = *s.imgSnap
	return step, nil
}

// shellArgs prefixes args with the image's shell (BuildKit's withShell).
func shellArgs(img ImageConfig, args []string) []string {
	sh := slices.Clone(img.Shell)
	if len(sh) == 0 {
		sh = []string{"/bin/sh", "-c"}
	}
	return append(sh, strings.Join(args, " "))
}

func (ev *evaluator) run(s *stageState, in *Instruction, c *runCmd) (*Step, error) {
	step := s.newStep(Run, in)
	step.EmptyLayer = false
	if c.network != "default" {
		step.Network = c.network
	}
	args := c.args
	if len(c.files) > 0 {
		if len(args) != 1 || !c.prependShell {
			return nil, ev.f.errorf(in.Pos, "parsing produced an invalid run command: %v", args)
		}
		if h, _ := parseHeredoc(args[0]); h != nil {
			f := c.files[0]
			data := f.Content
			if f.Chomp {
				data = chompHeredoc(data)
			}
			if strings.HasPrefix(f.Content, "#!") {
				p := path.Join("/dev/pipes/", f.Name)
				step.Files = []InlineFile{{Path: p, Data: data, Mode: 0o755}}
				args = []string{p}
			} else {
				args = []string{data}
			}
		} else {
			full := args[0]
			for _, f := range c.files {
				full += "\n" + f.Content + f.Name
			}
			args = []string{full}
		}
	}
	if c.prependShell {
		args = shellArgs(s.img, args)
	}
	if len(args) == 0 {
		return nil, ev.f.errorf(in.Pos, "arguments are required")
	}
	step.Args = args
	step.ProxyEnv = proxyEnv(ev.opt.BuildArgs)
	ba := buildArgStrings(s.buildArgs, s.env)
	var b strings.Builder
	b.WriteString("RUN ")
	if len(ba) > 0 {
		b.WriteString("|" + strconv.Itoa(len(ba)) + " ")
		b.WriteString(strings.Join(ba, " "))
		b.WriteByte(' ')
	}
	b.WriteString(strings.Join(args, " "))
	b.WriteString(" # buildkit")
	step.CreatedBy = b.String()
	return step, nil
}

func (ev *evaluator) arg(s *stageState, in *Instruction, c *argCmd) (*Step, error) {
	step := s.newStep(Config, in)
	var parts []string
	for _, a := range c.args {
		ev.lint.secretName("ARG", a.Key, in)
		bv, hasValue := ev.opt.BuildArgs[a.Key]
		hasDefault := a.Value != nil
		if !hasDefault && !hasValue {
			if v, ok := ev.global.Get(a.Key); ok {
				a.Value = &v
			}
		}
		if hasValue {
			a.Value = &bv
		} else if hasDefault {
			v, err := ev.expand(s, in, *a.Value)
			if err != nil {
				return nil, err
			}
			a.Value = &v
		}
		if a.Value != nil && a.Key != "BUILDKIT_SBOM_SCAN_CONTEXT" && a.Key != "BUILDKIT_SBOM_SCAN_STAGE" {
			s.env.set(a.Key, *a.Value) // BuildKit keeps its SBOM args out of the env
		}
		s.buildArgs = append(s.buildArgs, a)
		p := a.Key
		if a.Value != nil {
			p += "=" + *a.Value
		}
		parts = append(parts, p)
	}
	step.CreatedBy = "ARG " + strings.Join(parts, " ")
	return step, nil
}

// proxyEnv returns the proxy variables BuildKit adds to every RUN from
// build args named (in any case) http_proxy, https_proxy, ftp_proxy,
// no_proxy or all_proxy. When two build args differ only in case,
// the one sorting last wins.
func proxyEnv(buildArgs map[string]string) []string {
	var vals [5]string
	names := [5]string{"HTTP_PROXY", "HTTPS_PROXY", "FTP_PROXY", "NO_PROXY", "ALL_PROXY"}
	keys := slices.Sorted(maps.Keys(buildArgs))
	for _, k := range keys {
		for i, n := range names {
			if strings.EqualFold(k, n) {
				vals[i] = buildArgs[k]
			}
		}
	}
	var out []string
	for i, n := range names {
		if vals[i] != "" {
			out = append(out, n+"="+vals[i], strings.ToLower(n)+"="+vals[i])
		}
	}
	return out
}

// normalizeWorkdir resolves wd against the current working directory
// (BuildKit's system.NormalizeWorkdir for Linux: absolute paths are kept
// as written, relative ones are joined and cleaned).
func normalizeWorkdir(current, wd string) string {
	if current == "" {
		current = "/"
	}
	if !path.IsAbs(current) {
		current = path.Join("/", current)
	}
	if wd == "" {
		wd = current
	}
	if !path.IsAbs(wd) {
		wd = path.Join(current, wd)
	}
	return wd
}

func (ev *evaluator) workdir(s *stageState, in *Instruction, c *workdirCmd) (*Step, error) {
	p, err := ev.expand(s, in, c.path)
	if err != nil {
		return nil, err
	}
	if ev.lint != nil {
		ev.lint.relativeWorkdir(s, in, p)
	}
	wd := normalizeWorkdir(s.img.WorkingDir, p)
	s.img.WorkingDir = wd
	s.dir = wd
	step := s.newStep(Config, in)
	step.EmptyLayer = wd == "/"
	step.CreatedBy = "WORKDIR " + wd
	return step, nil
}
