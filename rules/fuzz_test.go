package rules

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

// seeds returns the Containerfiles under testdata.
func seeds(tb testing.TB) [][]byte {
	tb.Helper()
	paths, err := filepath.Glob("testdata/*.Containerfile")
	if err != nil || len(paths) == 0 {
		tb.Fatalf("no seed Containerfiles: %v", err)
	}
	var out [][]byte
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, b)
	}
	return out
}

func FuzzParse(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, src []byte) {
		file, err := Parse("Containerfile", src)
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
			return
		}
		if _, err := file.ImageRefs("", nil); err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("ImageRefs error %T is not *Error: %v", err, err)
			}
		}
	})
}

func FuzzEvaluate(f *testing.F) {
	for _, s := range seeds(f) {
		f.Add(s, "", "1.0")
	}
	f.Fuzz(func(t *testing.T, src []byte, target, version string) {
		file, err := Parse("Containerfile", src)
		if err != nil {
			return
		}
		_, err = Evaluate(file, EvalOptions{
			Target:        target,
			BuildArgs:     map[string]string{"VERSION": version, "SOURCE_DATE_EPOCH": "1"},
			Platform:      Platform{OS: "linux", Arch: "amd64"},
			NamedContexts: map[string]bool{"fetch": true},
			ImageConfig: func(string, Platform) (ImageConfig, error) {
				return ImageConfig{Shell: []string{"/bin/sh", "-l", "-c"}, OnBuild: []string{"RUN true"}}, nil
			},
		})
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
		}
	})
}

// FuzzCheck runs every check (experimental ones too) over every stage,
// with a check config from the fuzzer: nothing panics, errors are
// *Error, and findings lie within the file.
func FuzzCheck(f *testing.F) {
	corpus, _ := filepath.Glob("../testdata/checks/packages/*/*/Containerfile")
	for _, s := range seeds(f) {
		f.Add(s, "experimental=all")
	}
	for _, p := range corpus {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, "skip=FromAsCasing;error=true")
	}
	f.Fuzz(func(t *testing.T, src []byte, checks string) {
		file, err := Parse("Containerfile", src)
		if err != nil {
			return
		}
		cfg, err := file.CheckConfig(map[string]string{CheckArg: checks})
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("CheckConfig error %T is not *Error: %v", err, err)
			}
			return
		}
		lines := bytes.Count(src, []byte("\n")) + 1
		_, err = Evaluate(file, EvalOptions{
			BuildArgs:     map[string]string{"VERSION": "1.0"},
			Platform:      Platform{OS: "linux", Arch: "amd64"},
			NamedContexts: map[string]bool{"fetch": true},
			AllStages:     true,
			Checks:        cfg,
			Report: func(fd Finding) {
				if fd.Pos.Line < 1 || fd.EndLine < fd.Pos.Line || fd.EndLine > lines {
					t.Fatalf("finding %s covers lines %d-%d of %d", fd, fd.Pos.Line, fd.EndLine, lines)
				}
			},
			ImageConfig: func(string, Platform) (ImageConfig, error) {
				return ImageConfig{Env: []string{"HOME=/root"}, OnBuild: []string{"ENV A $B"}}, nil
			},
		})
		if err != nil {
			if _, ok := err.(*Error); !ok {
				t.Fatalf("error %T is not *Error: %v", err, err)
			}
		}
	})
}

// BenchmarkParseEvaluate parses and evaluates every seed Containerfile;
// one iteration is one pass over all of them.
func BenchmarkParseEvaluate(b *testing.B) {
	srcs := seeds(b)
	opt := EvalOptions{
		BuildArgs:     map[string]string{"VERSION": "1.0", "SOURCE_DATE_EPOCH": "1"},
		Platform:      Platform{OS: "linux", Arch: "amd64"},
		NamedContexts: map[string]bool{"fetch": true},
	}
	b.ReportAllocs()
	for b.Loop() {
		for _, src := range srcs {
			f, err := Parse("Containerfile", src)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := Evaluate(f, opt); err != nil {
				b.Fatal(err)
			}
		}
	}
}
