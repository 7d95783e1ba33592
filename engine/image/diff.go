package image

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
	"time"

	"github.com/containerd/containerd/v2/pkg/archive"
	cfs "github.com/containerd/continuity/fs"
	"golang.org/x/sys/unix"

	"github.com/stagex/sxmake/sandbox/rootfs"
)

// WriteDiff writes to w the uncompressed layer tar of the overlay upper dir
// upper over the parent file system lower, as BuildKit's overlay differ
// (util/overlay WriteUpperdir) does with containerd's archive.ChangeWriter:
//
//   - entries in filepath.Walk order of upper (siblings sorted by name, a
//     directory before its contents), each preceded by its parent
//     directories not yet written;
//   - an entry that exists in lower with the same mode, owner, device and
//     security.capability (and, for non-directories, size, mtime and
//     content) is not recorded unless it is a parent of a recorded one;
//   - a whiteout (char device 0/0) becomes an empty ".wh.<name>" regular
//     file with all times at 1970-01-01, or nothing if lower has no such
//     name;
//   - an opaque directory (trusted.overlay.opaque or user.overlay.opaque =
//     "y") that exists in lower is diffed entry by entry against it, each
//     deleted entry becoming a ".wh." file (no ".wh..wh..opq" marker);
//   - headers carry uid/gid as on disk, no user or group names, mtime
//     truncated to seconds, no atime/ctime, hardlinks as TypeLink to the
//     first name written, and only the security.capability xattr.
//
// lower is a directory holding the merged parent file system; "" means
// none (the bottom layer). upper must not contain overlay redirects.
func WriteDiff(ctx context.Context, w io.Writer, upper, lower string) error {
	if lower == "" {
		empty, err := os.MkdirTemp("", "sxmake-empty-")
		if err != nil {
			return fmt.Errorf("diffing %s: %w", upper, err)
		}
		defer os.Remove(empty)
		lower = empty
	}
	// The writer reads files and parent directories from upper itself:
	// BuildKit reads them from an overlay view of upper alone, which shows
	// the same files minus the whiteouts, and whiteouts are never read.
	cw := archive.NewChangeWriter(w, upper)
	if err := overlayChanges(ctx, cw.HandleChange, upper, lower); err != nil {
		cw.Close()
		return fmt.Errorf("diffing %s: %w", upper, err)
	}
	if err := cw.Close(); err != nil {
		return fmt.Errorf("diffing %s: %w", upper, err)
	}
	return nil
}

// overlayChanges calls fn for each change the upper dir records against
// base, in the order and with the kinds BuildKit's overlay differ uses.
func overlayChanges(ctx context.Context, fn cfs.ChangeFunc, upper, base string) error {
	return filepath.Walk(upper, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		rel, err := filepath.Rel(upper, p)
		if err != nil {
			return err
		}
		rel = filepath.Join("/", rel)
		if rel == "/" {
			return nil
		}
		if fi.IsDir() {
			if v, _ := lgetxattr(p, "trusted.overlay.redirect"); len(v) > 0 {
				return fmt.Errorf("%s: overlay redirect_dir is not supported", rel)
			}
		}
		basePath := filepath.Join(base, rel)
		if isWhiteout(fi) {
			if _, err := os.Lstat(basePath); errors.Is(err, fs.ErrNotExist) {
				return nil // nothing to delete
			} else if err != nil {
				return err
			}
			return fn(cfs.ChangeKindDelete, rel, fi, nil)
		}
		var kind cfs.ChangeKind = cfs.ChangeKindAdd
		record := true
		if bfi, err := os.Lstat(basePath); err == nil {
			kind = cfs.ChangeKindModify
			same, err := sameDirent(bfi, fi, basePath, p)
			if err != nil {
				return err
			}
			record = !same
		} else if !errors.Is(err, fs.ErrNotExist) && !errors.Is(err, unix.ENOTDIR) {
			return fmt.Errorf("stat of base %s: %w", rel, err)
		}
		if record {
			if err := fn(kind, rel, fi, nil); err != nil {
				return err
			}
		}
		if fi.IsDir() && isOpaque(p) {
			if _, err := os.Lstat(basePath); err == nil {
				err := cfs.Changes(ctx, basePath, p, func(k cfs.ChangeKind, sub string, f os.FileInfo, err error) error {
					return fn(k, filepath.Join(rel, sub), f, err)
				})
				if err != nil {
					return err
				}
				return filepath.SkipDir
			}
		}
		return nil
	})
}

