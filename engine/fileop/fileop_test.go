package fileop_test

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/stagex/sxmake/engine/fileop"
	ft "github.com/stagex/sxmake/engine/fileop/fileoptest"
)

var (
	D  = ft.Dir
	F  = ft.File
	L  = ft.Symlink
	H  = ft.Hardlink
	wd = ft.WantDir
	wf = ft.WantFile
	wl = ft.WantSymlink
)

// copyCase is one Apply run: src is built in the source root, dest in the
// destination root, then op runs and the destination root (without its
// top directory) is compared to want.
type copyCase struct {
	name    string
	src     []ft.Node
	dest    []ft.Node
	setup   func(t *testing.T, srcRoot, destRoot string)
	op      fileop.Copy
	want    []ft.Entry
	wantErr string // with want nil, the tree is not compared
	opts    []ft.Option
}

// sandbox is a temporary directory holding a source root and a destination
// root, plus a sentinel file beside them that nothing may touch.
type sandbox struct {
	outer, src, dest string
}

func newSandbox(t *testing.T) sandbox {
	t.Helper()
	outer := t.TempDir()
	s := sandbox{outer: outer, src: filepath.Join(outer, "src"), dest: filepath.Join(outer, "rootfs")}
	for _, d := range []string{s.src, s.dest} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(outer, "sentinel"), []byte("untouched"), 0o644); err != nil {
		t.Fatal(err)
	}
	return s
}

// checkOutside fails if anything beside the two roots changed.
func (s sandbox) checkOutside(t *testing.T) {
	t.Helper()
	got := ft.Tree(t, s.outer, ft.Skip(func(p string) bool { return p == "src" || p == "rootfs" }))
	want := []ft.Entry{wd(".", got[0].Mode), wf("sentinel", "0644", "untouched")}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("outside the roots (-want +got):\n%s", diff)
	}
}

func runCopyCases(t *testing.T, cases []copyCase) {
	ft.RequiresRoot(t)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newSandbox(t)
			ft.Build(t, s.src, tc.src...)
			ft.Build(t, s.dest, tc.dest...)
			if tc.setup != nil {
				tc.setup(t, s.src, s.dest)
			}
			op := tc.op
			op.SrcRoot = s.src
			err := fileop.Apply(context.Background(), s.dest, op)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("Apply error = %v, want %q", err, tc.wantErr)
				}
			} else if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			opts := append([]ft.Option{}, tc.opts...)
			got := ft.Tree(t, s.dest, opts...)[1:]
			// With wantErr, the tree is compared only when want is set.
			if tc.wantErr == "" || tc.want != nil {
				if tc.want == nil {
					tc.want = []ft.Entry{}
				}
				if diff := cmp.Diff(tc.want, got); diff != "" {
					t.Errorf("destination (-want +got):\n%s", diff)
				}
			}
			s.checkOutside(t)
		})
	}
}

