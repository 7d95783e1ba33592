package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// The node of a tar entry: how an entry's metadata lands on the file
// system when BuildKit's tools extract it. containerd's archive.Apply
// (layers) and moby's go-archive (ADD of an archive) agree on it, so both
// of sxmake's extractors share it: Unpack for the hard links umoci leaves
// alone, and fileop's Extract for every entry.

var (
	minEntryTime = time.Unix(0, 0)
	maxEntryTime = time.Unix(0, 1<<63-1)
)

// EntryTimes returns the atime and mtime the node of hdr gets: the
// header's mtime, and the later of its atime and mtime. A time before 1970
// or after 2262, which the kernel cannot take in nanoseconds, becomes
// 1970-01-01, as containerd's and go-archive's boundTime do.
func EntryTimes(hdr *tar.Header) (atime, mtime time.Time) {
	atime = hdr.AccessTime
	if atime.Before(hdr.ModTime) {
		atime = hdr.ModTime
	}
	return boundTime(atime), boundTime(hdr.ModTime)
}

func boundTime(t time.Time) time.Time {
	if t.Before(minEntryTime) || t.After(maxEntryTime) {
		return minEntryTime
	}
	return t
}

// SetEntryMetadata gives the node at p, just made from hdr, the owner
// uid:gid, the extended attributes of hdr's SCHILY.xattr records (ENOTSUP
// and EPERM ignored, as go-archive does), hdr's mode and EntryTimes, in
// that order: chown clears set-id bits, so the mode comes after it. A
// symlink keeps its mode; the node of a hard link to a symlink keeps its
// times too.
func SetEntryMetadata(p string, hdr *tar.Header, uid, gid int) error {
	if err := os.Lchown(p, uid, gid); err != nil {
		return fmt.Errorf("failed to Lchown %q for UID %d, GID %d: %w", hdr.Name, uid, gid, err)
	}
	for k, v := range hdr.PAXRecords {
		name, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		err := unix.Lsetxattr(p, name, []byte(v), 0)
		if err != nil && !errors.Is(err, unix.ENOTSUP) && !errors.Is(err, unix.EPERM) {
			return &fs.PathError{Op: "lsetxattr", Path: hdr.Name, Err: err}
		}
	}
	atime, mtime := EntryTimes(hdr)
	switch hdr.Typeflag {
	case tar.TypeSymlink:
		ts := []unix.Timespec{unix.NsecToTimespec(atime.UnixNano()), unix.NsecToTimespec(mtime.UnixNano())}
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil && err != unix.ENOSYS {
			return &fs.PathError{Op: "utimes", Path: hdr.Name, Err: err}
		}
		return nil
	case tar.TypeLink:
		if fi, err := os.Lstat(p); err != nil || fi.Mode()&fs.ModeSymlink != 0 {
			return err
		}
	}
	if err := os.Chmod(p, hdr.FileInfo().Mode()); err != nil {
		return err
	}
	return os.Chtimes(p, atime, mtime)
}
