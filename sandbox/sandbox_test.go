package sandbox_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/sirupsen/logrus"

	"github.com/stagex/sxmake/sandbox"
	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

func TestMain(m *testing.M) {
	sandbox.Init()
	switch os.Getenv("SXMAKE_SANDBOX_HELPER") {
	case "sleep":
		sleepHelper()
	case "lowhard":
		lowHardHelper()
	}
	os.Exit(m.Run())
}

// sleepHelper runs a step that sleeps an hour, with the state directory,
// lower and upper named by the environment; TestSweep kills it.
func sleepHelper() {
	s, err := sandbox.New(os.Getenv("SXMAKE_SANDBOX_STATE"))
	if err == nil {
		_, err = s.Run(context.Background(), sandbox.Spec{
			Lower: []string{os.Getenv("SXMAKE_SANDBOX_LOWER")},
			Upper: os.Getenv("SXMAKE_SANDBOX_UPPER"),
			Args:  []string{"/probe", "spawn", "2"},
		})
	}
	fmt.Fprintln(os.Stderr, "helper:", err)
	os.Exit(1)
}

// newSandbox returns a Sandbox whose state lives in a test directory.
func newSandbox(t *testing.T, opts ...sandbox.Option) *sandbox.Sandbox {
	t.Helper()
	sandboxtest.RequiresRoot(t)
	s, err := sandbox.New(filepath.Join(t.TempDir(), "state"), opts...)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// step returns a spec over lower with a fresh upper directory.
func step(t *testing.T, lower string, args ...string) sandbox.Spec {
	t.Helper()
	upper := filepath.Join(t.TempDir(), "upper")
	if err := os.Mkdir(upper, 0o755); err != nil {
		t.Fatal(err)
	}
	return sandbox.Spec{Lower: []string{lower}, Upper: upper, Args: args}
}

// mustRun runs spec, fails t on error, and returns the result and stdout.
func mustRun(t *testing.T, s *sandbox.Sandbox, spec sandbox.Spec) (sandbox.Result, string) {
	t.Helper()
	var stdout bytes.Buffer
	spec.Stdout = &stdout
	res, err := s.Run(context.Background(), spec)
	if err != nil {
		t.Fatalf("Run(%q): %v\nlog:\n%s", spec.Args, err, res.Log)
	}
	return res, stdout.String()
}

func TestRunBusybox(t *testing.T) {
	s := newSandbox(t)
	root := sandboxtest.BusyboxRootfs(t)
	res, out := mustRun(t, s, step(t, root, "/bin/sh", "-c", "echo hello; id"))
	if res.ExitCode != 0 || out != "hello\nuid=0(root) gid=0(root) groups=0(root)\n" {
		t.Errorf("exit %d, stdout %q, log %q", res.ExitCode, out, res.Log)
	}
	if res.Startup <= 0 || res.Startup >= res.Duration {
		t.Errorf("startup %v, duration %v: want 0 < startup < duration", res.Startup, res.Duration)
	}
}

func TestExitCodes(t *testing.T) {
	s := newSandbox(t)
	busybox := sandboxtest.BusyboxRootfs(t)
	probe := sandboxtest.ProbeRootfs(t, "amd64")
	tests := []struct {
		name string
		root string
		args []string
		want int
	}{
		{"true", busybox, []string{"/bin/true"}, 0},
		{"false", busybox, []string{"/bin/false"}, 1},
		{"shell exit 7", busybox, []string{"/bin/sh", "-c", "exit 7"}, 7},
		{"shell exit 255", busybox, []string{"/bin/sh", "-c", "exit 255"}, 255},
		{"child killed by signal", busybox, []string{"/bin/sh", "-c", "sh -c 'kill -9 $$'; exit $?"}, 128 + 9},
		{"exec form exit 3", probe, []string{"/probe", "exit", "3"}, 3},
		{"exec form exit 0", probe, []string{"/probe", "exit", "0"}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			res, _ := mustRun(t, s, step(t, tc.root, tc.args...))
			if res.ExitCode != tc.want {
				t.Errorf("exit code %d, want %d; log:\n%s", res.ExitCode, tc.want, res.Log)
			}
		})
	}
}

