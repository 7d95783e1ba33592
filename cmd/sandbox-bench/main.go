// Command sandbox-bench measures the per-step overhead of sandbox.Run
// against `runc run` (Debian's runc) on the same root file system, in the
// same process, runs of the contestants interleaved: the median wall time
// of N runs of `true` each, and their ratio. It also reports how much of
// sandbox.Run is libcontainer starting the container (Result.Startup), and
// times a floor: libcontainer itself with a minimal container (the rootfs
// directory read-only, mount and pid namespaces, /proc, a /dev holding
// only null; no overlay, seccomp, masked paths or limits), which no
// sandbox built on libcontainer can beat. It needs root, /bin/busybox
// (busybox-static) and runc on PATH.
//
//	go run ./cmd/sandbox-bench [-n 50] [-only sandbox|bare|runc] [-cpuprofile FILE] [-state DIR]
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/stagex/sxmake/sandbox"
)

func main() {
	sandbox.Init()
	n := flag.Int("n", 50, "runs of each")
	profile := flag.String("cpuprofile", "", "write a CPU profile of the sandbox runs to `file`")
	only := flag.String("only", "", "run only `which` of sandbox and runc (to measure CPU time)")
	state := flag.String("state", "", "keep the sandbox's state under `dir` (default: in the bench's temporary directory)")
	flag.Parse()
	if err := bench(*n, *profile, *only, *state); err != nil {
		fmt.Fprintln(os.Stderr, "sandbox-bench:", err)
		os.Exit(1)
	}
}

func bench(n int, profile, only, state string) error {
	dir, err := os.MkdirTemp("", "sxmake-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	rootfs := filepath.Join(dir, "rootfs")
	if err := busyboxRootfs(rootfs); err != nil {
		return err
	}
	if state == "" {
		state = filepath.Join(dir, "state")
	} else {
		stateDir, err := os.MkdirTemp(state, "sxmake-bench-state-")
		if err != nil {
			return err
		}
		defer os.RemoveAll(stateDir)
		state = stateDir
	}
	s, err := sandbox.New(state)
	if err != nil {
		return err
	}
	bundle, err := runcBundle(dir, rootfs)
	if err != nil {
		return err
	}
	if profile != "" {
		f, err := os.Create(profile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}
	var runs []func(int) error
	var names []string
	var startups []time.Duration
	if only == "" || only == "sandbox" {
		names = append(names, "sandbox.Run true")
		runs = append(runs, func(i int) error {
			startup, err := runSandbox(s, dir, rootfs, i)
			if i >= 0 {
				startups = append(startups, startup)
			}
			return err
		})
	}
	if only == "" || only == "bare" {
		names = append(names, "bare libcontainer true")
		runs = append(runs, func(i int) error { return runBare(dir, rootfs, i) })
	}
	if only == "" || only == "runc" {
		names = append(names, "runc run true")
		runs = append(runs, func(i int) error { return runRunc(dir, bundle, i) })
	}
	medians, err := interleave(n, runs)
	if err != nil {
		return err
	}
	for i, name := range names {
		fmt.Printf("%-24s median %6.1f ms of %d\n", name+":", ms(medians[i]), n)
		if name == "sandbox.Run true" {
			fmt.Printf("  of which libcontainer start (Result.Startup): median %.1f ms\n", ms(median(startups)))
		}
	}
	if len(medians) == 3 {
		fmt.Printf("ratio sandbox/runc: %.2f\n", float64(medians[0])/float64(medians[2]))
		fmt.Printf("ratio bare libcontainer/runc: %.2f\n", float64(medians[1])/float64(medians[2]))
	}
	return nil
}

func median(ts []time.Duration) time.Duration {
	slices.Sort(ts)
	return ts[len(ts)/2]
}

// interleave runs each of fs once as a warm-up, then n rounds of each in
// turn (so that both see the same machine load), and returns the median
// time of each.
func interleave(n int, fs []func(int) error) ([]time.Duration, error) {
	times := make([][]time.Duration, len(fs))
	for round := -1; round < n; round++ {
		for j, f := range fs {
			start := time.Now()
			if err := f(round); err != nil {
				return nil, err
			}
			if round >= 0 {
				times[j] = append(times[j], time.Since(start))
			}
		}
	}
	medians := make([]time.Duration, len(fs))
	for j, ts := range times {
		medians[j] = median(ts)
	}
	return medians, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// runSandbox runs true over rootfs with a fresh upper directory and
// returns the step's Result.Startup.
func runSandbox(s *sandbox.Sandbox, dir, rootfs string, i int) (time.Duration, error) {
	upper := filepath.Join(dir, fmt.Sprintf("upper%d", i))
	if err := os.Mkdir(upper, 0o755); err != nil {
		return 0, err
	}
	defer os.RemoveAll(upper)
	res, err := s.Run(context.Background(), sandbox.Spec{Lower: []string{rootfs}, Upper: upper, Args: []string{"/bin/true"}})
	if err != nil {
		return 0, err
	}
	if res.ExitCode != 0 {
		return 0, fmt.Errorf("true exited %d: %s", res.ExitCode, res.Log)
	}
	return res.Startup, nil
}

// runcBundle writes a runc bundle (runc's default spec running true) over
// rootfs.
func runcBundle(dir, rootfs string) (string, error) {
	bundle := filepath.Join(dir, "bundle")
	if err := os.Mkdir(bundle, 0o755); err != nil {
		return "", err
	}
	cmd := exec.Command("runc", "spec", "--bundle", bundle)
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("runc spec: %v: %s", err, out)
	}
	p := filepath.Join(bundle, "config.json")
	b, err := os.ReadFile(p)
	if err != nil {
		return "", err
	}
	var spec map[string]any
	if err := json.Unmarshal(b, &spec); err != nil {
		return "", err
	}
	spec["root"] = map[string]any{"path": rootfs, "readonly": true}
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = []string{"/bin/true"}
	if b, err = json.Marshal(spec); err != nil {
		return "", err
	}
	return bundle, os.WriteFile(p, b, 0o644)
}

// runRunc runs the bundle with `runc run`.
func runRunc(dir, bundle string, i int) error {
	cmd := exec.Command("runc", "--root", filepath.Join(dir, "runc"), "run", "--bundle", bundle, fmt.Sprintf("bench%d", i+1))
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("runc run: %v: %s", err, out)
	}
	return nil
}

// busyboxRootfs makes a rootfs with /bin/busybox and /bin/true.
func busyboxRootfs(rootfs string) error {
	for _, d := range []string{"bin", "etc", "dev", "proc", "sys"} {
		if err := os.MkdirAll(filepath.Join(rootfs, d), 0o755); err != nil {
			return err
		}
	}
	b, err := os.ReadFile("/bin/busybox")
	if err != nil {
		return fmt.Errorf("%w (install busybox-static)", err)
	}
	if err := os.WriteFile(filepath.Join(rootfs, "bin", "busybox"), b, 0o755); err != nil {
		return err
	}
	return os.Symlink("busybox", filepath.Join(rootfs, "bin", "true"))
}
