package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/rogpeppe/go-internal/txtar"

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

// Killing sxmake and its reaper together with SIGKILL mid-step still ends
// the step's processes: each step's init has the parent-death signal
// (issue 19, item 4); their mounts and cgroups are then removed by the
// next sxmake on the cache. The tree is testdata/hostile/sigkill.txtar's.
func TestKilledStepDiesWithoutReaper(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	ar, err := txtar.ParseFile(filepath.Join(repoTestdata(t), "hostile", "sigkill.txtar"))
	if err != nil {
		t.Fatal(err)
	}
	work := t.TempDir()
	for _, f := range ar.Files {
		p := filepath.Join(work, f.Name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cache := filepath.Join(work, "cache")
	args := []string{"--file-mirrors", "/bin", "-C", filepath.Join(work, "tree"), "--cache-dir", cache, "--progress", "plain", "user-sleeper"}
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "SXMAKE_TEST_MAIN=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	step := regexp.MustCompile(`^sleep 771900[123]$`)
	var cgroup string
	poll(t, "the step to start", func() bool {
		if pids := processes(step); len(pids) == 3 {
			cgroup = pidsCgroup(pids[0])
			return true
		}
		return false
	})
	reapers := childrenMatching(cmd.Process.Pid, regexp.MustCompile(`sxmake-sandbox-reaper`))
	if len(reapers) != 1 {
		t.Fatalf("sxmake has %d reapers, want 1", len(reapers))
	}
	syscall.Kill(reapers[0], syscall.SIGKILL)
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
	poll(t, "the step's processes to die", func() bool { return len(processes(step)) == 0 })

	// The next build on the cache (its sandbox's sweep) removes the rest.
	if code, _, stderr := sxmake(t, append(args[:len(args)-1:len(args)-1], "bootstrap-busybox")...); code != 0 {
		t.Fatalf("the next build failed: %s", stderr)
	}
	if left := mountsUnder(cache); len(left) > 0 {
		t.Errorf("mounts left: %v", left)
	}
	if hier, _ := filepath.Glob("/sys/fs/cgroup/*" + cgroup); cgroup == "" || len(hier) > 0 {
		t.Errorf("cgroup %q left: %v", cgroup, hier)
	}
}

// poll waits up to a minute (a bound, not a speed asserted) for done.
func poll(t *testing.T, what string, done func() bool) {
	t.Helper()
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if done() {
			return
		}
	}
	t.Fatalf("waited a minute for %s", what)
}

// childrenMatching returns the children of pid whose command line matches re.
func childrenMatching(pid int, re *regexp.Regexp) []int {
	var out []int
	for _, p := range processes(re) {
		status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p))
		if err == nil && regexp.MustCompile(`(?m)^PPid:\s+`+strconv.Itoa(pid)+`$`).Match(status) {
			out = append(out, p)
		}
	}
	return out
}
