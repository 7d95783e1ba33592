package image

import (
	"archive/tar"
	"bufio"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	alog "github.com/apex/log"
	"github.com/apex/log/handlers/discard"
	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/klauspost/compress/gzip"
	"github.com/opencontainers/umoci/oci/layer"
	"golang.org/x/sys/unix"
)

func init() {
	// umoci logs through apex/log, by default to stderr, where sxmake's
	// progress output goes. Everything that matters comes back as an error.
	alog.SetHandler(discard.Default)
}

// UnpackOption configures Unpack.
type UnpackOption func(*unpackOptions)

type unpackOptions struct {
	lowers []string
	upper  bool
}

// OverLowers makes the directory Unpack writes into an overlayfs upper
// dir over lowers (top first): deletions become whiteouts (char 0/0
// devices and trusted.overlay.opaque), and a parent directory the layer
// does not list takes the metadata of the lower dir it covers. No lowers
// is an upper dir over nothing.
func OverLowers(lowers ...string) UnpackOption {
	return func(o *unpackOptions) { o.lowers, o.upper = lowers, true }
}

// Unpack applies the layer r (its tar, plain or gzipped) to the directory
// dir as BuildKit's overlayfs snapshotter applies a layer (containerd's
// archive.Apply): entries are created with their mode, owner (when running
// as root; else the caller's), times and xattrs; ".wh.<name>" removes
// <name> and ".wh..wh..opq" empties its directory (or, with OverLowers,
// both become overlayfs whiteouts); a later entry replaces an earlier one
// of the same name, directories merge.
//
// The extraction is umoci's (oci/layer's TarExtractor, hardened against
// path escapes: names are scoped to dir and symlinks resolved inside it,
// in the entry's directory and in a hard link's target). What sxmake adds,
// each where umoci differs from containerd or is unsafe: entryRules for
// each header, parentDir for parents a layer does not list, and a hard
// link's header applied to its inode (entry). Nothing is ever written
// outside dir.
func Unpack(dir string, r io.Reader, opts ...UnpackOption) error {
	var o unpackOptions
	for _, opt := range opts {
		opt(&o)
	}
	u, err := newUnpacker(dir, o)
	if err != nil {
		return fmt.Errorf("unpacking into %s: %w", dir, err)
	}
	stream, stop, err := layerTar(r)
	if err != nil {
		return fmt.Errorf("unpacking into %s: %w", dir, err)
	}
	defer stop()
	tr := tar.NewReader(stream)
	body := &entryBody{r: tr, buf: make([]byte, 1<<20)}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("unpacking into %s: %w", dir, err)
		}
		name := hdr.Name // umoci cleans hdr.Name in place
		if err := u.entry(hdr, body); err != nil {
			return fmt.Errorf("unpacking %s into %s: %w", name, dir, err)
		}
	}
}

// layerTar returns the tar stream of the layer blob r: r itself, or when
// gzipped, r gunzipped on a goroutine of its own, so that decompression
// and the file system calls overlap on two cores (with klauspost's gzip,
// faster than the standard library's: only writing layers needs the
// latter's bytes). stop ends the goroutine.
func layerTar(r io.Reader) (stream io.Reader, stop func(), err error) {
	br := bufio.NewReaderSize(r, 1<<20)
	if magic, _ := br.Peek(2); len(magic) < 2 || magic[0] != 0x1f || magic[1] != 0x8b {
		return br, func() {}, nil
	}
	zr, err := gzip.NewReader(br)
	if err != nil {
		return nil, nil, err
	}
	pr, pw := io.Pipe()
	done := make(chan struct{})
	go func() {
		defer close(done)
		_, err := zr.WriteTo(pw)
		pw.CloseWithError(err)
	}()
	return bufio.NewReaderSize(pr, 1<<20), func() { pr.Close(); <-done }, nil
}

// entryBody is the body of the current entry, copied out through one
// buffer for the whole layer: umoci's copy (io.CopyBuffer to an *os.File)
// would take two fresh 32 KiB buffers a file, its own and os's, and write
// at most 32 KiB a call.
type entryBody struct {
	r   io.Reader
	buf []byte
}

func (b *entryBody) Read(p []byte) (int, error) { return b.r.Read(p) }

