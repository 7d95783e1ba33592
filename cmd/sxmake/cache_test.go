package main

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/cache/cachetest"
	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// buildArgs are the arguments of a build of targets of the demo tree.
func buildArgs(cache, out string, extra ...string) []string {
	args := []string{"-C", filepath.Join("..", "..", "testdata", "stagex"), "--cache-dir", cache, "-o", out, "--progress", "plain"}
	return append(args, extra...)
}

// mustBuild runs sxmake in-process and returns its stdout and stderr.
func mustBuild(t *testing.T, args ...string) (string, string) {
	t.Helper()
	code, stdout, stderr := sxmake(t, args...)
	if code != 0 {
		t.Fatalf("sxmake %s: exit %d\n%s", strings.Join(args, " "), code, stderr)
	}
	return stdout, stderr
}

// runLines are the actions a build ran.
func runLines(stderr string) []string {
	var out []string
	for _, l := range strings.Split(stderr, "\n") {
		if strings.Contains(l, "] run ") {
			out = append(out, l)
		}
	}
	return out
}

// treeListing lists the files of dir with their sizes and times, to tell
// whether anything wrote to it.
func treeListing(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		out = append(out, fmt.Sprintf("%s %d %d", path, fi.Size(), fi.ModTime().UnixNano()))
		return nil
	})
	return out
}

var demoTargets = []string{"user-hello", "user-tool"}

// A CI run on an empty local cache whose remote a build filled with
// mode=max runs nothing and prints the digests of the warm build, for each
// backend; --cache-from writes nothing to the remote.
func TestColdCIFromRemote(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	warmCache := filepath.Join(t.TempDir(), "cache")
	backends := []struct {
		name   string
		remote func(t *testing.T) (ref string, dir string) // dir: where it stores, to check --cache-from writes nothing
	}{
		{"dir", func(t *testing.T) (string, string) {
			d := filepath.Join(t.TempDir(), "remote")
			return "dir:" + d, d
		}},
		{"http", func(t *testing.T) (string, string) { return cachetest.Nginx(t) }},
		{"registry", func(t *testing.T) (string, string) {
			host, store := cachetest.Registry(t)
			return "registry:" + host + "/sxmake/cache", store
		}},
	}
	var want string
	for _, be := range backends {
		t.Run(be.name, func(t *testing.T) {
			ref, dir := be.remote(t)
			// The warm build: fully cached locally, still exports every action.
			stdout, _ := mustBuild(t, buildArgs(warmCache, t.TempDir(), append([]string{"--cache-to", ref + ",mode=max"}, demoTargets...)...)...)
			if want == "" {
				want = stdout
			} else if stdout != want {
				t.Fatalf("warm digests differ:\n%s", cmp.Diff(want, stdout))
			}
			before := treeListing(t, dir)
			cold := filepath.Join(t.TempDir(), "cache")
			got, stderr := mustBuild(t, buildArgs(cold, t.TempDir(), append([]string{"--cache-from", ref}, demoTargets...)...)...)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("cold CI digests (-warm +cold):\n%s", diff)
			}
			if runs := runLines(stderr); len(runs) > 0 {
				t.Errorf("cold CI run ran %d actions:\n%s", len(runs), strings.Join(runs, "\n"))
			}
			if !strings.Contains(stderr, "sxmake: 0 actions run") {
				t.Errorf("summary does not say 0 actions run:\n%s", stderr)
			}
			if diff := cmp.Diff(before, treeListing(t, dir)); diff != "" {
				t.Errorf("--cache-from wrote to the remote:\n%s", diff)
			}
			code, fsck, _ := sxmake(t, "--cache-dir", cold, "cache", "fsck")
			if code != 0 {
				t.Errorf("cache fsck of the cold cache: exit %d\n%s", code, fsck)
			}
		})
	}
}

// mode=min exports only the actions whose layers the targets' images
// hold; a build from it gives the same digests.
func TestCacheToModeMin(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	cache := filepath.Join(t.TempDir(), "cache")
	min, max := filepath.Join(t.TempDir(), "min"), filepath.Join(t.TempDir(), "max")
	want, _ := mustBuild(t, buildArgs(cache, t.TempDir(), "--cache-to", "dir:"+min, "--cache-to", "dir:"+max+",mode=max", "user-hello")...)
	count := func(dir string) int {
		ents, _ := os.ReadDir(filepath.Join(dir, "ac"))
		return len(ents)
	}
	if nmin, nmax := count(min), count(max); nmin == 0 || nmin >= nmax {
		t.Errorf("mode=min exported %d results, mode=max %d: want 0 < min < max", nmin, nmax)
	}
	got, stderr := mustBuild(t, buildArgs(filepath.Join(t.TempDir(), "cache"), t.TempDir(), "--cache-from", "dir:"+min, "user-hello")...)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("digests from a mode=min cache (-want +got):\n%s", diff)
	}
	if !strings.Contains(stderr, "results from remote caches") || strings.Contains(stderr, " 0 results from remote") {
		t.Errorf("nothing came from the mode=min cache:\n%s", stderr)
	}
}

