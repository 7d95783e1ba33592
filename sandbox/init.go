package sandbox

import (
	"os"
	"runtime"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"

	// The cgroup v1 devices controller, which libcontainer needs to give a
	// step exactly its /dev.
	_ "github.com/opencontainers/cgroups/devices"
	// nsenter's C constructor joins the namespaces before the Go runtime
	// starts in the re-executed init; it requires cgo.
	_ "github.com/opencontainers/runc/libcontainer/nsenter"
)

// init keeps the main goroutine on the main thread for the life of the
// process (the Go runtime's documented effect of LockOSThread in an init
// function), so no other goroutine ever runs there. libcontainer joins
// each container's mount namespace from a goroutine locked to a thread
// that is then discarded; had that been the main thread, which the runtime
// never discards, the process would keep that namespace, and the step's
// mounts, alive until it exits.
func init() {
	runtime.LockOSThread()
}

// Init turns this process into a container's init when it was started as
// one by [Sandbox.Run] (argv[1] is "init" and libcontainer's init pipe is
// in the environment), or into the reaper [New] starts (see reaper.go);
// it then never returns. Otherwise it returns at once. Call it first thing in main, and in TestMain of any test binary
// that runs steps.
func Init() {
	if len(os.Args) > 1 && os.Args[1] == "init" && os.Getenv("_LIBCONTAINER_INITPIPE") != "" {
		// This is the step's init (pid 1 of its pid namespace once it
		// execs the step), forked by libcontainer's nsexec helpers, which
		// the kernel does not pass the parent-death signal libcontainer
		// gives the first helper (it is cleared on fork). Set it again
		// here, as the init's own: when the sxmake thread that started
		// the step dies (sxmake killed with SIGKILL), the init gets
		// SIGKILL, and with it every process of the step. libcontainer
		// keeps the setting across its change of user, and the exec of
		// the step keeps it (no_new_privs: no setuid exec clears it).
		_ = unix.Prctl(unix.PR_SET_PDEATHSIG, uintptr(unix.SIGKILL), 0, 0, 0)
		libcontainer.Init()
	}
	if isReaper() {
		reap()
	}
}
