package rules

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// command is the typed form of an instruction.
type command interface{ isCommand() }

type kv struct {
	Key, Value string
	NoDelim    bool // legacy "ENV K V" form
}

type argDef struct {
	Key   string
	Value *string
}

type fromCmd struct{ base, name, platform string }
type argCmd struct{ args []argDef }
type envCmd struct{ env []kv }
type labelCmd struct{ labels []kv }
type maintainerCmd struct{ name string }
type workdirCmd struct{ path string }
type userCmd struct{ user string }
type stopSignalCmd struct{ signal string }
type exposeCmd struct{ ports []string }
type volumeCmd struct{ volumes []string }
type shellCmd struct{ shell []string }
type onbuildCmd struct {
	trigger    *Instruction
	expression string
}

// cmdLine is a shell-dependent command line (RUN, CMD, ENTRYPOINT).
type cmdLine struct {
	args         []string
	files        []Heredoc
	prependShell bool
}

type runCmd struct {
	cmdLine
	network string
}
type cmdCmd struct{ cmdLine }
type entrypointCmd struct{ cmdLine }

// Healthcheck is an image health check (OCI/Docker HealthcheckConfig).
type Healthcheck struct {
	Test          []string
	Interval      time.Duration
	Timeout       time.Duration
	StartPeriod   time.Duration
	StartInterval time.Duration
	Retries       int
}

type healthcheckCmd struct{ health *Healthcheck }

// sourceContent is a heredoc source of COPY/ADD.
type sourceContent struct {
	Path, Data string
	Expand     bool
}

type copyCmd struct {
	add        bool
	srcs       []string
	contents   []sourceContent
	dest       string
	from       string
	chown      string
	chmod      string
	link       bool
	parents    bool
	excludes   []string
	checksum   string
	keepGitDir *bool
	unpack     *bool
}

func (*fromCmd) isCommand()        {}
func (*argCmd) isCommand()         {}
func (*envCmd) isCommand()         {}
func (*labelCmd) isCommand()       {}
func (*maintainerCmd) isCommand()  {}
func (*workdirCmd) isCommand()     {}
func (*userCmd) isCommand()        {}
func (*stopSignalCmd) isCommand()  {}
func (*exposeCmd) isCommand()      {}
func (*volumeCmd) isCommand()      {}
func (*shellCmd) isCommand()       {}
func (*onbuildCmd) isCommand()     {}
func (*runCmd) isCommand()         {}
func (*cmdCmd) isCommand()         {}
func (*entrypointCmd) isCommand()  {}
func (*healthcheckCmd) isCommand() {}
func (*copyCmd) isCommand()        {}

