package rules

import (
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// oracleRender renders an evaluation the way testdata/oracle renders
// BuildKit's: the target's history and config, then every RUN sorted.
func oracleRender(src []byte) string {
	f, err := Parse("Containerfile", src)
	var b *Build
	if err == nil {
		b, err = Evaluate(f, EvalOptions{
			BuildArgs:     map[string]string{"VERSION": "1.36.1", "NOTGIVEN": "n", "SOURCE_DATE_EPOCH": "1"},
			Platform:      Platform{OS: "linux", Arch: "amd64"},
			BuildPlatform: Platform{OS: "linux", Arch: "amd64"},
			ImageConfig: func(ref string, _ Platform) (ImageConfig, error) {
				if strings.Contains(ref, "pallet") {
					return ImageConfig{Env: []string{"PATH=/usr/bin:/bin"}, Shell: []string{"/bin/sh", "-l", "-c"}, WorkingDir: "/"}, nil
				}
				return ImageConfig{}, nil
			},
		})
	}
	if err != nil {
		var e *Error
		if errors.As(err, &e) {
			return "error " + e.Msg + "\n"
		}
		return "error " + err.Error() + "\n"
	}
	var w strings.Builder
	var history func(s *Stage)
	history = func(s *Stage) {
		if s.Base.Kind == StageBase {
			history(s.Base.Stage)
		}
		for _, st := range s.Steps {
			if !st.NoHistory {
				fmt.Fprintf(&w, "history %q empty_layer=%v\n", st.CreatedBy, st.EmptyLayer)
			}
		}
	}
	history(b.Target)
	c := b.Target.Config
	fmt.Fprintf(&w, "config env=%q workdir=%q shell=%q user=%q entrypoint=%q cmd=%q\n", c.Env, c.WorkingDir, c.Shell, c.User, c.Entrypoint, c.Cmd)
	labels := []string{}
	for k, v := range c.Labels {
		labels = append(labels, k+"="+v)
	}
	sort.Strings(labels)
	fmt.Fprintf(&w, "config labels=%q ports=%q volumes=%q stopsignal=%q argsescaped=%v author=%q onbuild=%q\n",
		labels, orEmpty(c.ExposedPorts), orEmpty(c.Volumes), c.StopSignal, c.ArgsEscaped, c.Author, c.OnBuild)
	var runs []string
	for _, s := range b.Stages {
		for _, st := range s.Steps {
			runs = append(runs, oracleOps(st)...)
		}
	}
	sort.Strings(runs)
	// Heredoc files are FileOps on scratch: LLB merges identical ones.
	runs = slices.CompactFunc(runs, func(a, b string) bool { return a == b && strings.HasPrefix(a, "mkfile ") })
	w.WriteString(strings.Join(runs, ""))
	return w.String()
}

// TestOracle compares rules with BuildKit v0.26.3 on the cases under
// testdata/oracle (see the README there), or under the directory named by
// $RULES_ORACLE_CASES.
func TestOracle(t *testing.T) {
	dir := "testdata/oracle/cases"
	if d := os.Getenv("RULES_ORACLE_CASES"); d != "" {
		dir = d
	}
	paths, err := filepath.Glob(filepath.Join(dir, "*.want"))
	if err != nil || len(paths) == 0 {
		t.Fatalf("no oracle cases: %v", err)
	}
	for _, want := range paths {
		name := strings.TrimSuffix(want, ".want")
		t.Run(filepath.Base(name), func(t *testing.T) {
			src, err := os.ReadFile(name)
			if err != nil {
				t.Fatal(err)
			}
			wantOut, err := os.ReadFile(want)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(wantOut), oracleRender(src)); diff != "" {
				t.Errorf("BuildKit (-) and rules (+) differ:\n%s", diff)
			}
		})
	}
}

// oracleOps renders the LLB operations BuildKit makes for a step: the
// exec of a RUN, the file actions of COPY, ADD and WORKDIR.
func oracleOps(st *Step) []string {
	var ops []string
	switch st.Kind {
	case Run:
		ops = append(ops, fmt.Sprintf("run argv=%q env=%q cwd=%q user=%q\n", st.Args, st.Env, st.Workdir, st.User))
		for _, f := range st.Files {
			ops = append(ops, fmt.Sprintf("mkfile %q %o %q\n", "/"+path.Base(f.Path), f.Mode, f.Data))
		}
	case Copy, Add:
		mode, modeStr := int64(-1), ""
		if st.Chmod != "" {
			if n, err := strconv.ParseInt(st.Chmod, 8, 32); err == nil {
				mode = n
			} else {
				mode, modeStr = 0, st.Chmod
			}
		}
		excludes := st.Excludes
		if excludes == nil {
			excludes = []string{}
		}
		for _, src := range st.Sources {
			p, unpack, include := src.Path, st.Unpack, src.Include
			if src.Heredoc {
				p, unpack = "/"+src.Name, false
				ops = append(ops, fmt.Sprintf("mkfile %q %o %q\n", p, src.Mode, src.Data))
			}
			if include == nil {
				include = []string{}
			}
			ops = append(ops, fmt.Sprintf("copy %q -> %q mode=%o modestr=%q unpack=%v exclude=%q include=%q\n",
				p, st.Dest, mode, modeStr, unpack, excludes, include))
		}
	case Config:
		if st.Instruction == "WORKDIR" && !st.EmptyLayer {
			ops = append(ops, fmt.Sprintf("mkdir %q 755\n", path.Clean(st.Workdir)))
		}
	}
	return ops
}

func orEmpty(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