func TestApplyDestination(t *testing.T) {
	a := F("a.txt", "hello", 0o640).WithOwner(1000, 1000)
	runCopyCases(t, []copyCase{{
		name: "file to file path keeps mode and owner",
		src:  []ft.Node{a},
		op:   fileop.Copy{Sources: fileop.Sources("a.txt"), Dest: "/b.txt"},
		want: []ft.Entry{wf("b.txt", "0640", "hello").Owned(1000, 1000)},
	}, {
		name: "local source counts as owned by root",
		src:  []ft.Node{a},
		op:   fileop.Copy{Local: true, Sources: fileop.Sources("a.txt"), Dest: "/b.txt"},
		want: []ft.Entry{wf("b.txt", "0640", "hello")},
	}, {
		name: "file into existing directory",
		src:  []ft.Node{a},
		dest: []ft.Node{D("d", 0o700).WithOwner(5, 5)},
		op:   fileop.Copy{Sources: fileop.Sources("a.txt"), Dest: "/d"},
		want: []ft.Entry{wd("d", "0700").Owned(5, 5), wf("d/a.txt", "0640", "hello").Owned(1000, 1000)},
	}, {
		name: "trailing slash creates the directory",
		src:  []ft.Node{a},
		op:   fileop.Copy{Local: true, Sources: fileop.Sources("a.txt"), Dest: "/new/"},
		want: []ft.Entry{wd("new", "0755"), wf("new/a.txt", "0640", "hello")},
	}, {
		name: "DestIsDir creates the directory",
		src:  []ft.Node{a},
		op:   fileop.Copy{Local: true, Sources: fileop.Sources("a.txt"), Dest: "/new", DestIsDir: true},
		want: []ft.Entry{wd("new", "0755"), wf("new/a.txt", "0640", "hello")},
	}, {
		name: "slash dot is a directory",
		src:  []ft.Node{a},
		op:   fileop.Copy{Local: true, Sources: fileop.Sources("a.txt"), Dest: "/new/."},
		want: []ft.Entry{wd("new", "0755"), wf("new/a.txt", "0640", "hello")},
	}, {
		name: "missing parents are created 0755 root",
		src:  []ft.Node{a},
		op:   fileop.Copy{Sources: fileop.Sources("a.txt"), Dest: "/x/y/z"},
		want: []ft.Entry{wd("x", "0755"), wd("x/y", "0755"), wf("x/y/z", "0640", "hello").Owned(1000, 1000)},
	}, {
		name: "several sources to a missing plain path: the last one wins",
		src:  []ft.Node{F("a", "A", 0o644), F("b", "B", 0o600)},
		op:   fileop.Copy{Sources: fileop.Sources("a", "b"), Dest: "/x"},
		want: []ft.Entry{wf("x", "0600", "B")},
	}, {
		name:    "a missing source stops the step before anything is copied",
		src:     []ft.Node{a},
		op:      fileop.Copy{Sources: fileop.Sources("a.txt", "missing"), Dest: "/x/"},
		want:    []ft.Entry{},
		wantErr: `"/missing": not found`,
	}, {
		name: "several sources into a directory",
		src:  []ft.Node{F("a", "A", 0o644), F("b", "B", 0o600)},
		op:   fileop.Copy{Sources: fileop.Sources("a", "b"), Dest: "/x/"},
		want: []ft.Entry{wd("x", "0755"), wf("x/a", "0644", "A"), wf("x/b", "0600", "B")},
	}, {
		name: "file replaces a file and a symlink",
		src:  []ft.Node{F("x", "new", 0o644), F("y", "newy", 0o644)},
		dest: []ft.Node{F("x", "old", 0o600), L("y", "/etc/shadow")},
		op:   fileop.Copy{Sources: fileop.Sources("x", "y"), Dest: "/"},
		want: []ft.Entry{wf("x", "0644", "new"), wf("y", "0644", "newy")},
	}, {
		name:    "file over a directory is an error",
		src:     []ft.Node{a},
		dest:    []ft.Node{D("x", 0o755), D("x/a.txt", 0o755)},
		op:      fileop.Copy{Sources: fileop.Sources("a.txt"), Dest: "/x/"},
		wantErr: "cannot replace to directory /x/a.txt with file",
	}, {
		name: "destination through a symlink in the root",
		src:  []ft.Node{a},
		dest: []ft.Node{D("usr", 0o755), D("usr/bin", 0o755), L("bin", "usr/bin")},
		op:   fileop.Copy{Local: true, Sources: fileop.Sources("a.txt"), Dest: "/bin/"},
		want: []ft.Entry{wl("bin", "usr/bin"), wd("usr", "0755"), wd("usr/bin", "0755"), wf("usr/bin/a.txt", "0640", "hello")},
	}, {
		name: "absolute dangling symlink resolves inside the root",
		src:  []ft.Node{a},
		dest: []ft.Node{L("lib", "/usr/lib")},
		op:   fileop.Copy{Local: true, Sources: fileop.Sources("a.txt"), Dest: "/lib/x/"},
		want: []ft.Entry{
			wl("lib", "/usr/lib"), wd("usr", "0755"), wd("usr/lib", "0755"), wd("usr/lib/x", "0755"),
			wf("usr/lib/x/a.txt", "0640", "hello"),
		},
	}, {
		name: "escaping symlink in the root stays bounded",
		src:  []ft.Node{a},
		dest: []ft.Node{L("evil", "../../../../../../sentinel-dir")},
		op:   fileop.Copy{Local: true, Sources: fileop.Sources("a.txt"), Dest: "/evil/"},
		want: []ft.Entry{wl("evil", "../../../../../../sentinel-dir"), wd("sentinel-dir", "0755"), wf("sentinel-dir/a.txt", "0640", "hello")},
	}})
}

