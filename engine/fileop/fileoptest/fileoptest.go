// Package fileoptest builds small file trees and lists them in a form that
// cmp.Diff can compare: path, type, mode, owner, size, link target,
// content hash, xattrs, hard-link groups and (optionally) mtimes.
package fileoptest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// RequiresRoot skips t unless it runs as root; with SXMAKE_TEST_ROOT=1 (set
// by CI) a missing root fails instead.
func RequiresRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("SXMAKE_TEST_ROOT") == "1" {
		t.Fatal("test requires root (SXMAKE_TEST_ROOT=1)")
	}
	t.Skip("test requires root")
}

// Entry is one node of a listed tree.
type Entry struct {
	Path   string // slash-separated, relative to the root; "." is the root
	Type   string // dir, file, symlink, fifo, char, block, socket
	Mode   string // permission and set-id/sticky bits in octal, "0755"
	UID    int
	GID    int
	Size   int64             // files only
	Link   string            // symlink target
	SHA256 string            // files only: hex sha256 of the content
	Xattrs map[string]string // nil when there are none
	// HardlinkOf is the first path, in listing order, sharing this file's
	// inode ("" for the first one and for unlinked files).
	HardlinkOf string
	// MTime is set only when listing WithTimes.
	MTime time.Time
}

// Option changes what Tree lists.
type Option func(*options)

type options struct {
	times bool
	skip  func(string) bool
}

// WithTimes fills Entry.MTime.
func WithTimes() Option { return func(o *options) { o.times = true } }

// Skip leaves out the paths (and what is below them) for which skip
// returns true.
func Skip(skip func(path string) bool) Option { return func(o *options) { o.skip = skip } }

// Tree lists root and everything below it, in lexical path order.
func Tree(t testing.TB, root string, opts ...Option) []Entry {
	t.Helper()
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var out []Entry
	inodes := map[uint64]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if o.skip != nil && rel != "." && o.skip(rel) {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		e, err := describe(p, rel, inodes)
		if err != nil {
			return err
		}
		if !o.times {
			e.MTime = time.Time{}
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		t.Fatalf("listing %s: %v", root, err)
	}
	return out
}

func describe(p, rel string, inodes map[uint64]string) (Entry, error) {
	fi, err := os.Lstat(p)
	if err != nil {
		return Entry{}, err
	}
	st := fi.Sys().(*syscall.Stat_t)
	e := Entry{
		Path:  rel,
		Type:  typeName(fi.Mode()),
		Mode:  fmt.Sprintf("%04o", st.Mode&0o7777),
		UID:   int(st.Uid),
		GID:   int(st.Gid),
		MTime: time.Unix(st.Mtim.Unix()).UTC(),
	}
	switch e.Type {
	case "symlink":
		e.Mode = ""
		if e.Link, err = os.Readlink(p); err != nil {
			return Entry{}, err
		}
	case "file":
		e.Size = fi.Size()
		data, err := os.ReadFile(p)
		if err != nil {
			return Entry{}, err
		}
		sum := sha256.Sum256(data)
		e.SHA256 = hex.EncodeToString(sum[:])
		if st.Nlink > 1 {
			if first, ok := inodes[st.Ino]; ok {
				e.HardlinkOf = first
			} else {
				inodes[st.Ino] = rel
			}
		}
	}
	e.Xattrs, err = xattrs(p)
	return e, err
}

func typeName(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "dir"
	case m.IsRegular():
		return "file"
	case m&fs.ModeSymlink != 0:
		return "symlink"
	case m&fs.ModeNamedPipe != 0:
		return "fifo"
	case m&fs.ModeSocket != 0:
		return "socket"
	case m&fs.ModeCharDevice != 0:
		return "char"
	case m&fs.ModeDevice != 0:
		return "block"
	}
	return "other"
}

func xattrs(p string) (map[string]string, error) {
	n, err := unix.Llistxattr(p, nil)
	if err != nil || n == 0 {
		return nil, nil // unsupported or none
	}
	buf := make([]byte, n)
	if n, err = unix.Llistxattr(p, buf); err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, k := range strings.Split(string(buf[:n]), "\x00") {
		if k == "" {
			continue
		}
		vn, err := unix.Lgetxattr(p, k, nil)
		if err != nil {
			return nil, err
		}
		v := make([]byte, vn)
		if vn, err = unix.Lgetxattr(p, k, v); err != nil {
			return nil, err
		}
		m[k] = string(v[:vn])
	}
	if len(m) == 0 {
		return nil, nil
	}
	return m, nil
}

