package image

import (
	"archive/tar"
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/opencontainers/umoci/oci/layer"
	"golang.org/x/sys/unix"
)

// entry is one crafted tar entry.
type entry struct {
	name, link string
	typ        byte
	body       string
	mode       int64
	major      int64 // of a device
}

func craftTar(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		mode := e.mode
		if mode == 0 {
			mode = 0o644
		}
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: mode, ModTime: time.Unix(1, 0), Devmajor: e.major}
		if e.typ == tar.TypeReg {
			hdr.Size = int64(len(e.body))
		}
		if err := tw.WriteHeader(hdr); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// listTree returns "path type [-> target | content]" for everything under dir.
func listTree(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			out = append(out, rel+" -> "+l)
		case d.IsDir():
			out = append(out, rel+"/")
		default:
			b, _ := os.ReadFile(p)
			out = append(out, rel+" = "+string(b))
		}
		return nil
	})
	sort.Strings(out)
	return out
}

// Crafted layers try to write outside the directory they are unpacked
// into: through "..", absolute names, symlinks (absolute, relative,
// chained, dangling, met as a parent or as the node itself), hard links,
// device nodes and whiteouts. Each is unpacked both as a plain directory
// and as an upper dir over a lower dir holding escaping symlinks; nothing
// outside may change. want is the tree inside afterwards, when the layer
// must unpack.
func TestUnpackStaysInside(t *testing.T) {
	for _, tc := range []struct {
		name    string
		entries []entry
		want    []string // the tree inside root afterwards
	}{
		{
			name:    "dot-dot names are cleaned",
			entries: []entry{{name: "../../escape", typ: tar.TypeReg, body: "x"}, {name: "a/../../b", typ: tar.TypeReg, body: "y"}},
			want:    []string{"b = y", "escape = x"},
		},
		{
			name:    "absolute names are relative to root",
			entries: []entry{{name: "/abs/file", typ: tar.TypeReg, body: "z"}},
			want:    []string{"abs/", "abs/file = z"},
		},
		{
			name: "zip-slip family",
			entries: []entry{
				{name: "./../x1", typ: tar.TypeReg, body: "1"},
				{name: "/../x2", typ: tar.TypeReg, body: "2"},
				{name: "d/./../../../x3", typ: tar.TypeReg, body: "3"},
				{name: "..\\x4", typ: tar.TypeReg, body: "4"},
				{name: "d/../../d/x5", typ: tar.TypeReg, body: "5"},
				{name: "....//x6", typ: tar.TypeReg, body: "6"},
			},
			want: []string{"..../", "..../x6 = 6", "..\\x4 = 4", "d/", "d/x5 = 5", "x1 = 1", "x2 = 2", "x3 = 3"},
		},
		{
			name: "symlink to / then write through it",
			entries: []entry{
				{name: "link", typ: tar.TypeSymlink, link: "/"},
				{name: "link/outside-file", typ: tar.TypeReg, body: "evil"},
			},
		},
		{
			name: "symlink to parent then write through it",
			entries: []entry{
				{name: "up", typ: tar.TypeSymlink, link: "../.."},
				{name: "up/outside-file", typ: tar.TypeReg, body: "evil"},
			},
		},
		{
			name: "symlink dir then file named through it",
			entries: []entry{
				{name: "d", typ: tar.TypeSymlink, link: "../outside-dir"},
				{name: "d/x", typ: tar.TypeReg, body: "evil"},
			},
		},
		{
			name: "chained symlinks",
			entries: []entry{
				{name: "a", typ: tar.TypeSymlink, link: "b/.."},
				{name: "b", typ: tar.TypeSymlink, link: "../../"},
				{name: "a/c/outside-file", typ: tar.TypeReg, body: "evil"},
			},
		},
		{
			name: "absolute symlink as a parent directory",
			entries: []entry{
				{name: "etc", typ: tar.TypeSymlink, link: "/tmp"},
				{name: "etc/sub/outside-file", typ: tar.TypeReg, body: "evil"},
				{name: "etc/sub/", typ: tar.TypeDir, mode: 0o777},
			},
		},
		{
			name: "file replaces a symlink instead of following it",
			entries: []entry{
				{name: "f", typ: tar.TypeSymlink, link: "../sentinel"},
				{name: "f", typ: tar.TypeReg, body: "safe"},
			},
			want: []string{"f = safe"},
		},
		{
			name: "directory replaces a symlink instead of following it",
			entries: []entry{
				{name: "d", typ: tar.TypeSymlink, link: ".."},
				{name: "d/", typ: tar.TypeDir, mode: 0o700},
				{name: "d/x", typ: tar.TypeReg, body: "in"},
			},
			want: []string{"d/", "d/x = in"},
		},
		{
			name: "hardlink to a path outside",
			entries: []entry{
				{name: "h", typ: tar.TypeLink, link: "../sentinel"},
			},
		},
		{
			name: "hardlink to an absolute path",
			entries: []entry{
				{name: "h", typ: tar.TypeLink, link: "/etc/passwd"},
			},
		},
		{
			name: "hardlink through an escaping symlink",
			entries: []entry{
				{name: "s", typ: tar.TypeSymlink, link: ".."},
				{name: "h", typ: tar.TypeLink, link: "s/sentinel"},
			},
		},
		{
			name: "hardlink to an escaping symlink links the symlink",
			entries: []entry{
				{name: "s", typ: tar.TypeSymlink, link: "../sentinel"},
				{name: "h", typ: tar.TypeLink, link: "s"},
				{name: "h", typ: tar.TypeReg, body: "replaced, not written through"},
			},
			want: []string{"h = replaced, not written through", "s -> ../sentinel"},
		},
		{
			name:    "whiteout of its own directory is refused",
			entries: []entry{{name: "a/.wh..", typ: tar.TypeReg}},
		},
		{
			name:    "whiteout of a parent is refused",
			entries: []entry{{name: "a/.wh...", typ: tar.TypeReg}},
		},
		{
			name:    "whiteout of the root's parent is refused",
			entries: []entry{{name: "/.wh...", typ: tar.TypeReg}},
		},
		{
			name:    "whiteout of the root is refused",
			entries: []entry{{name: ".wh..", typ: tar.TypeReg}},
		},
		{
			name: "whiteout names are cleaned",
			entries: []entry{
				{name: "keep", typ: tar.TypeReg, body: "k"},
				{name: ".wh.sentinel", typ: tar.TypeReg},
				{name: "../.wh.sentinel", typ: tar.TypeReg},
				{name: "../../x/../.wh.sentinel", typ: tar.TypeReg},
			},
		},
		{
			name: "whiteout through an escaping symlink",
			entries: []entry{
				{name: "s", typ: tar.TypeSymlink, link: "../"},
				{name: "s/.wh.sentinel", typ: tar.TypeReg},
				{name: "s/.wh..wh..opq", typ: tar.TypeReg},
			},
		},
		{
			name:    "opaque whiteout of the root stays inside",
			entries: []entry{{name: "keep", typ: tar.TypeReg, body: "k"}, {name: "/.wh..wh..opq", typ: tar.TypeReg}},
		},
		{
			name: "device node through an escaping symlink",
			entries: []entry{
				{name: "s", typ: tar.TypeSymlink, link: "/"},
				{name: "s/null", typ: tar.TypeChar, mode: 0o666},
			},
		},
		{
			name:    "device number beyond 32 bits is refused",
			entries: []entry{{name: "dev", typ: tar.TypeBlock, mode: 0o600, major: 1<<32 + 8}},
		},
	} {
		for _, format := range []string{"plain", "upper"} {
			t.Run(tc.name+"/"+format, func(t *testing.T) {
				if format == "upper" || tc.entries[len(tc.entries)-1].typ == tar.TypeChar {
					requiresRoot(t) // whiteouts and device nodes
				}
				parent := t.TempDir()
				root := filepath.Join(parent, "root")
				if err := os.Mkdir(root, 0o755); err != nil {
					t.Fatal(err)
				}
				sentinel := filepath.Join(parent, "sentinel")
				if err := os.WriteFile(sentinel, []byte("untouched"), 0o644); err != nil {
					t.Fatal(err)
				}
				var opts []UnpackOption
				if format == "upper" {
					// A lower dir whose names lead out: a later layer's
					// missing parents are copied from it, never through it.
					lower := filepath.Join(parent, "lower")
					for _, l := range [][2]string{{"s", "/"}, {"d", "../.."}, {"a", "/proc/self"}, {"up", ".."}} {
						os.MkdirAll(lower, 0o755)
						if err := os.Symlink(l[1], filepath.Join(lower, l[0])); err != nil {
							t.Fatal(err)
						}
					}
					opts = append(opts, OverLowers(lower))
				}
				err := Unpack(root, bytes.NewReader(craftTar(t, tc.entries)), opts...)
				t.Logf("Unpack: %v", err)
				if tc.want != nil {
					if err != nil {
						t.Fatalf("Unpack: %v", err)
					}
					if diff := cmp.Diff(tc.want, listTree(t, root)); diff != "" {
						t.Errorf("tree inside (-want +got):\n%s", diff)
					}
				}
				var escaped []string
				for _, p := range listTree(t, parent) {
					if p != "sentinel = untouched" && p != "root/" && !strings.HasPrefix(p, "root/") && !strings.HasPrefix(p, "lower") {
						escaped = append(escaped, p)
					}
				}
				if len(escaped) > 0 {
					t.Errorf("unpack touched the outside: %q", escaped)
				}
				if b, err := os.ReadFile(sentinel); err != nil || string(b) != "untouched" {
					t.Errorf("sentinel: %q, %v", b, err)
				}
				for _, p := range []string{"/outside-file", "/tmp/sub"} {
					if _, err := os.Lstat(p); err == nil {
						t.Errorf("unpack wrote %s", p)
					}
				}
			})
		}
	}
}

