package fileop

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"golang.org/x/sys/unix"

	"github.com/stagex/sxmake/sandbox/rootfs"
)

// copier copies one source tree (one wildcard match) into the destination,
// like fsutil's copier. Hard links are preserved within one copier only.
type copier struct {
	a *applier
	// local: the source is a local context (or a heredoc): entries count
	// as owned by 0:0 and their atime equals their mtime.
	local  bool
	inodes map[uint64]string
	// sel says what below the match is copied (--parents, --exclude);
	// name is the match's name, for required.
	sel      *selector
	name     string
	required *required
	// parents are the directories being copied, outermost first; one
	// left out by sel is created once an entry in it is copied.
	parents []parentDir
}

// parentDir is a source directory being copied and where it goes.
type parentDir struct {
	src, dst string
	copied   bool
}

func (a *applier) newCopier(local bool, sel *selector, name string, req *required) *copier {
	return &copier{a: a, local: local, inodes: map[uint64]string{}, sel: sel, name: name, required: req}
}

// rel names p (inside destRoot) for error messages.
func (a *applier) rel(p string) string {
	r, err := filepath.Rel(a.destRoot, p)
	if err != nil || strings.HasPrefix(r, "..") {
		return p
	}
	return path.Join("/", r)
}

// copyTop copies the resolved source src, named name in the Containerfile,
// to the destination: the parent of Dest (or Dest itself when it is spelt
// as a directory) is created first; a file lands inside Dest when Dest is
// an existing directory, else at Dest; a directory's contents are merged
// into Dest.
func (c *copier) copyTop(ctx context.Context, src, name string) error {
	a := c.a
	ensure := a.cleanDest()
	if !a.destDirForm() {
		ensure = path.Dir(ensure)
	}
	ensureP, err := securejoin.SecureJoin(a.destRoot, ensure)
	if err != nil {
		return err
	}
	if err := a.mkdirAll(ensureP, a.chmod.dirPerm()); err != nil {
		return err
	}
	dst, err := securejoin.SecureJoin(a.destRoot, a.cleanDest())
	if err != nil {
		return err
	}
	fiSrc, err := os.Lstat(src)
	if err != nil {
		return err
	}
	fiDest, err := os.Stat(dst)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("failed to lstat destination path: %w", err)
	}
	if !fiSrc.IsDir() && fiDest != nil && fiDest.IsDir() {
		dst = filepath.Join(dst, name)
	}
	target := filepath.Dir(dst)
	if fiSrc.IsDir() && fiDest == nil {
		target = dst
	}
	if err := a.mkdirAll(target, a.chmod.dirPerm()); err != nil {
		return err
	}
	return c.copy(ctx, src, "", dst, false, matchInfo{})
}

// mkdirAll creates p and its missing parents (p is resolved, inside
// destRoot) with mode perm, owned by --chown or else by root, like fsutil's
// MkdirAll. buildkitd runs with umask 0, so perm is exact; we chmod
// explicitly to be independent of our own umask. Existing directories are
// left alone.
func (a *applier) mkdirAll(p string, perm fs.FileMode) error {
	fi, err := os.Stat(p)
	if err == nil {
		if fi.IsDir() {
			return nil
		}
		return &fs.PathError{Op: "mkdir", Path: a.rel(p), Err: syscall.ENOTDIR}
	}
	if p == a.destRoot || !strings.HasPrefix(p, a.destRoot+"/") {
		return fmt.Errorf("destination root %s: %w", a.destRoot, err)
	}
	if err := a.mkdirAll(filepath.Dir(p), perm); err != nil {
		return err
	}
	if err := os.Mkdir(p, perm); err != nil {
		if fi, err1 := os.Lstat(p); err1 == nil && fi.IsDir() {
			return nil
		}
		return &fs.PathError{Op: "mkdir", Path: a.rel(p), Err: errors.Unwrap(err)}
	}
	if err := os.Chmod(p, perm); err != nil {
		return err
	}
	if a.chown != nil {
		if err := os.Lchown(p, a.chown.UID, a.chown.GID); err != nil {
			return err
		}
	}
	return nil
}

