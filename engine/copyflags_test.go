package engine

import (
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// COPY --exclude, --parents and --link (testdata/compat user/copyflags)
// give BuildKit v0.26.3's digests, as make compat checks (these are its
// digests: go run ./cmd/sxcompat -C testdata/compat user-copyflags-link
// ... prints them). The flags were parsed, then ignored.
func TestCopyFlags(t *testing.T) {
	buildkit := map[string]string{
		"user-copyflags-exclude": "sha256:e5ddfa65464f467b71a25b43144cc598ccf343555101497c7841d64f359bc682",
		"user-copyflags-parents": "sha256:3c2626653fc23152d2613db0819ae254e94fc79cb36ec412b50d08f2bb7664b9",
		"user-copyflags-link":    "sha256:f913fb96d8cfe7c4f22d50ec5d9377e462ceb4ee49a25f9d2cf004c8b5037940",
	}
	var targets []string
	for name := range buildkit {
		targets = append(targets, name)
	}
	tree := filepath.Join("..", "testdata", "compat")
	r := build(t, context.Background(), tree, t.TempDir(), targets, nil, WithOutDir(t.TempDir()))
	if r.err != nil {
		t.Fatal(r.err)
	}
	got := map[string]string{}
	for _, name := range targets {
		got[name] = r.digests[name] // the images they are built on are reported too
	}
	if diff := cmp.Diff(buildkit, got); diff != "" {
		t.Errorf("digests (-BuildKit +sxmake):\n%s", diff)
	}
}

// A COPY --link's result does not depend on the stage below it, and its
// key leaves the parent out (BuildKit caches the copy on its own and
// merges it): after an edit below it, it is found cached while the steps
// around it run again.
func TestLinkKeyLeavesParentOut(t *testing.T) {
	tree := writeTree(t, map[string]string{
		"packages/core/linked/package.toml":  "[package]\nname = \"linked\"\nversion = \"1\"\n",
		"packages/core/linked/Containerfile": "FROM scratch AS package\nCOPY base.txt /\nCOPY --link top.txt /d/\nCOPY after.txt /d/\n",
		"packages/core/linked/base.txt":      "base",
		"packages/core/linked/top.txt":       "top",
		"packages/core/linked/after.txt":     "after",
	})
	cacheDir := t.TempDir()
	mustBuild(t, tree, cacheDir, "core-linked")
	if err := os.WriteFile(filepath.Join(tree, "packages/core/linked/base.txt"), []byte("edited"), 0o644); err != nil {
		t.Fatal(err)
	}
	second := mustBuild(t, tree, cacheDir, "core-linked")
	want := []string{"package 2:1 COPY /base.txt /", "package 4:1 COPY /after.txt /d/"}
	if diff := cmp.Diff(want, second.ran["core-linked"]); diff != "" {
		t.Errorf("actions run after editing base.txt (-want +got):\n%s", diff)
	}
}