func TestApplyDirectories(t *testing.T) {
	tree := []ft.Node{
		D("dir", 0o700).WithOwner(7, 7),
		F("dir/f", "f", 0o600).WithOwner(7, 8),
		D("dir/sub", 0o750),
		F("dir/sub/g", "g", 0o644),
	}
	runCopyCases(t, []copyCase{{
		name: "directory source copies its contents; created top gets 0755 root",
		src:  tree,
		op:   fileop.Copy{Sources: fileop.Sources("dir"), Dest: "/out"},
		want: []ft.Entry{
			wd("out", "0755"), wf("out/f", "0600", "f").Owned(7, 8),
			wd("out/sub", "0750"), wf("out/sub/g", "0644", "g"),
		},
	}, {
		name: "existing top directory keeps its owner and mode, nested ones are overwritten",
		src:  tree,
		dest: []ft.Node{D("out", 0o711).WithOwner(3, 3), F("out/old", "old", 0o644), D("out/sub", 0o777).WithOwner(9, 9)},
		op:   fileop.Copy{Sources: fileop.Sources("dir/"), Dest: "/out/"},
		want: []ft.Entry{
			wd("out", "0711").Owned(3, 3), wf("out/f", "0600", "f").Owned(7, 8), wf("out/old", "0644", "old"),
			wd("out/sub", "0750"), wf("out/sub/g", "0644", "g"),
		},
	}, {
		name: "dot copies the whole source root",
		src:  tree,
		op:   fileop.Copy{Local: true, Sources: fileop.Sources("."), Dest: "/"},
		want: []ft.Entry{
			wd("dir", "0700"), wf("dir/f", "0600", "f"), wd("dir/sub", "0750"), wf("dir/sub/g", "0644", "g"),
		},
	}, {
		name:    "merging into a symlinked directory is an error",
		src:     []ft.Node{D("r", 0o755), D("r/usr", 0o755), F("r/usr/x", "x", 0o644)},
		dest:    []ft.Node{D("real", 0o755), L("usr", "real")},
		op:      fileop.Copy{Sources: fileop.Sources("r"), Dest: "/"},
		wantErr: "cannot copy to non-directory: /usr",
	}, {
		name: "symlinks inside a tree are copied, not followed",
		src: []ft.Node{
			D("dir", 0o755), F("dir/f", "f", 0o644), L("dir/rel", "f"), L("dir/abs", "/etc/passwd"),
			L("dir/dangling", "nowhere"), L("dir/up", "../../../.."),
		},
		op: fileop.Copy{Sources: fileop.Sources("dir"), Dest: "/out/"},
		want: []ft.Entry{
			wd("out", "0755"), wl("out/abs", "/etc/passwd"), wl("out/dangling", "nowhere"),
			wf("out/f", "0644", "f"), wl("out/rel", "f"), wl("out/up", "../../../.."),
		},
	}, {
		name: "top-level symlink to a file is followed and named after the link",
		src:  []ft.Node{F("real", "data", 0o600), L("link", "real")},
		op:   fileop.Copy{Sources: fileop.Sources("link"), Dest: "/d/"},
		want: []ft.Entry{wd("d", "0755"), wf("d/link", "0600", "data")},
	}, {
		name: "top-level symlink to a directory copies its contents",
		src:  []ft.Node{D("realdir", 0o755), F("realdir/f", "f", 0o644), L("dlink", "realdir")},
		op:   fileop.Copy{Sources: fileop.Sources("dlink"), Dest: "/out"},
		want: []ft.Entry{wd("out", "0755"), wf("out/f", "0644", "f")},
	}, {
		name: "source symlinks resolve inside the source root",
		src:  []ft.Node{D("etc", 0o755), F("etc/file", "inside", 0o644), L("esc", "../../../../etc")},
		op:   fileop.Copy{Sources: fileop.Sources("esc/file"), Dest: "/x"},
		want: []ft.Entry{wf("x", "0644", "inside")},
	}, {
		name:    "missing source is not found",
		op:      fileop.Copy{Sources: fileop.Sources("missing"), Dest: "/x"},
		wantErr: `"/missing": not found`,
	}, {
		name: "hard links within one source are kept",
		src:  []ft.Node{D("dir", 0o755), F("dir/a", "same", 0o644), H("dir/b", "dir/a"), F("dir/c", "other", 0o644)},
		op:   fileop.Copy{Sources: fileop.Sources("dir"), Dest: "/out"},
		want: []ft.Entry{
			wd("out", "0755"), wf("out/a", "0644", "same"), wf("out/b", "0644", "same").HardlinkTo("out/a"),
			wf("out/c", "0644", "other"),
		},
	}, {
		name: "hard links across sources and matches are not",
		src:  []ft.Node{F("a", "same", 0o644), H("b", "a")},
		op:   fileop.Copy{Sources: fileop.Sources("a", "b", "*"), Dest: "/out/"},
		want: []ft.Entry{wd("out", "0755"), wf("out/a", "0644", "same"), wf("out/b", "0644", "same")},
	}, {
		name: "modes are preserved with set-id and sticky bits",
		src: []ft.Node{
			F("suid", "s", 0o755|fs.ModeSetuid), D("sticky", 0o777|fs.ModeSticky),
			D("sgid", 0o755|fs.ModeSetgid), F("private", "p", 0o600),
		},
		op: fileop.Copy{Sources: fileop.Sources("."), Dest: "/"},
		want: []ft.Entry{
			wf("private", "0600", "p"), wd("sgid", "2755"), wd("sticky", "1777"), wf("suid", "4755", "s"),
		},
	}})
}

