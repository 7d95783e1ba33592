package fileop

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"encoding/binary"
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
	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"

	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/sandbox/rootfs"
)

// Compression is the compression of an archive, detected from its first
// bytes as moby/go-archive does.
type Compression int

// The compressions ADD understands.
const (
	Uncompressed Compression = iota
	Bzip2
	Gzip
	Xz
	Zstd
)

// String names the compression as BuildKit's extension table does.
func (c Compression) String() string {
	switch c {
	case Bzip2:
		return "bzip2"
	case Gzip:
		return "gzip"
	case Xz:
		return "xz"
	case Zstd:
		return "zstd"
	}
	return "uncompressed"
}

// DetectCompression names the compression whose magic number starts b
// (which should hold at least 10 bytes when the file is that long):
// bzip2 "BZh", gzip 1f 8b 08, xz fd "7zXZ" 00, zstd 28 b5 2f fd or a zstd
// skippable frame; anything else is Uncompressed.
func DetectCompression(b []byte) Compression {
	switch {
	case bytes.HasPrefix(b, []byte{0x42, 0x5a, 0x68}):
		return Bzip2
	case bytes.HasPrefix(b, []byte{0x1f, 0x8b, 0x08}):
		return Gzip
	case bytes.HasPrefix(b, []byte{0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00}):
		return Xz
	case bytes.HasPrefix(b, []byte{0x28, 0xb5, 0x2f, 0xfd}):
		return Zstd
	case len(b) >= 8 && binary.LittleEndian.Uint32(b)&0xfffffff0 == 0x184d2a50:
		return Zstd
	}
	return Uncompressed
}

// Decompress returns the decompressed stream of r, whatever its
// compression. Close releases the decoder, not r. BuildKit decompresses xz
// with the xz(1) program (and gzip with unpigz when present); we use
// github.com/ulikunitz/xz, which reads the LZMA2 streams that source
// tarballs use but not BCJ filter chains, and compress/gzip.
func Decompress(r io.Reader) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 32*1024)
	head, err := br.Peek(10)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	switch DetectCompression(head) {
	case Gzip:
		return gzip.NewReader(br)
	case Bzip2:
		return io.NopCloser(bzip2.NewReader(br)), nil
	case Xz:
		xr, err := xz.NewReader(br)
		if err != nil {
			return nil, err
		}
		return io.NopCloser(xr), nil
	case Zstd:
		zr, err := zstd.NewReader(br, zstd.WithDecoderConcurrency(1))
		if err != nil {
			return nil, err
		}
		return zr.IOReadCloser(), nil
	}
	return io.NopCloser(br), nil
}

// IsArchive reports whether the file at p is one ADD extracts: a regular
// file (not a symlink) whose decompressed content starts with a valid tar
// header. Unreadable files are not archives.
func IsArchive(p string) bool {
	f, err := rootfs.OpenRegular(p)
	if err != nil {
		return false
	}
	defer f.Close()
	r, err := Decompress(f)
	if err != nil {
		return false
	}
	defer r.Close()
	_, err = tar.NewReader(r).Next()
	return err == nil
}

// unpack extracts the archive src into Dest, reporting false (and doing
// nothing) if src is not an archive.
func (a *applier) unpack(ctx context.Context, src string) (bool, error) {
	if !IsArchive(src) {
		return false, nil
	}
	dest, err := securejoin.SecureJoin(a.destRoot, a.cleanDest())
	if err != nil {
		return false, err
	}
	if err := a.mkdirAll(dest, 0o755); err != nil {
		return false, err
	}
	f, err := rootfs.OpenRegular(src)
	if err != nil {
		return false, err
	}
	defer f.Close()
	r, err := Decompress(f)
	if err != nil {
		return false, err
	}
	defer r.Close()
	return true, Extract(ctx, r, dest, a.chown)
}

