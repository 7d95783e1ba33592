package main

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// busyboxTree writes a package tree holding the demo tree's
// bootstrap-busybox (a shell and its applets, from the machine's
// busybox-static) and the user packages given by name and Containerfile.
func busyboxTree(t *testing.T, containerfiles map[string]string) string {
	t.Helper()
	root := t.TempDir()
	write := func(rel, content string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"package.toml", "Containerfile"} {
		data, err := os.ReadFile(filepath.Join(repoTestdata(t), "stagex", "packages", "bootstrap", "busybox", name))
		if err != nil {
			t.Fatal(err)
		}
		write(filepath.Join("packages", "bootstrap", "busybox", name), string(data))
	}
	for name, cf := range containerfiles {
		write(filepath.Join("packages", "user", name, "package.toml"), "[package]\nname = \""+name+"\"\nversion = \"1\"\n")
		write(filepath.Join("packages", "user", name, "Containerfile"), cf)
	}
	return root
}

// sxmakeProcess is sxmake as a process of its own, in a process group of
// its own.
func sxmakeProcess(args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "SXMAKE_TEST_MAIN=1")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return cmd
}

const (
	loudLine = "0123456789abcdef0123456789abcde\n" // 32 bytes
	loudSize = 1 << 30
	// loudDigest is the digest of user-loud's image as sxmake built it
	// before logs streamed to disk (main at cfec968): what the step
	// prints changes no byte.
	loudDigest = "6d4011001424123b3b03f01c06907f1243ffa6a87538c306dd9ace99112d02c4"
)

// A step printing 1 GiB: sxmake's peak memory grows by less than 64 MiB
// over a build of a step printing 1 KiB, sxmake log prints exactly the
// bytes the step wrote, and the image's digest is the one it always was.
func TestLogOfHugeOutput(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	if testing.Short() {
		t.Skip("prints 1 GiB")
	}
	tree := busyboxTree(t, map[string]string{
		"quiet": "FROM stagex/bootstrap-busybox AS package\nRUN yes 0123456789abcdef0123456789abcde | head -c 1024\n",
		"loud":  "FROM stagex/bootstrap-busybox AS package\nRUN yes 0123456789abcdef0123456789abcde | head -c 1073741824\n",
	})
	cacheDir, out := filepath.Join(t.TempDir(), "cache"), t.TempDir()
	args := func(target string) []string {
		return []string{"-C", tree, "--cache-dir", cacheDir, "-o", out, "--progress", "plain", target}
	}
	mustBuild(t, args("bootstrap-busybox")...)
	// peak builds target in a process of its own and returns its peak
	// resident memory (getrusage's maxrss of the waited child) and its
	// standard output.
	peak := func(target string) (int64, string) {
		cmd := sxmakeProcess(args(target)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("building %s: %v\n%s", target, err, tail(stderr.String(), 2000))
		}
		return cmd.ProcessState.SysUsage().(*syscall.Rusage).Maxrss << 10, stdout.String()
	}
	quiet, _ := peak("user-quiet")
	loud, digests := peak("user-loud")
	t.Logf("peak RSS: %d MiB printing 1 KiB, %d MiB printing 1 GiB", quiet>>20, loud>>20)
	if loud-quiet >= 64<<20 {
		t.Errorf("printing 1 GiB took %d MiB more memory than printing 1 KiB (bar: < 64 MiB)", (loud-quiet)>>20)
	}
	if want := loudDigest + " user-loud\n"; digests != want {
		t.Errorf("digest %q, want %q", digests, want)
	}

	// sxmake log, read as a stream.
	cmd := sxmakeProcess("--cache-dir", cacheDir, "log", "user-loud", "1")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	h := sha256.New()
	n, err := io.Copy(h, stdout)
	if err != nil || cmd.Wait() != nil {
		t.Fatalf("sxmake log: %v\n%s", err, stderr.String())
	}
	want := sha256.New()
	lines := bytes.Repeat([]byte(loudLine), 1<<15) // 1 MiB
	for range loudSize / len(lines) {
		want.Write(lines)
	}
	if n != loudSize || !bytes.Equal(h.Sum(nil), want.Sum(nil)) {
		t.Errorf("sxmake log printed %d bytes hashing to %s, want %d bytes hashing to %s",
			n, hex.EncodeToString(h.Sum(nil)), loudSize, hex.EncodeToString(want.Sum(nil)))
	}
}

