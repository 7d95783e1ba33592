package sandbox_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagex/sxmake/sandbox"
	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// TestNoLeftovers runs 100 steps, some killed by their timeout or by
// cancellation while they have children, some failing to start, then checks that no mount,
// cgroup, process or state file of theirs is left.
func TestNoLeftovers(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	tmp := t.TempDir()
	state := filepath.Join(tmp, "state")
	b := make([]byte, 6)
	rand.Read(b)
	parent := "sxmake-test-" + hex.EncodeToString(b)
	s, err := sandbox.New(state, sandbox.WithCgroupParent(parent))
	if err != nil {
		t.Fatal(err)
	}
	defer removeCgroupParent(t, parent)
	root := sandboxtest.ProbeRootfs(t, "amd64")

	for i := range 100 {
		upper := filepath.Join(tmp, fmt.Sprintf("upper%d", i))
		if err := os.Mkdir(upper, 0o755); err != nil {
			t.Fatal(err)
		}
		spec := sandbox.Spec{Lower: []string{root}, Upper: upper, Limits: sandbox.Limits{Memory: 64 << 20, Pids: 32}}
		ctx, cancel := context.WithCancel(context.Background())
		switch i % 10 {
		case 0: // killed by its timeout, with children
			spec.Args = []string{"/probe", "spawn", "3"}
			spec.Limits.Timeout = 300 * time.Millisecond
			res, err := s.Run(ctx, spec)
			if !errors.Is(err, sandbox.ErrTimeout) || res.ExitCode != 128+9 {
				t.Errorf("run %d: exit %d, error %v; want 137 and ErrTimeout", i, res.ExitCode, err)
			}
		case 5: // cancelled, with children
			spec.Args = []string{"/probe", "spawn", "3"}
			time.AfterFunc(200*time.Millisecond, cancel)
			_, err := s.Run(ctx, spec)
			if !errors.Is(err, context.Canceled) {
				t.Errorf("run %d: error %v, want context.Canceled", i, err)
			}
		case 7: // fails to start
			spec.Args = []string{"/nonexistent"}
			if _, err := s.Run(ctx, spec); err == nil {
				t.Errorf("run %d: a missing executable started", i)
			}
		default:
			spec.Args = []string{"/probe", "exit", strconv.Itoa(i % 4)}
			res, err := s.Run(ctx, spec)
			if err != nil || res.ExitCode != i%4 {
				t.Errorf("run %d: exit %d, error %v; want %d", i, res.ExitCode, err, i%4)
			}
		}
		cancel()
	}

	t.Run("mounts", func(t *testing.T) {
		b, err := os.ReadFile("/proc/self/mountinfo")
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, tmp) {
				t.Errorf("mount left: %s", line)
			}
		}
	})
	t.Run("cgroups", func(t *testing.T) {
		dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", parent, "*"))
		for _, d := range dirs {
			if fi, err := os.Stat(d); err == nil && fi.IsDir() {
				t.Errorf("cgroup left: %s", d)
			}
		}
	})
	t.Run("processes", func(t *testing.T) {
		for _, p := range ourProcesses(t) {
			t.Errorf("process left: %s", p)
		}
	})
	t.Run("state", func(t *testing.T) {
		for _, dir := range []string{filepath.Join(state, "steps"), sandbox.ContainerRoot(s)} {
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				t.Errorf("state left: %s/%s", dir, e.Name())
			}
		}
		works, _ := filepath.Glob(filepath.Join(tmp, "*.work"))
		for _, w := range works {
			t.Errorf("work directory left: %s", w)
		}
	})
}