func TestApplyWildcards(t *testing.T) {
	rootfs := []ft.Node{
		D("rootfs", 0o755), D("rootfs/usr", 0o755), D("rootfs/usr/bin", 0o755),
		F("rootfs/usr/bin/clang", "clang", 0o755), F("rootfs/usr/bin/clang++", "clang++", 0o755),
		F("rootfs/usr/bin/gcc", "gcc", 0o755), L("rootfs/usr/bin/clang-17", "clang"),
		F("rootfs/usr/bin/llvm-clang-tblgen", "tblgen", 0o755),
	}
	patches := []ft.Node{
		D("patches", 0o755), F("patches/a.patch", "a", 0o644), F("patches/b.patch", "b", 0o644),
		F("patches/readme", "r", 0o644), D("patches/sub", 0o755), F("patches/sub/c.patch", "c", 0o644),
	}
	runCopyCases(t, []copyCase{{
		name: "*clang* in a rootfs, symlink matches followed",
		src:  rootfs,
		op:   fileop.Copy{Sources: fileop.Sources("/rootfs/usr/bin/*clang*"), Dest: "/usr/bin/"},
		want: []ft.Entry{
			wd("usr", "0755"), wd("usr/bin", "0755"),
			wf("usr/bin/clang", "0755", "clang"), wf("usr/bin/clang++", "0755", "clang++"),
			wf("usr/bin/clang-17", "0755", "clang"), wf("usr/bin/llvm-clang-tblgen", "0755", "tblgen"),
		},
	}, {
		name: "dir/*.patch matches one level only",
		src:  patches,
		op:   fileop.Copy{Sources: fileop.Sources("patches/*.patch"), Dest: "/src/"},
		want: []ft.Entry{wd("src", "0755"), wf("src/a.patch", "0644", "a"), wf("src/b.patch", "0644", "b")},
	}, {
		name: "wildcard in a directory component",
		src:  patches,
		op:   fileop.Copy{Sources: fileop.Sources("patch?s/sub/*"), Dest: "/src/"},
		want: []ft.Entry{wd("src", "0755"), wf("src/c.patch", "0644", "c")},
	}, {
		name: "wildcard matching directories copies their contents",
		src:  []ft.Node{D("pkg", 0o755), D("pkg/one", 0o755), F("pkg/one/x", "x", 0o644), D("pkg/two", 0o755), F("pkg/two/y", "y", 0o644)},
		op:   fileop.Copy{Sources: fileop.Sources("pkg/*"), Dest: "/out/"},
		want: []ft.Entry{wd("out", "0755"), wf("out/x", "0644", "x"), wf("out/y", "0644", "y")},
	}, {
		name: "wildcard without a match copies nothing and creates nothing",
		src:  patches,
		op:   fileop.Copy{Sources: fileop.Sources("*.nothing"), Dest: "/out/"},
	}, {
		name:    "wildcard under a missing directory is an error",
		src:     patches,
		op:      fileop.Copy{Sources: fileop.Sources("nope/*.c"), Dest: "/out/"},
		wantErr: "lstat /nope: no such file or directory",
	}, {
		name: "escaped wildcard is a plain name",
		src:  []ft.Node{F(`a\*`, "literal", 0o644), F("ab", "ab", 0o644)},
		op:   fileop.Copy{Sources: fileop.Sources(`a\*`), Dest: "/out/"},
		want: []ft.Entry{wd("out", "0755"), wf(`out/a\*`, "0644", "literal")},
	}})
}