// WriteTo implements io.WriterTo, which io.CopyBuffer prefers.
func (b *entryBody) WriteTo(w io.Writer) (int64, error) {
	return io.CopyBuffer(struct{ io.Writer }{w}, b.r, b.buf) // hides w's ReadFrom
}

// unpacker is umoci's TarExtractor with the rules of entryRules.
type unpacker struct {
	te     *layer.TarExtractor
	root   string // absolute, symlinks resolved
	lowers []string
	// owner, when set, replaces every entry's: umoci would fail to chown
	// to the header's as another user than root.
	owner *[2]int
	// dirs maps the names of directories known to exist (as given in the
	// layer, "/"-rooted) to where they resolve. It saves resolving an
	// entry's parent again, and is emptied whenever an entry could change
	// what a name resolves to.
	dirs map[string]string
}

func newUnpacker(dir string, o unpackOptions) (*unpacker, error) {
	root, err := filepath.Abs(dir)
	if err == nil {
		root, err = filepath.EvalSymlinks(root)
	}
	if err != nil {
		return nil, err
	}
	format := layer.OnDiskFormat(layer.DirRootfs{})
	if o.upper {
		format = layer.OverlayfsRootfs{}
	}
	u := &unpacker{
		te:     layer.NewTarExtractor(&layer.UnpackOptions{OnDiskFormat: format}),
		root:   root,
		lowers: o.lowers,
		dirs:   map[string]string{"/": root},
	}
	if os.Geteuid() != 0 {
		u.owner = &[2]int{os.Getuid(), os.Getgid()}
	}
	return u, nil
}

// entry applies one header.
func (u *unpacker) entry(hdr *tar.Header, r io.Reader) error {
	name := path.Clean("/" + hdr.Name)
	if skip, err := entryRules(hdr, name); skip || err != nil {
		return err
	}
	if u.owner != nil {
		hdr.Uid, hdr.Gid = u.owner[0], u.owner[1]
	}
	parent, err := u.parentDir(path.Dir(name))
	if err != nil {
		return err
	}
	base := path.Base(name)
	node := filepath.Join(parent, base)
	if changesResolution(hdr, name, node) {
		clear(u.dirs)
		u.dirs["/"] = u.root
	}
	if err := u.te.UnpackEntry(u.root, hdr, r); err != nil {
		return err
	}
	switch hdr.Typeflag {
	case tar.TypeDir:
		u.dirs[name] = node
	case tar.TypeLink:
		// containerd applies a link's header to the inode it shares;
		// umoci leaves the inode as its first entry made it.
		return SetEntryMetadata(node, hdr, hdr.Uid, hdr.Gid)
	}
	return nil
}

// entryRules checks and adjusts hdr (named name, cleaned and "/"-rooted)
// before umoci sees it, where umoci would differ from containerd's
// archive.Apply or be unsafe; skip means the entry is ignored.
//
//   - The root itself and PAX global headers are skipped, as containerd
//     does (umoci refuses the first, unless a directory, and the second).
//   - A whiteout must name an entry of its directory: ".wh.", ".wh.." and
//     ".wh..." are refused (umoci would remove the directory or, for
//     "/.wh...", the parent of the root).
//   - Sparse entries are refused: their holes would be written out as
//     zeros, so a tiny layer could fill the disk. Layer writers never
//     produce them.
//   - Device numbers must fit in 32 bits (umoci would truncate them).
//   - Times are EntryTimes': umoci keeps times before 1970 (containerd
//     sets 1970-01-01) and puts the current time for a zero one.
func entryRules(hdr *tar.Header, name string) (skip bool, err error) {
	if hdr.Typeflag == tar.TypeXGlobalHeader || name == "/" {
		return true, nil
	}
	if target, ok := strings.CutPrefix(path.Base(name), ".wh."); ok && target != ".wh..opq" {
		if target == "" || target == "." || target == ".." {
			return false, errors.New("invalid whiteout name")
		}
	}
	if isSparse(hdr) {
		return false, errors.New("sparse files are not supported")
	}
	if hdr.Typeflag == tar.TypeChar || hdr.Typeflag == tar.TypeBlock {
		if hdr.Devmajor < 0 || hdr.Devmajor > 1<<32-1 || hdr.Devminor < 0 || hdr.Devminor > 1<<32-1 {
			return false, fmt.Errorf("device number %d:%d out of range", hdr.Devmajor, hdr.Devminor)
		}
	}
	hdr.AccessTime, hdr.ModTime = EntryTimes(hdr)
	return false, nil
}