func TestUnpackRefusesSparseFiles(t *testing.T) {
	// A PAX GNU sparse 1.0 entry claiming 1 TiB of holes. archive/tar
	// refuses to write GNU.sparse records, so the PAX header is patched in.
	records := ""
	for _, kv := range [][2]string{{"GNU.sparse.major", "1"}, {"GNU.sparse.minor", "0"}, {"GNU.sparse.name", "big"}, {"GNU.sparse.realsize", "1099511627776"}} {
		rec := " " + kv[0] + "=" + kv[1] + "\n"
		records += fmt.Sprint(len(rec)+2) + rec // two-digit lengths only
	}
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "pax", Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(records))})
	tw.Write([]byte(records))
	tw.Flush()
	hdr := buf.Bytes()[:512]
	hdr[156] = tar.TypeXHeader
	for i := 148; i < 156; i++ {
		hdr[i] = ' '
	}
	sum := 0
	for _, c := range hdr {
		sum += int(c)
	}
	copy(hdr[148:], fmt.Sprintf("%06o\x00 ", sum))
	block := make([]byte, 512)
	copy(block, "1\n0\n0\n")
	tw.WriteHeader(&tar.Header{Name: "big", Typeflag: tar.TypeReg, Mode: 0o644, Size: 512})
	tw.Write(block)
	tw.Close()

	root := t.TempDir()
	if err := Unpack(root, &buf); err == nil || !strings.Contains(err.Error(), "sparse") {
		t.Fatalf("Unpack of a sparse file: error %v, want a refusal", err)
	}
	if _, err := os.Stat(filepath.Join(root, "big")); err == nil {
		t.Error("the sparse file was created")
	}
}

