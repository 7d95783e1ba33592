package sandbox

import (
	"errors"
	"fmt"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"golang.org/x/sys/unix"
)

// maxMountData is how many bytes of options a mount takes: one page, less
// a margin for the options the kernel appends.
const maxMountData = 4096 - 512

// MaxLowers is how many lower directories an overlay mount takes
// (overlayfs's OVL_MAX_STACK): the deepest stack of layers a step can see.
const MaxLowers = 500

// MountOverlay mounts at target the overlay of lowers (top first) under
// upper, with work as overlayfs's work directory; without upper the mount
// is read-only. Every step's root file system is mounted by it: a RUN's
// (Run), and that of a COPY, a WORKDIR or a layer being unpacked (the
// engine's). Unmount undoes it.
//
// A page of mount options holds about 200 lower directories named by
// their paths. Past that, each lower is opened and named by its file
// descriptor, relative to /proc/self/fd, from a thread whose working
// directory that is: a few bytes a layer, enough for MaxLowers.
func MountOverlay(target string, lowers []string, upper, work string) error {
	if len(lowers) == 0 {
		return errors.New("overlay mount needs at least one lower directory")
	}
	if len(lowers) > MaxLowers {
		return fmt.Errorf("overlay of %d layers: overlayfs takes at most %d", len(lowers), MaxLowers)
	}
	flags := uintptr(0)
	if upper == "" {
		flags = unix.MS_RDONLY
	}
	data := overlayData(lowers, upper, work)
	if len(data) <= maxMountData {
		if err := unix.Mount("overlay", target, "overlay", flags, data); err != nil {
			return fmt.Errorf("mounting overlay at %s: %w", target, err)
		}
		return nil
	}
	return mountByFD(target, lowers, upper, work, flags)
}

// mountByFD is MountOverlay with the lowers named by descriptor.
func mountByFD(target string, lowers []string, upper, work string, flags uintptr) error {
	// The mount runs in another working directory: no relative paths.
	for _, p := range append([]string{target, upper, work}, lowers...) {
		if p != "" && !filepath.IsAbs(p) {
			return fmt.Errorf("overlay mount: %s is not an absolute path", p)
		}
	}
	short := make([]string, len(lowers))
	for i, d := range lowers {
		fd, err := unix.Open(d, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return fmt.Errorf("opening lower %s: %w", d, err)
		}
		defer unix.Close(fd)
		short[i] = strconv.Itoa(fd)
	}
	data := overlayData(short, upper, work)
	if len(data) > maxMountData {
		return fmt.Errorf("overlay of %d layers: mount options too long (%d bytes)", len(lowers), len(data))
	}
	errc := make(chan error, 1)
	go func() {
		// The thread's working directory is its own after CLONE_FS is
		// unshared, and is never restored: the thread stays locked, so Go
		// ends it with this goroutine instead of reusing it.
		runtime.LockOSThread()
		if err := unix.Unshare(unix.CLONE_FS); err != nil {
			errc <- fmt.Errorf("overlay mount: unshare: %w", err)
			return
		}
		if err := unix.Chdir("/proc/self/fd"); err != nil {
			errc <- fmt.Errorf("overlay mount: %w", err)
			return
		}
		errc <- unix.Mount("overlay", target, "overlay", flags, data)
	}()
	if err := <-errc; err != nil {
		return fmt.Errorf("mounting overlay of %d layers at %s: %w", len(lowers), target, err)
	}
	return nil
}

// overlayData is the overlay's mount options. Whatever the kernel's
// defaults, metacopy and redirect_dir are off, so that the upper directory
// holds every changed file's content and every renamed directory in full:
// it is the step's diff.
//
// volatile (with an upper directory): overlayfs omits every sync of the
// upper file system, the one it makes when the overlay is unmounted
// included. That one is a syncfs of the whole file system holding the
// upper directory (with the other processes' dirty data), about 10 ms on
// an idle disk and far more on a busy one, paid at the end of every step.
// The upper directory is read back from the page cache right after the
// step, and sxmake's cache does not sync its content either (a crash loses
// unfinished work, which is redone). A step's own fsync calls on the root
// file system become no-ops. volatile leaves a mark in the work directory
// that stops it from being used again: a work directory is single-use.
func overlayData(lowers []string, upper, work string) string {
	opts := "index=off,metacopy=off,redirect_dir=off,"
	if upper != "" {
		opts += "volatile,"
	}
	opts += "lowerdir=" + strings.Join(lowers, ":")
	if upper != "" {
		opts += ",upperdir=" + upper + ",workdir=" + work
	}
	return opts
}

// Unmount undoes the mount at target, lazily if it is still busy. Nothing
// mounted there is no error.
func Unmount(target string) error {
	err := unix.Unmount(target, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(target, unix.MNT_DETACH)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting %s: %w", target, err)
	}
	return nil
}
