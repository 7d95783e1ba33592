package rules

import (
	"bytes"
	"fmt"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// Checks: BuildKit v0.26.3's Dockerfile checks (its linter rules), which
// a build runs while it evaluates a Containerfile and which StageX
// enforces by building with BUILDKIT_DOCKERFILE_CHECK=...;error=true.
//
// Vocabulary:
//   - check: one rule (Check), with BuildKit's name, description, docs URL
//     and message.
//   - finding: one violation of a check (Finding), located on the lines of
//     the instruction (or stage) it concerns.
//   - check config: which checks run and whether findings fail the build
//     (CheckConfig), from the BUILDKIT_DOCKERFILE_CHECK build arg or else
//     the file's "# check=" parser directive.
//
// Evaluate runs the checks when EvalOptions.Report is set.

// Check is one of BuildKit's Dockerfile checks.
type Check struct {
	Name         string
	Description  string
	URL          string // BuildKit gives InvalidBaseImagePlatform none
	Experimental bool   // runs only when the config names it (or experimental=all)

	format string // the message, a fmt template of the finding's details
}

// The checks of BuildKit's linter/ruleset.go, with its wording: findings
// must read exactly as BuildKit's.
var (
	checkStageNameCasing = &Check{
		Name:        "StageNameCasing",
		Description: "Stage names should be lowercase",
		URL:         "https://docs.docker.com/go/dockerfile/rule/stage-name-casing/",
		format:      "Stage name '%s' should be lowercase",
	}
	checkFromAsCasing = &Check{
		Name:        "FromAsCasing",
		Description: "The 'as' keyword should match the case of the 'from' keyword",
		URL:         "https://docs.docker.com/go/dockerfile/rule/from-as-casing/",
		format:      "'%s' and '%s' keywords' casing do not match",
	}
	checkNoEmptyContinuation = &Check{
		Name:        "NoEmptyContinuation",
		Description: "Empty continuation lines will become errors in a future release",
		URL:         "https://docs.docker.com/go/dockerfile/rule/no-empty-continuation/",
		format:      "Empty continuation line",
	}
	checkConsistentInstructionCasing = &Check{
		Name:        "ConsistentInstructionCasing",
		Description: "All commands within the Dockerfile should use the same casing (either upper or lower)",
		URL:         "https://docs.docker.com/go/dockerfile/rule/consistent-instruction-casing/",
		format:      "Command '%s' should match the case of the command majority (%s)",
	}
	checkDuplicateStageName = &Check{
		Name:        "DuplicateStageName",
		Description: "Stage names should be unique",
		URL:         "https://docs.docker.com/go/dockerfile/rule/duplicate-stage-name/",
		format:      "Duplicate stage name %q, stage names should be unique",
	}
	checkReservedStageName = &Check{
		Name:        "ReservedStageName",
		Description: "Reserved words should not be used as stage names",
		URL:         "https://docs.docker.com/go/dockerfile/rule/reserved-stage-name/",
		format:      "Stage name should not use the same name as reserved stage %q",
	}
	checkJSONArgsRecommended = &Check{
		Name:        "JSONArgsRecommended",
		Description: "JSON arguments recommended for ENTRYPOINT/CMD to prevent unintended behavior related to OS signals",
		URL:         "https://docs.docker.com/go/dockerfile/rule/json-args-recommended/",
		format:      "JSON arguments recommended for %s to prevent unintended behavior related to OS signals",
	}
	checkMaintainerDeprecated = &Check{
		Name:        "MaintainerDeprecated",
		Description: "The MAINTAINER instruction is deprecated, use a label instead to define an image author",
		URL:         "https://docs.docker.com/go/dockerfile/rule/maintainer-deprecated/",
		format:      "Maintainer instruction is deprecated in favor of using label",
	}
	checkUndefinedArgInFrom = &Check{
		Name:        "UndefinedArgInFrom",
		Description: "FROM command must use declared ARGs",
		URL:         "https://docs.docker.com/go/dockerfile/rule/undefined-arg-in-from/",
		format:      "FROM argument '%s' is not declared%s",
	}
	checkWorkdirRelativePath = &Check{
		Name:        "WorkdirRelativePath",
		Description: "Relative workdir without an absolute workdir declared within the build can have unexpected results if the base image changes",
		URL:         "https://docs.docker.com/go/dockerfile/rule/workdir-relative-path/",
		format:      "Relative workdir %q can have unexpected results if the base image changes",
	}
	checkUndefinedVar = &Check{
		Name:        "UndefinedVar",
		Description: "Variables should be defined before their use",
		URL:         "https://docs.docker.com/go/dockerfile/rule/undefined-var/",
		format:      "Usage of undefined variable '$%s'%s",
	}
	checkMultipleInstructionsDisallowed = &Check{
		Name:        "MultipleInstructionsDisallowed",
		Description: "Multiple instructions of the same type should not be used in the same stage",
		URL:         "https://docs.docker.com/go/dockerfile/rule/multiple-instructions-disallowed/",
		format:      "Multiple %s instructions should not be used in the same stage because only the last one will be used",
	}
	checkLegacyKeyValueFormat = &Check{
		Name:        "LegacyKeyValueFormat",
		Description: "Legacy key/value format with whitespace separator should not be used",
		URL:         "https://docs.docker.com/go/dockerfile/rule/legacy-key-value-format/",
		format:      "\"%[1]s key=value\" should be used instead of legacy \"%[1]s key value\" format",
	}
	checkInvalidBaseImagePlatform = &Check{
		Name:        "InvalidBaseImagePlatform",
		Description: "Base image platform does not match expected target platform",
		format:      "Base image %s was pulled with platform %q, expected %q for current build",
	}
	checkRedundantTargetPlatform = &Check{
		Name:        "RedundantTargetPlatform",
		Description: "Setting platform to predefined $TARGETPLATFORM in FROM is redundant as this is the default behavior",
		URL:         "https://docs.docker.com/go/dockerfile/rule/redundant-target-platform/",
		format:      "Setting platform to predefined %s in FROM is redundant as this is the default behavior",
	}
	checkSecretsUsedInArgOrEnv = &Check{
		Name:        "SecretsUsedInArgOrEnv",
		Description: "Sensitive data should not be used in the ARG or ENV commands",
		URL:         "https://docs.docker.com/go/dockerfile/rule/secrets-used-in-arg-or-env/",
		format:      "Do not use ARG or ENV instructions for sensitive data (%s %q)",
	}
	checkInvalidDefaultArgInFrom = &Check{
		Name:        "InvalidDefaultArgInFrom",
		Description: "Default value for global ARG results in an empty or invalid base image name",
		URL:         "https://docs.docker.com/go/dockerfile/rule/invalid-default-arg-in-from/",
		format:      "Default value for ARG %v results in empty or invalid base image name",
	}
	checkFromPlatformFlagConstDisallowed = &Check{
		Name:        "FromPlatformFlagConstDisallowed",
		Description: "FROM --platform flag should not use a constant value",
		URL:         "https://docs.docker.com/go/dockerfile/rule/from-platform-flag-const-disallowed/",
		format:      "FROM --platform flag should not use constant value %q",
	}
	checkCopyIgnoredFile = &Check{
		Name:         "CopyIgnoredFile",
		Description:  "Attempting to Copy file that is excluded by .dockerignore",
		URL:          "https://docs.docker.com/go/dockerfile/rule/copy-ignored-file/",
		Experimental: true,
		format:       "Attempting to %s file %q that is excluded by .dockerignore",
	}
	checkInvalidDefinitionDescription = &Check{
		Name:         "InvalidDefinitionDescription",
		Description:  "Comment for build stage or argument should follow the format: `# <arg/stage name> <description>`. If this is not intended to be a description comment, add an empty line or comment between the instruction and the comment.",
		URL:          "https://docs.docker.com/go/dockerfile/rule/invalid-definition-description/",
		Experimental: true,
		format:       "Comment for %s should follow the format: `# %s <description>`",
	}
	checkExposeProtoCasing = &Check{
		Name:        "ExposeProtoCasing",
		Description: "Protocol in EXPOSE instruction should be lowercase",
		URL:         "https://docs.docker.com/go/dockerfile/rule/expose-proto-casing/",
		format:      "Defined protocol '%s' in EXPOSE instruction should be lowercase",
	}
	checkExposeInvalidFormat = &Check{
		Name:        "ExposeInvalidFormat",
		Description: "IP address and host-port mapping should not be used in EXPOSE instruction. This will become an error in a future release",
		URL:         "https://docs.docker.com/go/dockerfile/rule/expose-invalid-format/",
		format:      "EXPOSE instruction should not define an IP address or host-port mapping, found '%s'",
	}
)

// Checks returns every check BuildKit v0.26.3 defines, in its order.
// Two are never reported by rules, because what they look at is not in
// the Containerfile: InvalidBaseImagePlatform compares the platform of a
// base image pulled from a registry (every base sxmake knows is a named
// context, which BuildKit does not compare), and CopyIgnoredFile (an
// experimental check) needs the build context's .dockerignore.
func Checks() []*Check {
	return []*Check{
		checkStageNameCasing, checkFromAsCasing, checkNoEmptyContinuation,
		checkConsistentInstructionCasing, checkDuplicateStageName, checkReservedStageName,
		checkJSONArgsRecommended, checkMaintainerDeprecated, checkUndefinedArgInFrom,
		checkWorkdirRelativePath, checkUndefinedVar, checkMultipleInstructionsDisallowed,
		checkLegacyKeyValueFormat, checkInvalidBaseImagePlatform, checkRedundantTargetPlatform,
		checkSecretsUsedInArgOrEnv, checkInvalidDefaultArgInFrom, checkFromPlatformFlagConstDisallowed,
		checkCopyIgnoredFile, checkInvalidDefinitionDescription, checkExposeProtoCasing,
		checkExposeInvalidFormat,
	}
}

// CheckArg is the build arg whose value configures the checks of a build
// ("skip=A,B;error=true"); when given, even empty, the file's "# check="
// directive is ignored.
const CheckArg = "BUILDKIT_DOCKERFILE_CHECK"

// CheckConfig says which checks run and whether their findings fail the
// build (BuildKit's linter.Config). The zero value runs every
// non-experimental check and reports findings as warnings.
type CheckConfig struct {
	SkipAll         bool
	Skip            []string // names of non-experimental checks not to run
	ExperimentalAll bool
	Experimental    []string // names of experimental checks to run
	Error           bool     // findings fail the build
}

// Enabled reports whether c runs under cfg. Skipping applies to
// non-experimental checks only, and experimental checks run only when
// named, as in BuildKit.
func (cfg CheckConfig) Enabled(c *Check) bool {
	if c.Experimental {
		return cfg.ExperimentalAll || slices.Contains(cfg.Experimental, c.Name)
	}
	return !cfg.SkipAll && !slices.Contains(cfg.Skip, c.Name)
}

// ParseCheckConfig parses a check setting, "skip=A,B;experimental=C;
// error=true" (each part optional; "all" for every check), with
// BuildKit's quirks: at most three ";"-separated parts are split off, so
// a fourth stays in the third's value.
func ParseCheckConfig(s string) (CheckConfig, error) {
	var cfg CheckConfig
	s = strings.TrimSpace(s)
	if s == "" {
		return cfg, nil
	}
	names := func(v string) []string {
		out := strings.Split(v, ",")
		for i := range out {
			out[i] = strings.TrimSpace(out[i])
		}
		return out
	}
	for _, part := range strings.SplitN(s, ";", 3) {
		k, v, ok := strings.Cut(part, "=")
		if !ok {
			return CheckConfig{}, fmt.Errorf("invalid check option %q", part)
		}
		switch k = strings.TrimSpace(k); k {
		case "skip":
			if v = strings.TrimSpace(v); v == "all" {
				cfg.SkipAll = true
			} else {
				cfg.Skip = names(v)
			}
		case "experimental":
			if v = strings.TrimSpace(v); v == "all" {
				cfg.ExperimentalAll = true
			} else {
				cfg.Experimental = names(v)
			}
		case "error":
			b, err := strconv.ParseBool(strings.TrimSpace(v))
			if err != nil {
				return CheckConfig{}, fmt.Errorf("failed to parse check option %q: %w", part, err)
			}
			cfg.Error = b
		default:
			return CheckConfig{}, fmt.Errorf("invalid check option %q", k)
		}
	}
	return cfg, nil
}

// CheckConfig returns the check config of a build of f with buildArgs:
// the CheckArg build arg when it is given, else the file's "# check="
// directive. BuildKit never merges the two.
func (f *File) CheckConfig(buildArgs map[string]string) (CheckConfig, error) {
	if v, ok := buildArgs[CheckArg]; ok {
		cfg, err := ParseCheckConfig(v)
		if err != nil {
			return cfg, &Error{Pos: Pos{File: f.Name}, Msg: fmt.Sprintf("failed to parse build-arg:%s: %v", CheckArg, err)}
		}
		return cfg, nil
	}
	v, line := checkDirective(f.src)
	cfg, err := ParseCheckConfig(v)
	if err != nil {
		pos := Pos{File: f.Name, Line: line, Col: 1}
		return cfg, &Error{Pos: pos, Msg: "failed to parse check options: " + err.Error(), Source: sourceLine(f.src, line)}
	}
	return cfg, nil
}

// checkDirective finds the "# check=" directive as BuildKit's
// parser.ParseDirective does, which differs from the parser proper: a
// "#!" first line is skipped, lines are not trimmed, and only the value
// up to its first space counts. It returns the value and its line.
func checkDirective(src []byte) (string, int) {
	src = bytes.TrimPrefix(src, []byte{0xEF, 0xBB, 0xBF})
	line := 0
	if first, rest, _ := bytes.Cut(src, []byte("\n")); bytes.HasPrefix(first, []byte("#!")) {
		src, line = rest, 1
	}
	seen := map[string]bool{}
	for len(src) > 0 {
		var l []byte
		l, src, _ = bytes.Cut(src, []byte("\n"))
		line++
		m := directiveRe.FindSubmatch(bytes.TrimSuffix(l, []byte("\r")))
		if m == nil {
			break
		}
		k := strings.ToLower(string(m[1]))
		if k != "syntax" && k != "escape" && k != "check" || seen[k] {
			break
		}
		seen[k] = true
		if k == "check" {
			v, _, _ := strings.Cut(string(m[2]), " ")
			return v, line
		}
	}
	return "", 0
}

// Finding is one violation of a check, as BuildKit's lint reports it: the
// check, the message, and the lines it covers (the whole instruction,
// heredoc bodies included, or the stage's FROM).
type Finding struct {
	Check   *Check
	Message string
	Pos     Pos    // the first line covered, at the instruction's column (1 when it starts later)
	EndLine int    // the last line covered
	Source  string // the source line at Pos.Line
}

// String returns "file:line:col: Check: message".
func (fd Finding) String() string {
	return fd.Pos.String() + ": " + fd.Check.Name + ": " + fd.Message
}

// Detail returns String, the source line and a caret.
func (fd Finding) Detail() string {
	return (&Error{Pos: fd.Pos, Msg: fd.Check.Name + ": " + fd.Message, Source: fd.Source}).Detail()
}

// SortFindings orders findings as BuildKit prints them: by file, then
// first line; findings on one line keep their order.
func SortFindings(fs []Finding) {
	sort.SliceStable(fs, func(i, j int) bool {
		if fs[i].Pos.File != fs[j].Pos.File {
			return fs[i].Pos.File < fs[j].Pos.File
		}
		return fs[i].Pos.Line < fs[j].Pos.Line
	})
}

// CheckError is the failure of a build whose check config has error=true
// and whose evaluation found violations.
type CheckError struct {
	Findings []Finding // sorted by line
}

// Error returns every finding with its source line and a caret, then
// BuildKit's summary "lint violation found for rules: A, B".
func (e *CheckError) Error() string {
	var b strings.Builder
	var names []string
	for _, fd := range e.Findings {
		b.WriteString(fd.Detail())
		b.WriteByte('\n')
		if !slices.Contains(names, fd.Check.Name) {
			names = append(names, fd.Check.Name)
		}
	}
	b.WriteString("lint violation found for rules: " + strings.Join(names, ", "))
	return b.String()
}

// linter runs the checks its config enables during an evaluation. A nil
// *linter runs none.
type linter struct {
	f      *File
	cfg    CheckConfig
	report func(Finding)
}

// at reports a finding of c covering lines first to last.
func (l *linter) at(c *Check, first, last, col int, args ...any) {
	if l == nil || !l.cfg.Enabled(c) {
		return
	}
	msg := c.format
	if len(args) > 0 {
		msg = fmt.Sprintf(c.format, args...)
	}
	pos := Pos{File: l.f.Name, Line: first, Col: col}
	l.report(Finding{Check: c, Message: msg, Pos: pos, EndLine: last, Source: sourceLine(l.f.src, first)})
}

// on reports a finding of c covering instruction in.
func (l *linter) on(c *Check, in *Instruction, args ...any) {
	if l == nil {
		return
	}
	col := 1
	if in.Pos.Line == in.startLine {
		col = in.Pos.Col
	}
	l.at(c, in.startLine, in.EndLine, col, args...)
}
