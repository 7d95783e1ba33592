// Package sandbox runs one build step (the process of a Containerfile RUN)
// in a libcontainer container, in-process: the sxmake binary itself is the
// container runtime, re-executed as the container's init. No runc binary is
// needed at run time.
//
// # Vocabulary
//
//   - step: one process to run, described by a [Spec]: its arguments,
//     environment, working directory, user, platform, network policy and
//     limits.
//   - lower: a read-only layer directory (an unpacked layer of the parent
//     snapshot). Spec.Lower lists them top first, as overlayfs wants.
//   - upper: the fresh, empty directory that receives every change the step
//     makes to its root file system. After Run it holds the step's diff in
//     overlayfs form (whiteouts as 0/0 character devices, opaque directories
//     as trusted.overlay.opaque xattrs).
//   - work: overlayfs's scratch directory; same file system as upper, empty.
//   - rootfs: the overlay of the lowers and the upper, mounted privately
//     under the sandbox's state directory for the duration of one Run.
//     It is mounted volatile: nothing syncs the upper directory to disk,
//     neither the step's fsync calls nor the unmount (which would otherwise
//     sync the whole file system holding it, 10 ms or far more per step).
//     The caller reads the diff back through the page cache; it is not
//     crash-safe until the caller syncs it. A work directory is therefore
//     good for one Run only.
//   - init: the re-executed sxmake process that sets the container up
//     (namespaces, mounts, capabilities) and then execs the step. [Init] must
//     be the first call in main (and in TestMain of tests running steps).
//     Importing this package locks the main goroutine to the main thread
//     (see init.go).
//   - network policy: [NetworkNone] (default; a network namespace with only
//     lo) or [NetworkHost] (the host's network namespace, an explicit opt-in).
//     The policy is an input of the step's action key.
//
// # What a step sees
//
// The mounts a BuildKit v0.26.3 RUN gets with the runc worker: the overlay
// root, /proc, a tmpfs /dev holding only null, zero, full, random, urandom,
// tty, ptmx, pts/ and shm/, /dev/mqueue, a read-only /sys and a read-only
// /etc/hosts and /etc/resolv.conf bind-mounted from the state directory;
// Docker's masked and read-only paths under /proc and /sys. One
// difference: no /sys/fs/cgroup (under cgroup v1 it is two mounts per
// hierarchy, a third of a step's start-up, and builds do not read it).
//
// When the rootfs had no /etc/hosts or /etc/resolv.conf (or no /etc), the
// mount points created for them are removed after the step if still empty,
// and their directory's times restored to what they were just before the
// removal, exactly as BuildKit does: so /etc (copied up, or created)
// stays in the upper directory, empty, with the mtime of the stubs'
// creation, as it does in BuildKit's layer. Mount points made for /proc,
// /dev and /sys stay in the diff too, as with BuildKit.
//
// /etc/hosts reads "127.0.0.1 localhost HOSTNAME" and "::1 localhost
// ip6-localhost ip6-loopback", as BuildKit writes it. /etc/resolv.conf is
// empty under NetworkNone (nothing of the host shows) and a copy of the
// host's under NetworkHost.
//
// Namespaces: mount, pid, ipc, uts, time, and net unless the policy is
// NetworkHost. The time namespace starts CLOCK_MONOTONIC and
// CLOCK_BOOTTIME near one second. Linux cannot offset CLOCK_REALTIME;
// reproducible timestamps come from SOURCE_DATE_EPOCH.
//
// Security: Docker's default capability set, no_new_privs (BuildKit does
// not set it; sxmake does, so setuid programs do not raise privileges), and,
// when the binary is built with the "seccomp" build tag (libcontainer's;
// cgo and libseccomp-dev), a seccomp profile denying what no build needs
// (see seccomp.go; AF_VSOCK and AF_ALG sockets included). Memory and pids limits go to a cgroup (cgroupfs
// driver) named sxmake/<id> (see [WithCgroupParent]), removed after the
// step; a memory limit also forbids swap where the kernel accounts it.
// Resource limits (rlimits): StageX's nofile 2048:16384 and Linux's
// defaults for the others, whatever sxmake's own are, except nproc,
// sigpending and memlock, which steps share with sxmake as BuildKit's
// steps share buildkitd's (see [Rlimits]). Without CAP_SYS_RESOURCE, a
// hard limit of [Rlimits] above sxmake's own cannot be given, and Run
// fails before the step starts, naming the limit. A step that reached a
// memory or pids limit fails with [ErrLimit]; [DefaultLimits] are what
// callers give a step unless told otherwise. The state directory is made
// private (0700).
//
// Moving the step's init into its cgroup costs an RCU grace period
// (10-12 ms) unless the kernel's cgroup lock is in its "favordynmods"
// mode. [New] turns that mode on for as long as the process lives, by
// mounting a cgroup v1 hierarchy with no controller, name=sxmake, with
// the favordynmods option, in a mount namespace only one idle thread of
// the process sees; the hierarchy, and with it the mode, go when the
// process exits, however it exits. The mode is host-wide: fork and exit
// of every process cost a little more while it is on (the kernel's
// documented trade-off), and /proc/PID/cgroup lists name=sxmake. Where
// the kernel refuses (before Linux 6.0, or cgroup v1 named hierarchies
// disabled), each Run starts the grace period in the background when it
// begins instead (see cgroup.go), which hides part of it.
//
// Environment: exactly Spec.Env, plus, for each variable Spec.Env does not
// set, the pinned defaults of [Environ]; libcontainer adds HOME from the
// rootfs's passwd when Spec.Env has none, as runc does for BuildKit.
// Nothing of the host's environment is passed. The umask is 022 and the
// hostname "buildkitsandbox" unless Spec.Hostname says otherwise. Standard
// input is /dev/null.
//
// Platforms: the host's runs natively. linux/386 runs natively on an
// amd64 kernel with IA32 emulation, which a probe program tells once per
// process; elsewhere it runs, as linux/arm64 does on amd64, through
// qemu-user-static registered in binfmt_misc with the F flag (see
// [EnsurePlatform]). Result.Emulator says which way a step ran.
//
// # Cleanup
//
// When Run returns, whatever happened (exit, timeout, cancellation), the
// step's whole process tree has been killed (it lives in its own pid
// namespace), its mounts undone and its cgroups removed. The upper
// directory is left for the caller. Callers turn Ctrl-C into a cancelled
// context (signal.NotifyContext) so that Run can clean up. If sxmake is
// killed outright (SIGKILL), its steps die with it: each step's init has
// the parent-death signal SIGKILL, and killing a pid namespace's init
// kills all of it. The reaper [New] starts, a process of its own session,
// then removes their mounts, cgroups and state; should it be killed too,
// the next [New] on the same state directory does.
package sandbox