func TestUnpackAppliesLayers(t *testing.T) {
	root := t.TempDir()
	layers := [][]entry{
		{
			{name: "usr/", typ: tar.TypeDir, mode: 0o755},
			{name: "usr/bin/", typ: tar.TypeDir, mode: 0o755},
			{name: "usr/bin/a", typ: tar.TypeReg, body: "a", mode: 0o4755},
			{name: "usr/bin/b", typ: tar.TypeLink, link: "usr/bin/a", mode: 0o4755},
			{name: "usr/bin/c", typ: tar.TypeSymlink, link: "a"},
			{name: "etc/", typ: tar.TypeDir, mode: 0o755},
			{name: "etc/old", typ: tar.TypeReg, body: "old"},
			{name: "opt/", typ: tar.TypeDir, mode: 0o755},
			{name: "opt/x", typ: tar.TypeReg, body: "x"},
		},
		{
			{name: "etc/.wh.old", typ: tar.TypeReg},
			{name: "opt/.wh..wh..opq", typ: tar.TypeReg},
			{name: "opt/y", typ: tar.TypeReg, body: "y"},
		},
	}
	for _, l := range layers {
		if err := Unpack(root, bytes.NewReader(craftTar(t, l))); err != nil {
			t.Fatal(err)
		}
	}
	want := []string{"etc/", "opt/", "opt/y = y", "usr/", "usr/bin/", "usr/bin/a = a", "usr/bin/b = a", "usr/bin/c -> a"}
	if diff := cmp.Diff(want, listTree(t, root)); diff != "" {
		t.Errorf("tree (-want +got):\n%s", diff)
	}
	fi, err := os.Stat(filepath.Join(root, "usr/bin/a"))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode()&fs.ModeSetuid == 0 || fi.Mode().Perm() != 0o755 {
		t.Errorf("mode of usr/bin/a = %v, want setuid 0755", fi.Mode())
	}
	if !fi.ModTime().Equal(time.Unix(1, 0)) {
		t.Errorf("mtime of usr/bin/a = %v, want 1970-01-01T00:00:01Z", fi.ModTime())
	}
}