// SHA256 returns the hex sha256 of s, to write expected Entry values.
func SHA256(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// Kind is the type of a Node.
type Kind int

// Node kinds.
const (
	KindDir Kind = iota
	KindFile
	KindSymlink
	KindHardlink
	KindFifo
	KindChar
)

// Node is one entry to Build. Use the constructors and the With methods.
type Node struct {
	Path     string // slash path relative to the root
	Kind     Kind
	Data     string
	Mode     fs.FileMode // permission bits plus fs.ModeSetuid etc.
	Target   string      // symlink target, or hard link source path
	UID, GID int
	MTime    time.Time // zero: leave the creation time
	Xattrs   map[string]string
	Rdev     uint64
}

// Dir is a directory node.
func Dir(path string, mode fs.FileMode) Node { return Node{Path: path, Kind: KindDir, Mode: mode} }

// File is a regular file node.
func File(path, data string, mode fs.FileMode) Node {
	return Node{Path: path, Kind: KindFile, Data: data, Mode: mode}
}

// Symlink is a symbolic link node.
func Symlink(path, target string) Node { return Node{Path: path, Kind: KindSymlink, Target: target} }

// Hardlink is a hard link to the earlier node at source.
func Hardlink(path, source string) Node { return Node{Path: path, Kind: KindHardlink, Target: source} }

// Fifo is a named pipe node.
func Fifo(path string, mode fs.FileMode) Node { return Node{Path: path, Kind: KindFifo, Mode: mode} }

// CharDev is a character device node.
func CharDev(path string, mode fs.FileMode, major, minor uint32) Node {
	return Node{Path: path, Kind: KindChar, Mode: mode, Rdev: unix.Mkdev(major, minor)}
}

// WithOwner sets the node's uid and gid.
func (n Node) WithOwner(uid, gid int) Node { n.UID, n.GID = uid, gid; return n }

// WithMTime sets the node's atime and mtime.
func (n Node) WithMTime(t time.Time) Node { n.MTime = t; return n }

// WithXattr adds an extended attribute.
func (n Node) WithXattr(k, v string) Node {
	m := map[string]string{k: v}
	for k2, v2 := range n.Xattrs {
		m[k2] = v2
	}
	n.Xattrs = m
	return n
}

// Build creates nodes under root in order (parents must come first or
// exist), then sets the times, deepest paths first so that directory times
// stick.
func Build(t testing.TB, root string, nodes ...Node) {
	t.Helper()
	for _, n := range nodes {
		if err := build(root, n); err != nil {
			t.Fatalf("building %s: %v", n.Path, err)
		}
	}
	timed := append([]Node(nil), nodes...)
	sort.SliceStable(timed, func(i, j int) bool {
		return strings.Count(timed[i].Path, "/") > strings.Count(timed[j].Path, "/")
	})
	for _, n := range timed {
		if n.MTime.IsZero() {
			continue
		}
		ts := unix.NsecToTimespec(n.MTime.UnixNano())
		p := filepath.Join(root, n.Path)
		if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{ts, ts}, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			t.Fatalf("setting times of %s: %v", n.Path, err)
		}
	}
}

func build(root string, n Node) error {
	p := filepath.Join(root, n.Path)
	var err error
	switch n.Kind {
	case KindDir:
		err = os.Mkdir(p, 0o700)
	case KindFile:
		err = os.WriteFile(p, []byte(n.Data), 0o600)
	case KindSymlink:
		err = os.Symlink(n.Target, p)
	case KindHardlink:
		return os.Link(filepath.Join(root, n.Target), p)
	case KindFifo:
		err = unix.Mkfifo(p, 0o600)
	case KindChar:
		err = unix.Mknod(p, unix.S_IFCHR|0o600, int(n.Rdev))
	}
	if err != nil {
		return err
	}
	if err := os.Lchown(p, n.UID, n.GID); err != nil {
		return err
	}
	if n.Kind != KindSymlink {
		if err := os.Chmod(p, n.Mode); err != nil {
			return err
		}
	}
	for k, v := range n.Xattrs {
		if err := unix.Lsetxattr(p, k, []byte(v), 0); err != nil {
			return err
		}
	}
	return nil
}

// WantDir is the Entry of a directory owned by 0:0.
func WantDir(path, mode string) Entry { return Entry{Path: path, Type: "dir", Mode: mode} }

// WantFile is the Entry of a regular file holding data, owned by 0:0.
func WantFile(path, mode, data string) Entry {
	return Entry{Path: path, Type: "file", Mode: mode, Size: int64(len(data)), SHA256: SHA256(data)}
}

// WantSymlink is the Entry of a symlink owned by 0:0.
func WantSymlink(path, target string) Entry { return Entry{Path: path, Type: "symlink", Link: target} }

// Owned returns e with the given owner.
func (e Entry) Owned(uid, gid int) Entry { e.UID, e.GID = uid, gid; return e }

// HardlinkTo returns e marked as sharing the inode of the earlier path first.
func (e Entry) HardlinkTo(first string) Entry { e.HardlinkOf = first; return e }

// WithXattr returns e with an extended attribute added.
func (e Entry) WithXattr(k, v string) Entry {
	m := map[string]string{k: v}
	for k2, v2 := range e.Xattrs {
		m[k2] = v2
	}
	e.Xattrs = m
	return e
}
