package sandbox

import (
	"fmt"
	"os"
	"sync"

	"github.com/opencontainers/runc/libcontainer/configs"
	lcseccomp "github.com/opencontainers/runc/libcontainer/seccomp"
	"github.com/opencontainers/runc/libcontainer/specconv"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	"golang.org/x/sys/unix"
)

// defaultCaps is Docker's (and containerd's, hence BuildKit's) default
// capability set.
var defaultCaps = []string{
	"CAP_CHOWN",
	"CAP_DAC_OVERRIDE",
	"CAP_FSETID",
	"CAP_FOWNER",
	"CAP_MKNOD",
	"CAP_NET_RAW",
	"CAP_SETGID",
	"CAP_SETUID",
	"CAP_SETFCAP",
	"CAP_SETPCAP",
	"CAP_NET_BIND_SERVICE",
	"CAP_SYS_CHROOT",
	"CAP_KILL",
	"CAP_AUDIT_WRITE",
}

// maskedPaths and readonlyPaths are Docker's defaults.
var (
	maskedPaths = []string{
		"/proc/acpi",
		"/proc/asound",
		"/proc/interrupts",
		"/proc/kcore",
		"/proc/keys",
		"/proc/latency_stats",
		"/proc/timer_list",
		"/proc/timer_stats",
		"/proc/sched_debug",
		"/sys/firmware",
		"/sys/devices/virtual/powercap",
		"/proc/scsi",
	}
	readonlyPaths = []string{
		"/proc/bus",
		"/proc/fs",
		"/proc/irq",
		"/proc/sys",
		"/proc/sysrq-trigger",
	}
)

// runtimeSpec is the OCI runtime spec of one step, before conversion to a
// libcontainer config. Process arguments, environment and user are given
// to libcontainer separately (see Sandbox.Run).
type runtimeSpec struct {
	id       string // container id
	cgroup   string // cgroup path
	rootfs   string // the mounted overlay
	hosts    string // host path of the file mounted at /etc/hosts
	resolv   string // host path of the file mounted at /etc/resolv.conf
	hostname string
	network  Network
	limits   Limits
}

// ociSpec returns the OCI runtime spec for r.
func (r *runtimeSpec) ociSpec() *specs.Spec {
	umask := uint32(0o022)
	s := &specs.Spec{
		Version:  specs.Version,
		Root:     &specs.Root{Path: r.rootfs},
		Hostname: r.hostname,
		Process: &specs.Process{
			Cwd:             "/",
			NoNewPrivileges: true,
			User:            specs.User{Umask: &umask},
			Capabilities: &specs.LinuxCapabilities{
				Bounding:  defaultCaps,
				Permitted: defaultCaps,
				Effective: defaultCaps,
			},
		},
		Mounts: r.mounts(),
		Linux: &specs.Linux{
			MaskedPaths:   maskedPaths,
			ReadonlyPaths: readonlyPaths,
			CgroupsPath:   r.cgroup,
			Resources:     r.resources(),
			Namespaces:    r.namespaces(),
			TimeOffsets:   r.timeOffsets(),
		},
	}
	if lcseccomp.Enabled {
		s.Linux.Seccomp = seccompProfile()
	}
	return s
}

// mounts are containerd's default mounts with BuildKit's changes (no /run,
// read-only binds of hosts and resolv.conf) but without BuildKit's
// read-only /sys/fs/cgroup: under cgroup v1 it costs two mounts per
// hierarchy, a third of a step's start-up, and builds do not read it.
func (r *runtimeSpec) mounts() []specs.Mount {
	return []specs.Mount{
		{Destination: "/proc", Type: "proc", Source: "proc", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/dev", Type: "tmpfs", Source: "tmpfs", Options: []string{"nosuid", "strictatime", "mode=755", "size=65536k"}},
		{Destination: "/dev/pts", Type: "devpts", Source: "devpts", Options: []string{"nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"}},
		{Destination: "/dev/shm", Type: "tmpfs", Source: "shm", Options: []string{"nosuid", "noexec", "nodev", "mode=1777", "size=65536k"}},
		{Destination: "/dev/mqueue", Type: "mqueue", Source: "mqueue", Options: []string{"nosuid", "noexec", "nodev"}},
		{Destination: "/sys", Type: "sysfs", Source: "sysfs", Options: []string{"nosuid", "noexec", "nodev", "ro"}},
		{Destination: "/etc/resolv.conf", Type: "bind", Source: r.resolv, Options: []string{"rbind", "ro"}},
		{Destination: "/etc/hosts", Type: "bind", Source: r.hosts, Options: []string{"rbind", "ro"}},
	}
}

func (r *runtimeSpec) namespaces() []specs.LinuxNamespace {
	ns := []specs.LinuxNamespace{
		{Type: specs.PIDNamespace},
		{Type: specs.IPCNamespace},
		{Type: specs.UTSNamespace},
		{Type: specs.MountNamespace},
		{Type: specs.TimeNamespace},
	}
	if r.network == NetworkNone {
		ns = append(ns, specs.LinuxNamespace{Type: specs.NetworkNamespace})
	}
	return ns
}

// timeOffsets start the step's CLOCK_MONOTONIC and CLOCK_BOOTTIME near one
// second, whatever the host's uptime. The offsets are whole seconds taken
// now, so the clocks read between 1 s and 2 s plus the start-up time when
// the step begins.
func (r *runtimeSpec) timeOffsets() map[string]specs.LinuxTimeOffset {
	var mono, boot unix.Timespec
	if unix.ClockGettime(unix.CLOCK_MONOTONIC, &mono) != nil || unix.ClockGettime(unix.CLOCK_BOOTTIME, &boot) != nil {
		return nil
	}
	return map[string]specs.LinuxTimeOffset{
		"monotonic": {Secs: 1 - mono.Sec},
		"boottime":  {Secs: 1 - boot.Sec},
	}
}

func (r *runtimeSpec) resources() *specs.LinuxResources {
	res := &specs.LinuxResources{
		Devices: []specs.LinuxDeviceCgroup{{Allow: false, Access: "rwm"}},
	}
	if r.limits.Memory > 0 {
		m := r.limits.Memory
		res.Memory = &specs.LinuxMemory{Limit: &m}
		if swapLimitSupported() {
			// Memory plus swap capped at the memory limit: no swap.
			res.Memory.Swap = &m
		}
	}
	if r.limits.Pids > 0 {
		p := r.limits.Pids
		res.Pids = &specs.LinuxPids{Limit: &p}
	}
	return res
}

// swapLimitSupported reports whether the memory controller can limit
// swap: always with cgroup v2, with swap accounting under v1.
var swapLimitSupported = sync.OnceValue(func() bool {
	for _, p := range []string{"/sys/fs/cgroup/cgroup.controllers", "/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes"} {
		if _, err := os.Stat(p); err == nil {
			return true
		}
	}
	return false
})

// config converts r to a libcontainer config.
func (r *runtimeSpec) config() (*configs.Config, error) {
	c, err := specconv.CreateLibcontainerConfig(&specconv.CreateOpts{
		CgroupName: r.id,
		Spec:       r.ociSpec(),
	})
	if err != nil {
		return nil, fmt.Errorf("converting runtime spec: %w", err)
	}
	// The step dies with sxmake.
	c.ParentDeathSignal = int(unix.SIGKILL)
	return c, nil
}