// FuzzUnpack feeds arbitrary tar streams to Unpack and checks that nothing
// appears outside the target directory.
func FuzzUnpack(f *testing.F) {
	seeds := [][]entry{
		{{name: "../x", typ: tar.TypeReg, body: "x"}},
		{{name: "l", typ: tar.TypeSymlink, link: "/"}, {name: "l/y", typ: tar.TypeReg}},
		{{name: "d/", typ: tar.TypeDir}, {name: "d/.wh..wh..opq", typ: tar.TypeReg}, {name: "h", typ: tar.TypeLink, link: "../d"}},
		{{name: "/.wh...", typ: tar.TypeReg}},
		{{name: "s/x", typ: tar.TypeReg}, {name: "s/.wh.x", typ: tar.TypeReg}},
	}
	for _, s := range seeds {
		f.Add(craftTar(f, s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		formats := [][]UnpackOption{nil}
		if os.Geteuid() == 0 { // whiteout devices
			formats = append(formats, []UnpackOption{OverLowers("lower")})
		}
		for _, opts := range formats {
			parent := t.TempDir()
			root := filepath.Join(parent, "root")
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(parent, "sentinel"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
			if opts != nil {
				lower := filepath.Join(parent, "lower")
				os.Mkdir(lower, 0o755)
				os.Symlink("/", filepath.Join(lower, "s"))
				opts = []UnpackOption{OverLowers(lower)}
			}
			Unpack(root, bytes.NewReader(data), opts...) // errors are fine; escapes are not
			ents, err := os.ReadDir(parent)
			if err != nil {
				t.Fatal(err)
			}
			var names []string
			for _, e := range ents {
				if n := e.Name(); n != "root" && n != "lower" {
					names = append(names, n)
				}
			}
			if len(names) != 1 || names[0] != "sentinel" {
				t.Fatalf("next to the target dir after unpacking: %q, want the sentinel alone", names)
			}
		}
	})
}

func TestUnpackSetsCapability(t *testing.T) {
	requiresRoot(t)
	// A capability xattr as containerd's layer writer records it: v2
	// cap_net_raw, effective.
	capab := "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	tw.WriteHeader(&tar.Header{Name: "ping", Typeflag: tar.TypeReg, Mode: 0o755, Size: 1,
		PAXRecords: map[string]string{"SCHILY.xattr.security.capability": capab}})
	tw.Write([]byte("x"))
	tw.Close()
	root := t.TempDir()
	if err := Unpack(root, &buf); err != nil {
		t.Fatal(err)
	}
	got, err := lgetxattr(filepath.Join(root, "ping"), "security.capability")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(capab, string(got)); diff != "" {
		t.Errorf("security.capability (-want +got):\n%s", diff)
	}
}

