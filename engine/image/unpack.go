package image

import (
	"archive/tar"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Unpack applies the uncompressed layer tar r to the directory dir, as a
// container runtime applies a layer: entries are created with their mode,
// owner (when running as root) and mtime; ".wh.<name>" removes <name> and
// ".wh..wh..opq" empties its directory; a later entry replaces an earlier
// one of the same name.
//
// Nothing is ever written outside dir: names are cleaned ("../x" and "/x"
// both mean dir/x) and every file operation goes through an os.Root, which
// refuses to follow a symlink (or "..") out of dir, so a symlink in the
// layer or already in dir cannot redirect a later entry elsewhere.
// Symlink targets are stored as given; hardlinks must point inside dir.
// Extended attributes in SCHILY.xattr PAX records (file capabilities) are
// set on regular files and directories.
func Unpack(dir string, r io.Reader) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return fmt.Errorf("unpacking into %s: %w", dir, err)
	}
	defer root.Close()
	u := unpacker{root: root, chown: os.Geteuid() == 0}
	tr := tar.NewReader(r)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("unpacking into %s: %w", dir, err)
		}
		if err := u.entry(hdr, tr); err != nil {
			return fmt.Errorf("unpacking %s into %s: %w", hdr.Name, dir, err)
		}
	}
	// Directory times last, children having changed them.
	for i := len(u.dirs) - 1; i >= 0; i-- {
		d := u.dirs[i]
		if err := root.Chtimes(d.name, d.mtime, d.mtime); err != nil {
			return fmt.Errorf("unpacking into %s: %w", dir, err)
		}
	}
	return nil
}

type unpacker struct {
	root  *os.Root
	chown bool
	dirs  []dirTime
}

type dirTime struct {
	name  string
	mtime time.Time
}

// cleanName maps a tar name to a path relative to the root, or "" for the
// root itself.
func cleanName(name string) string {
	p := path.Clean("/" + name)
	return strings.TrimPrefix(p, "/")
}

func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	name := cleanName(hdr.Name)
	if name == "" {
		return nil
	}
	if isSparse(hdr) {
		// Holes would be expanded to zeros: a tiny layer could fill the
		// disk. Layer writers never produce sparse entries.
		return fmt.Errorf("sparse files are not supported")
	}
	dir, base := path.Split(name)
	dir = strings.TrimSuffix(dir, "/")
	if dir != "" {
		if err := u.root.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	if base == ".wh..wh..opq" {
		return u.emptyDir(dir)
	}
	if target, ok := strings.CutPrefix(base, ".wh."); ok {
		if target == "" || target == "." || target == ".." {
			return fmt.Errorf("invalid whiteout")
		}
		return u.root.RemoveAll(path.Join(dir, target))
	}
	if hdr.Typeflag != tar.TypeDir {
		if err := u.root.RemoveAll(name); err != nil {
			return err
		}
	} else if fi, err := u.root.Lstat(name); err == nil && !fi.IsDir() {
		if err := u.root.Remove(name); err != nil {
			return err
		}
	}
	mode := fs.FileMode(hdr.Mode).Perm()
	switch hdr.Typeflag {
	case tar.TypeDir:
		if err := u.root.Mkdir(name, 0o700); err != nil && !errors.Is(err, fs.ErrExist) {
			return err
		}
		u.dirs = append(u.dirs, dirTime{name, hdr.ModTime})
	case tar.TypeReg:
		f, err := u.root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		_, err = io.Copy(f, r)
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return err
		}
	case tar.TypeSymlink:
		if err := u.root.Symlink(hdr.Linkname, name); err != nil {
			return err
		}
	case tar.TypeLink:
		// The link's own header then sets owner, mode and mtime of the
		// shared inode, as containerd and moby's archive code do.
		if err := u.root.Link(cleanName(hdr.Linkname), name); err != nil {
			return err
		}
	case tar.TypeChar, tar.TypeBlock, tar.TypeFifo:
		if err := u.mknod(dir, base, hdr); err != nil {
			return err
		}
	default:
		return fmt.Errorf("unsupported tar entry type %q", hdr.Typeflag)
	}
	if u.chown {
		if err := u.root.Lchown(name, hdr.Uid, hdr.Gid); err != nil {
			return err
		}
	}
	if hdr.Typeflag == tar.TypeSymlink {
		return nil // no lchmod or lutimes through os.Root
	}
	if err := u.root.Chmod(name, mode|specialBits(hdr.Mode)); err != nil {
		return err
	}
	if err := u.setXattrs(name, hdr); err != nil {
		return err
	}
	if hdr.Typeflag != tar.TypeDir {
		return u.root.Chtimes(name, hdr.ModTime, hdr.ModTime)
	}
	return nil
}

