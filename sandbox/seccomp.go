package sandbox

import (
	"runtime"

	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// deniedSyscalls fail with EPERM in every step: they load code into the
// kernel, reconfigure the machine, reach the kernel keyring, or open
// kernel attack surface no build needs. Most already need a capability a
// step does not have; the profile is a second wall, as Docker's is.
var deniedSyscalls = []string{
	"acct", "add_key", "bpf", "clock_adjtime", "clock_settime",
	"create_module", "delete_module", "finit_module", "fanotify_init",
	"fsconfig", "fsmount", "fsopen", "fspick", "get_kernel_syms",
	"init_module", "io_uring_enter", "io_uring_register", "io_uring_setup",
	"ioperm", "iopl", "kcmp", "kexec_file_load", "kexec_load", "keyctl",
	"lookup_dcookie", "mount", "mount_setattr", "move_mount",
	"name_to_handle_at", "nfsservctl", "open_by_handle_at", "open_tree",
	"perf_event_open", "pivot_root", "query_module", "quotactl",
	"quotactl_fd", "reboot", "request_key", "setns", "settimeofday",
	"stime", "swapoff", "swapon", "_sysctl", "syslog", "umount", "umount2",
	"unshare", "uselib", "userfaultfd", "ustat", "vhangup",
}

// deniedSocketFamilies fail socket(2) with EPERM, as under the default
// profiles of Docker and containerd (v2.4): AF_VSOCK reaches the host and
// virtual machines through no network namespace, AF_ALG is the kernel's
// cryptography API, attack surface no build needs. Families from
// firstUnknownFamily on (AF_MAX of Linux 6; no such family yet) are
// denied too, as containerd's allow-list does.
var deniedSocketFamilies = []uint64{unix.AF_ALG, unix.AF_VSOCK}

const firstUnknownFamily = 46

// seccompProfile allows every system call but deniedSyscalls, clone with
// CLONE_NEWUSER (a user namespace would give back the capabilities the
// step lacks), clone3 (its flags cannot be filtered: it fails with ENOSYS
// so that libc falls back to clone, as under Docker's profile), and
// socket(2) of deniedSocketFamilies. Like Docker's and containerd's
// profiles it cannot filter the socket families of socketcall(2), which
// 32-bit x86 programs may use instead of socket(2): its arguments are
// behind a pointer.
// It covers the native and the 32-bit x86 system call tables, so linux/386
// steps are filtered too. Unlike Docker's, it leaves the x32 table out: a
// program of the x32 ABI, which no StageX platform uses and Debian's
// kernels disable by default, is killed at its first system call
// (libseccomp's action for an architecture the filter does not name).
// Each table costs the init of every step about 0.5 ms to compile.
func seccompProfile() *specs.LinuxSeccomp {
	var arches []specs.Arch // the native one only
	if runtime.GOARCH == "amd64" {
		arches = []specs.Arch{specs.ArchX86_64, specs.ArchX86}
	}
	eperm := uint(unix.EPERM)
	enosys := uint(unix.ENOSYS)
	socket := func(op specs.LinuxSeccompOperator, family uint64) specs.LinuxSyscall {
		return specs.LinuxSyscall{
			Names: []string{"socket"}, Action: specs.ActErrno, ErrnoRet: &eperm,
			Args: []specs.LinuxSeccompArg{{Index: 0, Value: family, Op: op}},
		}
	}
	var sockets []specs.LinuxSyscall
	for _, f := range deniedSocketFamilies {
		sockets = append(sockets, socket(specs.OpEqualTo, f))
	}
	sockets = append(sockets, socket(specs.OpGreaterEqual, firstUnknownFamily))
	return &specs.LinuxSeccomp{
		DefaultAction: specs.ActAllow,
		Architectures: arches,
		Syscalls: append([]specs.LinuxSyscall{
			{Names: deniedSyscalls, Action: specs.ActErrno, ErrnoRet: &eperm},
			{Names: []string{"clone3"}, Action: specs.ActErrno, ErrnoRet: &enosys},
			{
				Names:    []string{"clone"},
				Action:   specs.ActErrno,
				ErrnoRet: &eperm,
				Args: []specs.LinuxSeccompArg{{
					Index: 0, Value: unix.CLONE_NEWUSER, ValueTwo: unix.CLONE_NEWUSER,
					Op: specs.OpMaskedEqual,
				}},
			},
		}, sockets...),
	}
}
