package engine

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stagex/sxmake/cache"
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

// TestSourceFilesDescribeWhatIsCopied: the files a COPY's action key
// hashes are the files the copy copies, whatever the pattern, including a
// source that is a symlink (the copy follows it within the context) and
// one that points outside the context. A regression test: the key hashed
// a symlink source's target name only, so editing a file in the linked
// directory kept the cached layer.
func TestSourceFilesDescribeWhatIsCopied(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	root := t.TempDir()
	for name, content := range map[string]string{
		"a/x": "x", "a/y": "yy", "w1.txt": "1", "w2.txt": "22", "sub/deep/f.txt": "f", "sub/other/g": "g",
	} {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// c points outside the context: the copy (and the key) read a instead.
	for link, target := range map[string]string{"b": "a", "c": "../../../a", "a/self": "."} {
		if err := os.Symlink(target, filepath.Join(root, link)); err != nil {
			t.Fatal(err)
		}
	}

	hashes := testHashes(t)
	type source struct {
		src      fileop.Source
		excludes []string
	}
	var sources []source
	for _, pattern := range []string{"/b", "/b/x", "/w*.txt", "/sub/*/f.txt", "/c", "/.", "/[ab]", "/missing*"} {
		sources = append(sources, source{src: fileop.Source{Path: pattern}})
	}
	sources = append(sources,
		source{fileop.Source{Path: "/sub"}, []string{"*/f.txt"}},                          // --exclude
		source{fileop.Source{Path: "/."}, []string{"sub", "!sub/other", "*.txt"}},         // a "!" pattern
		source{fileop.Source{Path: "/", Include: []string{"sub/deep/f.txt"}}, nil},        // --parents
		source{fileop.Source{Path: "/", Include: []string{"w*.txt"}}, []string{"w2.txt"}}, // both
		source{fileop.Source{Path: "/b", Include: []string{"*"}}, []string{"y", "self"}},  // through a symlink
	)
	for _, s := range sources {
		t.Run(fmt.Sprintf("%s %v %v", s.src.Path, s.src.Include, s.excludes), func(t *testing.T) {
			lines, err := sourceFiles(root, s.src, s.excludes, hashes)
			if err != nil {
				t.Fatal(err)
			}
			dest := t.TempDir()
			op := fileop.Copy{SrcRoot: root, Local: true, Sources: []fileop.Source{s.src}, Excludes: s.excludes, Dest: "/out/"}
			if err := fileop.Apply(context.Background(), dest, op); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(contents(t, filepath.Join(dest, "out")), hashedContents(lines)); diff != "" {
				t.Errorf("copied files (-) and hashed files (+) differ:\n%s\nkey lines:\n%s", diff, strings.Join(lines, "\n"))
			}
		})
	}

	t.Run("edit of an excluded file", func(t *testing.T) {
		before, _ := sourceFiles(root, fileop.Source{Path: "/sub"}, []string{"deep"}, hashes)
		os.WriteFile(filepath.Join(root, "sub", "deep", "f.txt"), []byte("edited"), 0o644)
		after, _ := sourceFiles(root, fileop.Source{Path: "/sub"}, []string{"deep"}, hashes)
		if !cmp.Equal(before, after) {
			t.Errorf("editing an excluded file changed the key lines:\n%s", strings.Join(after, "\n"))
		}
	})
	t.Run("edit behind a symlink", func(t *testing.T) {
		before, _ := sourceFiles(root, fileop.Source{Path: "/b"}, nil, hashes)
		os.WriteFile(filepath.Join(root, "a", "x"), []byte("edited"), 0o644)
		after, _ := sourceFiles(root, fileop.Source{Path: "/b"}, nil, hashes)
		if cmp.Equal(before, after) {
			t.Errorf("editing a/x left the key lines of COPY /b unchanged:\n%s", strings.Join(after, "\n"))
		}
	})
}

// contents lists the distinct regular files and symlinks under dir as
// sorted "mode size hash" entries.
func contents(t *testing.T, dir string) []string {
	hashes := testHashes(t)
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		var sum string
		if fi.Mode()&os.ModeSymlink != 0 {
			target, _ := os.Readlink(p)
			sum = contentHash([]byte(target))
		} else if sum, err = hashes.SHA256(p); err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%v %d %s", fi.Mode(), fi.Size(), sum))
		return nil
	})
	slices.Sort(out)
	return slices.Compact(out)
}

// hashedContents is the same list made from sourceFiles' lines.
func hashedContents(lines []string) []string {
	var out []string
	for _, l := range lines {
		f := strings.Fields(l[strings.LastIndex(l, `"`)+1:])
		if strings.HasPrefix(f[0], "d") {
			continue
		}
		out = append(out, strings.Join(f, " "))
	}
	slices.Sort(out)
	return slices.Compact(out)
}

// testHashes returns the file hashes of a new cache.
func testHashes(t *testing.T) *cache.FileHashes {
	t.Helper()
	c, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c.Files
}
