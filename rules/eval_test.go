package rules

import (
	"fmt"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var amd64 = Platform{OS: "linux", Arch: "amd64"}

func evaluate(t *testing.T, src string, opt EvalOptions) *Build {
	t.Helper()
	f, err := Parse("Containerfile", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	if opt.Platform.IsZero() {
		opt.Platform = amd64
	}
	b, err := Evaluate(f, opt)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// stepView is the part of a Step a test compares.
type stepView struct {
	CreatedBy  string
	EmptyLayer bool
	Env        []string
	Workdir    string
	Args       []string
	Files      []InlineFile
	Dest       string
	Sources    []CopySource
}

const defPath = "PATH=" + defaultPath

func TestEvaluateSteps(t *testing.T) {
	pallet := func(ref string, p Platform) (ImageConfig, error) {
		if ref != "stagex/pallet-gcc" {
			return ImageConfig{}, fmt.Errorf("unexpected image %s", ref)
		}
		return ImageConfig{Env: []string{"PATH=/usr/bin:/bin", "CC=gcc"}, Shell: []string{"/bin/sh", "-l", "-c"}, WorkingDir: "/home"}, nil
	}
	tests := []struct {
		name string
		src  string
		opt  EvalOptions
		want []stepView // steps of the target stage
	}{
		{
			name: "heredoc run with build args",
			src:  "FROM scratch\nARG VERSION\nARG UNSET\nRUN --network=none <<-EOF\n\tset -eux\n\t  make V=${VERSION}\nEOF\n",
			opt:  EvalOptions{BuildArgs: map[string]string{"VERSION": "1.2"}},
			want: []stepView{
				{CreatedBy: "ARG VERSION=1.2", EmptyLayer: true, Env: []string{defPath}, Workdir: "/"},
				{CreatedBy: "ARG UNSET", EmptyLayer: true, Env: []string{defPath, "VERSION=1.2"}, Workdir: "/"},
				{
					CreatedBy: "RUN |2 VERSION=1.2 UNSET= /bin/sh -c set -eux\n  make V=${VERSION}\n # buildkit",
					Env:       []string{defPath, "VERSION=1.2"}, Workdir: "/",
					Args: []string{"/bin/sh", "-c", "set -eux\n  make V=${VERSION}\n"},
				},
			},
		},
		{
			name: "shebang heredoc is mounted as a file",
			src:  "FROM scratch\nRUN <<EOF\n#!/bin/sh\necho hi\nEOF\n",
			want: []stepView{{
				CreatedBy: "RUN /bin/sh -c /dev/pipes/EOF # buildkit",
				Env:       []string{defPath}, Workdir: "/",
				Args:  []string{"/bin/sh", "-c", "/dev/pipes/EOF"},
				Files: []InlineFile{{Path: "/dev/pipes/EOF", Data: "#!/bin/sh\necho hi\n", Mode: 0o755}},
			}},
		},
		{
			name: "text before heredoc keeps the raw body",
			src:  "FROM scratch\nRUN cat > f <<-EOF\n\tx $A\n\tEOF\n",
			want: []stepView{{
				CreatedBy: "RUN /bin/sh -c cat > f <<-EOF\n\tx $A\nEOF # buildkit",
				Env:       []string{defPath}, Workdir: "/",
				Args: []string{"/bin/sh", "-c", "cat > f <<-EOF\n\tx $A\nEOF"},
			}},
		},
		{
			name: "exec form is not wrapped",
			src:  "FROM scratch\nRUN [\"/hex0-seed\", \"in\", \"out\"]\n",
			want: []stepView{{
				CreatedBy: "RUN /hex0-seed in out # buildkit",
				Env:       []string{defPath}, Workdir: "/",
				Args: []string{"/hex0-seed", "in", "out"},
			}},
		},
		{
			name: "env forms and shadowing",
			src: "FROM scratch\nARG A=arg\nENV A=env B=\"two words\" C= D='h\u00e9 $A' E=${A}-x\n" +
				"ENV LEGACY some  value\nRUN env\n",
			want: []stepView{
				{CreatedBy: "ARG A=arg", EmptyLayer: true, Env: []string{defPath}, Workdir: "/"},
				{CreatedBy: "ENV A=env B=two words C= D=h\u00e9 $A E=arg-x", EmptyLayer: true, Env: []string{defPath, "A=arg"}, Workdir: "/"},
				{CreatedBy: "ENV LEGACY=some  value", EmptyLayer: true, Env: []string{defPath, "A=env", "B=two words", "C=", "D=h\u00e9 $A", "E=arg-x"}, Workdir: "/"},
				{
					CreatedBy: "RUN |1 A=env /bin/sh -c env # buildkit",
					Env:       []string{defPath, "A=env", "B=two words", "C=", "D=h\u00e9 $A", "E=arg-x", "LEGACY=some  value"}, Workdir: "/",
					Args: []string{"/bin/sh", "-c", "env"},
				},
			},
		},
		{
			name: "workdir and relative copy destinations",
			src: "FROM scratch\nENV NAME=pkg\nWORKDIR src\nWORKDIR ${NAME}-1\nCOPY a.patch b* ./\nCOPY x sub/\n" +
				"COPY y .\nADD fetch/${NAME}.tar.xz /abs//dir\nWORKDIR /\n",
			want: []stepView{
				{CreatedBy: "ENV NAME=pkg", EmptyLayer: true, Env: []string{defPath}, Workdir: "/"},
				{CreatedBy: "WORKDIR /src", Env: []string{defPath, "NAME=pkg"}, Workdir: "/src"},
				{CreatedBy: "WORKDIR /src/pkg-1", Env: []string{defPath, "NAME=pkg"}, Workdir: "/src/pkg-1"},
				{CreatedBy: "COPY a.patch b* ./ # buildkit", Env: []string{defPath, "NAME=pkg"}, Workdir: "/src/pkg-1",
					Dest: "/src/pkg-1/", Sources: []CopySource{{Path: "/a.patch"}, {Path: "/b*", Pattern: true}}},
				{CreatedBy: "COPY x sub/ # buildkit", Env: []string{defPath, "NAME=pkg"}, Workdir: "/src/pkg-1",
					Dest: "/src/pkg-1/sub/", Sources: []CopySource{{Path: "/x"}}},
				{CreatedBy: "COPY y . # buildkit", Env: []string{defPath, "NAME=pkg"}, Workdir: "/src/pkg-1",
					Dest: "/src/pkg-1/", Sources: []CopySource{{Path: "/y"}}},
				{CreatedBy: "ADD fetch/pkg.tar.xz /abs//dir # buildkit", Env: []string{defPath, "NAME=pkg"}, Workdir: "/src/pkg-1",
					Dest: "/abs/dir", Sources: []CopySource{{Path: "/fetch/pkg.tar.xz"}}},
				{CreatedBy: "WORKDIR /", EmptyLayer: true, Env: []string{defPath, "NAME=pkg"}, Workdir: "/"},
			},
		},
		{
			name: "copy heredocs expand only unquoted bodies",
			src:  "FROM scratch\nARG V=1\nCOPY --chmod=644 <<EOF <<'RAW' /etc/\nv=$V \\$V '${V}'\nEOF\nv=$V\nRAW\n",
			want: []stepView{
				{CreatedBy: "ARG V=1", EmptyLayer: true, Env: []string{defPath}, Workdir: "/"},
				{CreatedBy: "COPY --chmod=644 <<EOF <<RAW /etc/ # buildkit", Env: []string{defPath, "V=1"}, Workdir: "/", Dest: "/etc/",
					Sources: []CopySource{
						{Heredoc: true, Name: "EOF", Data: "v=1 $V '1'\n", Expand: true, Mode: 0o644},
						{Heredoc: true, Name: "RAW", Data: "v=$V\n", Mode: 0o644},
					}},
			},
		},
		{
			name: "base image config is inherited",
			src:  "FROM stagex/pallet-gcc\nWORKDIR build\nRUN make\nENTRYPOINT [\"/usr/bin/gcc\"]\nCMD make --help\n",
			opt:  EvalOptions{ImageConfig: pallet},
			want: []stepView{
				{CreatedBy: "WORKDIR /home/build", Env: []string{"PATH=/usr/bin:/bin", "CC=gcc"}, Workdir: "/home/build"},
				{CreatedBy: "RUN /bin/sh -l -c make # buildkit", Env: []string{"PATH=/usr/bin:/bin", "CC=gcc"}, Workdir: "/home/build",
					Args: []string{"/bin/sh", "-l", "-c", "make"}},
				{CreatedBy: `ENTRYPOINT ["/usr/bin/gcc"]`, EmptyLayer: true, Env: []string{"PATH=/usr/bin:/bin", "CC=gcc"}, Workdir: "/home/build"},
				{CreatedBy: `CMD ["/bin/sh" "-l" "-c" "make --help"]`, EmptyLayer: true, Env: []string{"PATH=/usr/bin:/bin", "CC=gcc"}, Workdir: "/home/build"},
			},
		},
		{
			name: "metadata instructions",
			src: "FROM scratch\nARG P=8080\nLABEL a=\"x y\" b=$P\nEXPOSE $P 53/udp 1000-1001\nVOLUME /data $P\nSTOPSIGNAL SIGTERM\n" +
				"USER 1000:1000\nSHELL [\"/bin/bash\", \"-c\"]\nMAINTAINER me\nHEALTHCHECK --interval=30s --retries=3 CMD true\n",
			want: []stepView{
				{CreatedBy: "ARG P=8080", EmptyLayer: true, Env: []string{defPath}, Workdir: "/"},
				{CreatedBy: "LABEL a=x y b=8080", EmptyLayer: true, Env: []string{defPath, "P=8080"}, Workdir: "/"},
				{CreatedBy: "EXPOSE [8080/tcp 1000/tcp 1001/tcp 53/udp]", EmptyLayer: true, Env: []string{defPath, "P=8080"}, Workdir: "/"},
				{CreatedBy: "VOLUME [/data 8080]", EmptyLayer: true, Env: []string{defPath, "P=8080"}, Workdir: "/"},
				{CreatedBy: "STOPSIGNAL SIGTERM", EmptyLayer: true, Env: []string{defPath, "P=8080"}, Workdir: "/"},
				{CreatedBy: "USER 1000:1000", EmptyLayer: true, Env: []string{defPath, "P=8080"}, Workdir: "/"},
				{CreatedBy: "SHELL [/bin/bash -c]", EmptyLayer: true, Env: []string{defPath, "P=8080"}, Workdir: "/"},
				{CreatedBy: "MAINTAINER me", EmptyLayer: true, Env: []string{defPath, "P=8080"}, Workdir: "/"},
				{CreatedBy: `HEALTHCHECK &{["CMD-SHELL" "true"] "30s" "0s" "0s" "0s" '\x03'}`, EmptyLayer: true, Env: []string{defPath, "P=8080"}, Workdir: "/"},
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := evaluate(t, tc.src, tc.opt)
			var got []stepView
			for _, s := range b.Target.Steps {
				got = append(got, stepView{s.CreatedBy, s.EmptyLayer, s.Env, s.Workdir, s.Args, s.Files, s.Dest, s.Sources})
			}
			if diff := cmp.Diff(tc.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("steps (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEvaluateConfig(t *testing.T) {
	src := "FROM scratch AS base\nENV A=1\nWORKDIR /w\nSHELL [\"/bin/sh\",\"-l\",\"-c\"]\nARG X=x\n" +
		"FROM base AS build\nRUN true\nLABEL l=v\nEXPOSE 80\nUSER u\nCMD [\"c\"]\nENTRYPOINT [\"e\"]\nONBUILD RUN echo hi\n"
	b := evaluate(t, src, EvalOptions{})
	want := ImageConfig{
		Env:          []string{defPath, "A=1"},
		WorkingDir:   "/w",
		Shell:        []string{"/bin/sh", "-l", "-c"},
		User:         "u",
		Entrypoint:   []string{"e"},
		Cmd:          []string{"c"},
		ArgsEscaped:  true,
		Labels:       map[string]string{"l": "v"},
		ExposedPorts: []string{"80/tcp"},
		OnBuild:      []string{"RUN echo hi"},
	}
	if diff := cmp.Diff(want, b.Target.Config); diff != "" {
		t.Errorf("config (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"X=x"}, b.Target.BuildArgs); diff != "" {
		t.Errorf("inherited build args (-want +got):\n%s", diff)
	}
	run := b.Target.Steps[0]
	if diff := cmp.Diff("RUN |1 X=x /bin/sh -l -c true # buildkit", run.CreatedBy); diff != "" {
		t.Errorf("created_by (-want +got):\n%s", diff)
	}
	if b.Target.Base.Kind != StageBase || b.Target.Base.Stage != b.Stages[0] {
		t.Errorf("base = %+v, want stage 0", b.Target.Base)
	}
}

func TestEvaluateArgs(t *testing.T) {
	src := "ARG BASE=stagex/core-busybox\nARG GLOBAL=g\nARG TARGETARCH\nFROM ${BASE} AS a\nARG GLOBAL\nARG TARGETARCH\nARG BUILDPLATFORM\nARG NOTGIVEN\nRUN x\n"
	tests := []struct {
		name    string
		opt     EvalOptions
		base    string
		created string
	}{
		{"defaults", EvalOptions{Platform: Platform{OS: "linux", Arch: "arm64"}, BuildPlatform: Platform{OS: "linux", Arch: "riscv64"}}, "stagex/core-busybox",
			"RUN |4 GLOBAL=g TARGETARCH=arm64 BUILDPLATFORM=linux/riscv64 NOTGIVEN= /bin/sh -c x # buildkit"},
		{"build args override", EvalOptions{BuildPlatform: amd64, BuildArgs: map[string]string{"BASE": "stagex/other", "GLOBAL": "G", "NOTGIVEN": "n", "UNDECLARED": "u"}}, "stagex/other",
			"RUN |4 GLOBAL=G TARGETARCH=amd64 BUILDPLATFORM=linux/amd64 NOTGIVEN=n /bin/sh -c x # buildkit"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := evaluate(t, src, tc.opt)
			if diff := cmp.Diff(tc.base, b.Target.Base.Ref); diff != "" {
				t.Errorf("base (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tc.created, b.Target.Steps[4].CreatedBy); diff != "" {
				t.Errorf("created_by (-want +got):\n%s", diff)
			}
		})
	}
}

func TestEvaluateStages(t *testing.T) {
	src := "FROM scratch AS unused\nFROM --platform=linux/386 stagex/bootstrap-stage0 AS x86\nCOPY --from=fetch . /\n" +
		"FROM scratch AS package\nCOPY --from=x86 /out /\nCOPY --from=stagex/core-busybox . /\nCOPY --from=1 / /b/\n"
	var asked []string
	b := evaluate(t, src, EvalOptions{
		NamedContexts: map[string]bool{"fetch": true},
		ImageConfig: func(ref string, p Platform) (ImageConfig, error) {
			asked = append(asked, ref+"@"+p.String())
			return ImageConfig{}, nil
		},
	})
	var names []string
	for _, s := range b.Stages {
		names = append(names, s.Name+"@"+s.Platform.String())
	}
	if diff := cmp.Diff([]string{"x86@linux/386", "package@linux/amd64"}, names); diff != "" {
		t.Errorf("stages (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"stagex/bootstrap-stage0@linux/386"}, asked); diff != "" {
		t.Errorf("image configs asked (-want +got):\n%s", diff)
	}
	froms := []From{b.Stages[0].Steps[0].From}
	for _, s := range b.Target.Steps {
		froms = append(froms, s.From)
	}
	want := []From{
		{Kind: NamedContext, Ref: "fetch"},
		{Kind: StageSource, Stage: b.Stages[0]},
		{Kind: ImageSource, Ref: "stagex/core-busybox"},
		{Kind: StageSource, Stage: b.Stages[0]},
	}
	if diff := cmp.Diff(want, froms, cmp.Comparer(func(a, b *Stage) bool { return a == b })); diff != "" {
		t.Errorf("sources (-want +got):\n%s", diff)
	}
}

func TestEvaluateErrors(t *testing.T) {
	tests := []struct {
		name, src, want string
		opt             EvalOptions
	}{
		{name: "copy from later stage", src: "FROM scratch AS a\nCOPY --from=b / /\nFROM scratch AS b\n",
			want: `Containerfile:2:1: cannot copy from stage "b", it needs to be defined before current stage "a"`, opt: EvalOptions{Target: "a"}},
		{name: "circular", src: "FROM scratch AS a\nCOPY --from=b / /\nFROM scratch AS b\nCOPY --from=a / /\n",
			want: "Containerfile:2:1: circular dependency detected on stage: a"},
		{name: "from with variable", src: "FROM scratch\nARG S=a\nCOPY --from=$S / /\n",
			want: "Containerfile:3:1: variable expansion is not supported for --from, define a new stage with FROM using ARG from global scope as a workaround"},
		{name: "bad stage index", src: "FROM scratch\nCOPY --from=3 / /\n", want: "Containerfile:2:1: invalid stage index 3"},
		{name: "unknown target", src: "FROM scratch AS package\n", want: `Containerfile:1:1: target stage "pakage" could not be found (did you mean package?)`,
			opt: EvalOptions{Target: "pakage"}},
		{name: "blank base", src: "ARG B\nFROM $B\n", want: "Containerfile:2:1: base name ($B) should not be blank"},
		{name: "bad platform", src: "FROM --platform=linux/ stagex/x\n", want: `Containerfile:1:1: failed to parse platform linux/: "" is an invalid component of "linux/": platform specifier component must match "^[A-Za-z0-9_.-]+$": invalid argument`},
		{name: "required variable", src: "FROM scratch\nWORKDIR ${DIR:?set DIR}\n", want: `Containerfile:2:1: failed to process "${DIR:?set DIR}": DIR: set DIR`},
		{name: "bad chmod", src: "FROM scratch\nCOPY --chmod=999 a b\n", want: "Containerfile:2:1: invalid chmod parameter: '999'. it should be octal string and between 0 and 07777"},
		{name: "bad signal", src: "FROM scratch\nSTOPSIGNAL SIGFOO\n", want: "Containerfile:2:1: invalid signal: SIGFOO"},
		{name: "link with a user name", src: "FROM scratch\nCOPY --link --chown=1:staff a b\n",
			want: `Containerfile:2:1: --chown=1:staff with --link: "staff" is a name, and --link copies onto nothing, where no name can be looked up; use numeric ids`},
		{name: "url source", src: "FROM scratch\nADD https://example.org/x.tgz /\n", want: "Containerfile:2:1: https://example.org/x.tgz: remote sources are not supported"},
		{name: "image config error", src: "FROM stagex/missing\n", want: "Containerfile:1:1: stagex/missing: not built",
			opt: EvalOptions{ImageConfig: func(string, Platform) (ImageConfig, error) { return ImageConfig{}, fmt.Errorf("not built") }}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Parse("Containerfile", []byte(tc.src))
			if err != nil {
				t.Fatal(err)
			}
			_, err = Evaluate(f, tc.opt)
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

func TestImageRefs(t *testing.T) {
	src := "ARG CORE=stagex/core\nFROM ${CORE}-busybox AS build\nCOPY --from=stagex/core-gcc . /\nCOPY --from=fetch . /\n" +
		"FROM scratch AS side\nCOPY --from=stagex/core-unused . /\n" +
		"FROM stagex/core-filesystem AS package\nCOPY --from=build / /\nCOPY --from=stagex/core-gcc . /\nCOPY --from=scratch / /\n"
	f, err := Parse("Containerfile", []byte(src))
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		target string
		args   map[string]string
		want   []ImageRef
	}{
		{"last stage", "", nil, []ImageRef{
			{"stagex/core-busybox", Pos{"Containerfile", 2, 1}},
			{"stagex/core-gcc", Pos{"Containerfile", 3, 1}},
			{"stagex/core-filesystem", Pos{"Containerfile", 7, 1}},
		}},
		{"named target with build arg", "side", map[string]string{"CORE": "x"}, []ImageRef{
			{"stagex/core-unused", Pos{"Containerfile", 6, 1}},
		}},
		{"build arg in from", "build", map[string]string{"CORE": "stagex/pallet"}, []ImageRef{
			{"stagex/pallet-busybox", Pos{"Containerfile", 2, 1}},
			{"stagex/core-gcc", Pos{"Containerfile", 3, 1}},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := f.ImageRefs(tc.target, tc.args, WithNamedContexts("fetch"))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestParsePlatform(t *testing.T) {
	tests := []struct {
		in      string
		want    Platform
		wantErr string
	}{
		{in: "linux/386", want: Platform{OS: "linux", Arch: "386"}},
		{in: "linux/amd64", want: Platform{OS: "linux", Arch: "amd64"}},
		{in: "Linux/x86_64", want: Platform{OS: "linux", Arch: "amd64"}},
		{in: "linux/aarch64", want: Platform{OS: "linux", Arch: "arm64"}},
		{in: "linux/arm64/v8", want: Platform{OS: "linux", Arch: "arm64", Variant: "v8"}},
		{in: "linux/arm/7", want: Platform{OS: "linux", Arch: "arm", Variant: "v7"}},
		{in: "linux/arm", want: Platform{OS: "linux", Arch: "arm"}},
		{in: "i386", want: Platform{OS: "linux", Arch: "386"}},
		{in: "linux/*", wantErr: `"linux/*": wildcards not yet supported: invalid argument`},
		{in: "foo", wantErr: `"foo": unknown operating system or architecture: invalid argument`},
		{in: "a/b/c/d", wantErr: `"a/b/c/d": cannot parse platform specifier: invalid argument`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParsePlatform(tc.in)
			wantResult(t, got, err, tc.want, tc.wantErr)
		})
	}
	if got := (Platform{OS: "linux", Arch: "arm", Variant: "v7"}).String(); got != "linux/arm/v7" {
		t.Errorf("String() = %q", got)
	}
}

func TestOnbuildTriggers(t *testing.T) {
	src := "FROM scratch AS a\nONBUILD ENV T=1\nONBUILD RUN echo $T\nRUN echo a\nFROM a AS b\nRUN echo b\n"
	b := evaluate(t, src, EvalOptions{})
	var got []string
	for _, s := range b.Target.Steps {
		got = append(got, s.Pos.String()+" "+s.CreatedBy)
	}
	want := []string{
		"Containerfile:5:1 ENV T=1",
		"Containerfile:5:1 RUN /bin/sh -c echo $T # buildkit",
		"Containerfile:6:1 RUN /bin/sh -c echo b # buildkit",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if b.Target.Config.OnBuild != nil {
		t.Errorf("OnBuild = %q, want none: triggers are consumed", b.Target.Config.OnBuild)
	}
	img := evaluate(t, "FROM stagex/x\nRUN true\n", EvalOptions{ImageConfig: func(string, Platform) (ImageConfig, error) {
		return ImageConfig{OnBuild: []string{"WORKDIR /from-image"}}, nil
	}})
	if diff := cmp.Diff("/from-image", img.Target.Steps[1].Workdir); diff != "" {
		t.Errorf("image trigger (-want +got):\n%s", diff)
	}
}

func TestStepString(t *testing.T) {
	src := "FROM scratch AS a\nFROM scratch\nARG J=4\nRUN --network=none make -j${J}\nCOPY --from=a --chmod=755 /x y* /dst/\n" +
		"COPY <<EOF /etc/f\nx\nEOF\nENV K=\"v w\"\nONBUILD RUN x\nRUN [\"/bin/true\", \"a b\"]\n"
	b := evaluate(t, src, EvalOptions{})
	var got []string
	for _, s := range b.Target.Steps {
		got = append(got, s.String())
	}
	want := []string{
		"ARG J=4",
		"RUN --network=none /bin/sh -c 'make -j${J}'",
		"COPY --from=a --chmod=755 /x /y* /dst/",
		"COPY <<EOF /etc/f",
		"ENV K=v w",
		"ONBUILD RUN x",
		"RUN /bin/true 'a b'",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestEscapeDirective(t *testing.T) {
	src := "# escape=`\nFROM scratch\nENV DIR=C:\\path X=a`$b `\n    Y=${DIR}\nRUN echo one `\n  two\n"
	b := evaluate(t, src, EvalOptions{})
	var got []string
	for _, s := range b.Target.Steps {
		got = append(got, s.CreatedBy)
	}
	want := []string{`ENV DIR=C:\path X=a$b Y=`, "RUN /bin/sh -c echo one   two # buildkit"}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestProxyEnv(t *testing.T) {
	b := evaluate(t, "FROM scratch\nRUN make\n", EvalOptions{BuildArgs: map[string]string{"https_proxy": "http://p:3128", "NO_PROXY": "local", "VERSION": "1"}})
	run := b.Target.Steps[0]
	want := []string{"HTTPS_PROXY=http://p:3128", "https_proxy=http://p:3128", "NO_PROXY=local", "no_proxy=local"}
	if diff := cmp.Diff(want, run.ProxyEnv); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if diff := cmp.Diff("RUN /bin/sh -c make # buildkit", run.CreatedBy); diff != "" {
		t.Errorf("created_by (-want +got):\n%s", diff)
	}
}

// wantResult checks a table test's result: the error wantErr when it is
// not empty, else no error and want.
func wantResult[T any](t *testing.T, got T, err error, want T, wantErr string) {
	t.Helper()
	if wantErr != "" {
		if err == nil || err.Error() != wantErr {
			t.Fatalf("error = %v, want %s", err, wantErr)
		}
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
