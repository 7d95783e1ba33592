package sandbox_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagex/sxmake/sandbox"
	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// deepLowers returns n lower directories, top first: busybox's root file
// system at the bottom and n-1 layers above it, layer i adding
// /layers/<i>. Their paths are long, as snapshot paths under a cache dir
// are, so that a page of mount options holds far fewer than n of them.
func deepLowers(t *testing.T, n int) []string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), strings.Repeat("a-long-cache-directory-name-", 3))
	lowers := []string{sandboxtest.BusyboxRootfs(t)}
	for i := 1; i < n; i++ {
		l := filepath.Join(dir, fmt.Sprintf("%016d", i))
		if err := os.MkdirAll(filepath.Join(l, "layers"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(l, "layers", fmt.Sprint(i)), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		lowers = append([]string{l}, lowers...)
	}
	return lowers
}

// A step runs over as many layers as overlayfs stacks (MaxLowers), every
// layer visible; one more is an error saying so.
func TestRunOverMaxLowers(t *testing.T) {
	s := newSandbox(t)
	spec := step(t, "", "/bin/sh", "-c", "ls /layers | wc -l; test -e /layers/1 && test -e /layers/499 && echo ok")
	spec.Lower = deepLowers(t, sandbox.MaxLowers)
	if _, out := mustRun(t, s, spec); strings.Fields(out)[0] != "499" || !strings.Contains(out, "ok") {
		t.Errorf("over %d lowers the step saw %q, want 499 layers and ok", len(spec.Lower), out)
	}
	spec.Lower = append([]string{t.TempDir()}, spec.Lower...)
	if _, err := s.Run(t.Context(), spec); err == nil || !strings.Contains(err.Error(), "at most 500") {
		t.Errorf("Run over %d lowers: error %v, want overlayfs's limit", len(spec.Lower), err)
	}
}

// MountOverlay mounts a read-only overlay of MaxLowers layers, as the
// engine does to diff a step and to read a stage's files.
func TestMountOverlayReadOnly(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	lowers := deepLowers(t, sandbox.MaxLowers)
	mnt := t.TempDir()
	if err := sandbox.MountOverlay(mnt, lowers, "", ""); err != nil {
		t.Fatal(err)
	}
	defer sandbox.Unmount(mnt)
	ents, err := os.ReadDir(filepath.Join(mnt, "layers"))
	if err != nil || len(ents) != sandbox.MaxLowers-1 {
		t.Fatalf("read %d layers' files (%v), want %d", len(ents), err, sandbox.MaxLowers-1)
	}
	if err := os.WriteFile(filepath.Join(mnt, "x"), nil, 0o644); err == nil {
		t.Error("wrote into a read-only overlay")
	}
}
