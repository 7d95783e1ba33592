// Package rootfs opens the files of a build's root file system from the
// host. Root file systems are made by package definitions, which are
// hostile input: where sxmake expects /etc/passwd there may be a FIFO
// (opening it for reading blocks until a writer comes: sxmake would hang
// for good), a device node (opening one acts on the host's device), a
// directory, or a symbolic link aimed at the host's files. Every
// host-side open of a file of a root file system (a snapshot, a step's
// rootfs, a stage copied from) goes through this package: it opens
// regular files only, and never blocks.
package rootfs

import (
	"errors"
	"fmt"
	"os"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"
)

// ErrNotRegular is wrapped by the error for a name that is not a regular
// file (a FIFO, device, socket, directory or symbolic link).
var ErrNotRegular = errors.New("not a regular file")

// Open opens name for reading, resolved inside root the way a process
// whose root directory is root would resolve it (symbolic links are
// followed, but never out of root), if it is a regular file.
func Open(root, name string) (*os.File, error) {
	p, err := securejoin.SecureJoin(root, name)
	if err != nil {
		return nil, err
	}
	return OpenRegular(p)
}

// OpenRegular opens the file at path for reading if it is a regular file
// (a symbolic link is not followed). A file of another type is never
// opened: it is checked before the open, and the open, should the file
// have been replaced meanwhile, neither blocks (O_NONBLOCK) nor follows a
// link, and is checked again.
func OpenRegular(path string) (*os.File, error) {
	var before unix.Stat_t
	if err := unix.Lstat(path, &before); err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	if before.Mode&unix.S_IFMT != unix.S_IFREG {
		return nil, &os.PathError{Op: "open", Path: path, Err: ErrNotRegular}
	}
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Ino != before.Ino || st.Dev != before.Dev {
		unix.Close(fd)
		return nil, &os.PathError{Op: "open", Path: path, Err: fmt.Errorf("%w (replaced while opened)", ErrNotRegular)}
	}
	return os.NewFile(uintptr(fd), path), nil
}
