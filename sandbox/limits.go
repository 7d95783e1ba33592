package sandbox

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"

	"github.com/opencontainers/runc/libcontainer"
)

// ErrLimit is returned (wrapped) when a step reached its memory or task
// limit: the kernel killed it for memory, or refused it a process or
// thread. It is an error even when the step then exited 0, because a step
// that met a limit may have behaved otherwise than it would have without
// (a build tool falling back to fewer jobs, say). A step that meets no
// limit runs as it would with none, so limits change no byte of a step
// that succeeds, and are no input of its action key.
var ErrLimit = errors.New("step reached its limit")

// DefaultLimits are the limits of a step unless the caller chooses
// others: values a real build does not reach, but a fork bomb or a memory
// runaway does, before the host suffers.
//
//   - Memory: three quarters of the host's memory (MemTotal), so that a
//     runaway step is killed while the host keeps a quarter. Steps running
//     at once each have this limit.
//   - Pids: 15% of the kernel's limit on tasks (the lower of pid_max and
//     threads-max), systemd's default TasksMax for a service: 4915 tasks
//     where pid_max is 32768. It counts threads.
//
// No timeout: a compiler build under qemu can take a day.
var DefaultLimits = sync.OnceValue(func() Limits {
	var l Limits
	if total := memTotal(); total > 0 {
		l.Memory = total / 4 * 3
	}
	tasks := min(readInt("/proc/sys/kernel/pid_max"), readInt("/proc/sys/kernel/threads-max"))
	if tasks > 0 {
		l.Pids = tasks * 15 / 100
	}
	return l
})

// memTotal returns the host's memory in bytes, or 0 when unknown.
func memTotal() int64 {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if kb, ok := strings.CutPrefix(sc.Text(), "MemTotal:"); ok {
			n, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(kb), "kB")), 10, 64)
			return n << 10
		}
	}
	return 0
}

// readInt reads a file holding one decimal number; 0 when it cannot.
func readInt(path string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	n, _ := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	return n
}

// limitsReached reports, as an error wrapping ErrLimit, the limits of l
// the container c's processes reached, read from its cgroups' event
// counters (cgroup v1 and v2); nil when none.
func limitsReached(c *libcontainer.Container, l Limits) error {
	st, err := c.State()
	if err != nil {
		return nil
	}
	paths := st.CgroupPaths
	var reached []string
	if l.Memory > 0 {
		if p, ok := cgroupFile(paths, "memory", "memory.oom_control", "memory.events"); ok && counter(p, "oom_kill") > 0 {
			reached = append(reached, fmt.Sprintf("memory (%d MiB): a process was killed", l.Memory>>20))
		}
	}
	if l.Pids > 0 {
		if p, ok := cgroupFile(paths, "pids", "pids.events", "pids.events"); ok && counter(p, "max") > 0 {
			reached = append(reached, fmt.Sprintf("tasks (%d): a process or thread was refused", l.Pids))
		}
	}
	if len(reached) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrLimit, strings.Join(reached, "; "))
}

// cgroupFile returns the path of a controller's file: v1 in the
// controller's hierarchy, v2 in the unified one.
func cgroupFile(paths map[string]string, controller, v1, v2 string) (string, bool) {
	if dir, ok := paths[controller]; ok {
		return filepath.Join(dir, v1), true
	}
	if dir, ok := paths[""]; ok {
		return filepath.Join(dir, v2), true
	}
	return "", false
}

// counter returns the value of key in a flat-keyed cgroup file ("key N"
// lines), 0 when absent.
func counter(path, key string) int64 {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, " "); ok && k == key {
			n, _ := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			return n
		}
	}
	return 0
}
