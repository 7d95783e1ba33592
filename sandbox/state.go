package sandbox

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// containerRoot returns the directory libcontainer keeps the state of the
// containers of the sandbox whose state directory is state (an absolute
// path) in, and creates it: state/containers, unless that lies inside the
// directory of the running binary.
//
// Before each step, libcontainer seals the binary it re-executes as the
// init (CVE-2019-5736) with an overlay whose two lower layers are the
// binary's directory and the container's state directory. Overlayfs
// refuses layers nested in one another, and libcontainer then falls back
// to copying the whole binary into memory, 10-25 ms per step. A binary in
// $HOME with its cache in $HOME/.cache does that; such a sandbox keeps its
// container state in /run/sxmake/<hash of state>, or failing that in the
// temporary directory.
func containerRoot(state string) (string, error) {
	exeDir := ""
	if exe, err := os.Readlink("/proc/self/exe"); err == nil {
		exeDir = filepath.Dir(exe)
	}
	sum := sha256.Sum256([]byte(state))
	name := hex.EncodeToString(sum[:8])
	preferred := filepath.Join(state, "containers")
	for _, dir := range []string{preferred, filepath.Join("/run/sxmake", name), filepath.Join(os.TempDir(), "sxmake-"+name)} {
		if within(realPath(dir), exeDir) {
			continue
		}
		if err := mkdirPrivate(dir); err == nil {
			return dir, nil
		}
	}
	// Nowhere outside (the binary is in /): libcontainer copies it.
	return preferred, mkdirPrivate(preferred)
}

// mkdirPrivate creates dir and its missing parents, and makes dir mode
// 0700 whatever its mode was: step root file systems are mounted under
// the state directory, and libcontainer's state (which says what to kill
// and which cgroups to remove) is kept in the container directory. A
// directory another user owns (one planted in /tmp, say) is refused.
func mkdirPrivate(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return err
	}
	if int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s belongs to uid %d, not to uid %d", dir, st.Uid, os.Geteuid())
	}
	if st.Mode&0o7777 != 0o700 {
		return os.Chmod(dir, 0o700)
	}
	return nil
}

// within reports whether path is dir or lies under it.
func within(path, dir string) bool {
	if dir == "" {
		return false
	}
	return path == dir || dir == "/" || strings.HasPrefix(path, dir+"/")
}

// realPath resolves the symbolic links of the longest existing prefix of
// p, as overlayfs sees it.
func realPath(p string) string {
	rest := ""
	for {
		if real, err := filepath.EvalSymlinks(p); err == nil {
			return filepath.Join(real, rest)
		}
		parent := filepath.Dir(p)
		if parent == p {
			return filepath.Join(p, rest)
		}
		rest = filepath.Join(filepath.Base(p), rest)
		p = parent
	}
}
