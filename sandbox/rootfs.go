package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// maxMountData is how many bytes of options a mount takes: one page, less
// a margin for the options the kernel appends.
const maxMountData = 4096 - 512

// mountOverlay mounts the overlay of lower (top first) and upper, with
// work as overlayfs's work directory, at target.
//
// When the lowerdir option would not fit in a page, each lower is opened
// and named through /proc/self/fd, which shortens it to about 17 bytes a
// layer.
func mountOverlay(lower []string, upper, work, target string) error {
	data := overlayData(lower, upper, work)
	if len(data) > maxMountData {
		var short []string
		for _, d := range lower {
			fd, err := unix.Open(d, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				return fmt.Errorf("opening lower %s: %w", d, err)
			}
			defer unix.Close(fd)
			short = append(short, "/proc/self/fd/"+strconv.Itoa(fd))
		}
		data = overlayData(short, upper, work)
		if len(data) > maxMountData {
			return fmt.Errorf("overlay of %d lower directories: mount options too long (%d bytes)", len(lower), len(data))
		}
	}
	if err := unix.Mount("overlay", target, "overlay", 0, data); err != nil {
		return fmt.Errorf("mounting overlay at %s: %w", target, err)
	}
	return nil
}

// overlayData is the overlay's mount options. Whatever the kernel's
// defaults, metacopy and redirect_dir are off, so that the upper directory
// holds every changed file's content and every renamed directory in full:
// it is the step's diff.
//
// volatile: overlayfs omits every sync of the upper file system, the one
// it makes when the overlay is unmounted included. That one is a syncfs of
// the whole file system holding the upper directory (with the other
// processes' dirty data), about 10 ms on an idle disk and far more on a
// busy one, paid at the end of every step. The upper directory is read
// back from the page cache right after the step, and sxmake's cache does
// not sync its content either (a crash loses unfinished work, which is
// redone). A step's own fsync calls on the root file system become no-ops.
// volatile leaves a mark in the work directory that stops it from being
// used again; Run's own work directory is removed after the step, and a
// caller's (Spec.Work) is single-use.
func overlayData(lower []string, upper, work string) string {
	return "index=off,metacopy=off,redirect_dir=off,volatile,lowerdir=" + strings.Join(lower, ":") + ",upperdir=" + upper + ",workdir=" + work
}

// unmount undoes the mount at target, lazily if it is still busy.
func unmount(target string) error {
	err := unix.Unmount(target, 0)
	if errors.Is(err, unix.EBUSY) {
		err = unix.Unmount(target, unix.MNT_DETACH)
	}
	if err != nil && !errors.Is(err, unix.EINVAL) && !errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("unmounting %s: %w", target, err)
	}
	return nil
}

// stubNames are the mount points bind-mounted into every step.
var stubNames = []string{"/etc/resolv.conf", "/etc/hosts"}

// mountStubs lists the paths under rootfs that do not exist yet and that
// libcontainer will create to mount stubNames on: each missing name and
// its missing parents, deepest first. All paths are resolved inside rootfs.
func mountStubs(rootfs string) []string {
	var stubs []string
	for _, name := range stubNames {
		p, err := securejoin.SecureJoin(rootfs, name)
		if err != nil {
			continue
		}
		for p != rootfs {
			_, err := os.Lstat(p)
			if !errors.Is(err, os.ErrNotExist) && !errors.Is(err, syscall.ENOTDIR) {
				break
			}
			stubs = append(stubs, p)
			p = filepath.Dir(p)
		}
	}
	return stubs
}

// removeStubs removes those stubs that are still empty files or empty
// directories, and keeps their parent directory's times, as BuildKit does,
// so the stubs leave nothing in the step's diff.
func removeStubs(rootfs string, stubs []string) {
	for _, p := range stubs {
		// Re-resolve: the step may have replaced a parent by a symlink.
		real, err := securejoin.SecureJoin(rootfs, strings.TrimPrefix(p, rootfs))
		if err != nil || real != p {
			continue
		}
		if !isEmpty(p) {
			continue
		}
		parent := filepath.Dir(p)
		var st unix.Stat_t
		if err := unix.Lstat(parent, &st); err != nil {
			continue
		}
		if err := os.Remove(p); err != nil {
			continue
		}
		times := []unix.Timespec{st.Atim, st.Mtim}
		_ = unix.UtimesNanoAt(unix.AT_FDCWD, parent, times, unix.AT_SYMLINK_NOFOLLOW)
	}
}

// isEmpty reports whether p is an empty regular file or an empty directory.
func isEmpty(p string) bool {
	fi, err := os.Lstat(p)
	if err != nil {
		return false
	}
	switch {
	case fi.IsDir():
		entries, err := os.ReadDir(p)
		return err == nil && len(entries) == 0
	case fi.Mode().IsRegular():
		return fi.Size() == 0
	}
	return false
}

// hostsFile is BuildKit's /etc/hosts for a step named hostname.
func hostsFile(hostname string) string {
	return "127.0.0.1\tlocalhost " + hostname + "\n::1\tlocalhost ip6-localhost ip6-loopback\n"
}

// resolvConf returns the /etc/resolv.conf of a step: the host's with
// NetworkHost (a step with the host's network uses its resolvers), else
// empty, so that nothing of the host shows.
func resolvConf(n Network) ([]byte, error) {
	if n != NetworkHost {
		return nil, nil
	}
	b, err := os.ReadFile("/etc/resolv.conf")
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	return b, err
}

// makeCwd creates the working directory cwd inside rootfs when missing,
// owned by uid:gid, as BuildKit does.
func makeCwd(rootfs, cwd string, uid, gid int) error {
	p, err := securejoin.SecureJoin(rootfs, cwd)
	if err != nil {
		return fmt.Errorf("working directory %s: %w", cwd, err)
	}
	if _, err := os.Stat(p); err == nil {
		return nil
	}
	// Create each missing component in turn: p has no symlinks left.
	var missing []string
	for q := p; q != rootfs; q = filepath.Dir(q) {
		if _, err := os.Lstat(q); err == nil {
			break
		}
		missing = append(missing, q)
	}
	for i := len(missing) - 1; i >= 0; i-- {
		if err := os.Mkdir(missing[i], 0o755); err != nil {
			return fmt.Errorf("creating working directory %s: %w", cwd, err)
		}
		// Chmod: the mode must not depend on sxmake's umask.
		if err := os.Chmod(missing[i], 0o755); err != nil {
			return fmt.Errorf("creating working directory %s: %w", cwd, err)
		}
		if err := os.Lchown(missing[i], uid, gid); err != nil {
			return fmt.Errorf("creating working directory %s: %w", cwd, err)
		}
	}
	return nil
}