// A remote entry whose layer blob was replaced is rejected and reported;
// the action runs instead and the digests are those of a clean build. (An
// entry naming a layer the local store already holds, verified, is still
// used: its remote blob is never read.)
func TestPoisonedRemoteEntry(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	remote := filepath.Join(t.TempDir(), "remote")
	want, _ := mustBuild(t, buildArgs(filepath.Join(t.TempDir(), "cache"), t.TempDir(), "--cache-to", "dir:"+remote+",mode=max", "user-hello")...)
	// Poison every layer: each cas blob gets the bytes of another one.
	blobs, _ := filepath.Glob(filepath.Join(remote, "cas", "*"))
	sort.Strings(blobs)
	if len(blobs) < 2 {
		t.Fatalf("remote holds %d blobs", len(blobs))
	}
	first, _ := os.ReadFile(blobs[0])
	for i, b := range blobs {
		next := first
		if i+1 < len(blobs) {
			next, _ = os.ReadFile(blobs[i+1])
		}
		if err := os.WriteFile(b, next, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cold := filepath.Join(t.TempDir(), "cache")
	got, stderr := mustBuild(t, buildArgs(cold, t.TempDir(), "--cache-from", "dir:"+remote, "user-hello")...)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("digests after poisoned entries (-want +got):\n%s", diff)
	}
	if !strings.Contains(stderr, "remote cache entry rejected") {
		t.Errorf("no rejection reported:\n%s", stderr)
	}
	if code, out, _ := sxmake(t, "--cache-dir", cold, "cache", "fsck"); code != 0 {
		t.Errorf("cache fsck: exit %d\n%s", code, out)
	}
}

// cache stats, gc and fsck on a built cache.
func TestCacheMaintenance(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	cache, out := filepath.Join(t.TempDir(), "cache"), t.TempDir()
	mustBuild(t, buildArgs(cache, out, "user-hello")...)
	c := func(args ...string) (int, string) {
		code, stdout, stderr := sxmake(t, append([]string{"--cache-dir", cache, "-o", out}, args...)...)
		return code, stdout + stderr
	}
	field := func(text, name string) string {
		for _, l := range strings.Split(text, "\n") {
			if v, ok := strings.CutPrefix(l, name+":"); ok {
				return strings.TrimSpace(v)
			}
		}
		return ""
	}
	code, stats := c("cache", "stats")
	if code != 0 || field(stats, "results") == "0" || field(stats, "unreferenced") != "0 (0 B)" {
		t.Fatalf("cache stats: exit %d\n%s", code, stats)
	}
	// Under any size, gc keeps what out/ holds...
	if code, text := c("cache", "gc", "--max-size", "0"); code != 0 {
		t.Fatalf("cache gc: exit %d\n%s", code, text)
	}
	_, kept := c("cache", "stats")
	if field(kept, "results") == "0" {
		t.Errorf("gc removed the results of out/:\n%s", kept)
	}
	// ...and the next build runs nothing those results cover.
	_, stderr := mustBuild(t, buildArgs(cache, out, "user-hello")...)
	if !strings.Contains(stderr, "[user-hello] cached") {
		t.Errorf("after gc, user-hello's steps are not cached:\n%s", stderr)
	}
	// With --include-out everything goes, and the build runs again.
	if code, text := c("cache", "gc", "--max-size", "0", "--include-out", "--snapshots"); code != 0 {
		t.Fatalf("cache gc --include-out: exit %d\n%s", code, text)
	}
	_, empty := c("cache", "stats")
	if diff := cmp.Diff([]string{"0", "0 (0 B)", "0"}, []string{field(empty, "results"), field(empty, "blobs"), field(empty, "snapshots")}); diff != "" {
		t.Errorf("after gc --include-out (-want +got):\n%s\n%s", diff, empty)
	}
	mustBuild(t, buildArgs(cache, out, "user-hello")...)
	if code, text := c("cache", "fsck"); code != 0 {
		t.Errorf("cache fsck of a sound cache: exit %d\n%s", code, text)
	}
	// A blob changed on disk is found and removed; its action runs again.
	blobs, _ := filepath.Glob(filepath.Join(cache, "content", "blobs", "sha256", "*"))
	if len(blobs) == 0 {
		t.Fatal("no blobs")
	}
	os.Chmod(blobs[0], 0o644)
	if err := os.WriteFile(blobs[0], []byte("bit rot"), 0o444); err != nil {
		t.Fatal(err)
	}
	code, text := c("cache", "fsck")
	if code != 1 || !strings.Contains(text, filepath.Base(blobs[0])) || !strings.Contains(text, "content corrupt") {
		t.Errorf("cache fsck of a corrupt blob: exit %d\n%s", code, text)
	}
}

// syncBuffer is a bytes.Buffer safe for a writer and a reader at once.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// A command finding the cache held by another process says that it
// waits, waits, and succeeds once the cache is released.
func TestWaitsForHeldCache(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "cache")
	held, err := cache.OpenActions(dir)
	if err != nil {
		t.Fatal(err)
	}
	var stdout, stderr syncBuffer
	done := make(chan int)
	go func() { done <- run([]string{"--cache-dir", dir, "cache", "stats"}, &stdout, &stderr) }()
	for !strings.Contains(stderr.String(), "waiting for another sxmake using the cache") {
		select {
		case code := <-done:
			t.Fatalf("cache stats ended (exit %d) while the cache was held:\n%s", code, stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	if err := held.Close(); err != nil {
		t.Fatal(err)
	}
	if code := <-done; code != 0 {
		t.Errorf("cache stats after the release: exit %d\n%s", code, stderr.String())
	}
	if !strings.Contains(stdout.String(), "results:      0") {
		t.Errorf("cache stats printed:\n%s", stdout.String())
	}
}
