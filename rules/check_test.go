package rules

import (
	"fmt"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseCheckConfig(t *testing.T) {
	tests := []struct {
		in      string
		want    CheckConfig
		wantErr string
	}{
		{in: "", want: CheckConfig{}},
		{in: "  ", want: CheckConfig{}},
		{in: "skip=FromPlatformFlagConstDisallowed;error=true", want: CheckConfig{Skip: []string{"FromPlatformFlagConstDisallowed"}, Error: true}},
		{in: " skip = A , B ;error= 1 ", want: CheckConfig{Skip: []string{"A", "B"}, Error: true}},
		{in: "skip=all;experimental=all", want: CheckConfig{SkipAll: true, ExperimentalAll: true}},
		{in: "experimental=CopyIgnoredFile,InvalidDefinitionDescription;error=FALSE", want: CheckConfig{Experimental: []string{"CopyIgnoredFile", "InvalidDefinitionDescription"}}},
		// At most three parts: a fourth stays in the third's value.
		{in: "error=false;skip=A;experimental=B;skip=all", want: CheckConfig{Skip: []string{"A"}, Experimental: []string{"B;skip=all"}}},
		{in: "skip", wantErr: `invalid check option "skip"`},
		{in: "skip=A;", wantErr: `invalid check option ""`},
		{in: "warn=true", wantErr: `invalid check option "warn"`},
		{in: "error=maybe", wantErr: `failed to parse check option "error=maybe": strconv.ParseBool: parsing "maybe": invalid syntax`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseCheckConfig(tc.in)
			wantResult(t, got, err, tc.want, tc.wantErr)
		})
	}
}

func TestCheckConfigEnabled(t *testing.T) {
	exp, plain := checkInvalidDefinitionDescription, checkUndefinedVar
	tests := []struct {
		cfg        CheckConfig
		exp, plain bool
	}{
		{CheckConfig{}, false, true},
		{CheckConfig{SkipAll: true}, false, false},
		{CheckConfig{Skip: []string{"UndefinedVar", "InvalidDefinitionDescription"}}, false, false},
		{CheckConfig{SkipAll: true, Experimental: []string{"InvalidDefinitionDescription"}}, true, false},
		{CheckConfig{ExperimentalAll: true}, true, true},
	}
	for _, tc := range tests {
		if got := tc.cfg.Enabled(exp); got != tc.exp {
			t.Errorf("%+v: experimental check enabled = %v", tc.cfg, got)
		}
		if got := tc.cfg.Enabled(plain); got != tc.plain {
			t.Errorf("%+v: check enabled = %v", tc.cfg, got)
		}
	}
}

// TestFileCheckConfig checks where a build's check config comes from:
// the build arg when given, even empty, else the # check= directive as
// BuildKit's ParseDirective reads it.
func TestFileCheckConfig(t *testing.T) {
	tests := []struct {
		name    string
		src     string
		args    map[string]string
		want    CheckConfig
		wantErr string
	}{
		{name: "directive", src: "# check=error=true\nFROM scratch\n", want: CheckConfig{Error: true}},
		{name: "arg wins", src: "# check=error=true\nFROM scratch\n", args: map[string]string{CheckArg: "skip=all"}, want: CheckConfig{SkipAll: true}},
		{name: "empty arg wins", src: "# check=error=true\nFROM scratch\n", args: map[string]string{CheckArg: ""}, want: CheckConfig{}},
		{name: "after other directives", src: "# syntax=x\n# escape=`\n#check = skip=all\nFROM scratch\n", want: CheckConfig{SkipAll: true}},
		{name: "after a shebang", src: "#!/bin/x\n# check=error=true\nFROM scratch\n", want: CheckConfig{Error: true}},
		{name: "up to a space", src: "# check=skip=A ;error=true\nFROM scratch\n", want: CheckConfig{Skip: []string{"A"}}},
		{name: "after a comment", src: "# hello\n# check=error=true\nFROM scratch\n", want: CheckConfig{}},
		{name: "indented", src: " # check=error=true\nFROM scratch\n", want: CheckConfig{}},
		{name: "after an instruction", src: "FROM scratch\n# check=error=true\n", want: CheckConfig{}},
		{name: "bad directive", src: "# escape=\\\n# check=skip\nFROM scratch\n", wantErr: "Containerfile:2:1: failed to parse check options: invalid check option \"skip\""},
		{name: "bad arg", src: "FROM scratch\n", args: map[string]string{CheckArg: "nope"}, wantErr: "Containerfile: failed to parse build-arg:BUILDKIT_DOCKERFILE_CHECK: invalid check option \"nope\""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("Containerfile", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			got, err := f.CheckConfig(tc.args)
			wantResult(t, got, err, tc.want, tc.wantErr)
		})
	}
}