var instructionNames = []string{
	"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM",
	"HEALTHCHECK", "LABEL", "MAINTAINER", "ONBUILD", "RUN", "SHELL",
	"STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}

// compile turns an instruction's arguments and flags into its typed form
// (BuildKit's instructions.ParseInstruction), checking arity and flags.
func compile(in *Instruction) error {
	fl := &flagSet{in: in}
	var err error
	switch in.Cmd {
	case "ENV":
		err = compileEnv(in, fl)
	case "LABEL":
		err = compileLabel(in, fl)
	case "MAINTAINER":
		if len(in.Args) != 1 {
			return errExactlyOne("MAINTAINER")
		}
		in.cmd = &maintainerCmd{name: in.Args[0]}
		err = fl.parse()
	case "ADD", "COPY":
		err = compileCopy(in, fl)
	case "FROM":
		err = compileFrom(in, fl)
	case "ONBUILD":
		err = compileOnbuild(in, fl)
	case "WORKDIR":
		if len(in.Args) != 1 {
			return errExactlyOne("WORKDIR")
		}
		in.cmd = &workdirCmd{path: in.Args[0]}
		err = fl.parse()
	case "RUN":
		err = compileRun(in, fl)
	case "CMD":
		if err = fl.parse(); err == nil {
			in.cmd = &cmdCmd{cmdLineOf(in, false)}
		}
	case "ENTRYPOINT":
		if err = fl.parse(); err == nil {
			in.cmd = &entrypointCmd{cmdLineOf(in, true)}
		}
	case "HEALTHCHECK":
		err = compileHealthcheck(in, fl)
	case "EXPOSE":
		if len(in.Args) == 0 {
			return errAtLeastOne("EXPOSE")
		}
		if err = fl.parse(); err == nil {
			ports := slices.Clone(in.Args)
			slices.Sort(ports)
			in.cmd = &exposeCmd{ports: ports}
		}
	case "USER":
		if len(in.Args) != 1 {
			return errExactlyOne("USER")
		}
		in.cmd = &userCmd{user: in.Args[0]}
		err = fl.parse()
	case "VOLUME":
		err = compileVolume(in, fl)
	case "STOPSIGNAL":
		if len(in.Args) != 1 {
			return errExactlyOne("STOPSIGNAL")
		}
		in.cmd = &stopSignalCmd{signal: in.Args[0]}
	case "ARG":
		err = compileArg(in)
	case "SHELL":
		err = compileShell(in, fl)
	default:
		msg := "unknown instruction: " + firstWord(in.Original)
		if s, ok := suggest(firstWord(in.Original), instructionNames, false); ok {
			msg += " (did you mean " + s + "?)"
		}
		return errors.New(msg)
	}
	return err
}

func firstWord(s string) string {
	w, _, _ := splitCmd(strings.TrimSpace(s))
	return w
}

func errAtLeastOne(cmd string) error {
	return fmt.Errorf("%s requires at least one argument", cmd)
}

func errExactlyOne(cmd string) error {
	return fmt.Errorf("%s requires exactly one argument", cmd)
}

func kvPairs(args []string, cmd string) ([]kv, error) {
	if len(args) == 0 {
		return nil, errAtLeastOne(cmd)
	}
	if len(args)%3 != 0 {
		//lint:ignore ST1005 BuildKit's wording, kept verbatim
		return nil, fmt.Errorf("Bad input to %s, too many arguments", cmd)
	}
	var out []kv
	for i := 0; i < len(args); i += 3 {
		if args[i] == "" {
			return nil, fmt.Errorf("%s names can not be blank", cmd)
		}
		out = append(out, kv{Key: args[i], Value: args[i+1], NoDelim: args[i+2] == ""})
	}
	return out, nil
}

func compileEnv(in *Instruction, fl *flagSet) error {
	if err := fl.parse(); err != nil {
		return err
	}
	env, err := kvPairs(in.Args, "ENV")
	if err != nil {
		return err
	}
	in.cmd = &envCmd{env: env}
	return nil
}

func compileLabel(in *Instruction, fl *flagSet) error {
	if err := fl.parse(); err != nil {
		return err
	}
	labels, err := kvPairs(in.Args, "LABEL")
	if err != nil {
		return err
	}
	in.cmd = &labelCmd{labels: labels}
	return nil
}

func compileCopy(in *Instruction, fl *flagSet) error {
	if len(in.Args) < 2 {
		return fmt.Errorf("%s requires at least two arguments, but only one was provided. Destination could not be determined", in.Cmd)
	}
	c := &copyCmd{add: in.Cmd == "ADD"}
	chown := fl.str("chown")
	chmod := fl.str("chmod")
	link := fl.boolean("link")
	excludes := fl.strs("exclude")
	var from, checksum *string
	var parents, keepGit, unpack *bool
	if c.add {
		keepGit = fl.boolean("keep-git-dir")
		checksum = fl.str("checksum")
		unpack = fl.boolean("unpack")
	} else {
		from = fl.str("from")
		parents = fl.boolean("parents")
	}
	if err := fl.parse(); err != nil {
		return err
	}
	srcs, dest := in.Args[:len(in.Args)-1], in.Args[len(in.Args)-1]
	if h, _ := parseHeredoc(dest); h != nil {
		return fmt.Errorf("%s cannot accept a heredoc as a destination", in.Cmd)
	}
	byName := map[string]Heredoc{}
	for _, h := range in.Heredocs {
		byName[h.Name] = h
	}
	for _, s := range srcs {
		h, _ := parseHeredoc(s)
		if h == nil {
			c.srcs = append(c.srcs, s)
			continue
		}
		data := byName[h.Name].Content
		if h.Chomp {
			data = chompHeredoc(data)
		}
		c.contents = append(c.contents, sourceContent{Path: h.Name, Data: data, Expand: h.Expand})
	}
	c.dest = dest
	c.chown, c.chmod, c.link = *chown, *chmod, *link
	c.excludes = *excludes
	if c.add {
		c.checksum = *checksum
		if fl.used["keep-git-dir"] {
			v := *keepGit
			c.keepGitDir = &v
		}
		if fl.used["unpack"] {
			v := *unpack
			c.unpack = &v
		}
	} else {
		c.from, c.parents = *from, *parents
	}
	in.cmd = c
	return nil
}

// chompHeredoc strips leading tabs from every line (<<-), as BuildKit's
// (?m)^\t+ replacement does.
func chompHeredoc(s string) string {
	if !strings.Contains(s, "\t") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	bol := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if bol && c == '\t' {
			continue
		}
		bol = c == '\n'
		b.WriteByte(c)
	}
	return b.String()
}

