package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// digestsOf builds targets of the demo tree in-process and returns the
// printed digest lines.
func digestsOf(t *testing.T, cache, out string, targets ...string) string {
	t.Helper()
	args := append([]string{"-C", filepath.Join(repoTestdata(t), "stagex"), "--cache-dir", cache, "-o", out, "--progress", "plain"}, targets...)
	code, stdout, stderr := sxmake(t, args...)
	if code != 0 {
		t.Fatalf("build: exit %d\n%s", code, stderr)
	}
	return stdout
}

// killAfter starts sxmake as a process of its own and SIGKILLs it (and
// its whole process group) once it has finished n actions.
func killAfter(t *testing.T, n int, args ...string) {
	t.Helper()
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "SXMAKE_TEST_MAIN=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := 0
	sc := bufio.NewScanner(stderr)
	for sc.Scan() {
		if strings.Contains(sc.Text(), "] done ") {
			if done++; done == n {
				syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
				break
			}
		}
	}
	cmd.Wait()
	if done < n {
		t.Logf("the build ended after %d actions, before the kill", done)
	}
}

// Killing sxmake with SIGKILL at several points of a build leaves a cache
// from which the next build finishes with the digests of an uninterrupted
// one, and nothing of the killed builds mounted.
func TestKilledBuildResumes(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	clean := digestsOf(t, filepath.Join(t.TempDir(), "cache"), t.TempDir(), "user-hello", "user-tool")
	cache, out := filepath.Join(t.TempDir(), "cache"), t.TempDir()
	args := []string{"-C", filepath.Join(repoTestdata(t), "stagex"), "--cache-dir", cache, "-o", out, "--progress", "plain", "user-hello", "user-tool"}
	for _, n := range []int{2, 5, 9, 14} {
		killAfter(t, n, args...)
	}
	if got := digestsOf(t, cache, out, "user-hello", "user-tool"); got != clean {
		t.Errorf("digests after killed builds:\n%s", cmp.Diff(clean, got))
	}
	mounts, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(mounts), cache) {
		t.Errorf("mounts of the killed builds are left:\n%s", mounts)
	}
}
