package main

import (
	"fmt"
	"path/filepath"

	"github.com/opencontainers/cgroups"
	devices "github.com/opencontainers/cgroups/devices/config"
	"github.com/opencontainers/runc/libcontainer"
	"github.com/opencontainers/runc/libcontainer/configs"
	"golang.org/x/sys/unix"
)

// runBare runs true with libcontainer directly in the least a build step
// needs: rootfs read-only (no overlay), mount and pid namespaces, /proc,
// a /dev with only null, a cgroup without limits. No network namespace,
// seccomp, masked paths or capabilities: the floor under sandbox.Run.
func runBare(dir, rootfs string, i int) error {
	id := fmt.Sprintf("bare%d", i+1)
	null := devices.Rule{Type: devices.CharDevice, Major: 1, Minor: 3, Permissions: "rwm", Allow: true}
	config := &configs.Config{
		Rootfs:     rootfs,
		Readonlyfs: true,
		Namespaces: configs.Namespaces{{Type: configs.NEWNS}, {Type: configs.NEWPID}},
		Mounts: []*configs.Mount{
			{Source: "proc", Destination: "/proc", Device: "proc", Flags: unix.MS_NOSUID | unix.MS_NODEV | unix.MS_NOEXEC},
			{Source: "tmpfs", Destination: "/dev", Device: "tmpfs", Flags: unix.MS_NOSUID | unix.MS_NOEXEC},
		},
		// libcontainer reopens the init's standard streams on /dev/null.
		Devices: []*devices.Device{{
			Path:     "/dev/null",
			FileMode: 0o666,
			Rule:     null,
		}},
		Cgroups:           &cgroups.Cgroup{Name: id, Parent: "sxmake", Resources: &cgroups.Resources{Devices: []*devices.Rule{&null}}},
		ParentDeathSignal: int(unix.SIGKILL),
	}
	c, err := libcontainer.Create(filepath.Join(dir, "bare"), id, config)
	if err != nil {
		return fmt.Errorf("bare libcontainer: %w", err)
	}
	defer c.Destroy()
	p := &libcontainer.Process{Args: []string{"/bin/true"}, Env: []string{"PATH=/bin"}, Init: true}
	if err := c.Run(p); err != nil {
		return fmt.Errorf("bare libcontainer: %w", err)
	}
	st, err := p.Wait()
	if err != nil || !st.Success() {
		return fmt.Errorf("bare libcontainer: true: %v %v", st, err)
	}
	return nil
}