func TestApplyChmodChown(t *testing.T) {
	tree := []ft.Node{D("dir", 0o700), F("dir/f", "f", 0o600), D("dir/sub", 0o700), F("dir/x", "x", 0o744)}
	passwd := []ft.Node{
		D("etc", 0o755),
		F("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nbuilder:x:1500:1600::/home/b:/bin/sh\n", 0o644),
		F("etc/group", "root:x:0:\nstaff:x:50:builder\n", 0o644),
	}
	etc := []ft.Entry{
		wd("etc", "0755"), wf("etc/group", "0644", "root:x:0:\nstaff:x:50:builder\n"),
		wf("etc/passwd", "0644", "root:x:0:0:root:/root:/bin/sh\nbuilder:x:1500:1600::/home/b:/bin/sh\n"),
	}
	runCopyCases(t, []copyCase{{
		name: "octal chmod applies to files, directories and created parents",
		src:  tree,
		op:   fileop.Copy{Sources: fileop.Sources("dir"), Dest: "/a/b/", Chmod: "644"},
		want: []ft.Entry{
			wd("a", "0644"), wd("a/b", "0644"), wf("a/b/f", "0644", "f"), wd("a/b/sub", "0644"), wf("a/b/x", "0644", "x"),
		},
	}, {
		name: "chmod 775 applies to created parents too (buildkitd's umask is 0)",
		src:  []ft.Node{F("a.txt", "a", 0o600)},
		op:   fileop.Copy{Sources: fileop.Sources("a.txt"), Dest: "/p/q/a.txt", Chmod: "775"},
		want: []ft.Entry{wd("p", "0775"), wd("p/q", "0775"), wf("p/q/a.txt", "0775", "a")},
	}, {
		name: "chmod 0755 with a set-id bit",
		src:  []ft.Node{F("a.txt", "a", 0o600)},
		op:   fileop.Copy{Sources: fileop.Sources("a.txt"), Dest: "/p/", Chmod: "4755"},
		want: []ft.Entry{wd("p", "0755"), wf("p/a.txt", "4755", "a")},
	}, {
		name: "symbolic chmod applies per entry; created top gets 0755",
		src:  tree,
		op:   fileop.Copy{Sources: fileop.Sources("dir"), Dest: "/out", Chmod: "go+rX"},
		want: []ft.Entry{wd("out", "0755"), wf("out/f", "0644", "f"), wd("out/sub", "0755"), wf("out/x", "0755", "x")},
	}, {
		name:    "invalid chmod",
		src:     tree,
		op:      fileop.Copy{Sources: fileop.Sources("dir"), Dest: "/out", Chmod: "888"},
		wantErr: "invalid chmod parameter: '888'. it should be octal string and between 0 and 07777",
	}, {
		name: "numeric chown owns copied entries and created parents",
		src:  tree,
		op:   fileop.Copy{Sources: fileop.Sources("dir"), Dest: "/a/out", Chown: "1000:1001"},
		want: []ft.Entry{
			wd("a", "0755").Owned(1000, 1001), wd("a/out", "0755").Owned(1000, 1001),
			wf("a/out/f", "0600", "f").Owned(1000, 1001), wd("a/out/sub", "0700").Owned(1000, 1001),
			wf("a/out/x", "0744", "x").Owned(1000, 1001),
		},
	}, {
		name: "chown by name from the destination's passwd and group",
		src:  []ft.Node{F("a.txt", "a", 0o644)},
		dest: passwd,
		op:   fileop.Copy{Sources: fileop.Sources("a.txt"), Dest: "/home/", Chown: "builder:staff"},
		want: append(append([]ft.Entry{}, etc...), wd("home", "0755").Owned(1500, 50), wf("home/a.txt", "0644", "a").Owned(1500, 50)),
	}, {
		name: "chown and chmod on a heredoc",
		dest: passwd,
		op: fileop.Copy{
			Heredocs: []fileop.Heredoc{{Name: "EOF", Data: []byte("#!/bin/sh\necho hi\n")}},
			Dest:     "/usr/bin/hello", Chown: "builder", Chmod: "755",
		},
		want: append(append([]ft.Entry{}, etc...),
			wd("usr", "0755").Owned(1500, 1600), wd("usr/bin", "0755").Owned(1500, 1600),
			wf("usr/bin/hello", "0755", "#!/bin/sh\necho hi\n").Owned(1500, 1600)),
	}})
}

