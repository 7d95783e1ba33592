package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/packages/packagestest"
)

// TestFixture compares every rule of the targets.mk StageX's generator
// wrote for its release with sxmake's plan of that image. Without the
// fixture it skips, or fails under SXMAKE_TEST_ROOT=1.
func TestFixture(t *testing.T) {
	tree, err := packages.Load(packagestest.Fixture(t))
	if err != nil {
		t.Fatal(err)
	}
	rules := packagestest.FixtureRules(t)
	if len(rules) != packagestest.FixtureImages {
		t.Fatalf("targets.mk has %d rules, want %d", len(rules), packagestest.FixtureImages)
	}
	res := mustCompare(t, tree, rules)
	t.Logf("%d images (%d RUN steps) have RUN steps StageX gives the network", len(res.network), res.networkSteps)
}

// TestTrees compares our package trees with the rules StageX's generator
// writes for them (testdata/*.json; testdata/update.sh regenerates them).
func TestTrees(t *testing.T) {
	for name, dir := range map[string]string{
		"tree":      "../../packages/testdata/tree",
		"stagex":    "../../testdata/stagex",
		"compat":    "../../testdata/compat",
		"multiarch": "../../testdata/multiarch",
	} {
		t.Run(name, func(t *testing.T) {
			tree, err := packages.Load(dir)
			if err != nil {
				t.Fatal(err)
			}
			mustCompare(t, tree, goldenRules(t, name))
		})
	}
}

// TestCompareFinds checks that a rule differing from the plan in any one
// respect is reported.
func TestCompareFinds(t *testing.T) {
	tree, err := packages.Load("../../testdata/stagex")
	if err != nil {
		t.Fatal(err)
	}
	ips, err := plans(tree)
	if err != nil {
		t.Fatal(err)
	}
	rules := goldenRules(t, "stagex")
	var clang packagestest.Rule
	for _, r := range rules {
		if r.Image == "pallet-clang" {
			clang = r
		}
	}
	ip := ips["pallet-clang"]
	setFlag := func(name, value string) func(*packagestest.Rule) {
		return func(r *packagestest.Rule) {
			for i, f := range r.Flags {
				if f.Name == name && (name != "--build-arg" || strings.HasPrefix(f.Value, strings.Split(value, "=")[0]+"=")) {
					r.Flags[i].Value = value
				}
			}
		}
	}
	for _, tc := range []struct {
		name   string
		change func(*packagestest.Rule)
		want   string
	}{
		{"dependency", func(r *packagestest.Rule) { r.Deps = append(r.Deps, "core-musl") }, "direct dependencies"},
		{"target", func(r *packagestest.Rule) {
			r.Flags = append(r.Flags, packagestest.Flag{Name: "--target", Value: "package-x"})
		}, "flag --target"},
		{"platform", setFlag("--platform", "linux/arm64"), "flag --platform"},
		{"build arg", setFlag("--build-arg", "VERSION=1"), "build args"},
		{"tag", setFlag("--tag", "stagex/pallet-clang:1"), "flag --tag"},
		{"ulimit", setFlag("--ulimit", "nofile=1024:1024"), "flag --ulimit"},
		{"annotation", setFlag("--output", "name=pallet-clang,type=oci"), "flag --output"},
		{"context", setFlag("--build-context", "fetch=elsewhere"), "build contexts"},
		{"unknown flag", func(r *packagestest.Rule) {
			r.Flags = append(r.Flags, packagestest.Flag{Name: "--secret", Value: "id=x"})
		}, "not known to this check"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := clang
			r.Deps = append([]string(nil), clang.Deps...)
			r.Flags = append([]packagestest.Flag(nil), clang.Flags...)
			tc.change(&r)
			diffs := compareRule(tree, ip, &r)
			if len(diffs) == 0 || !strings.Contains(strings.Join(diffs, "\n"), tc.want) {
				t.Errorf("differences %q, want one about %s", diffs, tc.want)
			}
		})
	}
}

// mustCompare fails t unless every rule equals sxmake's plan and the
// tree's images are exactly the rules' images.
func mustCompare(t *testing.T, tree *packages.Tree, rules []packagestest.Rule) *result {
	t.Helper()
	res, err := compareTree(tree, rules)
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range res.diffs {
		t.Error(d)
	}
	if res.equal != len(rules) {
		t.Errorf("%d of %d rules equal to sxmake's plan", res.equal, len(rules))
	}
	var images []string
	for _, img := range tree.Images() {
		images = append(images, img.Name)
	}
	if diff := cmp.Diff(ruleImages(rules), images); diff != "" {
		t.Errorf("images (-targets.mk +sxmake):\n%s", diff)
	}
	return res
}

func goldenRules(t *testing.T, name string) []packagestest.Rule {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var rules []packagestest.Rule
	if err := json.Unmarshal(data, &rules); err != nil {
		t.Fatal(err)
	}
	sort.Slice(rules, func(i, j int) bool { return rules[i].Image < rules[j].Image })
	return rules
}
