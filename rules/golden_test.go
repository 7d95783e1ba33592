package rules

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// render prints an evaluated build in a stable, reviewable form.
func render(b *Build) string {
	var w strings.Builder
	for _, s := range b.Stages {
		base := s.Base.Ref
		switch s.Base.Kind {
		case Scratch:
			base = "scratch"
		case StageBase:
			base = "stage " + s.Base.Stage.Label()
		}
		fmt.Fprintf(&w, "stage %d %q from %s on %s\n", s.Index, s.Name, base, s.Platform)
		for _, st := range s.Steps {
			fmt.Fprintf(&w, "  %s: %s\n", st.Pos, st)
			fmt.Fprintf(&w, "    created_by: %q empty_layer=%v\n", st.CreatedBy, st.EmptyLayer)
			fmt.Fprintf(&w, "    workdir: %s env: %q\n", st.Workdir, st.Env)
			if st.Kind == Run {
				fmt.Fprintf(&w, "    argv: %q\n", st.Args)
				for _, f := range st.Files {
					fmt.Fprintf(&w, "    file %s %o: %q\n", f.Path, f.Mode, f.Data)
				}
			}
			for _, src := range st.Sources {
				if src.Heredoc {
					fmt.Fprintf(&w, "    heredoc %s %o expand=%v: %q\n", src.Name, src.Mode, src.Expand, src.Data)
				}
			}
		}
		c := s.Config
		fmt.Fprintf(&w, "  config: env=%q workdir=%q shell=%q user=%q entrypoint=%q cmd=%q\n",
			c.Env, c.WorkingDir, c.Shell, c.User, c.Entrypoint, c.Cmd)
		fmt.Fprintf(&w, "  build args: %q\n", s.BuildArgs)
	}
	return w.String()
}

func TestGolden(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.Containerfile")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range paths {
		name := strings.TrimSuffix(filepath.Base(p), ".Containerfile")
		t.Run(name, func(t *testing.T) {
			src, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			f, err := Parse(filepath.Base(p), src)
			if err != nil {
				t.Fatal(err)
			}
			b, err := Evaluate(f, EvalOptions{
				BuildArgs:     map[string]string{"VERSION": "1.36.1", "SOURCE_DATE_EPOCH": "1", "STAGE0_SOURCE": "stage0-posix-1.6.0.tar.gz"},
				Platform:      Platform{OS: "linux", Arch: "amd64"},
				BuildPlatform: Platform{OS: "linux", Arch: "amd64"},
				NamedContexts: map[string]bool{"fetch": true},
				ImageConfig: func(ref string, _ Platform) (ImageConfig, error) {
					if strings.HasPrefix(ref, "stagex/pallet-") {
						return ImageConfig{Env: []string{"PATH=/usr/bin:/bin"}, Shell: []string{"/bin/sh", "-l", "-c"}, WorkingDir: "/"}, nil
					}
					return ImageConfig{}, nil
				},
			})
			if err != nil {
				t.Fatal(err)
			}
			got := render(b)
			golden := strings.TrimSuffix(p, ".Containerfile") + ".golden"
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test -update)", err)
			}
			if diff := cmp.Diff(string(want), got); diff != "" {
				t.Errorf("%s (-want +got):\n%s", golden, diff)
			}
		})
	}
}