// copy copies src, at rel below the match ("" for the match itself), to
// target, if the selector selects it (a directory is read either way).
// overwrite is false for the top of the tree: an existing target
// directory then keeps its metadata (only its times are set from the
// source), as fsutil does.
func (c *copier) copy(ctx context.Context, src, rel, target string, overwrite bool, parent matchInfo) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	fi, err := os.Lstat(src)
	if err != nil {
		return fmt.Errorf("failed to stat %s: %w", src, err)
	}
	targetFi, err := os.Lstat(target)
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	include, info, err := c.sel.selects(rel, parent)
	if err != nil {
		return err
	}
	if include {
		c.required.see(path.Join(c.name, filepath.ToSlash(rel)))
		if err := c.createParents(overwrite); err != nil {
			return err
		}
	}
	if !fi.IsDir() {
		if !include {
			return nil
		}
		if err := c.ensureEmptyFileTarget(target, targetFi); err != nil {
			return err
		}
	}
	copyInfo, restoreTimes := include, false
	switch m := fi.Mode(); {
	case m.IsDir():
		created, err := c.copyDir(ctx, src, rel, target, fi, overwrite, include, info)
		if err != nil {
			return err
		}
		if !overwrite {
			copyInfo, restoreTimes = created, !created
		}
	case m.IsRegular():
		if err := c.copyRegular(src, target, fi); err != nil {
			return err
		}
	case m&fs.ModeSymlink != 0:
		link, err := os.Readlink(src)
		if err != nil {
			return err
		}
		if err := os.Symlink(link, target); err != nil {
			return err
		}
	default:
		if err := copyDevice(target, fi); err != nil {
			return err
		}
	}
	if copyInfo {
		if err := c.copyFileInfo(fi, target); err != nil {
			return err
		}
		c.copyXattrs(src, target)
	} else if restoreTimes && targetFi != nil {
		if err := c.copyTimes(fi, target); err != nil {
			return err
		}
	}
	return nil
}

// ensureEmptyFileTarget removes a non-directory at target (fi is its
// Lstat, nil if there is none); a directory there is an error.
func (c *copier) ensureEmptyFileTarget(target string, fi fs.FileInfo) error {
	if fi == nil {
		return nil
	}
	if fi.IsDir() {
		return fmt.Errorf("cannot replace to directory %s with file", c.a.rel(target))
	}
	return os.Remove(target)
}

// copyDir creates dst when include is set (reporting whether it did) or
// checks it is a directory, then copies src's entries in name order. A
// directory not included is created only once an entry in it is
// (createParents).
func (c *copier) copyDir(ctx context.Context, src, rel, dst string, fi fs.FileInfo, overwrite, include bool, info matchInfo) (bool, error) {
	created := false
	if include {
		var err error
		if created, err = c.copyDirOnly(dst, fi, overwrite); err != nil {
			return false, err
		}
	}
	c.parents = append(c.parents, parentDir{src: src, dst: dst, copied: include})
	defer func() { c.parents = c.parents[:len(c.parents)-1] }()
	entries, err := os.ReadDir(src)
	if err != nil {
		return false, err
	}
	for _, e := range entries {
		if err := c.copy(ctx, filepath.Join(src, e.Name()), filepath.Join(rel, e.Name()), filepath.Join(dst, e.Name()), true, info); err != nil {
			return false, err
		}
	}
	return created, nil
}

// copyDirOnly creates the directory dst with fi's mode, reporting whether
// it did; an existing directory gets fi's mode when overwrite is set.
func (c *copier) copyDirOnly(dst string, fi fs.FileInfo, overwrite bool) (bool, error) {
	st, err := os.Lstat(dst)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Mkdir(dst, fi.Mode()); err != nil {
			return false, err
		}
		return true, nil
	case err != nil:
		return false, err
	case !st.IsDir():
		return false, fmt.Errorf("cannot copy to non-directory: %s", c.a.rel(dst))
	case overwrite:
		if err := os.Chmod(dst, fi.Mode()); err != nil {
			return false, err
		}
	}
	return false, nil
}

// createParents creates the directories being copied that were left out
// (an entry in them is now copied), each as its source directory is, as
// fsutil's createParentDirs does.
func (c *copier) createParents(overwrite bool) error {
	for i, p := range c.parents {
		if p.copied {
			continue
		}
		fi, err := os.Stat(p.src)
		if err != nil {
			return err
		}
		if !fi.IsDir() {
			return fmt.Errorf("%s is not a directory", p.src)
		}
		created, err := c.copyDirOnly(p.dst, fi, overwrite)
		if err != nil {
			return err
		}
		if created {
			if err := c.copyFileInfo(fi, p.dst); err != nil {
				return err
			}
			c.copyXattrs(p.src, p.dst)
		}
		c.parents[i].copied = true
	}
	return nil
}

