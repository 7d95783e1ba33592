package rules

import (
	"path"
	"regexp"
	"slices"
	"strings"
)

// The checks, run where BuildKit runs them: on the whole file as parsed
// (every stage, whatever the target), on the FROM lines once the global
// args are known, and on each instruction as its stage is evaluated.

// checkFile runs the checks of BuildKit's parser and instruction parser,
// which see every instruction of the file.
func (l *linter) checkFile() {
	if l == nil {
		return
	}
	f := l.f
	for _, in := range f.Instructions {
		if in.emptyCont > 0 {
			l.at(checkNoEmptyContinuation, in.emptyCont, in.emptyCont, 1)
		}
	}
	for _, in := range f.Instructions {
		switch c := in.cmd.(type) {
		case *maintainerCmd:
			l.on(checkMaintainerDeprecated, in)
		case *fromCmd:
			if len(in.Args) == 3 && in.Args[2] != strings.ToLower(in.Args[2]) {
				l.on(checkStageNameCasing, in, in.Args[2])
			}
			if !asMatchesFrom(in) {
				l.on(checkFromAsCasing, in, in.Args[1], in.keyword)
			}
			if c.name != "" {
				l.definitionDescription("FROM", []string{c.name}, in)
			}
		case *argCmd:
			keys := make([]string, len(c.args))
			for i, a := range c.args {
				keys[i] = a.Key
			}
			l.definitionDescription("ARG", keys, in)
		}
	}
	l.checkStageNames()
	l.checkCasing()
}

// asMatchesFrom reports whether the AS of a FROM line has the casing of
// its FROM keyword; a mixed-case FROM is ConsistentInstructionCasing's.
func asMatchesFrom(in *Instruction) bool {
	if len(in.Args) < 3 {
		return true
	}
	kw, as := in.keyword, in.Args[1]
	switch kw {
	case strings.ToLower(kw):
		return as == strings.ToLower(as)
	case strings.ToUpper(kw):
		return as == strings.ToUpper(as)
	}
	return true
}

// definitionDescription checks that the comment right above an ARG or a
// named FROM starts with the name it describes.
func (l *linter) definitionDescription(cmd string, keys []string, in *Instruction) {
	if len(in.comments) == 0 || len(keys) == 0 {
		return
	}
	first, _, _ := strings.Cut(in.comments[len(in.comments)-1], " ")
	if slices.Contains(keys, first) {
		return
	}
	example := keys[0]
	if len(keys) > 1 {
		example = "<arg_key>"
	}
	l.on(checkInvalidDefinitionDescription, in, cmd, example)
}

// reservedStageNames are names BuildKit gives a meaning of their own.
var reservedStageNames = []string{"context", "scratch"}

func (l *linter) checkStageNames() {
	seen := map[string]bool{}
	for _, st := range l.f.stages {
		name := st.from.cmd.(*fromCmd).name
		if name == "" {
			continue
		}
		if slices.Contains(reservedStageNames, name) {
			l.on(checkReservedStageName, st.from, name)
		}
		if seen[name] {
			l.on(checkDuplicateStageName, st.from, name)
		}
		seen[name] = true
	}
}

// checkCasing compares each keyword (global ARGs aside) with the casing
// most keywords of the file use; a tie counts as upper case.
func (l *linter) checkCasing() {
	var lower, upper int
	l.eachKeyword(func(in *Instruction) {
		switch kw := in.keyword; kw {
		case strings.ToLower(kw):
			lower++
		case strings.ToUpper(kw):
			upper++
		}
	})
	l.eachKeyword(func(in *Instruction) {
		kw := in.keyword
		switch {
		case lower > upper && kw != strings.ToLower(kw):
			l.on(checkConsistentInstructionCasing, in, kw, "lowercase")
		case lower <= upper && kw != strings.ToUpper(kw):
			l.on(checkConsistentInstructionCasing, in, kw, "uppercase")
		}
	})
}

func (l *linter) eachKeyword(fn func(*Instruction)) {
	for _, st := range l.f.stages {
		fn(st.from)
		for _, in := range st.cmds {
			fn(in)
		}
	}
}

// checkDefaultArgs reports FROM lines whose base is not a valid image name
// when the global ARGs take their defaults (build args aside, except for
// the automatic ones). Like BuildKit it gives up at the first expansion
// error.
func (l *linter) checkDefaultArgs(auto *envList) {
	if l == nil {
		return
	}
	f := l.f
	env, err := f.addMetaArgs(auto.clone(), nil)
	if err != nil {
		return
	}
	lx := lexer{escape: f.Escape, budget: newBudget()}
	for _, st := range f.stages {
		base := st.from.cmd.(*fromCmd).base
		v, err := lx.word(base, env)
		if err != nil {
			return
		}
		if checkImageRef(v) != nil {
			l.on(checkInvalidDefaultArgInFrom, st.from, base)
		}
	}
}

