package sandbox_test

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/stagex/sxmake/sandbox"
	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// procLimits parses /proc/self/limits: for each resource, in the kernel's
// order (RLIMIT_CPU = 0, ...), "soft:hard".
func procLimits(t *testing.T, text string) []string {
	t.Helper()
	var out []string
	for _, line := range strings.Split(strings.TrimSpace(text), "\n")[1:] {
		f := strings.Fields(line[26:])
		if len(f) < 2 {
			t.Fatalf("cannot read limits line %q", line)
		}
		out = append(out, f[0]+":"+f[1])
	}
	return out
}

func limitText(v uint64) string {
	if v == sandbox.Unlimited {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

// TestRlimits checks that a step has Rlimits (StageX's nofile 2048:16384
// and Linux's defaults) whatever the limits of the process running it,
// and sxmake's own nproc, sigpending and memlock, as BuildKit's steps have
// buildkitd's.
func TestRlimits(t *testing.T) {
	s := newSandbox(t)
	root := sandboxtest.BusyboxRootfs(t)
	// Soft limits sxmake might be started with; they must not show.
	for res, v := range map[int]uint64{unix.RLIMIT_STACK: 4 << 20, unix.RLIMIT_CORE: 1 << 20, unix.RLIMIT_NOFILE: 1000, unix.RLIMIT_FSIZE: 1 << 30} {
		lowerSoft(t, res, v)
	}
	_, out := mustRun(t, s, step(t, root, "/bin/busybox", "cat", "/proc/self/limits"))
	got := procLimits(t, out)
	want := procLimits(t, readFile(t, "/proc/self/limits")) // nproc, sigpending, memlock: ours
	for _, r := range sandbox.Rlimits {
		want[r.Resource] = limitText(r.Soft) + ":" + limitText(r.Hard)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("step's limits by resource number (-want +got):\n%s\n%s", diff, out)
	}
	// The shell's view, as StageX's builds rely on it.
	_, out = mustRun(t, s, step(t, root, "/bin/sh", "-c", "ulimit -n; ulimit -Hn"))
	if out != "2048\n16384\n" {
		t.Errorf("ulimit -n, -Hn: %q, want 2048 and 16384", out)
	}
}

// lowerSoft sets this process's soft limit of res to v (at most its hard
// limit) until t ends.
func lowerSoft(t *testing.T, res int, v uint64) {
	t.Helper()
	var old unix.Rlimit
	if err := unix.Getrlimit(res, &old); err != nil {
		t.Fatal(err)
	}
	if err := unix.Setrlimit(res, &unix.Rlimit{Cur: min(v, old.Max), Max: old.Max}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Setrlimit(res, &old) })
}

func readFile(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestRlimitsAboveHard runs a step from a process whose hard nofile limit
// is below StageX's 16384. Without CAP_SYS_RESOURCE the step must fail
// before it starts, saying which limit and how to raise it; with it, the
// step gets 16384.
func TestRlimitsAboveHard(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	root := sandboxtest.BusyboxRootfs(t)
	upper := filepath.Join(t.TempDir(), "upper")
	if err := os.Mkdir(upper, 0o755); err != nil {
		t.Fatal(err)
	}
	helper := exec.Command(os.Args[0], "-test.run=^$")
	helper.Env = append(os.Environ(), "SXMAKE_SANDBOX_HELPER=lowhard", "SXMAKE_SANDBOX_STATE="+filepath.Join(t.TempDir(), "state"),
		"SXMAKE_SANDBOX_LOWER="+root, "SXMAKE_SANDBOX_UPPER="+upper)
	out, _ := helper.CombinedOutput()
	want := "helper: ulimit -Hn 16384\n"
	if !hasCapSysResource(t) {
		want = "helper: steps run with RLIMIT_NOFILE 2048:16384 (StageX's --ulimit nofile=2048:16384), above sxmake's own hard limit of 4096, " +
			"which only a process with CAP_SYS_RESOURCE may raise: start sxmake with a hard limit of at least 16384 " +
			"(prlimit --nofile=:16384 --pid PID from a shell that has the capability, docker run --ulimit nofile=..., or LimitNOFILE= in a systemd unit)\n"
	}
	if diff := cmp.Diff(want, string(out)); diff != "" {
		t.Errorf("helper output (-want +got):\n%s", diff)
	}
}

// lowHardHelper lowers this process's hard nofile limit to 4096 and runs
// `ulimit -Hn` in a step over the lower and upper the environment names.
func lowHardHelper() {
	err := unix.Setrlimit(unix.RLIMIT_NOFILE, &unix.Rlimit{Cur: 1024, Max: 4096})
	var s *sandbox.Sandbox
	if err == nil {
		s, err = sandbox.New(os.Getenv("SXMAKE_SANDBOX_STATE"))
	}
	var res sandbox.Result
	if err == nil {
		res, err = s.Run(context.Background(), sandbox.Spec{
			Lower: []string{os.Getenv("SXMAKE_SANDBOX_LOWER")},
			Upper: os.Getenv("SXMAKE_SANDBOX_UPPER"),
			Args:  []string{"/bin/sh", "-c", "echo ulimit -Hn $(ulimit -Hn)"},
		})
	}
	if err != nil {
		fmt.Println("helper:", err)
		os.Exit(1)
	}
	fmt.Printf("helper: %s", res.Log)
	os.Exit(0)
}

func hasCapSysResource(t *testing.T) bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if err := unix.Capget(&hdr, &data[0]); err != nil {
		t.Fatal(err)
	}
	return data[unix.CAP_SYS_RESOURCE/32].Effective&(1<<(unix.CAP_SYS_RESOURCE%32)) != 0
}
