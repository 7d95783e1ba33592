package engine

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stagex/sxmake/engine/fileop"
	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// TestMkdirAll checks WORKDIR's directory creation against BuildKit's
// (fsutil copy.MkdirAll with the stage's USER): only the directories it
// creates are owned by the user and get the epoch as mtime; existing ones
// keep their owner and time. A regression test: sxmake created WORKDIR
// directories as root under USER 1000:1000, so a RUN of that user could
// not write to its own working directory (compat corpus user-unprivileged).
func TestMkdirAll(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	type dirState struct {
		UID, GID int
		Mode     os.FileMode
		Mtime    int64 // of the last directory; 0 for its parents, whose mtime the kernel sets when their child is made (in BuildKit too)
	}
	tests := []struct {
		name  string
		owner *fileop.Owner
		want  map[string]dirState // relative path -> state after mkdirAll("a/b/c")
	}{
		{"root", nil, map[string]dirState{
			"a":     {0, 0, 0o750 | os.ModeDir, 0},
			"a/b":   {0, 0, 0o755 | os.ModeDir, 0},
			"a/b/c": {0, 0, 0o755 | os.ModeDir, 1},
		}},
		{"user 1000:1000", &fileop.Owner{UID: 1000, GID: 1000}, map[string]dirState{
			"a":     {0, 0, 0o750 | os.ModeDir, 0},
			"a/b":   {1000, 1000, 0o755 | os.ModeDir, 0},
			"a/b/c": {1000, 1000, 0o755 | os.ModeDir, 1},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			root := t.TempDir()
			a := filepath.Join(root, "a")
			if err := os.Mkdir(a, 0o750); err != nil {
				t.Fatal(err)
			}
			if err := mkdirAll(filepath.Join(root, "a", "b", "c"), tc.owner); err != nil {
				t.Fatal(err)
			}
			// Again: a no-op on an existing directory.
			if err := mkdirAll(filepath.Join(root, "a", "b", "c"), &fileop.Owner{UID: 7, GID: 7}); err != nil {
				t.Fatal(err)
			}
			got := map[string]dirState{}
			for rel := range tc.want {
				fi, err := os.Lstat(filepath.Join(root, rel))
				if err != nil {
					t.Fatal(err)
				}
				st := fi.Sys().(*syscall.Stat_t)
				got[rel] = dirState{int(st.Uid), int(st.Gid), fi.Mode(), fi.ModTime().Unix()}
				if rel != "a/b/c" {
					got[rel] = dirState{int(st.Uid), int(st.Gid), fi.Mode(), 0}
				}
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
	t.Run("file in the way", func(t *testing.T) {
		root := t.TempDir()
		if err := os.WriteFile(filepath.Join(root, "f"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		err := mkdirAll(filepath.Join(root, "f", "d"), nil)
		if !errors.Is(err, syscall.ENOTDIR) {
			t.Errorf("mkdirAll through a file: %v, want ENOTDIR", err)
		}
	})
}
