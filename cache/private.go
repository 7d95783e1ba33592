package cache

import (
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// MkdirPrivate creates dir and its missing parents (mode 0700), and makes
// dir itself mode 0700 whatever made it and whatever its mode was. The
// cache holds what builds made, package definitions being hostile input:
// setuid root files, device nodes, every layer's content. Another user
// who could reach them could run a planted setuid file as root, so every
// directory of the cache is the owner's alone. A directory another user
// owns is refused (anything could be planted in it).
func MkdirPrivate(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	fi, err := os.Stat(dir)
	if err != nil {
		return err
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); ok && int(st.Uid) != os.Geteuid() {
		return fmt.Errorf("%s belongs to uid %d, not to uid %d that runs sxmake", dir, st.Uid, os.Geteuid())
	}
	if fi.Mode()&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != 0o700 {
		return os.Chmod(dir, 0o700)
	}
	return nil
}
