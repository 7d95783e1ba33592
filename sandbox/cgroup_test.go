package sandbox

import (
	"os"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// TestFavorDynmodsPrivate checks that the favordynmods hierarchy exists
// while the process runs and that its mount is seen by no namespace but
// the holding thread's: neither the process's own (which steps start
// from) nor the host's.
func TestFavorDynmodsPrivate(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	<-favorDynmods()
	if !favoring.Load() {
		t.Skip("the kernel refuses a cgroup v1 hierarchy with favordynmods")
	}
	own, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(own), ":name=sxmake:") {
		t.Errorf("/proc/self/cgroup lists no name=sxmake hierarchy:\n%s", own)
	}
	for _, p := range []string{"/proc/self/mountinfo", "/proc/1/mountinfo"} {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		for _, line := range strings.Split(string(b), "\n") {
			if strings.Contains(line, "name=sxmake") {
				t.Errorf("%s shows the hierarchy: %s", p, line)
			}
		}
	}
}

// TestWarmCgroupLockMovesNothing checks that the warm-up move leaves the
// process in the cgroups it was in.
func TestWarmCgroupLockMovesNothing(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	if ownCgroupProcs() == "" {
		t.Skip("no cgroup file system")
	}
	before, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if err := moveToOwnCgroup(); err != nil {
		t.Fatalf("moving into %s: %v", ownCgroupProcs(), err)
	}
	after, err := os.ReadFile("/proc/self/cgroup")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(string(before), string(after)); diff != "" {
		t.Errorf("the process changed cgroups (-before +after):\n%s", diff)
	}
}