// TestSweep: when the process running a step is killed (SIGKILL: no
// cleanup), and its reaper too, its step dies with it and the next New
// removes its mount, cgroup and state.
func TestSweep(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	tmp := t.TempDir()
	state := filepath.Join(tmp, "state")
	upper := filepath.Join(tmp, "upper")
	if err := os.Mkdir(upper, 0o755); err != nil {
		t.Fatal(err)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	helper := exec.Command(exe)
	helper.Env = append(os.Environ(), "SXMAKE_SANDBOX_HELPER=sleep", "SXMAKE_SANDBOX_STATE="+state,
		"SXMAKE_SANDBOX_LOWER="+sandboxtest.ProbeRootfs(t, "amd64"), "SXMAKE_SANDBOX_UPPER="+upper)
	var stderr bytes.Buffer
	helper.Stderr = &stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait for the step's children: the step is fully set up.
	for deadline := time.Now().Add(time.Minute); len(ourProcesses(t)) < 3; {
		if time.Now().After(deadline) {
			helper.Process.Kill()
			helper.Wait()
			t.Fatalf("the helper's step did not start: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	steps, _ := os.ReadDir(filepath.Join(state, "steps"))
	if len(steps) != 1 {
		t.Fatalf("%d steps in the state directory, want 1", len(steps))
	}
	id := steps[0].Name()
	// Its reaper first, which would otherwise do the sweep's work.
	for _, p := range reapersOf(helper.Process.Pid) {
		syscall.Kill(p, syscall.SIGKILL)
	}
	helper.Process.Kill()
	helper.Wait()

	s, err := sandbox.New(state)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile("/proc/self/mountinfo")
	if strings.Contains(string(b), tmp) {
		t.Errorf("mount left after the sweep:\n%s", b)
	}
	if dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*/sxmake", id)); len(dirs) != 0 {
		t.Errorf("cgroups left after the sweep: %v", dirs)
	}
	for _, dir := range []string{filepath.Join(state, "steps"), sandbox.ContainerRoot(s)} {
		if entries, _ := os.ReadDir(dir); len(entries) != 0 {
			t.Errorf("state left in %s: %v", dir, entries)
		}
	}
	// The step's processes died with the helper (parent death signal).
	for deadline := time.Now().Add(5 * time.Second); len(ourProcesses(t)) > 0 && time.Now().Before(deadline); {
		time.Sleep(20 * time.Millisecond)
	}
	for _, p := range ourProcesses(t) {
		t.Errorf("process left: %s", p)
	}
}

// ourProcesses lists the processes that are children of this test (but
// its reaper) or run the probe.
func ourProcesses(t *testing.T) []string {
	t.Helper()
	self := strconv.Itoa(os.Getpid())
	procs, _ := filepath.Glob("/proc/[0-9]*")
	var out []string
	for _, p := range procs {
		cmdline, err := os.ReadFile(filepath.Join(p, "cmdline"))
		if err != nil {
			continue
		}
		status, _ := os.ReadFile(filepath.Join(p, "status"))
		// The reaper (reaper.go) is meant to outlive every step.
		isReaper := bytes.Contains(cmdline, []byte("\x00sxmake-sandbox-reaper\x00"))
		isChild := bytes.Contains(status, []byte("\nPPid:\t"+self+"\n")) && !isReaper
		isProbe := bytes.HasPrefix(cmdline, []byte("probe\x00")) || bytes.HasPrefix(cmdline, []byte("/probe\x00"))
		if isChild || isProbe {
			out = append(out, filepath.Base(p)+" "+strings.ReplaceAll(string(cmdline), "\x00", " "))
		}
	}
	return out
}

// reapersOf returns the pids of the reapers process pid started.
func reapersOf(pid int) []int {
	procs, _ := filepath.Glob("/proc/[0-9]*")
	var out []int
	for _, p := range procs {
		cmdline, _ := os.ReadFile(filepath.Join(p, "cmdline"))
		status, _ := os.ReadFile(filepath.Join(p, "status"))
		if bytes.Contains(cmdline, []byte("\x00sxmake-sandbox-reaper\x00")) && bytes.Contains(status, []byte("\nPPid:\t"+strconv.Itoa(pid)+"\n")) {
			n, _ := strconv.Atoi(filepath.Base(p))
			out = append(out, n)
		}
	}
	return out
}

// removeCgroupParent removes the (empty) cgroup parent directories.
func removeCgroupParent(t *testing.T, parent string) {
	dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", parent))
	for _, d := range dirs {
		if err := os.Remove(d); err != nil {
			t.Errorf("removing cgroup parent: %v", err)
		}
	}
}

// TestConcurrentRuns: steps run at the same time by one Sandbox do not
// see or disturb each other.
func TestConcurrentRuns(t *testing.T) {
	s := newSandbox(t)
	root := sandboxtest.BusyboxRootfs(t)
	const n = 6
	specs := make([]sandbox.Spec, n)
	outs := make([]bytes.Buffer, n)
	for i := range specs {
		specs[i] = step(t, root, "/bin/sh", "-c", fmt.Sprintf("echo %d > /mine; sleep 0.2; ls /", i))
		specs[i].Stdout = &outs[i]
	}
	errs := make(chan error, n)
	for i := range specs {
		go func() {
			res, err := s.Run(context.Background(), specs[i])
			if err == nil && res.ExitCode != 0 {
				err = fmt.Errorf("step %d: exit %d: %s", i, res.ExitCode, res.Log)
			}
			errs <- err
		}()
	}
	for range n {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	for i, spec := range specs {
		b, err := os.ReadFile(filepath.Join(spec.Upper, "mine"))
		if err != nil || string(b) != fmt.Sprintf("%d\n", i) {
			t.Errorf("step %d wrote %q, %v", i, b, err)
		}
		if strings.Count(outs[i].String(), "mine") != 1 {
			t.Errorf("step %d sees:\n%s", i, outs[i].String())
		}
	}
}