// TestPlatforms runs Debian's static busybox of each platform, once in
// exec form and once through its shell (whose children exec through the
// same path), and uname -m tells what ran them: amd64 natively, arm64
// through qemu, linux/386 natively where the kernel runs i386 programs
// and through qemu where it does not, and through qemu on every host with
// WithEmulation, so that both i386 paths run wherever the tests run.
func TestPlatforms(t *testing.T) {
	native := newSandbox(t)
	sandbox.RestoreNative386(t)
	emulated := newSandbox(t, sandbox.WithEmulation("linux/386"))
	for _, tc := range []struct {
		name     string
		s        *sandbox.Sandbox
		platform string
		goarch   string
		emulator string // "?" when it depends on the host
	}{
		{"linux/amd64", native, "linux/amd64", "amd64", ""},
		{"host", native, "", "amd64", ""},
		{"linux/386", native, "linux/386", "386", "?"},
		{"linux/386 emulated", emulated, "linux/386", "386", "qemu-i386"},
		{"linux/arm64", native, "linux/arm64", "arm64", "qemu-aarch64"},
		{"linux/arm64/v8", native, "linux/arm64/v8", "arm64", "qemu-aarch64"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			root := sandboxtest.BusyboxRootfsFor(t, tc.goarch)
			for _, args := range [][]string{
				{"/bin/busybox", "uname", "-m"},
				{"/bin/sh", "-c", "echo $(uname -m)"},
			} {
				spec := step(t, root, args...)
				spec.Platform = tc.platform
				var told string
				spec.Emulating = func(e string) { told = e }
				res, out := mustRun(t, tc.s, spec)
				if tc.emulator != "?" && res.Emulator != tc.emulator {
					t.Errorf("%q: ran through %q, want %q", args, res.Emulator, tc.emulator)
				}
				if told != res.Emulator {
					t.Errorf("%q: Spec.Emulating was told %q, the result says %q", args, told, res.Emulator)
				}
				if want := machine(tc.goarch, res.Emulator != ""); res.ExitCode != 0 || out != want+"\n" {
					t.Errorf("%q through %q: exit %d, uname -m %q, want %q", args, res.Emulator, res.ExitCode, out, want)
				}
			}
		})
	}
}

// machine is what uname -m says to a program of goarch.
func machine(goarch string, emulated bool) string {
	switch {
	case goarch == "386" && emulated:
		return "i686" // qemu-i386's answer
	case goarch == "arm64":
		return "aarch64"
	}
	return "x86_64" // the kernel's: a 32-bit process sees its 64-bit machine
}

