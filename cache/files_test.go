package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// openFiles opens the cache in dir and returns its file hashes, counting
// the files they read; the cache is closed (and the hashes written) by
// the returned function.
func openFiles(t *testing.T, dir string, now time.Time, reads *int) (*FileHashes, func()) {
	t.Helper()
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	h := c.Files
	h.now = func() time.Time { return now }
	h.hash = func(p string) (Digest, error) { *reads++; return sha256File(p) }
	return h, func() {
		if err := c.Close(); err != nil {
			t.Fatal(err)
		}
	}
}

// A file is read once: later processes trust its entry while its identity
// holds, and read it again once anything about it changes, even with its
// size and mtime put back. A file that changed just before it was hashed
// is read again by the next process (a racily clean entry).
func TestFileHashes(t *testing.T) {
	dir, src := t.TempDir(), filepath.Join(t.TempDir(), "src.tar")
	write := func(content string) {
		if err := os.WriteFile(src, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("version 1")
	later := time.Now().Add(time.Hour) // the file is old when hashed
	check := func(name string, now time.Time, wantReads int, content string) {
		t.Helper()
		reads := 0
		h, closeCache := openFiles(t, dir, now, &reads)
		for range 2 { // the second from this process's entry
			got, err := h.SHA256(src)
			if err != nil {
				t.Fatal(err)
			}
			if sum := sha256.Sum256([]byte(content)); got != hex.EncodeToString(sum[:]) {
				t.Errorf("%s: sha256 %s, want that of %q", name, got, content)
			}
		}
		closeCache()
		if reads != wantReads {
			t.Errorf("%s: read the file %d times, want %d", name, reads, wantReads)
		}
	}
	check("first", later, 1, "version 1")
	check("unchanged", later, 0, "version 1")

	fi, _ := os.Stat(src)
	write("version 2") // same size
	os.Chtimes(src, fi.ModTime(), fi.ModTime())
	check("edited, size and mtime kept", later, 1, "version 2")
	check("unchanged after the edit", later, 0, "version 2")

	write("version 3")
	check("hashed as it changed", time.Now(), 1, "version 3")
	check("racily clean entry", later, 1, "version 3")
	check("then trusted", later, 0, "version 3")

	os.Remove(src)
	h, closeCache := openFiles(t, dir, later, new(int))
	defer closeCache()
	if _, err := h.SHA256(src); !os.IsNotExist(err) {
		t.Errorf("hashing a removed file: %v, want a not-exist error", err)
	}
}

// cache gc drops the entries of files that are gone or changed.
func TestFileHashesPrune(t *testing.T) {
	dir, files := t.TempDir(), t.TempDir()
	var paths []string
	for _, name := range []string{"kept", "removed", "changed"} {
		p := filepath.Join(files, name)
		os.WriteFile(p, []byte(name), 0o644)
		paths = append(paths, p)
	}
	h, closeCache := openFiles(t, dir, time.Now().Add(time.Hour), new(int))
	for _, p := range paths {
		if _, err := h.SHA256(p); err != nil {
			t.Fatal(err)
		}
	}
	closeCache()
	os.Remove(paths[1])
	os.WriteFile(paths[2], []byte("changed again"), 0o644)
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := Collect(c.Actions, c.Store, nil, c.Logs, c.SnapshotDir(), GCOptions{}); err != nil {
		t.Fatal(err)
	}
	var left []string
	c.Actions.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFiles).ForEach(func(k, _ []byte) error { left = append(left, string(k)); return nil })
	})
	if len(left) != 1 || left[0] != paths[0] {
		t.Errorf("entries after gc: %q, want only %s", left, paths[0])
	}
}
