package engine

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/rules"
)

// TestCheckCorpus compares the Dockerfile checks of every image of the
// check corpus (testdata/checks) with BuildKit v0.26.3's findings recorded
// in testdata/checks/buildkit.txt (see the README there; `make compat`
// compares with BuildKit itself). For each BUILDKIT_DOCKERFILE_CHECK
// variant: what `sxmake check` reports (Check), what a build reports
// (the plan's findings, over the stages the image needs), whether the
// build fails on them, and whether the Containerfile evaluates at all.
func TestCheckCorpus(t *testing.T) {
	dir := filepath.Join("..", "testdata", "checks")
	tree, err := packages.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(filepath.Join(dir, "buildkit.txt"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, l := range strings.Split(strings.TrimSpace(string(data)), "\n") {
		if !strings.HasPrefix(l, "#") {
			want = append(want, l)
		}
	}
	var got []string
	for _, v := range []string{"none", "tree"} {
		got = append(got, corpusLines(t, tree, v)...)
	}
	slices.Sort(got)
	if diff := cmp.Diff(strings.Join(want, "\n"), strings.Join(got, "\n")); diff != "" {
		t.Errorf("findings differ from BuildKit's (-buildkit +sxmake):\n%s", diff)
	}
}

// corpusLines renders the checks of every image under variant v as
// sxcompat renders BuildKit's (goldenLines in cmd/sxcompat).
func corpusLines(t *testing.T, tree *packages.Tree, v string) []string {
	amd64 := WithPlatform(rules.Platform{OS: "linux", Arch: "amd64"})
	var args PlanOption
	switch v {
	case "none":
		args = WithBuildArgs(map[string]*string{rules.CheckArg: nil})
	case "tree":
		args = WithBuildArgs(nil)
	}
	checks, err := Check(tree, tree.Images(), amd64, args)
	if err != nil {
		t.Fatal(err)
	}
	line := func(fd rules.Finding) string {
		return fmt.Sprintf("%d-%d %s: %s", fd.Pos.Line, fd.EndLine, fd.Check.Name, fd.Message)
	}
	var out []string
	for _, c := range checks {
		pre := v + " " + c.Image.Name + " "
		for _, fd := range c.Findings {
			out = append(out, pre+"lint "+line(fd))
		}
		if c.Err != nil {
			out = append(out, pre+"error")
		}
		plan, err := NewPlan(tree, []*packages.Image{c.Image}, amd64, args)
		if err != nil {
			continue
		}
		ip := plan.Images[len(plan.Images)-1]
		if ip.Build.Target.Name != "" {
			for _, fd := range ip.Findings {
				out = append(out, pre+"build "+line(fd))
			}
		}
		if err := ip.CheckErr(); err != nil {
			var names []string
			for _, fd := range ip.Findings {
				if !slices.Contains(names, fd.Check.Name) {
					names = append(names, fd.Check.Name)
				}
			}
			slices.Sort(names)
			out = append(out, pre+"fails "+strings.Join(names, ", "))
		}
	}
	return out
}

// TestCheckCorpusCovers makes sure the corpus finds every check rules
// can report, under some variant.
func TestCheckCorpusCovers(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "testdata", "checks", "buildkit.txt"))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range rules.Checks() {
		if c.Name == "InvalidBaseImagePlatform" || c.Name == "CopyIgnoredFile" {
			continue // never reported by rules (see rules.Checks)
		}
		if !strings.Contains(string(data), " "+c.Name+": ") {
			t.Errorf("no finding of %s in the corpus", c.Name)
		}
	}
}
