package packages_test

import (
	"sort"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/packages/packagestest"
)

// TestLoadFixture loads StageX's own release the way its generator reads
// it: exactly the images its targets.mk has rules for, every form of
// package.toml the release uses. (cmd/sxstagex compares every rule in
// full.) Without the fixture it skips, or fails under SXMAKE_TEST_ROOT=1.
func TestLoadFixture(t *testing.T) {
	root := packagestest.Fixture(t)
	rules := packagestest.FixtureRules(t)
	tree, err := packages.Load(root)
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var want, got []string
	for _, r := range rules {
		want = append(want, r.Image)
	}
	sort.Strings(want)
	for _, img := range tree.Images() {
		got = append(got, img.Name)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("images (-targets.mk +sxmake):\n%s", diff)
	}
	if len(got) != packagestest.FixtureImages {
		t.Errorf("%d images, want %d", len(got), packagestest.FixtureImages)
	}
	if diff := cmp.Diff([]packages.Skip{{Dir: "packages/user/mesa", Reason: "no package.toml"}}, tree.Skipped); diff != "" {
		t.Errorf("Skipped (-want +got):\n%s", diff)
	}

	llvm := tree.Package("core-llvm")
	tests := []struct {
		name string
		got  any
		want any
	}{
		// subpackages naming the package itself: its image is a target
		{"core-llvm target", tree.Image("core-llvm").Target, "package-llvm"},
		{"core-clang of packages/core/llvm", tree.Image("core-clang").Package == llvm, true},
		// a package whose subpackages do not name it is no image
		{"user-linux", tree.Image("user-linux") == nil, true},
		{"user-linux-generic target", tree.Image("user-linux-generic").Target, "package-linux-generic"},
		// version_from naming a subpackage
		{"pallet-clang version", tree.Package("pallet-clang").Version, llvm.Version},
		// no version: no VERSION* args, tagged latest
		{"core-profile args", tree.Package("core-profile").BuildArgs(), map[string]string{"SOURCE_DATE_EPOCH": "1", "BUILDKIT_DOCKERFILE_CHECK": packages.StageXChecks}},
		{"core-profile tag", tree.Package("core-profile").Tag(), "latest"},
		// a version without a dot
		{"user-zip VERSION_MAJOR_MINOR", tree.Package("user-zip").BuildArgs()["VERSION_MAJOR_MINOR"], "None"},
	}
	for _, tc := range tests {
		if diff := cmp.Diff(tc.want, tc.got); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.name, diff)
		}
	}
}
