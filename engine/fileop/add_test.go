package fileop_test

import (
	"archive/tar"
	"archive/zip"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"

	"github.com/stagex/sxmake/engine/fileop"
	ft "github.com/stagex/sxmake/engine/fileop/fileoptest"
)

// te is one tar entry to write.
type te struct {
	name  string
	typ   byte
	mode  int64
	uid   int
	gid   int
	data  string
	link  string
	mtime time.Time
	atime time.Time
	pax   map[string]string
}

var epoch17 = time.Unix(1700000000, 0)

// tarBytes writes entries as a PAX tar stream.
func tarBytes(t testing.TB, entries ...te) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		typ := e.typ
		if typ == 0 {
			typ = tar.TypeReg
		}
		mt := e.mtime
		if mt.IsZero() {
			mt = epoch17
		}
		hdr := &tar.Header{
			Name: e.name, Typeflag: typ, Mode: e.mode, Uid: e.uid, Gid: e.gid,
			Linkname: e.link, ModTime: mt, AccessTime: e.atime, PAXRecords: e.pax,
			Format: tar.FormatPAX,
		}
		if typ == tar.TypeReg {
			hdr.Size = int64(len(e.data))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if typ == tar.TypeReg {
			if _, err := tw.Write([]byte(e.data)); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func gzipBytes(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w := gzip.NewWriter(&buf)
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func xzBytes(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w, err := xz.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zstdBytes(t testing.TB, b []byte) []byte {
	var buf bytes.Buffer
	w, err := zstd.NewWriter(&buf)
	if err != nil {
		t.Fatal(err)
	}
	w.Write(b)
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func zipBytes(t testing.TB) []byte {
	var buf bytes.Buffer
	w := zip.NewWriter(&buf)
	f, _ := w.Create("inside.txt")
	f.Write([]byte("zipped"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// hello is the content of testdata/hello.tar.bz2.
func hello(t testing.TB) []byte {
	return tarBytes(t,
		te{name: "hello/", typ: tar.TypeDir, mode: 0o755, uid: 1000, gid: 1000},
		te{name: "hello/world.txt", mode: 0o644, uid: 1000, gid: 1000, data: "hello, world\n"},
	)
}

func TestAddExtractsByContent(t *testing.T) {
	bz2, err := os.ReadFile("testdata/hello.tar.bz2")
	if err != nil {
		t.Fatal(err)
	}
	want := []ft.Entry{
		wd("src", "0755"), wd("src/hello", "0755").Owned(1000, 1000),
		wf("src/hello/world.txt", "0644", "hello, world\n").Owned(1000, 1000),
	}
	withFile := func(name string, data []byte) func(t *testing.T, srcRoot, _ string) {
		return func(t *testing.T, srcRoot, _ string) {
			if err := os.WriteFile(filepath.Join(srcRoot, name), data, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	add := func(src string) fileop.Copy {
		return fileop.Copy{Local: true, Add: true, Sources: fileop.Sources(src), Dest: "/src/"}
	}
	runCopyCases(t, []copyCase{
		{name: "plain tar", setup: withFile("x.tar", hello(t)), op: add("x.tar"), want: want},
		{name: "gzip", setup: withFile("x.tar.gz", gzipBytes(t, hello(t))), op: add("x.tar.gz"), want: want},
		{name: "bzip2", setup: withFile("x.tar.bz2", bz2), op: add("x.tar.bz2"), want: want},
		{name: "xz", setup: withFile("x.tar.xz", xzBytes(t, hello(t))), op: add("x.tar.xz"), want: want},
		{name: "zstd", setup: withFile("x.tar.zst", zstdBytes(t, hello(t))), op: add("x.tar.zst"), want: want},
		{name: "archive with a misleading name", setup: withFile("notes.txt", gzipBytes(t, hello(t))), op: add("notes.txt"), want: want},
		{
			name: "zip is copied as-is", setup: withFile("a.zip", zipBytes(t)), op: add("a.zip"),
			want: []ft.Entry{wd("src", "0755"), wf("src/a.zip", "0644", string(zipBytes(t)))},
		},
		{
			name: "text named like a tarball is copied", setup: withFile("x.tar.gz", []byte("not an archive")), op: add("x.tar.gz"),
			want: []ft.Entry{wd("src", "0755"), wf("src/x.tar.gz", "0644", "not an archive")},
		},
		{
			name: "gzipped text is copied compressed", setup: withFile("n.gz", gzipBytes(t, []byte("text"))), op: add("n.gz"),
			want: []ft.Entry{wd("src", "0755"), wf("src/n.gz", "0644", string(gzipBytes(t, []byte("text"))))},
		},
		{
			name: "empty file is copied", setup: withFile("empty.tar", nil), op: add("empty.tar"),
			want: []ft.Entry{wd("src", "0755"), wf("src/empty.tar", "0644", "")},
		},
		{
			name:  "archive to a plain path is extracted into that directory",
			setup: withFile("x.tar", hello(t)),
			op:    fileop.Copy{Local: true, Add: true, Sources: fileop.Sources("x.tar"), Dest: "/src"},
			want:  want,
		},
		{
			name: "archives inside a directory source are copied",
			src:  []ft.Node{D("fetch", 0o755)},
			setup: func(t *testing.T, srcRoot, _ string) {
				withFile("fetch/x.tar", hello(t))(t, srcRoot, "")
			},
			op:   add("fetch"),
			want: []ft.Entry{wd("src", "0755"), wf("src/x.tar", "0644", string(hello(t)))},
		},
		{
			name: "glob over archives extracts each",
			src:  []ft.Node{D("fetch", 0o755)},
			setup: func(t *testing.T, srcRoot, _ string) {
				withFile("fetch/a.tar.gz", gzipBytes(t, hello(t)))(t, srcRoot, "")
				withFile("fetch/b.tar", tarBytes(t, te{name: "b.txt", mode: 0o600, data: "b"}))(t, srcRoot, "")
			},
			op:   add("fetch/*.tar*"),
			want: append(append([]ft.Entry{}, want[0]), wf("src/b.txt", "0600", "b"), want[1], want[2]),
		},
		{
			name:  "COPY never extracts",
			setup: withFile("x.tar", hello(t)),
			op:    fileop.Copy{Local: true, Sources: fileop.Sources("x.tar"), Dest: "/src/"},
			want:  []ft.Entry{wd("src", "0755"), wf("src/x.tar", "0644", string(hello(t)))},
		},
	})
}

func TestAddEntrySemantics(t *testing.T) {
	old := time.Date(1960, 1, 1, 0, 0, 0, 0, time.UTC)
	archive := tarBytes(t,
		te{name: "pkg/", typ: tar.TypeDir, mode: 0o750, uid: 1000, gid: 100, mtime: time.Unix(1600000000, 0)},
		te{name: "pkg/a", mode: 0o644, uid: 1000, gid: 100, data: "A", pax: map[string]string{"SCHILY.xattr.user.k": "v"}},
		te{name: "pkg/bin/tool", mode: 0o4755, data: "#!", mtime: old},
		te{name: "pkg/link", typ: tar.TypeSymlink, link: "a"},
		te{name: "pkg/hl", typ: tar.TypeLink, link: "pkg/a", mode: 0o644, uid: 1000, gid: 100},
		te{name: "pkg/fifo", typ: tar.TypeFifo, mode: 0o600},
		te{name: "./", typ: tar.TypeDir, mode: 0o700},
	)
	setup := func(t *testing.T, srcRoot, _ string) {
		if err := os.WriteFile(filepath.Join(srcRoot, "pkg.tar"), archive, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	timed := func(e ft.Entry, tm time.Time) ft.Entry { e.MTime = tm.UTC(); return e }
	ft.RequiresRoot(t)
	s := newSandbox(t)
	setup(t, s.src, s.dest)
	err := fileop.Apply(context.Background(), s.dest, fileop.Copy{
		SrcRoot: s.src, Local: true, Add: true, Sources: fileop.Sources("pkg.tar"), Dest: "/usr/src", Chmod: "600",
	})
	if err != nil {
		t.Fatal(err)
	}
	got := ft.Tree(t, s.dest, ft.WithTimes())
	// Directories made by the extraction itself get the current time.
	for i := range got {
		switch got[i].Path {
		case ".", "usr", "usr/src", "usr/src/pkg/bin":
			got[i].MTime = time.Time{}
		}
	}
	want := []ft.Entry{
		wd(".", "0755"),
		wd("usr", "0755"),
		// "./" in the archive is skipped: the extraction directory keeps
		// its mode.
		wd("usr/src", "0755"),
		timed(wd("usr/src/pkg", "0750").Owned(1000, 100), time.Unix(1600000000, 0)),
		timed(wf("usr/src/pkg/a", "0644", "A").Owned(1000, 100).WithXattr("user.k", "v"), epoch17),
		wd("usr/src/pkg/bin", "0755"),
		timed(wf("usr/src/pkg/bin/tool", "4755", "#!"), time.Unix(0, 0)),
		timed(ft.Entry{Path: "usr/src/pkg/fifo", Type: "fifo", Mode: "0600"}, epoch17),
		timed(wf("usr/src/pkg/hl", "0644", "A").Owned(1000, 100).WithXattr("user.k", "v").HardlinkTo("usr/src/pkg/a"), epoch17),
		timed(wl("usr/src/pkg/link", "a"), epoch17),
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("destination (-want +got):\n%s", diff)
	}
}

func TestAddChown(t *testing.T) {
	archive := tarBytes(t,
		te{name: "d/", typ: tar.TypeDir, mode: 0o755, uid: 5, gid: 5},
		te{name: "d/f", mode: 0o644, uid: 5, gid: 5, data: "f"},
		te{name: "implied/g", mode: 0o600, data: "g"},
	)
	runCopyCases(t, []copyCase{{
		name: "chown owns every entry and the created dest, not implied dirs",
		setup: func(t *testing.T, srcRoot, _ string) {
			os.WriteFile(filepath.Join(srcRoot, "a.tar"), archive, 0o644)
		},
		op: fileop.Copy{Local: true, Add: true, Sources: fileop.Sources("a.tar"), Dest: "/out/", Chown: "7:8"},
		want: []ft.Entry{
			wd("out", "0755").Owned(7, 8), wd("out/d", "0755").Owned(7, 8), wf("out/d/f", "0644", "f").Owned(7, 8),
			wd("out/implied", "0755"), wf("out/implied/g", "0600", "g").Owned(7, 8),
		},
	}})
}

// escapes are crafted archives that try to write outside the extraction
// directory; each must land inside it (or fail).
func escapes(t testing.TB) map[string][]byte {
	return map[string][]byte{
		"dotdot":   tarBytes(t, te{name: "../../escape", mode: 0o644, data: "x"}),
		"absolute": tarBytes(t, te{name: "/abs/file", mode: 0o644, data: "x"}),
		"symlink to root then through it": tarBytes(t,
			te{name: "s", typ: tar.TypeSymlink, link: "/"},
			te{name: "s/etc/x", mode: 0o644, data: "x"}),
		"relative symlink up then through it": tarBytes(t,
			te{name: "up", typ: tar.TypeSymlink, link: "../../../.."},
			te{name: "up/x", mode: 0o644, data: "x"}),
		"symlink replaced by a directory": tarBytes(t,
			te{name: "d", typ: tar.TypeSymlink, link: "/etc"},
			te{name: "d", typ: tar.TypeDir, mode: 0o755},
			te{name: "d/x", mode: 0o644, data: "x"}),
		"hardlink out": tarBytes(t, te{name: "h", typ: tar.TypeLink, link: "../../../sentinel"}),
		"hardlink through symlink": tarBytes(t,
			te{name: "s", typ: tar.TypeSymlink, link: "../.."},
			te{name: "h", typ: tar.TypeLink, link: "s/sentinel"}),
		"file named dotdot": tarBytes(t, te{name: "..", mode: 0o644, data: "x"}),
		"zip-slip names": tarBytes(t,
			te{name: "a/../../../x", mode: 0o644, data: "x"},
			te{name: "./../y", mode: 0o644, data: "y"}),
		"chained symlinks": tarBytes(t,
			te{name: "a", typ: tar.TypeSymlink, link: "b/.."},
			te{name: "b", typ: tar.TypeSymlink, link: "../../"},
			te{name: "a/c/x", mode: 0o644, data: "x"}),
		"hardlink to an absolute path": tarBytes(t, te{name: "h", typ: tar.TypeLink, link: "/etc/passwd"}),
		"device node through a symlink": tarBytes(t,
			te{name: "s", typ: tar.TypeSymlink, link: "/"},
			te{name: "s/null", typ: tar.TypeChar, mode: 0o666}),
		// ADD is not a layer: BuildKit's Untar writes whiteout names as
		// files, where a layer's would remove (umoci's even the parent).
		"whiteout names are files": tarBytes(t,
			te{name: "/.wh..", mode: 0o644, data: "w"},
			te{name: ".wh.sentinel", mode: 0o644, data: "s"}),
	}
}

func TestAddStaysInside(t *testing.T) {
	ft.RequiresRoot(t)
	want := map[string][]ft.Entry{
		"dotdot":                              {wf("out/escape", "0644", "x")},
		"absolute":                            {wd("out/abs", "0755"), wf("out/abs/file", "0644", "x")},
		"symlink to root then through it":     {wd("out/etc", "0755"), wf("out/etc/x", "0644", "x"), wl("out/s", "/")},
		"relative symlink up then through it": {wl("out/up", "../../../.."), wf("out/x", "0644", "x")},
		"symlink replaced by a directory":     {wd("out/d", "0755"), wf("out/d/x", "0644", "x")},
		"hardlink out":                        nil,
		"hardlink through symlink":            nil,
		"file named dotdot":                   nil,
		"zip-slip names":                      {wf("out/x", "0644", "x"), wf("out/y", "0644", "y")},
		"chained symlinks":                    {wl("out/a", "b/.."), wl("out/b", "../../"), wd("out/c", "0755"), wf("out/c/x", "0644", "x")},
		"hardlink to an absolute path":        nil,
		"device node through a symlink":       {{Path: "out/null", Type: "char", Mode: "0666"}, wl("out/s", "/")},
		"whiteout names are files":            {wf("out/.wh..", "0644", "w"), wf("out/.wh.sentinel", "0644", "s")},
	}
	for name, archive := range escapes(t) {
		t.Run(name, func(t *testing.T) {
			s := newSandbox(t)
			if err := os.WriteFile(filepath.Join(s.src, "a.tar"), archive, 0o644); err != nil {
				t.Fatal(err)
			}
			// The destination itself is reached through an escaping link.
			if err := os.Symlink("../../../..", filepath.Join(s.dest, "link")); err != nil {
				t.Fatal(err)
			}
			err := fileop.Apply(context.Background(), s.dest, fileop.Copy{
				SrcRoot: s.src, Add: true, Sources: fileop.Sources("a.tar"), Dest: "/link/out/",
			})
			if want[name] == nil {
				if err == nil {
					t.Errorf("Apply succeeded, want an error")
				}
			} else if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if want[name] != nil {
				got := ft.Tree(t, s.dest, ft.Skip(func(p string) bool { return p == "link" }))[1:]
				w := append([]ft.Entry{wd("out", "0755")}, want[name]...)
				if diff := cmp.Diff(w, got); diff != "" {
					t.Errorf("destination (-want +got):\n%s", diff)
				}
			}
			s.checkOutside(t)
		})
	}
}

func TestDetectCompression(t *testing.T) {
	for _, tc := range []struct {
		name string
		head []byte
		want fileop.Compression
	}{
		{"gzip", gzipBytes(t, []byte("x")), fileop.Gzip},
		{"xz", xzBytes(t, []byte("x")), fileop.Xz},
		{"zstd", zstdBytes(t, []byte("x")), fileop.Zstd},
		{"zstd skippable frame", []byte{0x5a, 0x2a, 0x4d, 0x18, 0, 0, 0, 0}, fileop.Zstd},
		{"bzip2", []byte("BZh91AY&SY"), fileop.Bzip2},
		{"tar", hello(t), fileop.Uncompressed},
		{"zip", zipBytes(t), fileop.Uncompressed},
		{"short", []byte{0x1f}, fileop.Uncompressed},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := fileop.DetectCompression(tc.head); got != tc.want {
				t.Errorf("DetectCompression = %v, want %v", got, tc.want)
			}
		})
	}
}

// FuzzExtract feeds arbitrary bytes to Extract: it may fail but must not
// panic nor write anything outside the extraction directory.
func FuzzExtract(f *testing.F) {
	if os.Geteuid() != 0 {
		f.Skip("requires root")
	}
	for _, b := range escapes(f) {
		f.Add(b)
	}
	f.Add(hello(f))
	f.Add(tarBytes(f, te{name: "a/b/c", mode: 0o644, data: "c"}, te{name: "a", typ: tar.TypeSymlink, link: "/a/b"},
		te{name: "a/x", typ: tar.TypeLink, link: "a/c"}))
	f.Fuzz(func(t *testing.T, data []byte) {
		outer := t.TempDir()
		dest := filepath.Join(outer, "rootfs", "dest")
		if err := os.MkdirAll(dest, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(outer, "sentinel"), []byte("untouched"), 0o644); err != nil {
			t.Fatal(err)
		}
		_ = fileop.Extract(context.Background(), bytes.NewReader(data), dest, nil)
		err := filepath.WalkDir(outer, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			switch {
			case p == outer, p == filepath.Join(outer, "rootfs"), p == dest:
			case p == filepath.Join(outer, "sentinel"):
				if b, err := os.ReadFile(p); err != nil || string(b) != "untouched" {
					t.Errorf("sentinel changed: %q, %v", b, err)
				}
			case !strings.HasPrefix(p, dest+"/"):
				t.Errorf("written outside the extraction directory: %s", p)
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	})
}
