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
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// entry is one crafted tar entry.
type entry struct {
	name, link string
	typ        byte
	body       string
	mode       int64
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
		hdr := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: mode, ModTime: time.Unix(1, 0)}
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
			name: "file replaces a symlink instead of following it",
			entries: []entry{
				{name: "f", typ: tar.TypeSymlink, link: "../sentinel"},
				{name: "f", typ: tar.TypeReg, body: "safe"},
			},
			want: []string{"f = safe"},
		},
		{
			name: "hardlink to a path outside",
			entries: []entry{
				{name: "h", typ: tar.TypeLink, link: "../sentinel"},
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
			name:    "whiteout of a parent is refused",
			entries: []entry{{name: "a/.wh...", typ: tar.TypeReg}},
		},
		{
			name: "whiteout names are cleaned",
			entries: []entry{
				{name: "keep", typ: tar.TypeReg, body: "k"},
				{name: ".wh.sentinel", typ: tar.TypeReg},
				{name: "../.wh.sentinel", typ: tar.TypeReg},
				{name: "../../x/../.wh.sentinel", typ: tar.TypeReg},
			},
			want: []string{"keep = k"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			parent := t.TempDir()
			root := filepath.Join(parent, "root")
			if err := os.Mkdir(root, 0o755); err != nil {
				t.Fatal(err)
			}
			sentinel := filepath.Join(parent, "sentinel")
			if err := os.WriteFile(sentinel, []byte("untouched"), 0o644); err != nil {
				t.Fatal(err)
			}
			err := Unpack(root, bytes.NewReader(craftTar(t, tc.entries)))
			t.Logf("Unpack: %v", err)
			if tc.want != nil {
				if err != nil {
					t.Fatalf("Unpack: %v", err)
				}
				if diff := cmp.Diff(tc.want, listTree(t, root)); diff != "" {
					t.Errorf("tree inside (-want +got):\n%s", diff)
				}
			}
			outside := listTree(t, parent)
			var escaped []string
			for _, p := range outside {
				if p != "sentinel = untouched" && p != "root/" && !bytes.HasPrefix([]byte(p), []byte("root/")) {
					escaped = append(escaped, p)
				}
			}
			if len(escaped) > 0 || !contains(outside, "sentinel = untouched") {
				t.Errorf("unpack touched the outside: %q", outside)
			}
			if _, err := os.Stat("/outside-file"); err == nil {
				t.Errorf("unpack wrote /outside-file")
			}
		})
	}
}

func contains(s []string, x string) bool {
	for _, v := range s {
		if v == x {
			return true
		}
	}
	return false
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
	}
	for _, s := range seeds {
		f.Add(craftTar(f, s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		parent := t.TempDir()
		root := filepath.Join(parent, "root")
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		Unpack(root, bytes.NewReader(data)) // errors are fine; escapes are not
		ents, err := os.ReadDir(parent)
		if err != nil {
			t.Fatal(err)
		}
		if len(ents) != 1 || ents[0].Name() != "root" {
			var names []string
			for _, e := range ents {
				names = append(names, e.Name())
			}
			t.Fatalf("unpack created %q next to the target dir", names)
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
