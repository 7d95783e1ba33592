package packages_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/packages/packagestest"
)

// TestGenerate checks that the generated benchmark tree loads and has
// StageX's shape.
func TestGenerate(t *testing.T) {
	dir := t.TempDir()
	if err := packagestest.Generate(dir, 600, 1); err != nil {
		t.Fatal(err)
	}
	tree, err := packages.Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	stages := map[string]int{}
	for _, p := range tree.Packages {
		stages[p.Stage]++
	}
	if diff := cmp.Diff(map[string]int{"bootstrap": 4, "core": 132, "pallet": 18, "user": 446}, stages); diff != "" {
		t.Errorf("packages per stage (-want +got):\n%s", diff)
	}
	order, err := tree.Closure(tree.Images()...)
	if err != nil {
		t.Fatal(err)
	}
	images := tree.Images()
	if len(order) != len(images) {
		t.Errorf("closure of all images has %d images, want %d", len(order), len(images))
	}
	depth := map[*packages.Image]int{}
	maxDepth, edges := 0, 0
	for _, img := range order {
		for _, d := range img.Deps {
			depth[img] = max(depth[img], depth[d]+1)
		}
		maxDepth = max(maxDepth, depth[img])
		edges += len(img.Deps)
	}
	t.Logf("%d images, %d references (%.2f each), deepest %d", len(images), edges, float64(edges)/float64(len(images)), maxDepth)
	if maxDepth < 28 || maxDepth > 40 {
		t.Errorf("deepest image is %d levels deep, want about 34", maxDepth)
	}
	if avg := float64(edges) / float64(len(tree.Packages)); avg < 3 || avg > 5 {
		t.Errorf("packages reference %.2f images on average, want about 4", avg)
	}

}

// TestGenerateDeterministic checks that a seed always gives the same tree.
func TestGenerateDeterministic(t *testing.T) {
	trees := make([]map[string]string, 2)
	for i := range trees {
		dir := t.TempDir()
		if err := packagestest.Generate(dir, 50, 7); err != nil {
			t.Fatal(err)
		}
		trees[i] = readTree(t, dir)
	}
	if len(trees[0]) != 100 {
		t.Errorf("generated %d files, want 100", len(trees[0]))
	}
	if diff := cmp.Diff(trees[0], trees[1]); diff != "" {
		t.Errorf("same seed, different trees (-first +second):\n%s", diff)
	}
}

// readTree returns every file under dir by relative path.
func readTree(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(path)
		rel, _ := filepath.Rel(dir, path)
		files[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