// Each rule Unpack puts over umoci, and why: the layer unpacked by umoci
// alone (layer.UnpackLayer, the same on-disk format) and by Unpack, and
// what each gives. containerd's archive.Apply, which BuildKit runs, is the
// reference (TestUnpackMatchesContainerd); if umoci comes to agree with
// it, the case fails and its rule can go.
func TestUnpackRulesOverUmoci(t *testing.T) {
	requiresRoot(t)
	start := time.Now()
	mtime := func(t *testing.T, p string) time.Time {
		fi, err := os.Lstat(p)
		if err != nil {
			t.Fatal(err)
		}
		return fi.ModTime()
	}
	type result struct {
		dir string // the root unpacked into, inside a temp dir of its own
		err error
	}
	for _, tc := range []struct {
		name     string
		existing []entry // unpacked into the root first
		layer    []byte
		lower    []entry // when set: the layer goes into an upper dir over these
		check    func(t *testing.T, umoci, ours result)
	}{
		{
			name:  "a time before 1970 becomes 1970-01-01",
			layer: craftTarHeaders(t, &tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: time.Unix(-86400, 0), Format: tar.FormatPAX}),
			check: func(t *testing.T, umoci, ours result) {
				if got := mtime(t, filepath.Join(umoci.dir, "f")); got.Unix() != -86400 {
					t.Errorf("umoci: mtime %v", got)
				}
				if got := mtime(t, filepath.Join(ours.dir, "f")); got.Unix() != 0 {
					t.Errorf("Unpack: mtime %v, want 1970-01-01", got)
				}
			},
		},
		{
			name: "a zero time becomes 1970-01-01, not now",
			// archive/tar writes a zero time as 0: the PAX record of the
			// second before is patched into year 1's.
			layer: bytes.Replace(craftTarHeaders(t, &tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: time.Unix(-62135596801, 0), Format: tar.FormatPAX}),
				[]byte("mtime=-62135596801"), []byte("mtime=-62135596800"), 1),
			check: func(t *testing.T, umoci, ours result) {
				if got := mtime(t, filepath.Join(umoci.dir, "f")); got.Before(start) {
					t.Errorf("umoci: mtime %v, expected the time of unpacking", got)
				}
				if got := mtime(t, filepath.Join(ours.dir, "f")); got.Unix() != 0 {
					t.Errorf("Unpack: mtime %v, want 1970-01-01", got)
				}
			},
		},
		{
			name:  "an unlisted parent copies the lower dir it covers",
			lower: []entry{{name: "opt/", typ: tar.TypeDir, mode: 0o1750}},
			layer: craftTar(t, []entry{{name: "opt/f", typ: tar.TypeReg, body: "f"}}),
			check: func(t *testing.T, umoci, ours result) {
				fi, err := os.Stat(filepath.Join(umoci.dir, "opt"))
				if err != nil || fi.Mode() == fs.ModeDir|fs.ModeSticky|0o750 || !fi.ModTime().After(start.Add(-time.Second)) {
					t.Errorf("umoci: %v %v", fi.Mode(), fi.ModTime())
				}
				fi, err = os.Stat(filepath.Join(ours.dir, "opt"))
				if err != nil || fi.Mode() != fs.ModeDir|fs.ModeSticky|0o750 || fi.ModTime().Unix() != 1 {
					t.Errorf("Unpack: %v %v, want the lower's: sticky 0750, 1970-01-01T00:00:01Z", fi.Mode(), fi.ModTime())
				}
			},
		},
		{
			name:  "an unlisted parent over nothing is 0755, dated 1970-01-01",
			layer: craftTar(t, []entry{{name: "a/b/f", typ: tar.TypeReg, body: "f"}}),
			check: func(t *testing.T, umoci, ours result) {
				if got := mtime(t, filepath.Join(umoci.dir, "a")); got.Before(start.Add(-time.Second)) {
					t.Errorf("umoci: mtime %v, expected the time of unpacking", got)
				}
				for _, d := range []string{"a", "a/b"} {
					fi, err := os.Stat(filepath.Join(ours.dir, d))
					if err != nil || fi.Mode() != fs.ModeDir|0o755 || fi.ModTime().Unix() != 0 {
						t.Errorf("Unpack: %s: %v %v", d, fi.Mode(), fi.ModTime())
					}
				}
			},
		},
		{
			name: "a hard link's header sets its inode",
			layer: craftTarHeaders(t,
				&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Uid: 1, ModTime: time.Unix(5, 0)},
				&tar.Header{Name: "h", Typeflag: tar.TypeLink, Linkname: "f", Mode: 0o4711, Uid: 2, ModTime: time.Unix(6, 0)}),
			check: func(t *testing.T, umoci, ours result) {
				fi, _ := os.Stat(filepath.Join(umoci.dir, "f"))
				if fi.Mode() != 0o644 || fi.ModTime().Unix() != 5 {
					t.Errorf("umoci: %v %v", fi.Mode(), fi.ModTime())
				}
				fi, _ = os.Stat(filepath.Join(ours.dir, "f"))
				if fi.Mode() != fs.ModeSetuid|0o711 || fi.ModTime().Unix() != 6 || fi.Sys().(*syscall.Stat_t).Uid != 2 {
					t.Errorf("Unpack: %v %v, want the link's setuid 0711, 1970-01-01T00:00:06Z, uid 2", fi.Mode(), fi.ModTime())
				}
			},
		},
		{
			name:  "a whiteout of the root's parent is refused",
			layer: craftTar(t, []entry{{name: "/.wh...", typ: tar.TypeReg}}),
			check: func(t *testing.T, umoci, ours result) {
				if _, err := os.Stat(filepath.Dir(umoci.dir)); err == nil {
					t.Errorf("umoci: the directory holding the root is still there")
				}
				if ours.err == nil || !strings.Contains(ours.err.Error(), "invalid whiteout") {
					t.Errorf("Unpack: %v, want a refusal", ours.err)
				}
				if _, err := os.Stat(filepath.Dir(ours.dir)); err != nil {
					t.Errorf("Unpack: %v", err)
				}
			},
		},
		{
			name:     "a whiteout of its own directory is refused",
			existing: []entry{{name: "a/", typ: tar.TypeDir, mode: 0o755}},
			layer:    craftTar(t, []entry{{name: "a/.wh..", typ: tar.TypeReg}}),
			check: func(t *testing.T, umoci, ours result) {
				if _, err := os.Stat(filepath.Join(umoci.dir, "a")); err == nil {
					t.Errorf("umoci: a is still there (expected it removed)")
				}
				if ours.err == nil {
					t.Errorf("Unpack: no error, want a refusal")
				}
			},
		},
		{
			name:  "the root's own entry is skipped",
			layer: craftTar(t, []entry{{name: "./", typ: tar.TypeDir, mode: 0o700}}),
			check: func(t *testing.T, umoci, ours result) {
				fi, _ := os.Stat(umoci.dir)
				if fi.Mode().Perm() != 0o700 {
					t.Errorf("umoci: root %v", fi.Mode())
				}
				fi, _ = os.Stat(ours.dir)
				if ours.err != nil || fi.Mode().Perm() != 0o755 {
					t.Errorf("Unpack: %v, root %v, want 0755 as made", ours.err, fi.Mode())
				}
			},
		},
		{
			name:  "a PAX global header is skipped",
			layer: craftTarHeaders(t, &tar.Header{Name: "pax_global_header", Typeflag: tar.TypeXGlobalHeader, PAXRecords: map[string]string{"comment": "git"}}, &tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644}),
			check: func(t *testing.T, umoci, ours result) {
				if umoci.err == nil {
					t.Errorf("umoci: no error")
				}
				if _, err := os.Stat(filepath.Join(ours.dir, "f")); ours.err != nil || err != nil {
					t.Errorf("Unpack: %v, %v", ours.err, err)
				}
			},
		},
		{
			name:  "a device number beyond 32 bits is refused",
			layer: craftTar(t, []entry{{name: "sda", typ: tar.TypeBlock, mode: 0o600, major: 1<<32 + 8}}),
			check: func(t *testing.T, umoci, ours result) {
				fi, err := os.Lstat(filepath.Join(umoci.dir, "sda"))
				if err != nil || unix.Major(fi.Sys().(*syscall.Stat_t).Rdev) != 8 {
					t.Errorf("umoci: %v (expected the major number truncated to 8)", err)
				}
				if ours.err == nil {
					t.Errorf("Unpack: no error")
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var format layer.OnDiskFormat = layer.DirRootfs{}
			var opts []UnpackOption
			lower := filepath.Join(t.TempDir(), "lower")
			if tc.lower != nil {
				if err := os.Mkdir(lower, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := Unpack(lower, bytes.NewReader(craftTar(t, tc.lower))); err != nil {
					t.Fatal(err)
				}
				format = layer.OverlayfsRootfs{}
				opts = append(opts, OverLowers(lower))
			}
			var umoci, ours result
			for _, r := range []*result{&umoci, &ours} {
				r.dir = filepath.Join(t.TempDir(), "root")
				if err := os.Mkdir(r.dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(r.dir, 0o755); err != nil {
					t.Fatal(err)
				}
				if err := Unpack(r.dir, bytes.NewReader(craftTar(t, tc.existing))); err != nil {
					t.Fatal(err)
				}
			}
			umoci.err = layer.UnpackLayer(umoci.dir, bytes.NewReader(tc.layer), &layer.UnpackOptions{OnDiskFormat: format})
			ours.err = Unpack(ours.dir, bytes.NewReader(tc.layer), opts...)
			t.Logf("umoci: %v; Unpack: %v", umoci.err, ours.err)
			tc.check(t, umoci, ours)
		})
	}
}

// craftTarHeaders writes the headers (regular files empty) as a tar.
func craftTarHeaders(t *testing.T, hdrs ...*tar.Header) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, h := range hdrs {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
