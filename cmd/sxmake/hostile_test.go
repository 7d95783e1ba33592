package main

import (
	"bufio"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"testing"

	"github.com/rogpeppe/go-internal/testscript"

	"github.com/stagex/sxmake/sandbox"
	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// TestHostile runs the scripts of testdata/hostile: each builds a package
// tree written as an attacker would (package definitions are hostile
// input) and checks the host afterwards, with markers under $WORK. They
// need root; SXMAKE_TEST_ROOT=1 (CI) makes them fail instead of skipping.
func TestHostile(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	testscript.Run(t, testscript.Params{
		Dir:  filepath.Join(repoTestdata(t), "hostile"),
		Cmds: hostileCmds,
	})
}

// hostileCmds are the scripts' own commands.
var hostileCmds = map[string]func(ts *testscript.TestScript, neg bool, args []string){
	"expand":       cmdExpand,
	"open-parents": cmdOpenParents,
	"nobody-exec":  cmdNobodyExec,
	"waitproc":     cmdWaitProc,
	"step-gone":    cmdStepGone,
	"cgroup":       cmdCgroup,
	"mkfifo":       cmdMkfifo,
}

// mkfifo PATH: make a FIFO, which blocks whoever opens it for reading.
func cmdMkfifo(ts *testscript.TestScript, neg bool, args []string) {
	ts.Check(syscall.Mkfifo(ts.MkAbs(args[0]), 0o644))
}

// expand FILE...: replace $VAR and ${VAR} in each file by the script's
// environment ($WORK, say), so a tree can name paths of the test.
func cmdExpand(ts *testscript.TestScript, neg bool, args []string) {
	for _, f := range args {
		p := ts.MkAbs(f)
		ts.Check(os.WriteFile(p, []byte(os.Expand(ts.ReadFile(f), ts.Getenv)), 0o644))
	}
}

// open-parents DIR: make DIR and every directory above it mode 0755, as a
// cache under /var/cache or a home directory would be: reachable by other
// users.
func cmdOpenParents(ts *testscript.TestScript, neg bool, args []string) {
	for d := ts.MkAbs(args[0]); d != "/"; d = filepath.Dir(d) {
		ts.Check(os.Chmod(d, 0o755))
	}
}

// nobody-exec DIR: execute, as user nobody, every setuid file under DIR;
// it succeeds if nobody could execute one. DIR must hold one.
func cmdNobodyExec(ts *testscript.TestScript, neg bool, args []string) {
	var found []string
	filepath.WalkDir(ts.MkAbs(args[0]), func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil && fi.Mode()&fs.ModeSetuid != 0 {
				found = append(found, p)
			}
		}
		return nil
	})
	if len(found) == 0 {
		ts.Fatalf("no setuid file under %s", args[0])
	}
	var ran []string
	for _, p := range found {
		cmd := exec.Command(p, "true")
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534, NoSetGroups: true}}
		err := cmd.Start()
		if err == nil {
			cmd.Wait()
			ran = append(ran, p)
			continue
		}
		ts.Logf("nobody cannot execute %s: %v", p, err)
	}
	if len(ran) > 0 && !neg {
		return
	}
	if len(ran) > 0 {
		ts.Fatalf("nobody executed setuid root files: %s", strings.Join(ran, " "))
	}
	if !neg {
		ts.Fatalf("nobody could execute none of %s", strings.Join(found, " "))
	}
}

// waitproc REGEXP: wait until a process whose command line (arguments
// joined by spaces) matches REGEXP runs, and set $STEP_CGROUP to its pids
// cgroup (the step's).
func cmdWaitProc(ts *testscript.TestScript, neg bool, args []string) {
	re := regexp.MustCompile(args[0])
	for deadline := time.Now().Add(2 * time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		if pids := processes(re); len(pids) > 0 {
			ts.Setenv("STEP_CGROUP", pidsCgroup(pids[0]))
			return
		}
	}
	ts.Fatalf("no process matches %s", args[0])
}

// step-gone REGEXP DIR: wait until no process matches REGEXP, nothing is
// mounted under DIR and the cgroup $STEP_CGROUP is gone from every
// hierarchy. It polls for a minute (a bound, not a speed asserted) and
// then fails, naming what is left.
func cmdStepGone(ts *testscript.TestScript, neg bool, args []string) {
	re := regexp.MustCompile(args[0])
	dir := ts.MkAbs(args[1])
	cg := ts.Getenv("STEP_CGROUP")
	var left []string
	for deadline := time.Now().Add(time.Minute); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		left = nil
		for _, pid := range processes(re) {
			left = append(left, "process "+strconv.Itoa(pid))
		}
		left = append(left, mountsUnder(dir)...)
		if cg != "" {
			hier, _ := filepath.Glob("/sys/fs/cgroup/*" + cg)
			left = append(left, hier...)
		}
		if len(left) == 0 {
			return
		}
	}
	ts.Fatalf("left after a minute: %s", strings.Join(left, ", "))
}