// A build killed while a step runs: sxmake log prints what the step had
// printed, before and after the next opener of the cache stores it; log
// -f, following it meanwhile, printed the same and ended with the build.
func TestLogOfKilledBuild(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	tree := busyboxTree(t, map[string]string{
		"slow": "FROM stagex/bootstrap-busybox AS package\nRUN echo first part; echo second line; sleep 10\n",
	})
	cacheDir := filepath.Join(t.TempDir(), "cache")
	build := sxmakeProcess("-C", tree, "--cache-dir", cacheDir, "-o", t.TempDir(), "--progress", "plain", "user-slow")
	var buildErr bytes.Buffer
	build.Stderr = &buildErr
	if err := build.Start(); err != nil {
		t.Fatal(err)
	}
	const want = "first part\nsecond line\n"
	logOf := func() (int, string, string) { return sxmake(t, "--cache-dir", cacheDir, "log", "user-slow", "1") }
	var follow *exec.Cmd
	var followOut bytes.Buffer
	for deadline := time.Now().Add(3 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		if code, stdout, _ := logOf(); code == 0 && stdout == want {
			break
		}
		if follow == nil {
			if code, list, _ := sxmake(t, "--cache-dir", cacheDir, "log", "--list", "user-slow"); code == 0 && strings.Contains(list, " running ") {
				follow = sxmakeProcess("--cache-dir", cacheDir, "log", "-f", "user-slow", "1")
				follow.Stdout = &followOut
				if err := follow.Start(); err != nil {
					t.Fatal(err)
				}
			}
		}
		if time.Now().After(deadline) {
			syscall.Kill(-build.Process.Pid, syscall.SIGKILL)
			build.Wait()
			t.Fatalf("the step's output never showed in sxmake log\n%s", buildErr.String())
		}
	}
	syscall.Kill(-build.Process.Pid, syscall.SIGKILL)
	build.Wait()
	killed := time.Now()
	t.Cleanup(func() {
		// The step may outlive the killed sxmake: once it has ended, a
		// build sweeps what it left.
		time.Sleep(time.Until(killed.Add(11 * time.Second)))
		mustBuild(t, "-C", tree, "--cache-dir", cacheDir, "-o", t.TempDir(), "--progress", "plain", "bootstrap-busybox")
	})
	if follow == nil {
		t.Fatal("the step was never seen running")
	}
	followDone := make(chan error, 1)
	go func() { followDone <- follow.Wait() }()
	select {
	case err := <-followDone:
		if err != nil || followOut.String() != want {
			t.Errorf("log -f: %v, printed %q, want %q", err, followOut.String(), want)
		}
	case <-time.After(time.Minute):
		syscall.Kill(-follow.Process.Pid, syscall.SIGKILL)
		t.Errorf("log -f did not end with the killed build; printed %q", followOut.String())
	}

	if code, stdout, stderr := logOf(); code != 0 || stdout != want {
		t.Errorf("log of the killed step: exit %d, %q, want %q\n%s", code, stdout, want, stderr)
	}
	if _, list, _ := sxmake(t, "--cache-dir", cacheDir, "log", "--list", "user-slow"); !strings.Contains(list, "  1  interrupted") {
		t.Errorf("log --list after the kill:\n%s", list)
	}
	// The next opener of the cache stores the log as a blob.
	if code, text, _ := sxmake(t, "--cache-dir", cacheDir, "cache", "fsck"); code != 0 {
		t.Errorf("cache fsck: exit %d\n%s", code, text)
	}
	if left, _ := os.ReadDir(filepath.Join(cacheDir, "logs", "running")); len(left) != 0 {
		t.Errorf("logs/running still holds %v", left)
	}
	if code, stdout, stderr := logOf(); code != 0 || stdout != want {
		t.Errorf("log of the killed step, recovered: exit %d, %q, want %q\n%s", code, stdout, want, stderr)
	}
}