// lint evaluates src as BuildKit's lint request does (every stage) and
// renders each finding "line-end Check: message".
func lint(t *testing.T, src string, opt EvalOptions) ([]string, error) {
	t.Helper()
	f, err := Parse("Containerfile", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	opt.Platform = Platform{OS: "linux", Arch: "amd64"}
	opt.BuildPlatform = opt.Platform
	opt.Report = func(fd Finding) {
		out = append(out, fmt.Sprintf("%d-%d %s: %s", fd.Pos.Line, fd.EndLine, fd.Check.Name, fd.Message))
	}
	_, err = Evaluate(f, opt)
	return out, err
}

// TestChecks pins a few findings the check corpus (testdata/checks, which
// make compat compares with BuildKit) covers at length, and what only
// unit tests can see: the findings before an evaluation error, the
// stages a build checks, and base image configs.
func TestChecks(t *testing.T) {
	pallet := func(string, Platform) (ImageConfig, error) {
		return ImageConfig{Env: []string{"PATH=/bin", "HOME=/root"}, Shell: []string{"/bin/sh", "-c"}, WorkingDir: "/w"}, nil
	}
	tests := []struct {
		name    string
		src     string
		opt     EvalOptions
		want    []string
		wantErr string
	}{{
		name: "the issue's example",
		src:  "FROM scratch as build\nENV FOO bar\nCOPY <<EOF /x\necho $UNDEF\nEOF\nENTRYPOINT echo hi\n",
		opt:  EvalOptions{AllStages: true},
		want: []string{
			"1-1 FromAsCasing: 'as' and 'FROM' keywords' casing do not match",
			"2-2 LegacyKeyValueFormat: \"ENV key=value\" should be used instead of legacy \"ENV key value\" format",
			"3-5 UndefinedVar: Usage of undefined variable '$UNDEF'",
			"6-6 JSONArgsRecommended: JSON arguments recommended for ENTRYPOINT to prevent unintended behavior related to OS signals",
		},
	}, {
		name: "a build checks the stages it needs",
		src:  "FROM scratch AS unused\nENV A=$X\nFROM scratch AS package\nENV B=$Y\n",
		want: []string{"4-4 UndefinedVar: Usage of undefined variable '$Y'"},
	}, {
		name: "a lint request checks every stage",
		src:  "FROM scratch AS unused\nENV A=$X\nFROM scratch AS package\nENV B=$Y\n",
		opt:  EvalOptions{AllStages: true},
		want: []string{
			"2-2 UndefinedVar: Usage of undefined variable '$X'",
			"4-4 UndefinedVar: Usage of undefined variable '$Y'",
		},
	}, {
		name: "the base image's env and shell",
		src:  "FROM stagex/pallet AS package\nENV A=$HOME B=$HOMES\nCMD run\nWORKDIR sub\n",
		opt:  EvalOptions{ImageConfig: pallet},
		want: []string{
			"2-2 UndefinedVar: Usage of undefined variable '$HOMES' (did you mean $HOME?)",
			"4-4 WorkdirRelativePath: Relative workdir \"sub\" can have unexpected results if the base image changes",
		},
	}, {
		name: "findings before an error",
		src:  "FROM scratch as build\nENV A=$U\nSTOPSIGNAL $SIG\nENV B=$V\n",
		want: []string{
			"1-1 FromAsCasing: 'as' and 'FROM' keywords' casing do not match",
			"2-2 UndefinedVar: Usage of undefined variable '$U'",
			"3-3 UndefinedVar: Usage of undefined variable '$SIG'",
		},
		wantErr: "Containerfile:3:1: invalid signal: ",
	}, {
		name: "an undeclared arg in FROM before a blank base",
		src:  "FROM $BASE\n",
		want: []string{
			"1-1 InvalidDefaultArgInFrom: Default value for ARG $BASE results in empty or invalid base image name",
			"1-1 UndefinedArgInFrom: FROM argument 'BASE' is not declared",
		},
		wantErr: "Containerfile:1:1: base name ($BASE) should not be blank",
	}, {
		name: "skipped and experimental checks",
		src:  "# check=skip=FromAsCasing;experimental=InvalidDefinitionDescription\n# a comment\nARG A\nFROM scratch as build\n",
		opt:  EvalOptions{Checks: CheckConfig{Skip: []string{"FromAsCasing"}, Experimental: []string{"InvalidDefinitionDescription"}}},
		want: []string{"3-3 InvalidDefinitionDescription: Comment for ARG should follow the format: `# A <description>`"},
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := lint(t, tc.src, tc.opt)
			if tc.wantErr != "" {
				if err == nil || err.Error() != tc.wantErr {
					t.Errorf("error = %v, want %s", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("findings (-want +got):\n%s", diff)
			}
		})
	}
}

// TestChecksOff checks that evaluating without Report runs no check and
// gives the same steps.
func TestChecksOff(t *testing.T) {
	src := "FROM scratch as build\nENV FOO bar\nWORKDIR rel\nCMD echo $UNDEF\n"
	f, err := Parse("Containerfile", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	opt := EvalOptions{Platform: Platform{OS: "linux", Arch: "amd64"}}
	plain, err := Evaluate(f, opt)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	opt.Report = func(Finding) { n++ }
	checked, err := Evaluate(f, opt)
	if err != nil {
		t.Fatal(err)
	}
	if n != 4 {
		t.Errorf("%d findings, want 4", n)
	}
	if diff := cmp.Diff(plain.Target.Config, checked.Target.Config); diff != "" {
		t.Errorf("checks changed the config:\n%s", diff)
	}
}

func TestCheckError(t *testing.T) {
	f, err := Parse("Containerfile", []byte("FROM scratch as build\n  ENV A 1\n"))
	if err != nil {
		t.Fatal(err)
	}
	var fds []Finding
	if _, err := Evaluate(f, EvalOptions{Report: func(fd Finding) { fds = append(fds, fd) }}); err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"Containerfile:1:1: FromAsCasing: 'as' and 'FROM' keywords' casing do not match",
		"FROM scratch as build",
		"^",
		"Containerfile:2:3: LegacyKeyValueFormat: \"ENV key=value\" should be used instead of legacy \"ENV key value\" format",
		"  ENV A 1",
		"  ^",
		"lint violation found for rules: FromAsCasing, LegacyKeyValueFormat",
	}, "\n")
	if got := (&CheckError{Findings: fds}).Error(); got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
}