// checkFroms runs the checks of FROM lines' variables, stage by stage,
// stopping where BuildKit's evaluation stops: at the first base or
// platform that does not expand to a usable value.
func (l *linter) checkFroms(global *envList) {
	if l == nil {
		return
	}
	f := l.f
	declared := slices.Clone(global.keys)
	for _, in := range f.metaArgs {
		for _, a := range in.cmd.(*argCmd).args {
			if !slices.Contains(declared, a.Key) {
				declared = append(declared, a.Key)
			}
		}
	}
	lx := lexer{escape: f.Escape, budget: newBudget()}
	for _, st := range f.stages {
		fc := st.from.cmd.(*fromCmd)
		var use varUse
		lx.vars = &use
		base, err := lx.word(fc.base, global)
		l.undeclaredFromArgs(use.unmatched, declared, st.from)
		if err != nil || base == "" {
			return
		}
		if fc.platform == "" {
			continue
		}
		use = varUse{}
		p, err := lx.word(fc.platform, global)
		l.undeclaredFromArgs(use.unmatched, declared, st.from)
		if len(use.matched) == 1 && len(use.unmatched) == 0 && use.matched[0] == "TARGETPLATFORM" {
			if tp, _ := global.Get("TARGETPLATFORM"); p == tp {
				l.on(checkRedundantTargetPlatform, st.from, fc.platform)
			}
		}
		plat, perr := ParsePlatform(p)
		if len(use.matched) == 0 && len(use.unmatched) == 0 && perr == nil &&
			!strings.Contains(fc.name, plat.OS) && !strings.Contains(fc.name, plat.Arch) {
			l.on(checkFromPlatformFlagConstDisallowed, st.from, p)
		}
		if err != nil || p == "" || perr != nil {
			return
		}
	}
}

// undeclaredFromArgs reports the variables a FROM line used that are
// neither automatic nor declared by a global ARG.
func (l *linter) undeclaredFromArgs(unmatched, declared []string, in *Instruction) {
	for _, name := range unmatched {
		if slices.Contains(declared, name) {
			continue
		}
		l.on(checkUndefinedArgInFrom, in, name, didYouMean("", name, declared))
	}
}

// didYouMean is " (did you mean <prefix><match>?)" for the closest
// option, or "".
func didYouMean(prefix, name string, options []string) string {
	if m, ok := search(name, options, true); ok {
		return " (did you mean " + prefix + m + "?)"
	}
	return ""
}

// nonEnvArgs are build args BuildKit keeps out of the environment, and out
// of UndefinedVar.
var nonEnvArgs = []string{"BUILDKIT_SBOM_SCAN_CONTEXT", "BUILDKIT_SBOM_SCAN_STAGE"}

// undefinedVars reports the unset variables an expansion in stage s used,
// except declared ARGs (which may simply have no value).
func (l *linter) undefinedVars(s *stageState, in *Instruction, unmatched []string) {
	if l == nil {
		return
	}
	for _, name := range unmatched {
		if slices.Contains(nonEnvArgs, name) || slices.ContainsFunc(s.buildArgs, func(a argDef) bool { return a.Key == name }) {
			continue
		}
		l.on(checkUndefinedVar, in, name, didYouMean("$", name, s.env.keys))
	}
}

// secretRe and publicRe are BuildKit's tests of ARG and ENV names that
// look like secrets: a secret word as the whole name or its first or last
// "_"-separated part, unless "public" is one.
var (
	secretRe = regexp.MustCompile(`(?i)(?:_|^)(?:apikey|auth|credential|credentials|key|password|pword|passwd|secret|token)(?:_|$)`)
	publicRe = regexp.MustCompile(`(?i)(?:_|^)(?:public)(?:_|$)`)
)

func (l *linter) secretName(cmd, key string, in *Instruction) {
	if l != nil && secretRe.MatchString(key) && !publicRe.MatchString(key) {
		l.on(checkSecretsUsedInArgOrEnv, in, cmd, key)
	}
}

// usedOnce reports an earlier CMD, ENTRYPOINT or HEALTHCHECK of the stage
// (*prev, which in overrides: the finding is on it) and makes in the last.
func (l *linter) usedOnce(prev **Instruction, in *Instruction) {
	if *prev != nil {
		l.on(checkMultipleInstructionsDisallowed, *prev, in.keyword)
	}
	*prev = in
}

// relativeWorkdir reports the first WORKDIR of a stage (and its base
// stages) when it is relative: it then depends on the base image's.
func (l *linter) relativeWorkdir(s *stageState, in *Instruction, p string) {
	if !s.workdirSet && !path.IsAbs(p) {
		l.on(checkWorkdirRelativePath, in, p)
	}
	s.workdirSet = true
}

// exposePort checks one EXPOSE port spec; specs BuildKit rejects are not
// checked (the evaluation fails on them).
func (l *linter) exposePort(in *Instruction, raw string) {
	if l == nil {
		return
	}
	ip, hostPort, _, proto, err := splitPort(raw)
	if err != nil {
		return
	}
	if proto != strings.ToLower(proto) {
		l.on(checkExposeProtoCasing, in, raw)
	}
	if ip != "" || hostPort != "" {
		l.on(checkExposeInvalidFormat, in, raw)
	}
}