func TestUserAndCwd(t *testing.T) {
	s := newSandbox(t)
	root := sandboxtest.BusyboxRootfs(t)
	tests := []struct {
		name, user, cwd string
		want            string
	}{
		{"default", "", "", "0:0 / 0:0\n"},
		{"name", "nobody", "/", "65534:65534 / 0:0\n"},
		{"uid:gid", "1000:1001", "/tmp", "1000:1001 /tmp 0:0\n"},
		{"missing cwd is created for the user", "nobody", "/work/src", "65534:65534 /work/src 65534:65534\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := step(t, root, "/bin/sh", "-c", `echo "$(id -u):$(id -g) $(pwd) $(stat -c %u:%g .)"`)
			spec.User = tc.user
			spec.Cwd = tc.cwd
			_, out := mustRun(t, s, spec)
			if diff := cmp.Diff(tc.want, out); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnknownUserFails(t *testing.T) {
	s := newSandbox(t)
	spec := step(t, sandboxtest.BusyboxRootfs(t), "/bin/true")
	spec.User = "nosuchuser"
	if _, err := s.Run(context.Background(), spec); err == nil {
		t.Fatal("Run with an unknown user succeeded")
	}
}

func TestMissingExecutableFails(t *testing.T) {
	s := newSandbox(t)
	_, err := s.Run(context.Background(), step(t, sandboxtest.ProbeRootfs(t, "amd64"), "/bin/sh", "-c", "true"))
	if err == nil {
		t.Fatal("Run of a missing executable succeeded")
	}
}

// TestLimits: a step over its memory or task limit is stopped there, and
// Run says so (ErrLimit), even when the step exits 0 after a refused fork.
func TestLimits(t *testing.T) {
	s := newSandbox(t)
	probe := sandboxtest.ProbeRootfs(t, "amd64")
	tests := []struct {
		name    string
		root    string
		limits  sandbox.Limits
		args    []string
		exit    int
		reached string // what the ErrLimit error names; "" for no error
	}{
		{"memory within the limit", probe, sandbox.Limits{Memory: 128 << 20}, []string{"/probe", "alloc", "16"}, 0, ""},
		{"memory over the limit is killed", probe, sandbox.Limits{Memory: 32 << 20}, []string{"/probe", "alloc", "256"}, 128 + 9, "memory (32 MiB)"},
		{"tasks within the limit", probe, sandbox.Limits{Pids: 64}, []string{"/probe", "exit", "0"}, 0, ""},
		// With at most 16 tasks, the probe cannot start 40 children. (The
		// limit leaves room for the threads of the Go init that starts
		// the step, which a tighter one can make fail to start at all.)
		{"tasks over the limit", probe, sandbox.Limits{Pids: 16}, []string{"/probe", "spawn", "40"}, 1, "tasks (16)"},
		{"tasks over the limit then exit 0", probe, sandbox.Limits{Pids: 16}, []string{"/probe", "spawn-try", "40"}, 0, "tasks (16)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			spec := step(t, tc.root, tc.args...)
			spec.Limits = tc.limits
			res, err := s.Run(context.Background(), spec)
			switch {
			case tc.reached == "" && err != nil:
				t.Fatalf("Run: %v\nlog:\n%s", err, res.Log)
			case tc.reached != "" && (!errors.Is(err, sandbox.ErrLimit) || !strings.Contains(err.Error(), tc.reached)):
				t.Fatalf("Run: error %v, want ErrLimit naming %s\nlog:\n%s", err, tc.reached, res.Log)
			}
			if res.ExitCode != tc.exit {
				t.Errorf("exit %d, want %d; log:\n%s", res.ExitCode, tc.exit, res.Log)
			}
		})
	}
}

// TestDefaultLimits: a quarter of the memory stays with the host, and
// the task limit is systemd's default TasksMax.
func TestDefaultLimits(t *testing.T) {
	l := sandbox.DefaultLimits()
	if l.Memory <= 0 || l.Pids <= 0 || l.Timeout != 0 {
		t.Fatalf("DefaultLimits() = %+v", l)
	}
	var si syscall.Sysinfo_t
	if err := syscall.Sysinfo(&si); err != nil {
		t.Fatal(err)
	}
	if total := int64(si.Totalram) * int64(si.Unit); l.Memory > total/4*3 || l.Memory < total/4*3-(1<<20) {
		t.Errorf("memory limit %d, want 3/4 of %d", l.Memory, total)
	}
	pidMax, _ := os.ReadFile("/proc/sys/kernel/pid_max")
	n, _ := strconv.ParseInt(strings.TrimSpace(string(pidMax)), 10, 64)
	if l.Pids > n*15/100 {
		t.Errorf("task limit %d above 15%% of pid_max %d", l.Pids, n)
	}
}

func TestLogs(t *testing.T) {
	s := newSandbox(t)
	spec := step(t, sandboxtest.BusyboxRootfs(t), "/bin/sh", "-c", "echo out; echo err >&2")
	var stdout, stderr bytes.Buffer
	spec.Stdout, spec.Stderr = &stdout, &stderr
	res, err := s.Run(context.Background(), spec)
	if err != nil {
		t.Fatal(err)
	}
	// The log interleaves the two streams in arrival order, which the
	// step does not control: compare its lines as a set.
	logLines := strings.Fields(string(res.Log))
	slices.Sort(logLines)
	got := []string{stdout.String(), stderr.String(), strings.Join(logLines, " ")}
	if diff := cmp.Diff([]string{"out\n", "err\n", "err out"}, got); diff != "" {
		t.Errorf("stdout, stderr, log lines (-want +got):\n%s", diff)
	}
}

func TestTimeNamespace(t *testing.T) {
	s := newSandbox(t)
	spec := step(t, sandboxtest.ProbeRootfs(t, "amd64"), "/probe", "clocks")
	start := time.Now()
	_, out := mustRun(t, s, spec)
	elapsed := time.Since(start)
	var mono, boot int64
	if _, err := fmt.Sscan(out, &mono, &boot); err != nil {
		t.Fatalf("parsing %q: %v", out, err)
	}
	// The clocks read between 1 and 2 seconds when Run sets them up, and
	// the step reads them at most the length of Run later.
	max := 2 + int64(math.Ceil(elapsed.Seconds()))
	if mono < 1 || mono > max || boot < 1 || boot > max {
		t.Errorf("CLOCK_MONOTONIC %d s, CLOCK_BOOTTIME %d s; want both in [1, %d]", mono, boot, max)
	}
}

func TestInvalidSpec(t *testing.T) {
	s := newSandbox(t)
	dir := t.TempDir()
	tests := []struct {
		name string
		spec sandbox.Spec
	}{
		{"no lower", sandbox.Spec{Upper: dir, Args: []string{"/x"}}},
		{"no upper", sandbox.Spec{Lower: []string{dir}, Args: []string{"/x"}}},
		{"no args", sandbox.Spec{Lower: []string{dir}, Upper: dir}},
		{"relative lower", sandbox.Spec{Lower: []string{"rel"}, Upper: dir, Args: []string{"/x"}}},
		{"colon in lower", sandbox.Spec{Lower: []string{"/a:b"}, Upper: dir, Args: []string{"/x"}}},
		{"relative cwd", sandbox.Spec{Lower: []string{dir}, Upper: dir, Args: []string{"/x"}, Cwd: "src"}},
		{"unknown platform", sandbox.Spec{Lower: []string{dir}, Upper: dir, Args: []string{"/x"}, Platform: "linux/s390x"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := s.Run(context.Background(), tc.spec); err == nil {
				t.Error("Run succeeded")
			}
		})
	}
}

// TestManyLowers mounts more layers than fit in one page of overlayfs
// options with their plain paths.
func TestManyLowers(t *testing.T) {
	s := newSandbox(t)
	base := filepath.Join(t.TempDir(), strings.Repeat("long-directory-name-", 4))
	var lower []string
	for i := range 120 {
		d := filepath.Join(base, fmt.Sprintf("layer-%03d", i))
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		sandboxtest.WriteFile(t, filepath.Join(d, fmt.Sprintf("f%03d", i)), "")
		lower = append(lower, d)
	}
	lower = append(lower, sandboxtest.ProbeRootfs(t, "amd64"))
	spec := step(t, lower[0], "/probe", "ls", "/")
	spec.Lower = lower
	_, out := mustRun(t, s, spec)
	n := 0
	for _, name := range strings.Fields(out) {
		if strings.HasPrefix(name, "f") {
			n++
		}
	}
	if n != 120 {
		t.Errorf("the step sees %d of the 120 layer files:\n%s", n, out)
	}
}

// TestBinarySealedNotCopied: libcontainer protects the binary it
// re-executes as each step's init with an overlay, not with a copy of it
// (10-25 ms a step), even when the state directory lies inside the
// binary's directory, where overlayfs would refuse the nested layers.
func TestBinarySealedNotCopied(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	state, err := os.MkdirTemp(filepath.Dir(exe), "state-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(state)
	s, err := sandbox.New(state)
	if err != nil {
		t.Fatal(err)
	}
	defer os.Remove(sandbox.ContainerRoot(s)) // outside the test's directories

	log := logrus.StandardLogger()
	var seen exesealHook
	oldHooks := log.ReplaceHooks(logrus.LevelHooks{})
	log.AddHook(&seen)
	oldLevel, oldOut := log.GetLevel(), log.Out
	log.SetLevel(logrus.DebugLevel)
	log.SetOutput(io.Discard)
	defer func() {
		log.ReplaceHooks(oldHooks)
		log.SetLevel(oldLevel)
		log.SetOutput(oldOut)
	}()
	mustRun(t, s, step(t, sandboxtest.BusyboxRootfs(t), "/bin/true"))
	const sealed = "runc exeseal: using overlayfs for sealed /proc/self/exe"
	if !slices.Contains(seen.messages, sealed) {
		t.Errorf("libcontainer did not seal the binary with an overlay; it said:\n%s", strings.Join(seen.messages, "\n"))
	}
}

// exesealHook keeps libcontainer's debug messages about how it sealed
// the binary.
type exesealHook struct{ messages []string }

func (h *exesealHook) Levels() []logrus.Level { return []logrus.Level{logrus.DebugLevel} }

func (h *exesealHook) Fire(e *logrus.Entry) error {
	if strings.Contains(e.Message, "exeseal") || strings.Contains(e.Message, "/proc/self/exe") {
		msg := e.Message
		if err, ok := e.Data[logrus.ErrorKey]; ok {
			msg += fmt.Sprintf(": %v", err)
		}
		h.messages = append(h.messages, msg)
	}
	return nil
}