// validStageName matches ^[a-z][a-z0-9-_.]*$.
func validStageName(s string) bool {
	if s == "" || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 1; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func compileFrom(in *Instruction, fl *flagSet) error {
	var name string
	switch {
	case len(in.Args) == 3 && strings.EqualFold(in.Args[1], "as"):
		name = strings.ToLower(in.Args[2])
		if !validStageName(name) {
			return fmt.Errorf("invalid name for build stage: %q, name can't start with a number or contain symbols", in.Args[2])
		}
	case len(in.Args) != 1:
		return errors.New("FROM requires either one or three arguments")
	}
	platform := fl.str("platform")
	if err := fl.parse(); err != nil {
		return err
	}
	in.cmd = &fromCmd{base: in.Args[0], name: name, platform: *platform}
	return nil
}

var onbuildPrefix = regexp.MustCompile(`(?i)^\s*ONBUILD\s*`)

func compileOnbuild(in *Instruction, fl *flagSet) error {
	if len(in.Args) == 0 {
		return errAtLeastOne("ONBUILD")
	}
	if err := fl.parse(); err != nil {
		return err
	}
	trigger := strings.ToUpper(strings.TrimSpace(in.Args[0]))
	switch trigger {
	case "ONBUILD":
		//lint:ignore ST1005 BuildKit's wording, kept verbatim
		return errors.New("Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed")
	case "MAINTAINER", "FROM":
		return fmt.Errorf("%s isn't allowed as an ONBUILD trigger", trigger)
	}
	expr := onbuildPrefix.ReplaceAllString(in.Original, "")
	for _, h := range in.Heredocs {
		expr += "\n" + h.Content + h.Name
	}
	o, _ := in.cmd.(*onbuildCmd)
	if o == nil {
		o = &onbuildCmd{}
	}
	o.expression = expr
	in.cmd = o
	return nil
}

func cmdLineOf(in *Instruction, emptyAsNil bool) cmdLine {
	args := in.Args
	if !in.JSON && len(args) > 0 {
		args = []string{strings.Join(args, " ")}
	}
	if emptyAsNil && len(args) == 0 {
		args = nil
	} else if args == nil {
		args = []string{}
	}
	return cmdLine{args: args, files: in.Heredocs, prependShell: !in.JSON}
}

func compileRun(in *Instruction, fl *flagSet) error {
	network := fl.str("network")
	*network = "default"
	if err := fl.parse(); err != nil {
		return err
	}
	switch *network {
	case "default", "none", "host":
	default:
		return fmt.Errorf("invalid network mode %q", *network)
	}
	in.cmd = &runCmd{cmdLine: cmdLineOf(in, false), network: *network}
	return nil
}

func compileHealthcheck(in *Instruction, fl *flagSet) error {
	if len(in.Args) == 0 {
		return errAtLeastOne("HEALTHCHECK")
	}
	typ := strings.ToUpper(in.Args[0])
	args := in.Args[1:]
	if typ == "NONE" {
		if len(args) != 0 {
			return errors.New("HEALTHCHECK NONE takes no arguments")
		}
		in.cmd = &healthcheckCmd{health: &Healthcheck{Test: []string{typ}}}
		return nil
	}
	interval := fl.str("interval")
	timeout := fl.str("timeout")
	startPeriod := fl.str("start-period")
	startInterval := fl.str("start-interval")
	retries := fl.str("retries")
	if err := fl.parse(); err != nil {
		return err
	}
	if typ != "CMD" {
		//lint:ignore ST1005 BuildKit's wording, kept verbatim
		return fmt.Errorf("Unknown type %#v in HEALTHCHECK (try CMD)", typ)
	}
	cmd := args
	if !in.JSON && len(cmd) > 0 {
		cmd = []string{strings.Join(cmd, " ")}
	}
	if len(cmd) == 0 {
		//lint:ignore ST1005 BuildKit's wording, kept verbatim
		return errors.New("Missing command after HEALTHCHECK CMD")
	}
	if !in.JSON {
		typ = "CMD-SHELL"
	}
	h := &Healthcheck{Test: append([]string{typ}, cmd...)}
	var err error
	for _, d := range []struct {
		name string
		val  string
		dst  *time.Duration
	}{
		{"interval", *interval, &h.Interval},
		{"timeout", *timeout, &h.Timeout},
		{"start-period", *startPeriod, &h.StartPeriod},
		{"start-interval", *startInterval, &h.StartInterval},
	} {
		if *d.dst, err = parseInterval(d.name, d.val); err != nil {
			return err
		}
	}
	if *retries != "" {
		n, err := strconv.ParseInt(*retries, 10, 32)
		if err != nil {
			return err
		}
		if n < 0 {
			return fmt.Errorf("--retries cannot be negative (%d)", n)
		}
		h.Retries = int(n)
	}
	in.cmd = &healthcheckCmd{health: h}
	return nil
}

func parseInterval(name, s string) (time.Duration, error) {
	if s == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil {
		return 0, err
	}
	if d != 0 && d < time.Millisecond {
		//lint:ignore ST1005 BuildKit's wording, kept verbatim
		return 0, fmt.Errorf("Interval %#v cannot be less than %s", name, time.Millisecond)
	}
	return d, nil
}

func compileVolume(in *Instruction, fl *flagSet) error {
	if len(in.Args) == 0 {
		return errAtLeastOne("VOLUME")
	}
	if err := fl.parse(); err != nil {
		return err
	}
	c := &volumeCmd{}
	for _, v := range in.Args {
		v = strings.TrimSpace(v)
		if v == "" {
			return errors.New("VOLUME specified can not be an empty string")
		}
		c.volumes = append(c.volumes, v)
	}
	in.cmd = c
	return nil
}

func compileArg(in *Instruction) error {
	if len(in.Args) == 0 {
		return errAtLeastOne("ARG")
	}
	c := &argCmd{}
	for _, a := range in.Args {
		k, v, ok := strings.Cut(a, "=")
		if ok && k == "" {
			return errors.New("ARG names can not be blank")
		}
		d := argDef{Key: k}
		if ok {
			d.Value = &v
		}
		c.args = append(c.args, d)
	}
	in.cmd = c
	return nil
}

func compileShell(in *Instruction, fl *flagSet) error {
	if err := fl.parse(); err != nil {
		return err
	}
	args := in.Args
	if !in.JSON && len(args) > 0 {
		args = []string{strings.Join(args, " ")}
	}
	switch {
	case len(args) == 0:
		return errAtLeastOne("SHELL")
	case in.JSON:
		in.cmd = &shellCmd{shell: args}
		return nil
	}
	return fmt.Errorf("SHELL requires the arguments to be in JSON form")
}

// flagSet parses builder flags the way BuildKit's BFlags does.
type flagSet struct {
	in   *Instruction
	defs [8]flagDef // no instruction defines more flags
	n    int
	used map[string]bool
}

type flagDef struct {
	name  string
	kind  byte // 'b' bool, 's' string, 'l' list
	str   string
	boolV bool
	list  []string
}

func (fl *flagSet) flags() []flagDef { return fl.defs[:fl.n] }

func (fl *flagSet) lookup(name string) *flagDef {
	for i := range fl.flags() {
		if fl.defs[i].name == name {
			return &fl.defs[i]
		}
	}
	return nil
}

func (fl *flagSet) names() []string {
	var out []string
	for _, f := range fl.flags() {
		out = append(out, f.name)
	}
	return out
}

func (fl *flagSet) add(name string, kind byte) *flagDef {
	d := &fl.defs[fl.n]
	fl.n++
	d.name, d.kind = name, kind
	return d
}

func (fl *flagSet) str(name string) *string { return &fl.add(name, 's').str }

func (fl *flagSet) boolean(name string) *bool { return &fl.add(name, 'b').boolV }

func (fl *flagSet) strs(name string) *[]string { return &fl.add(name, 'l').list }

func (fl *flagSet) errAt(i int, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if i < len(fl.in.flagPos) {
		return &instrError{pos: fl.in.flagPos[i], msg: msg}
	}
	return errors.New(msg)
}

func (fl *flagSet) parse() error {
	if len(fl.in.Flags) == 0 {
		return nil
	}
	fl.used = map[string]bool{}
	for i, a := range fl.in.Flags {
		if a == "--" {
			return nil
		}
		if !strings.HasPrefix(a, "--") {
			return fl.errAt(i, "arg should start with -- : %s", a)
		}
		flagName, value, hasValue := strings.Cut(a, "=")
		name := flagName[2:]
		f := fl.lookup(name)
		if f == nil {
			msg := "unknown flag: " + flagName
			if s, ok := suggest(name, fl.names(), true); ok {
				msg += " (did you mean " + s + "?)"
			}
			return fl.errAt(i, "%s", msg)
		}
		if fl.used[name] && f.kind != 'l' {
			return fl.errAt(i, "duplicate flag specified: %s", flagName)
		}
		fl.used[name] = true
		switch f.kind {
		case 'b':
			if hasValue && value == "" {
				return fl.errAt(i, "missing a value on flag: %s", flagName)
			}
			switch strings.ToLower(value) {
			case "true", "":
				f.boolV = true
			case "false":
				f.boolV = false
			default:
				return fl.errAt(i, "expecting boolean value for flag %s, not: %s", flagName, value)
			}
		case 's':
			if !hasValue {
				return fl.errAt(i, "missing a value on flag: %s", flagName)
			}
			f.str = value
		case 'l':
			if !hasValue {
				return fl.errAt(i, "missing a value on flag: %s", flagName)
			}
			f.list = append(f.list, value)
		}
	}
	return nil
}

// suggest returns the option closest to val (edit distance below 3), like
// BuildKit's suggest.Search; options are tried in sorted order.
func suggest(val string, options []string, caseSensitive bool) (string, bool) {
	opts := slices.Clone(options)
	slices.Sort(opts)
	return search(val, opts, caseSensitive)
}

// search is BuildKit's suggest.Search: the first option at the smallest
// edit distance below 3, options tried in the order given; none when val
// is one of them.
func search(val string, options []string, caseSensitive bool) (string, bool) {
	orig := val
	if !caseSensitive {
		val = strings.ToLower(val)
	}
	match, best := "", 3
	for _, o := range options {
		if !caseSensitive {
			o = strings.ToLower(o)
		}
		if o == val {
			return "", false
		}
		if d := levenshtein(val, o); d < best {
			match, best = o, d
			if !caseSensitive {
				match = matchCase(o, orig)
			}
		}
	}
	return match, match != ""
}

func matchCase(val, orig string) string {
	switch orig {
	case strings.ToLower(orig):
		return strings.ToLower(val)
	case strings.ToUpper(orig):
		return strings.ToUpper(val)
	}
	return val
}

func levenshtein(a, b string) int {
	ra, rb := []rune(a), []rune(b)
	prev := make([]int, len(rb)+1)
	cur := make([]int, len(rb)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(ra); i++ {
		cur[0] = i
		for j := 1; j <= len(rb); j++ {
			cost := 1
			if ra[i-1] == rb[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(rb)]
}