// Extract unpacks the uncompressed tar stream r into the existing directory
// dest with moby/go-archive's Untar semantics, as BuildKit runs it: as if
// dest were the root directory (chroot), so ".." and absolute names, and
// symlinks met on the way, never lead outside dest.
//
//   - Entries are written in archive order; an existing non-directory (or a
//     directory meeting a non-directory entry) is replaced, directories
//     are merged.
//   - Owner is the header's uid/gid, or chown for every entry when set.
//     Missing parent directories are created 0755 and owned by 0:0.
//   - Mode is the header's (setuid/setgid/sticky included); --chmod does
//     not apply.
//   - mtime is the header's; atime is the later of its atime and mtime.
//     Times before 1970 are set to 1970-01-01. Directory times are set
//     again after the last entry.
//   - SCHILY.xattr PAX records become xattrs (EPERM/ENOTSUP ignored).
//   - Hard links point inside dest; symlinks are created as written.
//   - PAX global headers are skipped; other unknown types are errors.
//
// Extract never writes outside dest. One deliberate difference from a real
// chroot: a path through a dangling symlink creates the symlink's target
// (inside dest) where the kernel would fail.
func Extract(ctx context.Context, r io.Reader, dest string, chown *Owner) error {
	dest, err := filepath.Abs(dest)
	if err != nil {
		return err
	}
	x := &extractor{dest: dest, chown: chown, parents: map[string]string{}}
	tr := tar.NewReader(r)
	var dirs []*tar.Header
	for {
		if err := ctx.Err(); err != nil {
			return err
		}
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		if hdr.Typeflag == tar.TypeXGlobalHeader {
			continue
		}
		hdr.Name = filepath.Clean(hdr.Name)
		skipped, err := x.entry(hdr, tr)
		if err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
		if !skipped && hdr.Typeflag == tar.TypeDir {
			dirs = append(dirs, hdr)
		}
	}
	for _, hdr := range dirs {
		p, err := securejoin.SecureJoin(dest, hdr.Name)
		if err != nil {
			return err
		}
		atime, mtime := image.EntryTimes(hdr)
		if err := os.Chtimes(p, atime, mtime); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
	return nil
}

// extractor holds one Extract's state.
type extractor struct {
	dest  string
	chown *Owner
	// parents caches the resolved path of parent directories by name; it
	// is dropped whenever an entry removes something or adds a symlink,
	// which could change how names resolve.
	parents map[string]string
}

// resolveParent returns the resolved directory that holds name, following
// symlinks within dest.
func (x *extractor) resolveParent(name string) (string, error) {
	dir := path.Dir(path.Join("/", name))
	if p, ok := x.parents[dir]; ok {
		return p, nil
	}
	p, err := securejoin.SecureJoin(x.dest, dir)
	if err != nil {
		return "", err
	}
	x.parents[dir] = p
	return p, nil
}

// entry applies one header; skipped reports an entry for "." that meets
// the existing extraction directory and is ignored.
func (x *extractor) entry(hdr *tar.Header, r io.Reader) (skipped bool, err error) {
	abs := path.Join("/", hdr.Name)
	parent, err := x.resolveParent(hdr.Name)
	if err != nil {
		return false, err
	}
	p := x.dest
	if abs != "/" {
		if err := x.impliedDirs(parent); err != nil {
			return false, err
		}
		p = filepath.Join(parent, path.Base(abs))
	}
	if fi, err := os.Lstat(p); err == nil {
		if fi.IsDir() && hdr.Name == "." {
			return true, nil
		}
		if !fi.IsDir() || hdr.Typeflag != tar.TypeDir {
			if p == x.dest {
				return false, errors.New("cannot replace the extraction directory")
			}
			if err := os.RemoveAll(p); err != nil {
				return false, err
			}
			clear(x.parents)
		}
	}
	return false, x.create(p, hdr, r)
}

// impliedDirs creates the missing parent directory p (and its parents)
// with mode 0755, owned by 0:0, whatever --chown says.
func (x *extractor) impliedDirs(p string) error {
	if _, err := os.Lstat(p); err == nil || !errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if p == x.dest || !strings.HasPrefix(p, x.dest+"/") {
		return fmt.Errorf("extraction directory %s is missing", x.dest)
	}
	if err := x.impliedDirs(filepath.Dir(p)); err != nil {
		return err
	}
	if err := os.Mkdir(p, 0o755); err != nil {
		return err
	}
	if err := os.Chmod(p, 0o755); err != nil {
		return err
	}
	return os.Lchown(p, 0, 0)
}

// create makes the node for hdr at p, then sets owner, xattrs, mode and
// times in go-archive's order.
func (x *extractor) create(p string, hdr *tar.Header, r io.Reader) error {
	mode := hdr.FileInfo().Mode()
	switch hdr.Typeflag {
	case tar.TypeDir:
		if fi, err := os.Lstat(p); err != nil || !fi.IsDir() {
			if err := os.Mkdir(p, mode); err != nil {
				return err
			}
		}
	case tar.TypeReg:
		f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|syscall.O_NOFOLLOW, mode)
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
	case tar.TypeBlock, tar.TypeChar, tar.TypeFifo:
		m := uint32(hdr.Mode & 0o7777)
		switch hdr.Typeflag {
		case tar.TypeBlock:
			m |= unix.S_IFBLK
		case tar.TypeChar:
			m |= unix.S_IFCHR
		default:
			m |= unix.S_IFIFO
		}
		if err := unix.Mknod(p, m, int(unix.Mkdev(uint32(hdr.Devmajor), uint32(hdr.Devminor)))); err != nil {
			return &fs.PathError{Op: "mknod", Path: hdr.Name, Err: err}
		}
	case tar.TypeLink:
		target, err := x.linkTarget(hdr.Linkname)
		if err != nil {
			return err
		}
		if err := os.Link(target, p); err != nil {
			return err
		}
		clear(x.parents) // the link may be a symlink's
	case tar.TypeSymlink:
		if err := os.Symlink(hdr.Linkname, p); err != nil {
			return err
		}
		clear(x.parents)
	default:
		return fmt.Errorf("unhandled tar header type %d", hdr.Typeflag)
	}
	uid, gid := hdr.Uid, hdr.Gid
	if x.chown != nil {
		uid, gid = x.chown.UID, x.chown.GID
	}
	return image.SetEntryMetadata(p, hdr, uid, gid)
}

// linkTarget resolves a hard link's target name inside dest, following
// symlinks in its directories but not in its last component.
func (x *extractor) linkTarget(name string) (string, error) {
	abs := path.Join("/", name)
	if abs == "/" {
		return x.dest, nil
	}
	dir, err := securejoin.SecureJoin(x.dest, path.Dir(abs))
	if err != nil {
		return "", err
	}
	return filepath.Join(dir, path.Base(abs)), nil
}
