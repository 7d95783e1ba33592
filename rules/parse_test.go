package rules

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// brief is the part of an Instruction the parse tests compare.
type brief struct {
	Cmd      string
	Line     int
	Flags    []string
	Args     []string
	JSON     bool
	Heredocs []Heredoc
}

func briefs(f *File) []brief {
	var out []brief
	for _, in := range f.Instructions {
		out = append(out, brief{in.Cmd, in.Pos.Line, in.Flags, in.Args, in.JSON, in.Heredocs})
	}
	return out
}

func TestParse(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []brief
	}{
		{
			name: "continuation with trailing spaces and comments",
			src:  "FROM scratch\nRUN echo a \\  \n  # comment\n\n    && echo b\n",
			want: []brief{
				{Cmd: "FROM", Line: 1, Args: []string{"scratch"}},
				{Cmd: "RUN", Line: 2, Args: []string{"echo a     && echo b"}},
			},
		},
		{
			name: "json exec form",
			src:  "FROM scratch\nRUN [\"/hex0-seed\", \"a b\"]\n",
			want: []brief{
				{Cmd: "FROM", Line: 1, Args: []string{"scratch"}},
				{Cmd: "RUN", Line: 2, Args: []string{"/hex0-seed", "a b"}, JSON: true},
			},
		},
		{
			name: "bad json falls back to shell form",
			src:  "FROM scratch\nRUN [\"a\"\n",
			want: []brief{
				{Cmd: "FROM", Line: 1, Args: []string{"scratch"}},
				{Cmd: "RUN", Line: 2, Args: []string{`["a"`}},
			},
		},
		{
			name: "flags",
			src:  "from --platform=linux/386 stagex/core-gcc AS Build\nCOPY --from=build --chmod=755 a b /c/\n",
			want: []brief{
				{Cmd: "FROM", Line: 1, Flags: []string{"--platform=linux/386"}, Args: []string{"stagex/core-gcc", "AS", "Build"}},
				{Cmd: "COPY", Line: 2, Flags: []string{"--from=build", "--chmod=755"}, Args: []string{"a", "b", "/c/"}},
			},
		},
		{
			name: "env forms",
			src:  "FROM scratch\nENV A=1 B=\"two words\" C= D='x y'\nENV LEGACY some value\n",
			want: []brief{
				{Cmd: "FROM", Line: 1, Args: []string{"scratch"}},
				{Cmd: "ENV", Line: 2, Args: []string{"A", "1", "=", "B", `"two words"`, "=", "C", "", "=", "D", "'x y'", "="}},
				{Cmd: "ENV", Line: 3, Args: []string{"LEGACY", "some value", ""}},
			},
		},
		{
			name: "heredoc chomp strips tabs only",
			src:  "FROM scratch\nRUN --network=none <<-EOF\n\tset -eux\n\t  make\n  spaces\n\tEOF\nRUN true\n",
			want: []brief{
				{Cmd: "FROM", Line: 1, Args: []string{"scratch"}},
				{Cmd: "RUN", Line: 2, Flags: []string{"--network=none"}, Args: []string{"<<-EOF"},
					Heredocs: []Heredoc{{Name: "EOF", Expand: true, Chomp: true, Content: "\tset -eux\n\t  make\n  spaces\n"}}},
				{Cmd: "RUN", Line: 7, Args: []string{"true"}},
			},
		},
		{
			name: "quoted heredoc and several heredocs",
			src:  "FROM scratch\nCOPY <<'A' <<\"B\" <<C /dst/\na $X\nA\nb\nB\nc\nC\n",
			want: []brief{
				{Cmd: "FROM", Line: 1, Args: []string{"scratch"}},
				{Cmd: "COPY", Line: 2, Args: []string{"<<'A'", `<<"B"`, "<<C", "/dst/"}, Heredocs: []Heredoc{
					{Name: "A", Content: "a $X\n"},
					{Name: "B", Content: "b\n"},
					{Name: "C", Expand: true, Content: "c\n"},
				}},
			},
		},
		{
			name: "text before heredoc",
			src:  "FROM scratch\nRUN cat > f <<-EOF\n\tx\n\tEOF\n",
			want: []brief{
				{Cmd: "FROM", Line: 1, Args: []string{"scratch"}},
				{Cmd: "RUN", Line: 2, Args: []string{"cat > f <<-EOF"}, Heredocs: []Heredoc{{Name: "EOF", Expand: true, Chomp: true, Content: "\tx\n"}}},
			},
		},
		{
			name: "escape directive",
			src:  "# escape=`\nFROM scratch\nRUN dir c:\\ `\n  && echo\n",
			want: []brief{
				{Cmd: "FROM", Line: 2, Args: []string{"scratch"}},
				{Cmd: "RUN", Line: 3, Args: []string{`dir c:\   && echo`}},
			},
		},
		{
			name: "directive after instruction is a comment",
			src:  "FROM scratch\n# escape=`\nRUN a \\\n b\n",
			want: []brief{
				{Cmd: "FROM", Line: 1, Args: []string{"scratch"}},
				{Cmd: "RUN", Line: 3, Args: []string{"a  b"}},
			},
		},
		{
			name: "crlf and bom",
			src:  "\xEF\xBB\xBFFROM scratch\r\nWORKDIR /a b\r\n",
			want: []brief{
				{Cmd: "FROM", Line: 1, Args: []string{"scratch"}},
				{Cmd: "WORKDIR", Line: 2, Args: []string{"/a b"}},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("Containerfile", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, briefs(f)); diff != "" {
				t.Errorf("Parse (-want +got):\n%s", diff)
			}
		})
	}
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"unknown instruction", "FROM scratch\nRUNN true\n", "Containerfile:2:1: unknown instruction: RUNN (did you mean RUN?)"},
		{"unknown lower", "FROM scratch\n  cpoy a b\n", "Containerfile:2:3: unknown instruction: cpoy (did you mean copy?)"},
		{"unknown flag", "FROM scratch\nRUN --network=none --mount=type=cache,target=/x true\n", "Containerfile:2:20: unknown flag: --mount"},
		{"unknown flag suggestion", "FROM scratch\nCOPY --form=build a b\n", "Containerfile:2:6: unknown flag: --form (did you mean from?)"},
		{"copy has no checksum", "FROM scratch\nCOPY --checksum=sha256:00 a b\n", "Containerfile:2:6: unknown flag: --checksum"},
		{"bad network", "FROM scratch\nRUN --network=bridge true\n", "Containerfile:2:1: invalid network mode \"bridge\""},
		{"duplicate flag", "FROM scratch\nCOPY --from=a --from=b x y\n", "Containerfile:2:15: duplicate flag specified: --from"},
		{"missing flag value", "FROM scratch\nCOPY --from a b\n", "Containerfile:2:6: missing a value on flag: --from"},
		{"bool flag value", "FROM scratch\nCOPY --link=maybe a b\n", "Containerfile:2:6: expecting boolean value for flag --link, not: maybe"},
		{"unterminated heredoc", "FROM scratch\nRUN <<EOF\necho\n", "Containerfile:2:5: unterminated heredoc"},
		{"json not strings", "FROM scratch\nCMD [\"a\", 1]\n", "Containerfile:2:5: when using JSON array syntax, arrays must be comprised of strings only"},
		{"copy one arg", "FROM scratch\nCOPY a\n", "Containerfile:2:1: COPY requires at least two arguments, but only one was provided. Destination could not be determined"},
		{"heredoc destination", "FROM scratch\nCOPY a <<EOF\nx\nEOF\n", "Containerfile:2:1: COPY cannot accept a heredoc as a destination"},
		{"env one arg", "FROM scratch\nENV A\n", "Containerfile:2:5: ENV must have two arguments"},
		{"env missing equals", "FROM scratch\nENV A=1 B\n", "Containerfile:2:5: Syntax error - can't find = in \"B\". Must be of the form: name=value"},
		{"arg blank name", "ARG =x\nFROM scratch\n", "Containerfile:1:1: ARG names can not be blank"},
		{"from arity", "FROM a b\n", "Containerfile:1:1: FROM requires either one or three arguments"},
		{"bad stage name", "FROM a AS 1x\n", "Containerfile:1:1: invalid name for build stage: \"1x\", name can't start with a number or contain symbols"},
		{"shell not json", "FROM scratch\nSHELL /bin/sh -c\n", "Containerfile:2:1: SHELL requires the arguments to be in JSON form"},
		{"workdir arity", "FROM scratch\nWORKDIR\n", "Containerfile:2:1: WORKDIR requires exactly one argument"},
		{"no stage", "RUN true\n", "Containerfile:1:1: no build stage in current context"},
		{"only args", "ARG A\n", "Containerfile:1:1: dockerfile contains no stages to build"},
		{"no instructions", "\n# just a comment\n", "Containerfile:2:1: file with no instructions"},
		{"empty", "", "Containerfile:1:1: the Dockerfile cannot be empty"},
		{"first error in source order", "RUN x\nSHELL y\n", "Containerfile:1:1: no build stage in current context"},
		{"bad escape directive", "# escape=x\nFROM scratch\n", "Containerfile:1:1: invalid escape token 'x' does not match ` or \\"},
		{"duplicate directive", "# syntax=a\n# syntax=b\nFROM scratch\n", "Containerfile:2:1: only one syntax parser directive can be used"},
		{"onbuild onbuild", "FROM scratch\nONBUILD ONBUILD RUN x\n", "Containerfile:2:1: Chaining ONBUILD via `ONBUILD ONBUILD` isn't allowed"},
		{"healthcheck type", "FROM scratch\nHEALTHCHECK FOO x\n", "Containerfile:2:1: Unknown type \"FOO\" in HEALTHCHECK (try CMD)"},
		{"flag on continuation line", "FROM scratch\nCOPY \\\n  --frm=x a b\n", "Containerfile:3:3: unknown flag: --frm (did you mean from?)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse("Containerfile", []byte(tc.src))
			if err == nil {
				t.Fatal("no error")
			}
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T is not *Error", err)
			}
			if diff := cmp.Diff(tc.want, err.Error()); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestErrorDetail(t *testing.T) {
	_, err := Parse("Containerfile", []byte("FROM scratch\nRUN --netwrk=none true\n"))
	want := strings.Join([]string{
		"Containerfile:2:5: unknown flag: --netwrk (did you mean network?)",
		"RUN --netwrk=none true",
		"    ^",
	}, "\n")
	if diff := cmp.Diff(want, err.(*Error).Detail()); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
