package main

import (
	"bytes"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// Several sxmake processes building on one cache directory, and exporting
// to one remote directory, at the same time all succeed with the digests
// of a build alone, and leave a sound cache.
func TestConcurrentBuildsOneCache(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	want, _ := mustBuild(t, buildArgs(filepath.Join(t.TempDir(), "cache"), t.TempDir(), demoTargets...)...)
	cache, remote := filepath.Join(t.TempDir(), "cache"), filepath.Join(t.TempDir(), "remote")
	const n = 3
	var wg sync.WaitGroup
	outs := make([]string, n)
	errs := make([]string, n)
	codes := make([]int, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			args := buildArgs(cache, t.TempDir(), append([]string{"--cache-to", "dir:" + remote + ",mode=max"}, demoTargets...)...)
			cmd := exec.Command(os.Args[0], args...)
			cmd.Env = append(os.Environ(), "SXMAKE_TEST_MAIN=1")
			var stdout, stderr bytes.Buffer
			cmd.Stdout, cmd.Stderr = &stdout, &stderr
			err := cmd.Run()
			outs[i], errs[i], codes[i] = stdout.String(), stderr.String(), cmd.ProcessState.ExitCode()
			if err != nil && codes[i] == 0 {
				codes[i] = -1
			}
		}()
	}
	wg.Wait()
	for i := range n {
		if codes[i] != 0 {
			t.Errorf("build %d: exit %d\n%s", i, codes[i], errs[i])
			continue
		}
		if diff := cmp.Diff(want, outs[i]); diff != "" {
			t.Errorf("build %d digests (-alone +concurrent):\n%s", i, diff)
		}
	}
	if code, out, _ := sxmake(t, "--cache-dir", cache, "cache", "fsck"); code != 0 {
		t.Errorf("cache fsck: exit %d\n%s", code, out)
	}
	if code, out, _ := sxmake(t, "cache", "fsck", "--remote", "dir:"+remote); code != 0 {
		t.Errorf("cache fsck --remote: exit %d\n%s", code, out)
	}
	// The remote they all wrote serves a cold build, every entry sound.
	got, stderr := mustBuild(t, buildArgs(filepath.Join(t.TempDir(), "cache"), t.TempDir(), append([]string{"--cache-from", "dir:" + remote}, demoTargets...)...)...)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("digests from the shared remote (-want +got):\n%s", diff)
	}
	if runs := runLines(stderr); len(runs) > 0 || strings.Contains(stderr, "warning") {
		t.Errorf("build from the shared remote ran or warned:\n%s", stderr)
	}
}

// 20 builds SIGKILLed at random points (after a random number of finished
// actions, export to a remote included), each followed by a build: every
// build ends with the digests of an uninterrupted one, from a cache that
// cache fsck finds sound and a remote whose every entry verifies.
func TestKilledBuildsKeepCacheSound(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	want, stderr := mustBuild(t, buildArgs(filepath.Join(t.TempDir(), "cache"), t.TempDir(), demoTargets...)...)
	total := strings.Count(stderr, "] done ")
	cache, out, remote := filepath.Join(t.TempDir(), "cache"), t.TempDir(), filepath.Join(t.TempDir(), "remote")
	rng := rand.New(rand.NewPCG(7, 20))
	for i := range 20 {
		n := 1 + rng.IntN(total)
		// --no-cache: every action runs and rewrites its result, so each
		// kill lands amid writes; with n = total, amid the export.
		killAfter(t, n, buildArgs(cache, out, append([]string{"--no-cache", "--cache-to", "dir:" + remote + ",mode=max"}, demoTargets...)...)...)
		got, stderr := mustBuild(t, buildArgs(cache, out, append([]string{"--cache-from", "dir:" + remote}, demoTargets...)...)...)
		if diff := cmp.Diff(want, got); diff != "" {
			t.Fatalf("kill %d (after %d actions): digests (-want +got):\n%s", i, n, diff)
		}
		if strings.Contains(stderr, "warning") {
			t.Fatalf("kill %d (after %d actions): the remote served a bad entry:\n%s", i, n, stderr)
		}
		if code, text, _ := sxmake(t, "--cache-dir", cache, "cache", "fsck"); code != 0 {
			t.Fatalf("kill %d (after %d actions): cache fsck: exit %d\n%s", i, n, code, text)
		}
		if code, text, _ := sxmake(t, "cache", "fsck", "--remote", "dir:"+remote); code != 0 {
			t.Fatalf("kill %d (after %d actions): cache fsck --remote: exit %d\n%s", i, n, code, text)
		}
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), cache) {
		t.Errorf("mounts of the killed builds are left:\n%s", mounts)
	}
}