// jsonLine is what the tests read of a --json event.
type jsonLine struct {
	Time     time.Time         `json:"time"`
	Kind     string            `json:"kind"`
	Image    string            `json:"image"`
	Step     int               `json:"step"`
	Seconds  float64           `json:"seconds"`
	Progress *jsonProgressInfo `json:"progress"`
}

// A --no-cache rebuild of a tree whose steps sleep estimates, at its start,
// the time the build takes within 20%, from the durations of the build
// before; its --timings file holds each action as the events report it.
func TestEstimateAndTimings(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	tree := busyboxTree(t, map[string]string{
		// Long steps: a step's own time (the sandbox's start, the layer)
		// varies between builds on a loaded machine, its sleep does not.
		"a": "FROM stagex/bootstrap-busybox AS package\nRUN sleep 10\n",
		"b": "FROM stagex/user-a AS package\nRUN sleep 10\n",
		"c": "FROM stagex/bootstrap-busybox AS package\nRUN sleep 14\n",
	})
	cacheDir, out := filepath.Join(t.TempDir(), "cache"), t.TempDir()
	args := []string{"-C", tree, "--cache-dir", cacheDir, "-o", out, "-j", "2"}
	mustBuild(t, append(args, "--progress", "plain", "user-b", "user-c")...)
	timings := filepath.Join(t.TempDir(), "timings.json")
	stdout, _ := mustBuild(t, append(args, "--no-cache", "--json", "--timings", timings, "user-b", "user-c")...)

	var events []jsonLine
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var ev jsonLine
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("%v: %s", err, sc.Text())
		}
		events = append(events, ev)
	}
	if len(events) == 0 || events[0].Kind != "progress" {
		t.Fatalf("the first event is not the build's progress: %+v", events)
	}
	first := events[0].Progress
	took := events[len(events)-1].Time.Sub(events[0].Time).Seconds() + first.ElapsedSeconds
	t.Logf("estimated %.2fs at %.3fs, took %.2fs", first.LeftSeconds, first.ElapsedSeconds, took)
	if first.ElapsedSeconds >= 1 || math.Abs(first.LeftSeconds-took) > 0.2*took || first.Unknown != 0 {
		t.Errorf("estimate at %.3fs: %.2fs left (%d actions never timed); the build took %.2fs", first.ElapsedSeconds, first.LeftSeconds, first.Unknown, took)
	}

	data, err := os.ReadFile(timings)
	if err != nil {
		t.Fatal(err)
	}
	var tf timingsFile
	if err := json.Unmarshal(data, &tf); err != nil {
		t.Fatal(err)
	}
	type id struct {
		image string
		step  int
	}
	byStep := map[id]actionTimings{}
	for _, a := range tf.Actions {
		byStep[id{a.Image, a.Step}] = a
	}
	started := map[id]time.Time{}
	ended := 0
	for _, ev := range events {
		k := id{ev.Image, ev.Step}
		switch ev.Kind {
		case "start":
			started[k] = ev.Time
		case "done", "cached", "failed":
			ended++
			a, ok := byStep[k]
			status := map[string]string{"done": "ran", "cached": "cached", "failed": "failed"}[ev.Kind]
			if !ok || a.Status != status || !a.End.Equal(ev.Time) || a.Seconds != ev.Seconds {
				t.Errorf("event %+v; timing %+v", ev, a)
			}
			if s, ok := started[k]; ev.Kind != "cached" && (!ok || a.Start.Sub(s).Abs() > time.Millisecond) {
				t.Errorf("%s step %d started at %v, timings say %v", ev.Image, ev.Step, s, a.Start)
			}
		}
	}
	if ended != len(tf.Actions) || ended != first.Total {
		t.Errorf("%d actions in the events, %d in --timings, %d in the plan", ended, len(tf.Actions), first.Total)
	}
}
