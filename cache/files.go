package cache

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/sys/unix"
)

// FileHashes remembers the SHA-256 of files outside the cache (the
// context files a COPY reads, a tree's fetched sources) by their identity
// on disk, as ninja's and Bazel's stat caches do: a file whose device,
// inode, size, mtime and ctime are those it had when it was hashed is not
// read again. Entries live in the action database (bucket files/), are
// written when the cache is closed, and count only while the cache is
// held. Safe for concurrent use.
//
// What is trusted. A write to a file changes its ctime, which no program
// can set back (only the system clock can), so an edit, an rsync or an
// extracted archive over a file is seen even if it keeps size and mtime.
// File times are kept to a clock tick, though: an edit within the tick in
// which the file was last changed before hashing would not show. So, as
// git does with "racily clean" entries, an entry whose file changed less
// than racyWindow before it was hashed is not trusted by a later process,
// which hashes the file again (then, its change being old, trusts it).
// Within one process an entry is trusted as soon as it is made: the copy
// that follows a key reads the file again anyway, as it always did.
//
// A step never changes these files: the sandbox does not mount the
// package directory or fetch/. A user can edit them, and is seen. Someone
// who can write the cache directory can make any entry say anything, as
// they can with every result in it.
type FileHashes struct {
	db   *bolt.DB
	now  func() time.Time
	hash func(path string) (Digest, error) // reads the file

	mu   sync.Mutex
	seen map[string]fileEntry // by absolute path: this process's entries
}

// racyWindow is how long before its hashing a file must have last changed
// for its entry to be trusted by a later process: more than a clock tick
// of any file system sxmake runs on.
const racyWindow = time.Second

var bucketFiles = []byte("files")

// fileID is a file's identity on disk.
type fileID struct {
	dev, ino     uint64
	size         int64
	mtime, ctime int64 // ns
}

// fileEntry is what is known of one file.
type fileEntry struct {
	id       fileID
	hashedAt int64 // ns, when the hashing began
	sum      Digest
	fresh    bool // made by this process: trusted, and to be written
}

const fileEntrySize = 2*8 + 4*8 + 32

func (e fileEntry) marshal() []byte {
	b := make([]byte, 0, fileEntrySize)
	for _, n := range []uint64{e.id.dev, e.id.ino, uint64(e.id.size), uint64(e.id.mtime), uint64(e.id.ctime), uint64(e.hashedAt)} {
		b = binary.BigEndian.AppendUint64(b, n)
	}
	return append(b, e.sum[:]...)
}

func (e *fileEntry) unmarshal(b []byte) bool {
	if len(b) != fileEntrySize {
		return false
	}
	n := func(i int) uint64 { return binary.BigEndian.Uint64(b[8*i:]) }
	e.id = fileID{dev: n(0), ino: n(1), size: int64(n(2)), mtime: int64(n(3)), ctime: int64(n(4))}
	e.hashedAt = int64(n(5))
	copy(e.sum[:], b[48:])
	return true
}

// trusted reports whether a later process may use e without reading the
// file: it had not changed for racyWindow when it was hashed.
func (e fileEntry) trusted() bool {
	limit := e.hashedAt - int64(racyWindow)
	return e.fresh || e.id.ctime < limit && e.id.mtime < limit
}

func newFileHashes(db *bolt.DB) *FileHashes {
	return &FileHashes{db: db, now: time.Now, hash: sha256File, seen: map[string]fileEntry{}}
}

// SHA256 returns the SHA-256 of the content of the regular file at path,
// in hex, reading the file only if no trusted entry matches its identity.
// A missing file gives an error wrapping os.ErrNotExist.
func (h *FileHashes) SHA256(path string) (string, error) {
	abs, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	id, err := statID(abs)
	if err != nil {
		return "", err
	}
	if e, ok := h.lookup(abs); ok && e.id == id && e.trusted() {
		return hex.EncodeToString(e.sum[:]), nil
	}
	start := h.now().UnixNano()
	sum, err := h.hash(abs)
	if err != nil {
		return "", err
	}
	// A file that changed while it was read gets no entry.
	if after, err := statID(abs); err == nil && after == id {
		h.mu.Lock()
		h.seen[abs] = fileEntry{id: id, hashedAt: start, sum: sum, fresh: true}
		h.mu.Unlock()
	}
	return hex.EncodeToString(sum[:]), nil
}

// lookup returns the entry of abs, this process's or a stored one.
func (h *FileHashes) lookup(abs string) (fileEntry, bool) {
	h.mu.Lock()
	e, ok := h.seen[abs]
	h.mu.Unlock()
	if ok {
		return e, true
	}
	_ = h.db.View(func(tx *bolt.Tx) error {
		if b := tx.Bucket(bucketFiles); b != nil {
			ok = e.unmarshal(b.Get([]byte(abs)))
		}
		return nil
	})
	return e, ok
}

// flush writes this process's entries.
func (h *FileHashes) flush() error {
	h.mu.Lock()
	seen := h.seen
	h.seen = map[string]fileEntry{}
	h.mu.Unlock()
	if len(seen) == 0 {
		return nil
	}
	return h.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFiles)
		for p, e := range seen {
			if err := b.Put([]byte(p), e.marshal()); err != nil {
				return err
			}
		}
		return nil
	})
}

// prune removes the stored entries of files that are gone or changed.
func (h *FileHashes) prune() error {
	var stale [][]byte
	err := h.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketFiles).ForEach(func(k, v []byte) error {
			var e fileEntry
			if id, err := statID(string(k)); err != nil || !e.unmarshal(v) || id != e.id {
				stale = append(stale, append([]byte(nil), k...))
			}
			return nil
		})
	})
	if err != nil || len(stale) == 0 {
		return err
	}
	return h.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketFiles)
		for _, k := range stale {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
}

// statID returns the identity of the regular file at path.
func statID(path string) (fileID, error) {
	var st unix.Stat_t
	if err := unix.Lstat(path, &st); err != nil {
		return fileID{}, &os.PathError{Op: "lstat", Path: path, Err: err}
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		return fileID{}, fmt.Errorf("%s: not a regular file", path)
	}
	return fileID{
		dev: st.Dev, ino: st.Ino, size: st.Size,
		mtime: st.Mtim.Nano(), ctime: st.Ctim.Nano(),
	}, nil
}

// sha256File hashes the content of the regular file at path. The open
// neither blocks nor follows a link: the file lies in a package tree,
// which is hostile input, and may have been swapped for a FIFO since it
// was looked at.
func sha256File(path string) (Digest, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOFOLLOW|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return Digest{}, &os.PathError{Op: "open", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return Digest{}, fmt.Errorf("%s: not a regular file", path)
	}
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return Digest{}, fmt.Errorf("hashing %s: %w", path, err)
	}
	return Digest(h.Sum(nil)), nil
}
