package packages

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestReadDigests(t *testing.T) {
	root := t.TempDir()
	a, b := "4d5133aa4a39a500ee8572b8dddaa5e205fff525df263dac55977abfcbe5d672", "cee5701e9d52177885a7b4149f83a6f825f7840cb8d7d27cda0d8fc1d107367c"
	tree := &Tree{Root: root}
	if ds, err := tree.ReadDigests(); err != nil || len(ds) != 0 {
		t.Fatalf("ReadDigests without digests/ = %v, %v; want none", ds, err)
	}
	writeFile(t, filepath.Join(root, "digests", "core.txt"), []byte(a+" core-profile\n"+b+" core-multi\n\n"+a+" core-multi\n"))
	writeFile(t, filepath.Join(root, "digests", "bootstrap.txt"), []byte(b+" bootstrap-stage0\r\n"))
	writeFile(t, filepath.Join(root, "digests", "README"), []byte("not a digests file"))
	ds, err := tree.ReadDigests()
	if err != nil {
		t.Fatal(err)
	}
	want := Digests{"core-profile": {a}, "core-multi": {b, a}, "bootstrap-stage0": {b}}
	if diff := cmp.Diff(want, ds); diff != "" {
		t.Errorf("ReadDigests (-want +got):\n%s", diff)
	}
	writeFile(t, filepath.Join(root, "digests", "user.txt"), []byte(a+" user-ok\n"+a[:60]+" user-short\n"))
	_, err = tree.ReadDigests()
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("error %v, want an *Error", err)
	}
	if diff := cmp.Diff("digests/user.txt:2:1: want \"<sha256 hex> <stage>-<name>\"\n"+a[:60]+" user-short\n^", e.Detail()); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
}

// A digests/ committed as a link out of the tree is read inside it: the
// files it points at are not parsed (nor quoted in an error).
func TestReadDigestsStaysInTree(t *testing.T) {
	root, outside := t.TempDir(), t.TempDir()
	writeFile(t, filepath.Join(outside, "secret.txt"), []byte("root:secret-hash:20228:0:99999:7:::\n"))
	if err := os.Symlink(outside, filepath.Join(root, "digests")); err != nil {
		t.Fatal(err)
	}
	ds, err := (&Tree{Root: root}).ReadDigests()
	if err != nil || len(ds) != 0 {
		t.Errorf("ReadDigests through digests -> %s = %v, %v; want none", outside, ds, err)
	}
}
