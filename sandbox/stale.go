package sandbox

import (
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/runc/libcontainer"
	"golang.org/x/sys/unix"
)

// lockStep creates dir/lock and holds an exclusive flock on it until the
// returned file is closed: the mark of a step in progress, which a sweep
// by another process leaves alone.
func lockStep(dir string) (*os.File, error) {
	f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return nil, fmt.Errorf("creating step lock: %w", err)
	}
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX); err != nil {
		f.Close()
		return nil, fmt.Errorf("locking step: %w", err)
	}
	return f, nil
}

// sweep removes what steps of a process that died without cleaning up
// (SIGKILL, power loss) left in the state directory: their rootfs mounts,
// containers (cgroups) and directories. Steps whose lock is still held
// belong to a live process and are skipped. It is best effort: what
// cannot be removed now is retried by the next New.
func (s *Sandbox) sweep() {
	entries, err := os.ReadDir(filepath.Join(s.state, "steps"))
	if err != nil {
		return
	}
	for _, e := range entries {
		dir := filepath.Join(s.state, "steps", e.Name())
		f, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			continue // no lock yet: a step starting
		}
		if unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB) == nil {
			s.destroyStale(e.Name(), dir)
		}
		f.Close()
	}
}

// destroyStale kills and destroys the container id, unmounts its rootfs
// and removes dir.
func (s *Sandbox) destroyStale(id, dir string) {
	if c, err := libcontainer.Load(s.containers, id); err == nil {
		_ = c.Signal(unix.SIGKILL)
		// The killed processes leave their cgroup asynchronously.
		for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(10 * time.Millisecond) {
			if pids, err := c.Processes(); err != nil || len(pids) == 0 {
				break
			}
		}
		_ = c.Destroy()
	}
	if Unmount(filepath.Join(dir, "rootfs")) == nil {
		_ = removeStepDir(dir)
	}
}
