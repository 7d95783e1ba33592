package fileop_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stagex/sxmake/engine/fileop"
)

func TestChmod(t *testing.T) {
	const dir = fs.ModeDir
	for _, tc := range []struct {
		chmod string
		in    fs.FileMode
		want  fs.FileMode
	}{
		// Octal values replace permission and special bits, also on
		// directories.
		{"644", 0o755, 0o644},
		{"0755", 0o600, 0o755},
		{"775", dir | 0o700, dir | 0o775},
		{"4755", 0o644, 0o755 | fs.ModeSetuid},
		{"1777", dir | 0o755 | fs.ModeSetgid, dir | 0o777 | fs.ModeSticky},
		{"0", 0o777, 0},
		// Symbolic values apply to the entry's mode (umask 0).
		{"u+x", 0o644, 0o744},
		{"go-w", 0o666, 0o644},
		{"=rw,+X", 0o755, 0o777},
		{"=rw,+X", 0o644, 0o666},
		{"=rw,+X", dir | 0o700, dir | 0o777},
		{"+X", 0o644, 0o644},
		{"u=rwx,go=rx", 0o600, 0o755},
		{"u=rwx,go=u-w", 0, 0o755},
		{"go=", 0o777, 0o700},
		{"a+t", dir | 0o755, dir | 0o755 | fs.ModeSticky},
		{"+s", 0o755, 0o755 | fs.ModeSetuid | fs.ModeSetgid},
		{"o+s", 0o755, 0o755},
		{"u+s,g-x", 0o755 | fs.ModeSetgid, 0o745 | fs.ModeSetuid | fs.ModeSetgid},
		{"u=g", 0o751, 0o551},
		{"=", 0o755 | fs.ModeSetuid, 0},
	} {
		t.Run(tc.chmod+"/"+tc.in.String(), func(t *testing.T) {
			c, err := fileop.ParseChmod(tc.chmod)
			if err != nil {
				t.Fatalf("ParseChmod(%q): %v", tc.chmod, err)
			}
			if got := c.Apply(tc.in); got != tc.want {
				t.Errorf("Apply(%v) = %v, want %v", tc.in, got, tc.want)
			}
		})
	}
}

func TestParseChmodErrors(t *testing.T) {
	const octal = "it should be octal string and between 0 and 07777"
	for _, tc := range []struct{ chmod, want string }{
		{"888", "invalid chmod parameter: '888'. " + octal},
		{"10000", "invalid chmod parameter: '10000'. " + octal},
		{"7x", "invalid chmod parameter: '7x'. " + octal},
		{"u+z", "invalid syntax"},
		{"u", "invalid syntax"},
		{"u+x,", "invalid syntax"},
		{"+1", "invalid syntax"},
		{"", "invalid syntax"},
	} {
		t.Run(tc.chmod, func(t *testing.T) {
			_, err := fileop.ParseChmod(tc.chmod)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("ParseChmod(%q) error = %v, want %q", tc.chmod, err, tc.want)
			}
		})
	}
}

// FuzzParseChmod checks ParseChmod never panics and that an accepted value
// always keeps the file type bits.
func FuzzParseChmod(f *testing.F) {
	for _, s := range []string{"644", "0755", "u+x", "go=u-w", "=rw,+X", "a+t", "u+s,g-x"} {
		f.Add(s, uint32(0o644))
	}
	f.Fuzz(func(t *testing.T, s string, m uint32) {
		c, err := fileop.ParseChmod(s)
		if err != nil {
			return
		}
		in := fs.FileMode(m) & (fs.ModeDir | fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)
		if got := c.Apply(in); got.Type() != in.Type() {
			t.Errorf("ParseChmod(%q).Apply(%v) = %v: type changed", s, in, got)
		}
	})
}

func TestResolveChown(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "real/etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	// /etc is a symlink, resolved inside the root.
	if err := os.Symlink("/real/etc", filepath.Join(root, "etc")); err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"real/etc/passwd": "root:x:0:0:root:/root:/bin/sh\nbuilder:x:1500:1600::/home/b:/bin/sh\n",
		"real/etc/group":  "root:x:0:\nstaff:x:50:builder\n",
	}
	for name, data := range files {
		if err := os.WriteFile(filepath.Join(root, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	noFiles := t.TempDir()
	for _, tc := range []struct {
		root, spec string
		want       fileop.Owner
	}{
		{root, "1000", fileop.Owner{UID: 1000, GID: 1000}},
		{root, "1000:1001", fileop.Owner{UID: 1000, GID: 1001}},
		{root, "root", fileop.Owner{}},
		{root, "root:staff", fileop.Owner{GID: 50}},
		{root, "builder", fileop.Owner{UID: 1500, GID: 1600}},
		{root, "builder:staff", fileop.Owner{UID: 1500, GID: 50}},
		{root, "builder:7", fileop.Owner{UID: 1500, GID: 7}},
		{root, "9:staff", fileop.Owner{UID: 9, GID: 50}},
		{root, "9:nogroup", fileop.Owner{UID: 9, GID: 9}},
		{root, "nobody", fileop.Owner{}},
		{root, "builder:", fileop.Owner{UID: 1500, GID: 0}},
		{root, "-1", fileop.Owner{UID: 4294967295, GID: 4294967295}},
		{noFiles, "builder:staff", fileop.Owner{}},
	} {
		t.Run(tc.spec, func(t *testing.T) {
			got, err := fileop.ResolveChown(tc.root, tc.spec)
			if err != nil {
				t.Fatalf("ResolveChown(%q): %v", tc.spec, err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("ResolveChown(%q) (-want +got):\n%s", tc.spec, diff)
			}
		})
	}
}
