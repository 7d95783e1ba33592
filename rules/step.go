package rules

import (
	"strings"
)

// StepKind classifies a step.
type StepKind int

const (
	// Config steps change only the image configuration (ENV, ARG, LABEL,
	// USER, SHELL, CMD, ...). WORKDIR is a Config step too, but one that
	// also creates the directory when EmptyLayer is false.
	Config StepKind = iota
	// Run steps execute Args in a container (RUN).
	Run
	// Copy steps copy files into the rootfs (COPY).
	Copy
	// Add steps are Copy steps that also unpack local archives (ADD).
	Add
)

func (k StepKind) String() string {
	switch k {
	case Run:
		return "run"
	case Copy:
		return "copy"
	case Add:
		return "add"
	}
	return "config"
}

// BaseKind says what a stage starts from.
type BaseKind int

const (
	// Scratch is the empty file system.
	Scratch BaseKind = iota
	// StageBase is an earlier stage of the same file.
	StageBase
	// ImageBase is an external image (Ref), or a named context when Named.
	ImageBase
)

// Base is what a stage is built FROM.
type Base struct {
	Kind  BaseKind
	Stage *Stage // StageBase
	Ref   string // ImageBase: the expanded image reference as written
	Named bool   // ImageBase: Ref is a named context, not an image
}

// SourceKind says where a COPY or ADD reads its sources.
type SourceKind int

const (
	// Context is the build context (the package directory).
	Context SourceKind = iota
	// StageSource is another stage's result.
	StageSource
	// ImageSource is an external image.
	ImageSource
	// NamedContext is a named build context such as "fetch".
	NamedContext
	// ScratchSource is the empty file system (--from=scratch).
	ScratchSource
)

// From is the source of a COPY or ADD.
type From struct {
	Kind  SourceKind
	Stage *Stage // StageSource
	Ref   string // ImageSource, NamedContext: the --from value
}

// CopySource is one source of a COPY or ADD: a path or pattern in From,
// or an inline heredoc file.
type CopySource struct {
	Path    string // clean absolute path in From, as in BuildKit's FileOp
	Pattern bool   // Path contains wildcards (* ? [)
	// Include and Required are set by --parents: Path is then the
	// directory before "/./" and Include the pattern under it, copied
	// with its parent directories.
	Include  []string
	Required []string
	// Heredoc sources.
	Heredoc bool
	Name    string // heredoc file name (the delimiter)
	Data    string // file content, expanded if Expand (at /Name in a scratch FileOp)
	Expand  bool   // the delimiter was unquoted
	Mode    uint32 // 0644 for heredoc files
}

// InlineFile is a file BuildKit materialises for a RUN (a heredoc that
// starts with #!, mounted read-only at Path).
type InlineFile struct {
	Path string
	Data string
	Mode uint32
}

// Step is one evaluated instruction: every variable expanded, paths
// resolved, and the environment it runs in. Steps are immutable: their
// slices and maps may be shared with other steps and must not be modified.
type Step struct {
	Kind        StepKind
	Instruction string // "RUN", "COPY", "ENV", ...
	Pos         Pos

	Env      []string // the environment: image env, then build args in effect
	Workdir  string
	User     string
	Shell    []string
	Platform Platform

	// RUN
	Args    []string     // the argv BuildKit runs
	Files   []InlineFile // files mounted for the run
	Network string       // "" (default), "none" or "host"
	// ProxyEnv holds the proxy variables taken from build args
	// (HTTP_PROXY, http_proxy, ...). BuildKit appends them to Env when it
	// runs the step but leaves them out of the cache key and history.
	ProxyEnv []string

	// COPY / ADD
	From       From
	Sources    []CopySource
	Dest       string // clean and absolute; a trailing "/" (or "/.") is kept
	DestIsDir  bool   // Dest ends with "/" or "/."
	Chmod      string
	Chown      string
	Link       bool
	Parents    bool
	Excludes   []string
	Unpack     bool // ADD: local archives are extracted
	Checksum   string
	KeepGitDir *bool

	// Config is the image configuration after the step.
	Config ImageConfig
	// CreatedBy is the image history text BuildKit writes for the step;
	// NoHistory is set for steps that write no history entry (ONBUILD).
	CreatedBy  string
	EmptyLayer bool
	NoHistory  bool
}

// NetworkByDefault reports whether s is a RUN without a --network flag:
// BuildKit runs such a step with the network, its default mode.
func (s *Step) NetworkByDefault() bool { return s.Kind == Run && s.Network == "" }

// String returns one readable line for the step with expanded values.
func (s *Step) String() string {
	var b strings.Builder
	b.WriteString(s.Instruction)
	switch s.Kind {
	case Run:
		if s.Network != "" {
			b.WriteString(" --network=" + s.Network)
		}
		for _, a := range s.Args {
			b.WriteByte(' ')
			b.WriteString(shellQuote(a))
		}
		return b.String()
	case Copy, Add:
		switch s.From.Kind {
		case StageSource:
			b.WriteString(" --from=" + s.From.Stage.Label())
		case ImageSource, NamedContext:
			b.WriteString(" --from=" + s.From.Ref)
		case ScratchSource:
			b.WriteString(" --from=scratch")
		}
		if s.Chmod != "" {
			b.WriteString(" --chmod=" + s.Chmod)
		}
		if s.Chown != "" {
			b.WriteString(" --chown=" + s.Chown)
		}
		if s.Link {
			b.WriteString(" --link")
		}
		if s.Parents {
			b.WriteString(" --parents")
		}
		for _, e := range s.Excludes {
			b.WriteString(" --exclude=" + shellQuote(e))
		}
		for _, src := range s.Sources {
			b.WriteByte(' ')
			switch {
			case src.Heredoc:
				b.WriteString("<<" + src.Name)
			case len(src.Include) > 0 && src.Path == "/":
				b.WriteString(shellQuote("/" + src.Include[0]))
			case len(src.Include) > 0:
				b.WriteString(shellQuote(src.Path + "/./" + src.Include[0]))
			default:
				b.WriteString(shellQuote(src.Path))
			}
		}
		b.WriteString(" " + shellQuote(s.Dest))
		return b.String()
	}
	if s.NoHistory && len(s.Config.OnBuild) > 0 {
		return "ONBUILD " + s.Config.OnBuild[len(s.Config.OnBuild)-1]
	}
	return strings.TrimSuffix(s.CreatedBy, " # buildkit")
}

// shellQuote quotes s for display when it is not a plain word.
func shellQuote(s string) string {
	if s != "" && strings.IndexFunc(s, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-_./:=+,@%*?[]", r))
	}) < 0 {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}