// isWhiteout reports whether fi is an overlay whiteout: a char device 0/0.
func isWhiteout(fi os.FileInfo) bool {
	if fi.Mode()&os.ModeCharDevice == 0 {
		return false
	}
	st, ok := fi.Sys().(*syscall.Stat_t)
	return ok && st.Rdev == 0
}

// isOpaque reports whether the directory p is marked opaque.
func isOpaque(p string) bool {
	for _, k := range []string{"trusted.overlay.opaque", "user.overlay.opaque"} {
		if v, _ := lgetxattr(p, k); string(v) == "y" {
			return true
		}
	}
	return false
}

// sameDirent reports whether a base entry and an upper entry are equal for
// the differ: same stat mode, owner and device, same capability xattr, and
// for non-directories the same size and mtime, comparing content only when
// both mtimes have no nanoseconds (they may have been truncated by a tar).
func sameDirent(f1, f2 os.FileInfo, p1, p2 string) (bool, error) {
	if os.SameFile(f1, f2) {
		return true, nil
	}
	s1, ok1 := f1.Sys().(*syscall.Stat_t)
	s2, ok2 := f2.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 {
		return false, nil
	}
	if s1.Mode != s2.Mode || s1.Uid != s2.Uid || s1.Gid != s2.Gid || s1.Rdev != s2.Rdev {
		return false, nil
	}
	c1, err := lgetxattr(p1, "security.capability")
	if err != nil {
		return false, err
	}
	c2, err := lgetxattr(p2, "security.capability")
	if err != nil {
		return false, err
	}
	if !bytes.Equal(c1, c2) {
		return false, nil
	}
	if f1.IsDir() {
		return true, nil
	}
	if f1.Size() != f2.Size() {
		return false, nil
	}
	t1, t2 := f1.ModTime(), f2.ModTime()
	if t1.Unix() != t2.Unix() {
		return false, nil
	}
	if t1.Nanosecond() != 0 || t2.Nanosecond() != 0 {
		return t1.Nanosecond() == t2.Nanosecond(), nil
	}
	if f1.Mode()&os.ModeSymlink != 0 {
		l1, err := os.Readlink(p1)
		if err != nil {
			return false, err
		}
		l2, err := os.Readlink(p2)
		if err != nil {
			return false, err
		}
		return l1 == l2, nil
	}
	if f1.Size() == 0 {
		return true, nil
	}
	return sameContent(p1, p2)
}

// sameContent compares two regular files byte for byte.
func sameContent(p1, p2 string) (bool, error) {
	a, err := rootfs.OpenRegular(p1)
	if err != nil {
		return false, err
	}
	defer a.Close()
	b, err := rootfs.OpenRegular(p2)
	if err != nil {
		return false, err
	}
	defer b.Close()
	ba, bb := make([]byte, 32<<10), make([]byte, 32<<10)
	for {
		na, ea := io.ReadFull(a, ba)
		nb, eb := io.ReadFull(b, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return false, nil
		}
		if ea != nil || eb != nil {
			if errors.Is(ea, io.EOF) || errors.Is(ea, io.ErrUnexpectedEOF) {
				return errors.Is(eb, io.EOF) || errors.Is(eb, io.ErrUnexpectedEOF), nil
			}
			if ea != nil {
				return false, ea
			}
			return false, eb
		}
	}
}

// lgetxattr returns the xattr k of p (not following symlinks), or nil if
// it is unset or the file system does not support xattrs.
func lgetxattr(p, k string) ([]byte, error) {
	buf := make([]byte, 256)
	for {
		n, err := unix.Lgetxattr(p, k, buf)
		switch {
		case errors.Is(err, unix.ERANGE):
			buf = make([]byte, 2*len(buf))
			continue
		case errors.Is(err, unix.ENODATA), errors.Is(err, unix.ENOTSUP):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("reading xattr %s of %s: %w", k, p, err)
		}
		return buf[:n], nil
	}
}

// DiffLayer writes to w the layer blob of the overlay upper dir upper over
// lower (see WriteDiff), its times rewritten with epoch: gzipped as
// Compress does when gzipped is set, else the tar as Rewrite leaves it
// (an intermediate layer). It returns the layer's descriptor and diffID.
// The tar is streamed, never held in memory.
func DiffLayer(ctx context.Context, w io.Writer, upper, lower string, epoch time.Time, gzipped bool) (Layer, error) {
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(WriteDiff(ctx, pw, upper, lower)) }()
	var l Layer
	var err error
	if gzipped {
		l, err = Compress(w, pr, &epoch)
	} else {
		l, err = Rewrite(w, pr, epoch)
	}
	pr.CloseWithError(err) // unblocks WriteDiff if the writer stopped early
	return l, err
}
