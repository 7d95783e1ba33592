package packages

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

func names(imgs []*Image) []string {
	var s []string
	for _, img := range imgs {
		s = append(s, img.Name)
	}
	return s
}

func TestImages(t *testing.T) {
	tree := loadTree(t)
	type imageView struct {
		Name, Package, Target string
		Deps                  []string
	}
	var got []imageView
	for _, img := range tree.Images() {
		got = append(got, imageView{img.Name, img.Package.ID(), img.Target, names(img.Deps)})
	}
	want := []imageView{
		{"bootstrap-stage0", "bootstrap-stage0", "", nil},
		{"bootstrap-stage1", "bootstrap-stage1", "", []string{"bootstrap-stage0"}},
		{"core-busybox", "core-busybox", "", []string{"bootstrap-stage1"}},
		{"core-clang", "core-llvm", "package-clang", []string{"core-busybox", "core-gcc"}},
		{"core-filesystem", "core-filesystem", "", nil},
		{"core-gcc", "core-gcc", "", []string{"bootstrap-stage1", "core-busybox"}},
		{"core-lld", "core-llvm", "package-lld", []string{"core-busybox", "core-gcc"}},
		{"core-llvm", "core-llvm", "package-llvm", []string{"core-busybox", "core-gcc"}},
		{"pallet-clang", "pallet-clang", "", []string{"core-clang", "core-lld", "pallet-gcc"}},
		{"pallet-gcc", "pallet-gcc", "", []string{"core-busybox", "core-gcc"}},
		{"user-hello", "user-hello", "", []string{"pallet-clang"}},
		{"user-zip", "user-zip", "", []string{"core-filesystem"}},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Images (-want +got):\n%s", diff)
	}
}

func TestRefPos(t *testing.T) {
	tree := loadTree(t)
	img, dep := tree.Image("core-gcc"), tree.Image("bootstrap-stage1")
	pos, ok := img.RefPos(dep)
	if !ok {
		t.Fatalf("RefPos(%s, %s) not found", img.Name, dep.Name)
	}
	if pos.File != "packages/core/gcc/Containerfile" || pos.Line != 2 {
		t.Errorf("RefPos = %s, want line 2 of packages/core/gcc/Containerfile", pos)
	}
	if _, ok := dep.RefPos(img); ok {
		t.Errorf("RefPos(%s, %s) found a reference that does not exist", dep.Name, img.Name)
	}
}

func TestClosure(t *testing.T) {
	tree := loadTree(t)
	tests := []struct {
		name    string
		targets []string
		want    []string
	}{
		{"leaf", []string{"bootstrap-stage0"}, []string{"bootstrap-stage0"}},
		{"chain", []string{"core-busybox"}, []string{"bootstrap-stage0", "bootstrap-stage1", "core-busybox"}},
		{"subpackage", []string{"core-clang"}, []string{"bootstrap-stage0", "bootstrap-stage1", "core-busybox", "core-gcc", "core-clang"}},
		{"deep", []string{"user-hello"}, []string{
			"bootstrap-stage0", "bootstrap-stage1", "core-busybox", "core-gcc",
			"core-clang", "core-lld", "pallet-gcc", "pallet-clang", "user-hello",
		}},
		{"several targets in any order", []string{"pallet-gcc", "core-llvm", "core-gcc"}, []string{
			"bootstrap-stage0", "bootstrap-stage1", "core-busybox", "core-gcc", "core-llvm", "pallet-gcc",
		}},
		{"duplicates", []string{"core-gcc", "core-gcc"}, []string{"bootstrap-stage0", "bootstrap-stage1", "core-busybox", "core-gcc"}},
		{"none", nil, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var targets []*Image
			for _, n := range tc.targets {
				targets = append(targets, tree.Image(n))
			}
			got, err := tree.Closure(targets...)
			if err != nil {
				t.Fatalf("Closure: %v", err)
			}
			if diff := cmp.Diff(tc.want, names(got)); diff != "" {
				t.Errorf("Closure (-want +got):\n%s", diff)
			}
		})
	}
}

func TestClosureAll(t *testing.T) {
	tree := loadTree(t)
	got, err := tree.Closure(tree.Images()...)
	if err != nil {
		t.Fatalf("Closure: %v", err)
	}
	want := []string{
		"bootstrap-stage0", "bootstrap-stage1", "core-busybox", "core-filesystem", "core-gcc", "core-clang",
		"core-lld", "core-llvm", "pallet-gcc", "pallet-clang", "user-hello", "user-zip",
	}
	if diff := cmp.Diff(want, names(got)); diff != "" {
		t.Errorf("Closure (-want +got):\n%s", diff)
	}
	placed := map[*Image]bool{}
	for _, img := range got {
		for _, d := range img.Deps {
			if !placed[d] {
				t.Errorf("%s placed before its dependency %s", img.Name, d.Name)
			}
		}
		placed[img] = true
	}
}

func TestResolve(t *testing.T) {
	tree := loadTree(t)
	tests := []struct {
		name, want, err string
	}{
		{name: "core-llvm", want: "core-llvm"},
		{name: "stagex/core-llvm", want: "core-llvm"},
		{name: "llvm", want: "core-llvm"},
		{name: "lld", want: "core-lld"},
		{name: "stagex/hello", want: "user-hello"},
		{name: "core-clang", want: "core-clang"},
		{name: "gcc", err: `image name "gcc" is ambiguous: core-gcc, pallet-gcc`},
		{name: "clang", err: `image name "clang" is ambiguous: core-clang, pallet-clang`},
		{name: "core-lvm", err: `unknown image "core-lvm"; did you mean core-llvm?`},
		{name: "busybx", err: `unknown image "busybx"; did you mean core-busybox?`},
		{name: "stage2", err: `unknown image "stage2"; did you mean bootstrap-stage0 or bootstrap-stage1?`},
		{name: "gc", err: `unknown image "gc"; did you mean core-gcc or pallet-gcc?`},
		{name: "python", err: `unknown image "python"`},
		{name: "", err: `unknown image ""`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			img, err := tree.Resolve(tc.name)
			if diff := cmp.Diff(tc.err, errText(err)); diff != "" {
				t.Fatalf("error (-want +got):\n%s", diff)
			}
			if err == nil && img.Name != tc.want {
				t.Errorf("Resolve(%q) = %s, want %s", tc.name, img.Name, tc.want)
			}
		})
	}
}
