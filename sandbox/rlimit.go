package sandbox

import (
	"fmt"
	"strconv"
	"strings"
	"sync"

	"github.com/opencontainers/runc/libcontainer/configs"
	"golang.org/x/sys/unix"
)

// Rlimit is a resource limit (setrlimit(2)) a step runs with.
type Rlimit struct {
	Type       string // "RLIMIT_NOFILE"
	Resource   int    // unix.RLIMIT_NOFILE
	Soft, Hard uint64 // Unlimited for no limit
}

// Unlimited is the value of a limit that does not limit (RLIM_INFINITY).
const Unlimited = unix.RLIM_INFINITY

// Rlimits are the resource limits of every step, whatever sxmake's own
// are. BuildKit v0.26.3 sets exactly the limits its --ulimit frontend
// option lists (buildx passes StageX's --ulimit nofile=2048:16384 as
// that option) and leaves every other one as buildkitd had it. sxmake
// pins those to Linux's defaults for init, which buildkitd has when the
// service manager starting it changes none. Three limits are not pinned,
// and a step has sxmake's own, as BuildKit's steps have buildkitd's:
// RLIMIT_NPROC and RLIMIT_SIGPENDING, which Linux sizes from the machine's
// memory, and RLIMIT_MEMLOCK, whose default changed in Linux 5.16.
var Rlimits = []Rlimit{
	{"RLIMIT_NOFILE", unix.RLIMIT_NOFILE, 2048, 16384}, // StageX's --ulimit nofile=2048:16384
	{"RLIMIT_CPU", unix.RLIMIT_CPU, Unlimited, Unlimited},
	{"RLIMIT_FSIZE", unix.RLIMIT_FSIZE, Unlimited, Unlimited},
	{"RLIMIT_DATA", unix.RLIMIT_DATA, Unlimited, Unlimited},
	{"RLIMIT_STACK", unix.RLIMIT_STACK, 8 << 20, Unlimited},
	{"RLIMIT_CORE", unix.RLIMIT_CORE, 0, Unlimited},
	{"RLIMIT_RSS", unix.RLIMIT_RSS, Unlimited, Unlimited},
	{"RLIMIT_AS", unix.RLIMIT_AS, Unlimited, Unlimited},
	{"RLIMIT_LOCKS", unix.RLIMIT_LOCKS, Unlimited, Unlimited},
	{"RLIMIT_MSGQUEUE", unix.RLIMIT_MSGQUEUE, 819200, 819200},
	{"RLIMIT_NICE", unix.RLIMIT_NICE, 0, 0},
	{"RLIMIT_RTPRIO", unix.RLIMIT_RTPRIO, 0, 0},
	{"RLIMIT_RTTIME", unix.RLIMIT_RTTIME, Unlimited, Unlimited},
}

// RlimitsKey is Rlimits as one line, for action keys: a change of the
// limits changes every RUN's key.
func RlimitsKey() string {
	parts := make([]string, len(Rlimits))
	for i, r := range Rlimits {
		parts[i] = strings.ToLower(strings.TrimPrefix(r.Type, "RLIMIT_")) + "=" + limitString(r.Soft) + ":" + limitString(r.Hard)
	}
	return strings.Join(parts, ",")
}

func limitString(v uint64) string {
	if v == Unlimited {
		return "unlimited"
	}
	return strconv.FormatUint(v, 10)
}

// processRlimits are Rlimits for libcontainer, which sets them on the
// step's init from sxmake (prlimit) before the init execs the step. (runc
// reads them from the runtime spec's process; libcontainer's spec
// conversion leaves them out.)
func processRlimits() []configs.Rlimit {
	out := make([]configs.Rlimit, len(Rlimits))
	for i, r := range Rlimits {
		out[i] = configs.Rlimit{Type: r.Resource, Soft: r.Soft, Hard: r.Hard}
	}
	return out
}

// checkRlimits reports a limit of Rlimits that this process cannot give a
// step: raising a hard limit needs CAP_SYS_RESOURCE, which root may lack
// (in a container, for one). BuildKit's runc fails the same way there
// ("error setting rlimit type 7: operation not permitted").
var checkRlimits = sync.OnceValue(func() error {
	for _, r := range Rlimits {
		var have unix.Rlimit
		if err := unix.Getrlimit(r.Resource, &have); err != nil {
			return fmt.Errorf("reading %s: %w", r.Type, err)
		}
		if r.Hard <= have.Max || hasCapSysResource() {
			continue
		}
		name := strings.ToLower(strings.TrimPrefix(r.Type, "RLIMIT_"))
		return fmt.Errorf("steps run with %s %s:%s (%s), above sxmake's own hard limit of %s, which only a process with CAP_SYS_RESOURCE may raise: "+
			"start sxmake with a hard limit of at least %s (prlimit --%s=:%s --pid PID from a shell that has the capability, docker run --ulimit %s=..., or Limit%s= in a systemd unit)",
			r.Type, limitString(r.Soft), limitString(r.Hard), rlimitOrigin(r), limitString(have.Max),
			limitString(r.Hard), name, limitString(r.Hard), name, strings.TrimPrefix(r.Type, "RLIMIT_"))
	}
	return nil
})

func rlimitOrigin(r Rlimit) string {
	if r.Resource == unix.RLIMIT_NOFILE {
		return "StageX's --ulimit nofile=2048:16384"
	}
	return "Linux's default, as under BuildKit"
}

// hasCapSysResource reports whether this process may raise hard limits.
func hasCapSysResource() bool {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var data [2]unix.CapUserData
	if unix.Capget(&hdr, &data[0]) != nil {
		return false
	}
	const bit = unix.CAP_SYS_RESOURCE
	return data[bit/32].Effective&(1<<(bit%32)) != 0
}
