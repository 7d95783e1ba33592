package sandbox

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

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