func TestApplyHeredoc(t *testing.T) {
	runCopyCases(t, []copyCase{{
		name: "heredoc to a file path",
		op:   fileop.Copy{Heredocs: []fileop.Heredoc{{Name: "EOF", Data: []byte("export A=1\n")}}, Dest: "/etc/profile"},
		want: []ft.Entry{wd("etc", "0755"), wf("etc/profile", "0644", "export A=1\n")},
	}, {
		name: "heredoc into a directory is named after the heredoc",
		op:   fileop.Copy{Heredocs: []fileop.Heredoc{{Name: "CONFIG", Data: []byte("x")}}, Dest: "/d/"},
		want: []ft.Entry{wd("d", "0755"), wf("d/CONFIG", "0644", "x")},
	}, {
		name: "sources then heredocs",
		src:  []ft.Node{F("a", "from file", 0o600)},
		op:   fileop.Copy{Sources: fileop.Sources("a"), Heredocs: []fileop.Heredoc{{Name: "a", Data: []byte("from heredoc")}}, Dest: "/d/"},
		want: []ft.Entry{wd("d", "0755"), wf("d/a", "0644", "from heredoc")},
	}})
}

func TestApplyTimesXattrsDevices(t *testing.T) {
	t1 := time.Date(2020, 1, 2, 3, 4, 5, 123456789, time.UTC)
	t2 := time.Date(2021, 6, 7, 8, 9, 10, 987654321, time.UTC)
	t3 := time.Date(1999, 12, 31, 23, 59, 59, 1, time.UTC)
	timed := func(e ft.Entry, tm time.Time) ft.Entry { e.MTime = tm; return e }
	runCopyCases(t, []copyCase{{
		name: "mtimes kept to the nanosecond, top directory included",
		src: []ft.Node{
			D("dir", 0o755).WithMTime(t2), F("dir/f", "f", 0o644).WithMTime(t1),
			L("dir/l", "f").WithMTime(t3),
		},
		dest: []ft.Node{D("out", 0o755).WithMTime(t3)},
		op:   fileop.Copy{Local: true, Sources: fileop.Sources("dir"), Dest: "/out"},
		opts: []ft.Option{ft.WithTimes()},
		want: []ft.Entry{
			timed(wd("out", "0755"), t2), timed(wf("out/f", "0644", "f"), t1), timed(wl("out/l", "f"), t3),
		},
	}, {
		name: "xattrs copied",
		src:  []ft.Node{F("a", "a", 0o644).WithXattr("user.origin", "context")},
		op:   fileop.Copy{Sources: fileop.Sources("a"), Dest: "/a"},
		want: []ft.Entry{wf("a", "0644", "a").WithXattr("user.origin", "context")},
	}, {
		name: "devices, fifos and sockets as fsutil makes them",
		src:  []ft.Node{ft.Fifo("fifo", 0o600), ft.CharDev("null", 0o666, 1, 3)},
		setup: func(t *testing.T, srcRoot, _ string) {
			if err := unix.Mknod(filepath.Join(srcRoot, "blk"), unix.S_IFBLK|0o600, int(unix.Mkdev(7, 0))); err != nil {
				t.Fatal(err)
			}
			l, err := net.Listen("unix", filepath.Join(srcRoot, "sock"))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
		},
		op: fileop.Copy{Sources: fileop.Sources("."), Dest: "/"},
		want: []ft.Entry{
			{Path: "blk", Type: "char", Mode: "0600"},
			{Path: "fifo", Type: "fifo", Mode: "0600"},
			{Path: "null", Type: "char", Mode: "0666"},
			wf("sock", "0755", ""),
		},
	}})
}

func TestApplyNotFoundIs(t *testing.T) {
	s := newSandbox(t)
	err := fileop.Apply(context.Background(), s.dest, fileop.Copy{SrcRoot: s.src, Sources: fileop.Sources("nope"), Dest: "/"})
	if !errors.Is(err, fileop.ErrNotFound) {
		t.Fatalf("Apply error = %v, want ErrNotFound", err)
	}
}
