package packages

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestExternalImages(t *testing.T) {
	root := t.TempDir()
	write := func(rel, body string) {
		p := filepath.Join(root, rel)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("packages/core/a/package.toml", "[package]\nname = \"a\"\nversion = \"1\"\n")
	write("packages/core/a/Containerfile", "FROM scratch\n")
	write("packages/user/b/package.toml", "[package]\nname = \"b\"\nversion = \"1\"\n")
	write("packages/user/b/Containerfile", "FROM stagex/pallet-base:latest AS build\nCOPY --from=stagex/core-a / /\nCOPY --from=stagex/core-tool / /\nFROM stagex/pallet-base\nCOPY --from=build / /\n")

	if _, err := Load(root); err == nil || !strings.Contains(err.Error(), "unknown image stagex/pallet-base") {
		t.Fatalf("Load without external images: error = %v, want unknown image", err)
	}
	// core-a is both in the tree and external: the tree's image wins.
	tree, err := Load(root, WithExternalImages("pallet-base", "core-tool", "core-a", "core-unused"))
	if err != nil {
		t.Fatal(err)
	}
	b := tree.Image("user-b")
	var deps []string
	for _, d := range b.Deps {
		deps = append(deps, d.Name)
	}
	if diff := cmp.Diff([]string{"core-a"}, deps); diff != "" {
		t.Errorf("Deps (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"core-tool", "pallet-base"}, b.External); diff != "" {
		t.Errorf("External (-want +got):\n%s", diff)
	}
	for name, want := range map[string]bool{"stagex/pallet-base": true, "pallet-base:1": true, "core-a": false, "core-zzz": false} {
		if got := tree.IsExternal(name); got != want {
			t.Errorf("IsExternal(%q) = %v, want %v", name, got, want)
		}
	}
}