// copyRegular hard-links target to an earlier copy of the same inode, or
// copies src's bytes.
func (c *copier) copyRegular(src, target string, fi fs.FileInfo) error {
	st := fi.Sys().(*syscall.Stat_t)
	if st.Nlink > 1 {
		if first, ok := c.inodes[st.Ino]; ok {
			return os.Link(first, target)
		}
		c.inodes[st.Ino] = target
	}
	in, err := rootfs.OpenRegular(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, 0o644)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copying %s: %w", c.a.rel(target), err)
	}
	return out.Close()
}

// copyDevice makes a device, fifo or socket node as fsutil does: the type
// bits of a socket (and, by the same mask, part of a block device's) are
// cleared, so a socket becomes an empty regular file and a block device a
// character device. That is what BuildKit v0.26.3 produces.
func copyDevice(target string, fi fs.FileInfo) error {
	st := fi.Sys().(*syscall.Stat_t)
	var rdev int
	if fi.Mode()&fs.ModeDevice != 0 {
		rdev = int(st.Rdev)
	}
	return unix.Mknod(target, st.Mode&^syscall.S_IFSOCK, rdev)
}

// copyFileInfo sets target's owner, mode and times from the source entry,
// with --chown and --chmod applied, in fsutil's order (chown first, as it
// clears set-id bits).
func (c *copier) copyFileInfo(fi fs.FileInfo, target string) error {
	st := fi.Sys().(*syscall.Stat_t)
	uid, gid := int(st.Uid), int(st.Gid)
	if c.local {
		uid, gid = 0, 0
	}
	if o := c.a.chown; o != nil {
		uid, gid = o.UID, o.GID
	}
	if err := os.Lchown(target, uid, gid); err != nil {
		return err
	}
	if fi.Mode()&fs.ModeSymlink == 0 {
		m := fi.Mode()
		if c.a.chmod != nil {
			m = c.a.chmod.Apply(m)
		}
		if err := os.Chmod(target, m); err != nil {
			return err
		}
	}
	return c.copyTimes(fi, target)
}

// copyTimes sets target's atime and mtime (not following a symlink) to the
// source's; for local sources the atime is the mtime, as fsutil's receiver
// leaves it.
func (c *copier) copyTimes(fi fs.FileInfo, target string) error {
	st := fi.Sys().(*syscall.Stat_t)
	atime := unix.Timespec(st.Atim)
	if c.local {
		atime = unix.Timespec(st.Mtim)
	}
	ts := []unix.Timespec{atime, unix.Timespec(st.Mtim)}
	if err := unix.UtimesNanoAt(unix.AT_FDCWD, target, ts, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return &fs.PathError{Op: "utimes", Path: c.a.rel(target), Err: err}
	}
	return nil
}

// copyXattrs copies src's extended attributes to target. Like BuildKit,
// which only logs xattr errors, it stops quietly at the first failure.
func (c *copier) copyXattrs(src, target string) {
	keys, err := listXattrs(src)
	if err != nil {
		return
	}
	for _, k := range keys {
		if c.local && strings.HasPrefix(k, "com.apple.") {
			continue
		}
		v, err := getXattr(src, k)
		if err != nil {
			return
		}
		if err := unix.Lsetxattr(target, k, v, 0); err != nil {
			return
		}
	}
}

// listXattrs returns the names of p's extended attributes.
func listXattrs(p string) ([]string, error) {
	size, err := unix.Llistxattr(p, nil)
	if err != nil || size == 0 {
		return nil, err
	}
	buf := make([]byte, size)
	size, err = unix.Llistxattr(p, buf)
	if err != nil {
		return nil, err
	}
	var keys []string
	for _, k := range strings.Split(string(buf[:size]), "\x00") {
		if k != "" {
			keys = append(keys, k)
		}
	}
	return keys, nil
}

// getXattr returns the value of p's extended attribute k.
func getXattr(p, k string) ([]byte, error) {
	size, err := unix.Lgetxattr(p, k, nil)
	if err != nil {
		return nil, err
	}
	buf := make([]byte, size)
	size, err = unix.Lgetxattr(p, k, buf)
	if err != nil {
		return nil, err
	}
	return buf[:size], nil
}
