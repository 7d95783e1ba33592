package cache

import (
	"os"
	"path/filepath"
	"testing"
)

// TestOpenMakesPrivate: whatever made the cache directories and whatever
// their modes, opening the cache leaves them 0700; a directory of another
// user is refused.
func TestOpenMakesPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	for _, d := range []string{dir, filepath.Join(dir, "snapshots"), filepath.Join(dir, "content")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o2777); err != nil {
			t.Fatal(err)
		}
	}
	a, err := OpenActions(dir)
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if _, err := OpenContentStore(filepath.Join(dir, "content")); err != nil {
		t.Fatal(err)
	}
	if _, err := OpenSnapshots(filepath.Join(dir, "snapshots")); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{dir, "snapshots", "snapshots/tmp", "content", "content/blobs/sha256", "content/ingest"} {
		if d != dir {
			d = filepath.Join(dir, d)
		}
		fi, err := os.Stat(d)
		if err != nil {
			t.Fatal(err)
		}
		if got := fi.Mode() & (os.ModePerm | os.ModeSetgid | os.ModeSticky); got != 0o700 {
			t.Errorf("%s: mode %v, want 0700", d, got)
		}
	}
	if os.Geteuid() != 0 {
		return
	}
	other := filepath.Join(t.TempDir(), "other")
	if err := os.Mkdir(other, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(other, 65534, 65534); err != nil {
		t.Fatal(err)
	}
	if err := MkdirPrivate(other); err == nil {
		t.Error("a directory of another user was taken as the cache")
	}
}
