package packages_test

import (
	"testing"

	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/packages/packagestest"
)

// BenchmarkLoad600 loads a generated 600-package StageX-shaped tree and
// orders the closure of all its images.
func BenchmarkLoad600(b *testing.B) {
	dir := b.TempDir()
	if err := packagestest.Generate(dir, 600, 1); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		tree, err := packages.Load(dir)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := tree.Closure(tree.Images()...); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkClosure600 orders the closure of every image of a loaded
// 600-package tree.
func BenchmarkClosure600(b *testing.B) {
	dir := b.TempDir()
	if err := packagestest.Generate(dir, 600, 1); err != nil {
		b.Fatal(err)
	}
	tree, err := packages.Load(dir)
	if err != nil {
		b.Fatal(err)
	}
	images := tree.Images()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := tree.Closure(images...); err != nil {
			b.Fatal(err)
		}
	}
}
