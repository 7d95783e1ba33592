package cache

import (
	"os"
	"path/filepath"
	"testing"
)

// Open holds the cache: a second Open waits, saying so once, until the
// first is closed; it then finds what the first stored, and what a killed
// process left among the snapshots is gone.
func TestOpenHoldsTheCache(t *testing.T) {
	dir := t.TempDir()
	first, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := first.Actions.Put(testKey(1), Result{}); err != nil {
		t.Fatal(err)
	}
	left := filepath.Join(first.SnapshotDir(), "tmp", "s-killed")
	if err := os.MkdirAll(left, 0o755); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{})
	opened := make(chan *Cache)
	go func() {
		c, err := Open(dir, WithWait(nil, func() { close(waiting) }))
		if err != nil {
			t.Error(err)
		}
		opened <- c
	}()
	<-waiting
	select {
	case <-opened:
		t.Fatal("a second Open did not wait for the first to close")
	default:
	}
	if err := first.Close(); err != nil {
		t.Fatal(err)
	}
	second := <-opened
	if second == nil {
		return
	}
	defer second.Close()
	if _, err := second.Actions.Get(testKey(1)); err != nil {
		t.Errorf("the second Open does not find the first's result: %v", err)
	}
	if _, err := os.Stat(left); !os.IsNotExist(err) {
		t.Errorf("%s left by a killed process: stat %v, want it removed", left, err)
	}
	for _, p := range []string{filepath.Join(dir, "content", "blobs", "sha256"), second.Snapshots.Empty()} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("Open did not create %s: %v", p, err)
		}
	}
}