// setXattrs applies the header's SCHILY.xattr PAX records (the layer
// writer keeps only security.capability) after chown and chmod, which
// would clear a capability. Only regular files and directories get them.
func (u *unpacker) setXattrs(name string, hdr *tar.Header) error {
	if hdr.Typeflag != tar.TypeReg && hdr.Typeflag != tar.TypeDir && hdr.Typeflag != tar.TypeLink {
		return nil
	}
	if fi, err := u.root.Lstat(name); err != nil || !(fi.Mode().IsRegular() || fi.IsDir()) {
		return err // a hardlink to a device or fifo: never opened
	}
	for k, v := range hdr.PAXRecords {
		attr, ok := strings.CutPrefix(k, "SCHILY.xattr.")
		if !ok {
			continue
		}
		f, err := u.root.OpenFile(name, os.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0)
		if err != nil {
			return err
		}
		err = unix.Fsetxattr(int(f.Fd()), attr, []byte(v), 0)
		f.Close()
		if err != nil {
			return fmt.Errorf("setting xattr %s: %w", attr, err)
		}
	}
	return nil
}

// isSparse reports whether hdr is a GNU sparse file (old or PAX format).
func isSparse(hdr *tar.Header) bool {
	if hdr.Typeflag == tar.TypeGNUSparse {
		return true
	}
	for k := range hdr.PAXRecords {
		if strings.HasPrefix(k, "GNU.sparse.") {
			return true
		}
	}
	return false
}

// specialBits converts the setuid, setgid and sticky bits of a tar mode.
func specialBits(m int64) fs.FileMode {
	var fm fs.FileMode
	if m&0o4000 != 0 {
		fm |= fs.ModeSetuid
	}
	if m&0o2000 != 0 {
		fm |= fs.ModeSetgid
	}
	if m&0o1000 != 0 {
		fm |= fs.ModeSticky
	}
	return fm
}

// emptyDir removes every entry of the directory dir (an opaque whiteout).
func (u *unpacker) emptyDir(dir string) error {
	d := dir
	if d == "" {
		d = "."
	}
	f, err := u.root.OpenFile(d, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	names, err := f.Readdirnames(-1)
	f.Close()
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := u.root.RemoveAll(path.Join(dir, n)); err != nil {
			return err
		}
	}
	return nil
}

// mknod creates a device or fifo named base in dir, relative to an fd of
// dir opened through the root so the node cannot land outside it.
func (u *unpacker) mknod(dir, base string, hdr *tar.Header) error {
	d := dir
	if d == "" {
		d = "."
	}
	f, err := u.root.OpenFile(d, os.O_RDONLY|unix.O_DIRECTORY, 0)
	if err != nil {
		return err
	}
	defer f.Close()
	mode := uint32(hdr.Mode & 0o7777)
	switch hdr.Typeflag {
	case tar.TypeChar:
		mode |= unix.S_IFCHR
	case tar.TypeBlock:
		mode |= unix.S_IFBLK
	case tar.TypeFifo:
		mode |= unix.S_IFIFO
	}
	dev := unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor))
	return unix.Mknodat(int(f.Fd()), base, mode, int(dev))
}
