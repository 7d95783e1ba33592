package sandbox

import (
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/opencontainers/cgroups"
	"golang.org/x/sys/unix"
)

// Moving a process into a cgroup (writing its pid to cgroup.procs) takes
// the kernel's global cgroup_threadgroup_rwsem for writing, and the first
// writer after a quiet spell waits for an RCU grace period, 10-12 ms on
// a 250 Hz kernel; writers that come within a grace period of the
// previous one do not wait. libcontainer moves each step's init into its
// cgroups just after starting it, and nothing it does before can overlap
// that wait. Two remedies, the first preferred:
//
//   - favorDynmods keeps the lock, for the life of the process, in the
//     mode where moves never wait;
//   - where the kernel does not allow that, warmCgroupLock starts the
//     wait in the background when a step begins, with a move that changes
//     nothing: sxmake's own pid written into the cgroup it is already in.
//     The grace period then runs while Run mounts the rootfs, writes the
//     state and starts the init, and libcontainer's move waits only for
//     what is left. If the write fails (no cgroup file system, say), Run
//     goes on and pays the full wait.

// ownCgroupProcs is the cgroup.procs file of the cgroup sxmake is in, in
// one hierarchy (the unified one under cgroup v2, pids, devices or
// memory under v1); "" when none is found.
var ownCgroupProcs = sync.OnceValue(func() string {
	own, err := cgroups.ParseCgroupFile("/proc/self/cgroup")
	if err != nil {
		return ""
	}
	if cgroups.IsCgroup2UnifiedMode() {
		if p, ok := own[""]; ok {
			return filepath.Join("/sys/fs/cgroup", p, "cgroup.procs")
		}
		return ""
	}
	for _, sub := range []string{"pids", "devices", "memory"} {
		if _, ok := own[sub]; !ok {
			continue
		}
		if dir, err := cgroups.GetOwnCgroupPath(sub); err == nil {
			return filepath.Join(dir, "cgroup.procs")
		}
	}
	return ""
})

// warmCgroupLock starts, in the background, the grace period that the
// step's move into its cgroups would otherwise wait for (see above),
// unless favorDynmods holds the lock in the mode that needs none.
func warmCgroupLock() {
	if favoring.Load() || ownCgroupProcs() == "" {
		return
	}
	go func() { _ = moveToOwnCgroup() }()
}

// moveToOwnCgroup writes sxmake's pid into the cgroup it is in.
func moveToOwnCgroup() error {
	f, err := os.OpenFile(ownCgroupProcs(), os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	_, err = f.WriteString(strconv.Itoa(os.Getpid()))
	return err
}

// favoring is set once favorDynmods has taken effect.
var favoring atomic.Bool

// favorDynmods removes the grace period from every move for as long as
// sxmake runs, with the kernel's favordynmods option (Linux 6.0 and
// later): while some cgroup hierarchy is mounted with it, the lock stays
// in the mode that makes moves fast, at the documented cost of a
// slightly slower fork and exit for every process of the host. sxmake
// mounts a hierarchy of its own, "name=sxmake" with no controller, from a
// thread that moved to a mount namespace of its own and then sleeps for
// the life of the process. Nothing else sees the mount; no process is
// ever moved into the hierarchy. When sxmake exits, however it exits, the
// thread, its namespace, the mount and so the hierarchy go, and the lock
// returns to its default mode. Another sxmake mounting the same hierarchy
// shares it. On kernels without the option, or without cgroup v1 named
// hierarchies, it does nothing and the warm-up above is used. The mount
// is on "/" (seen only by the thread), which nobody can remove from under
// it.
//
// It returns at once; the returned channel is closed when the attempt is
// over (the mount itself waits for a grace period).
func favorDynmods() <-chan struct{} {
	favorOnce.Do(func() {
		go func() {
			// Never unlocked: the thread must keep its namespace to the
			// end, and if the goroutine returns, the runtime ends the
			// thread with it (and the namespace, if it got one).
			runtime.LockOSThread()
			ok := mountFavorDynmods()
			favoring.Store(ok)
			close(favorDone)
			if ok {
				select {}
			}
		}()
	})
	return favorDone
}

// mountFavorDynmods moves the calling thread to a mount namespace of its
// own and mounts the favordynmods hierarchy on its "/".
func mountFavorDynmods() bool {
	if unix.Unshare(unix.CLONE_NEWNS|unix.CLONE_FS) != nil {
		return false
	}
	// Private first, or the mount would propagate to the host's namespace.
	if unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, "") != nil {
		return false
	}
	return unix.Mount("cgroup", "/", "cgroup", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, "none,name=sxmake,favordynmods") == nil
}

var (
	favorOnce sync.Once
	favorDone = make(chan struct{})
)