// changesResolution reports whether the entry hdr, named name and landing
// at node, could make a known directory's name resolve elsewhere or not at
// all: a whiteout, or an entry replacing a symlink, or a directory with
// something else.
func changesResolution(hdr *tar.Header, name, node string) bool {
	if strings.HasPrefix(path.Base(name), ".wh.") {
		return true
	}
	fi, err := os.Lstat(node)
	if err != nil {
		return false
	}
	return fi.Mode()&fs.ModeSymlink != 0 || fi.IsDir() && hdr.Typeflag != tar.TypeDir
}

// parentDir returns where the directory name (cleaned, "/"-rooted)
// resolves inside the root, creating what is missing of it as containerd's
// mkparent does: with the owner, mode, times and xattrs of the lower dir
// it covers (the first lower holding the name, unless that is not a
// directory), else 0755, owned by root, dated 1970-01-01 (containerd
// leaves the time of creation). umoci would create them 0777 less the
// umask, owned by root, dated now.
func (u *unpacker) parentDir(name string) (string, error) {
	if p, ok := u.dirs[name]; ok {
		return p, nil
	}
	p, err := securejoin.SecureJoin(u.root, name)
	if err != nil {
		return "", err
	}
	rel := strings.TrimPrefix(p, u.root)
	cur := u.root
	for _, c := range strings.Split(strings.Trim(rel, "/"), "/") {
		cur = filepath.Join(cur, c)
		fi, err := os.Lstat(cur)
		if err == nil && fi.IsDir() {
			continue
		}
		if err == nil {
			return "", &fs.PathError{Op: "mkparent", Path: cur[len(u.root):], Err: syscall.ENOTDIR}
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", err
		}
		hdr, err := u.copiedUpDir(cur[len(u.root):])
		if err != nil {
			return "", err
		}
		if err := u.te.UnpackEntry(u.root, hdr, nil); err != nil {
			return "", fmt.Errorf("creating parent directory %s: %w", hdr.Name, err)
		}
	}
	u.dirs[name] = p
	return p, nil
}

// copiedUpDir returns the header of the directory name (resolved, "/"-
// rooted) a parent the layer does not list is made from: see parentDir.
func (u *unpacker) copiedUpDir(name string) (*tar.Header, error) {
	hdr := &tar.Header{Typeflag: tar.TypeDir, Name: name, Mode: 0o755, ModTime: minEntryTime}
	for _, lower := range u.lowers {
		p, err := securejoin.SecureJoin(lower, name)
		if err != nil {
			return nil, err
		}
		fi, err := os.Lstat(p)
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if !fi.IsDir() {
			break // replaced: not copied from
		}
		st := fi.Sys().(*syscall.Stat_t)
		hdr.Mode = int64(st.Mode & 0o7777)
		hdr.Uid, hdr.Gid = int(st.Uid), int(st.Gid)
		hdr.ModTime = time.Unix(st.Mtim.Unix())
		hdr.AccessTime = time.Unix(st.Atim.Unix())
		//lint:ignore SA1019 umoci's extractor reads Xattrs, not PAXRecords
		if hdr.Xattrs, err = copyUpXattrs(p); err != nil {
			return nil, err
		}
		break
	}
	if u.owner != nil {
		hdr.Uid, hdr.Gid = u.owner[0], u.owner[1]
	}
	return hdr, nil
}

// copyUpXattrs returns the extended attributes of the lower dir p that
// containerd copies up: all but trusted.* (overlayfs' own).
func copyUpXattrs(p string) (map[string]string, error) {
	size, err := unix.Llistxattr(p, nil)
	if err != nil || size == 0 {
		if errors.Is(err, unix.ENOTSUP) {
			err = nil
		}
		return nil, err
	}
	buf := make([]byte, size)
	if size, err = unix.Llistxattr(p, buf); err != nil {
		return nil, err
	}
	attrs := map[string]string{}
	for _, k := range strings.Split(string(buf[:size]), "\x00") {
		if k == "" || strings.HasPrefix(k, "trusted.") {
			continue
		}
		v, err := lgetxattr(p, k)
		if err != nil {
			return nil, err
		}
		attrs[k] = string(v)
	}
	return attrs, nil
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