// cgroup NAME pids=N memory=BYTES: create the cgroup NAME (made unique)
// in the pids and memory hierarchies with these limits, set $CGROUP to
// its path, and remove it when the script ends. Steps run under it with
// --cgroup-parent $CGROUP cannot hurt the machine whatever sxmake's own
// limits are.
func cmdCgroup(ts *testscript.TestScript, neg bool, args []string) {
	name := fmt.Sprintf("%s-%d", args[0], os.Getpid())
	limits := map[string][2]string{
		"pids":   {"pids", "pids.max"},
		"memory": {"memory", "memory.limit_in_bytes"},
	}
	ts.Defer(func() {
		// Every hierarchy: libcontainer makes NAME in each for the steps.
		dirs, _ := filepath.Glob(filepath.Join("/sys/fs/cgroup/*", name))
		for _, d := range dirs {
			// Children first: the steps' cgroups, if any were left.
			entries, _ := os.ReadDir(d)
			for _, e := range entries {
				if e.IsDir() {
					os.Remove(filepath.Join(d, e.Name()))
				}
			}
			os.Remove(d)
		}
	})
	for _, a := range args[1:] {
		k, v, _ := strings.Cut(a, "=")
		l, ok := limits[k]
		if !ok {
			ts.Fatalf("unknown limit %s", a)
		}
		d := filepath.Join("/sys/fs/cgroup", l[0], name)
		ts.Check(os.MkdirAll(d, 0o755))
		ts.Check(os.WriteFile(filepath.Join(d, l[1]), []byte(v), 0o644))
	}
	ts.Setenv("CGROUP", "/"+name)
}

// processes returns the pids whose command line matches re.
func processes(re *regexp.Regexp) []int {
	entries, _ := os.ReadDir("/proc")
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err != nil || len(b) == 0 {
			continue
		}
		if re.MatchString(strings.TrimSpace(strings.ReplaceAll(string(b), "\x00", " "))) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// pidsCgroup returns pid's cgroup in the pids hierarchy ("/sxmake/sx-..."),
// or "" when unknown.
func pidsCgroup(pid int) string {
	f, err := os.Open(fmt.Sprintf("/proc/%d/cgroup", pid))
	if err != nil {
		return ""
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		parts := strings.SplitN(sc.Text(), ":", 3)
		if len(parts) == 3 && parts[1] == "pids" {
			return parts[2]
		}
	}
	return ""
}

// mountsUnder lists the mount points under dir.
func mountsUnder(dir string) []string {
	b, err := os.ReadFile("/proc/self/mountinfo")
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	var out []string
	for _, line := range strings.Split(string(b), "\n") {
		if f := strings.Fields(line); len(f) > 4 && strings.HasPrefix(f[4], dir+"/") {
			out = append(out, "mount "+f[4])
		}
	}
	return out
}

// TestStepLimitFlags: without flags a step gets sandbox.DefaultLimits;
// each --step-* flag changes its limit, 0 removing it.
func TestStepLimitFlags(t *testing.T) {
	def := sandbox.DefaultLimits()
	tests := []struct {
		memory  string
		pids    int64
		timeout time.Duration
		want    sandbox.Limits
	}{
		{"", -1, 0, def},
		{"256M", -1, 0, sandbox.Limits{Memory: 256 << 20, Pids: def.Pids}},
		{"0", 0, 0, sandbox.Limits{}},
		{"", 500, 90 * time.Minute, sandbox.Limits{Memory: def.Memory, Pids: 500, Timeout: 90 * time.Minute}},
	}
	for _, tc := range tests {
		bf := &buildFlags{stepMemory: -1, stepPids: tc.pids, stepTimeout: tc.timeout}
		if tc.memory != "" {
			if err := bf.stepMemory.Set(tc.memory); err != nil {
				t.Fatal(err)
			}
		}
		if got := bf.stepLimits(); got != tc.want {
			t.Errorf("%+v: limits %+v, want %+v", tc, got, tc.want)
		}
	}
}
