package cache

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Digest is the content address of a blob: the SHA-256 of its bytes. Its
// text form is "sha256:<64 hex digits>", as in OCI descriptors. The zero
// Digest means "unknown".
type Digest [sha256.Size]byte

// DigestOf returns the digest of b.
func DigestOf(b []byte) Digest { return Digest(sha256.Sum256(b)) }

// ParseDigest parses the text form "sha256:<hex>".
func ParseDigest(s string) (Digest, error) {
	var d Digest
	hx, ok := strings.CutPrefix(s, "sha256:")
	if !ok {
		return d, fmt.Errorf("digest %q: %w", s, ErrBadDigest)
	}
	if len(hx) != 2*sha256.Size || strings.ToLower(hx) != hx {
		return d, fmt.Errorf("digest %q: %w", s, ErrBadDigest)
	}
	if _, err := hex.Decode(d[:], []byte(hx)); err != nil {
		return d, fmt.Errorf("digest %q: %w", s, ErrBadDigest)
	}
	return d, nil
}

// String returns "sha256:<hex>".
func (d Digest) String() string { return "sha256:" + d.Hex() }

// Hex returns the 64 lowercase hex digits of d.
func (d Digest) Hex() string { return hex.EncodeToString(d[:]) }

// IsZero reports whether d is the zero (unknown) digest.
func (d Digest) IsZero() bool { return d == Digest{} }

// MarshalText implements encoding.TextMarshaler.
func (d Digest) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *Digest) UnmarshalText(b []byte) error {
	p, err := ParseDigest(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}

var (
	// ErrNotFound is returned (wrapped) by every lookup that finds
	// nothing: a blob the store does not hold, a missing action.
	ErrNotFound = errors.New("not found")
	// ErrCorrupt is returned when a stored blob no longer hashes to its
	// digest. The store removes such a blob when it detects it.
	ErrCorrupt = errors.New("content corrupt")
	// ErrDigestMismatch is returned by Commit when the written bytes do
	// not have the expected digest or size; nothing is stored.
	ErrDigestMismatch = errors.New("digest mismatch")
	// ErrBadDigest is returned for a malformed digest string.
	ErrBadDigest = errors.New("malformed digest")
)

// ContentStore holds blobs by digest in a directory:
//
//	<root>/blobs/sha256/<hex>   committed blobs, read-only
//	<root>/ingest/              temp files of writes in progress
//
// Writes go to a temp file and are renamed into place, so a blob is either
// absent or complete; writing a blob that exists keeps the existing file.
// Reads verify the digest: a reader fails with ErrCorrupt at the end of a
// blob whose bytes changed on disk, so a caller that consumes a blob fully
// before acting on it never uses corrupt content. Safe for concurrent use
// by several goroutines and processes.
type ContentStore struct {
	root string
}

// OpenContentStore opens (creating if needed) the content store in dir.
func OpenContentStore(dir string) (*ContentStore, error) {
	s := &ContentStore{root: dir}
	for _, d := range []string{dir, s.blobDir(), s.ingestDir()} {
		if err := MkdirPrivate(d); err != nil {
			return nil, fmt.Errorf("opening content store: %w", err)
		}
	}
	return s, nil
}

func (s *ContentStore) blobDir() string   { return filepath.Join(s.root, "blobs", "sha256") }
func (s *ContentStore) ingestDir() string { return filepath.Join(s.root, "ingest") }

// path returns where the blob d lives.
func (s *ContentStore) path(d Digest) string { return filepath.Join(s.blobDir(), d.Hex()) }

// Size returns the size of blob d, or an error wrapping ErrNotFound. It does
// not verify the content.
func (s *ContentStore) Size(d Digest) (int64, error) {
	fi, err := os.Stat(s.path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return 0, fmt.Errorf("content %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return 0, fmt.Errorf("content %s: %w", d, err)
	}
	return fi.Size(), nil
}

// Open returns a reader of blob d. The reader returns an error wrapping
// ErrCorrupt instead of io.EOF if the bytes read do not hash to d (the
// blob is then deleted). A missing blob gives an error wrapping ErrNotFound.
func (s *ContentStore) Open(d Digest) (io.ReadCloser, error) {
	f, err := os.Open(s.path(d))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("content %s: %w", d, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("content %s: %w", d, err)
	}
	return &verifyingReader{f: f, h: sha256.New(), want: d, onCorrupt: func() { s.Delete(d) }}, nil
}

// Verify reads blob d fully and reports an error wrapping ErrCorrupt (and
// deletes the blob) if it no longer matches its digest.
func (s *ContentStore) Verify(d Digest) error {
	r, err := s.Open(d)
	if err != nil {
		return err
	}
	defer r.Close()
	_, err = io.Copy(io.Discard, r)
	return err
}

// Delete removes blob d. Deleting a missing blob is not an error.
func (s *ContentStore) Delete(d Digest) error {
	if err := os.Remove(s.path(d)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("deleting %s: %w", d, err)
	}
	return nil
}

// Walk calls fn for each committed blob, in no particular order.
func (s *ContentStore) Walk(fn func(d Digest, size int64) error) error {
	ents, err := os.ReadDir(s.blobDir())
	if err != nil {
		return fmt.Errorf("walking content store: %w", err)
	}
	for _, e := range ents {
		d, err := ParseDigest("sha256:" + e.Name())
		if err != nil {
			continue // not ours
		}
		fi, err := e.Info()
		if err != nil {
			continue // removed meanwhile
		}
		if err := fn(d, fi.Size()); err != nil {
			return err
		}
	}
	return nil
}

// Ingest stores everything r yields and returns its digest and size. If
// want is not zero the content must hash to it (else ErrDigestMismatch).
func (s *ContentStore) Ingest(r io.Reader, want Digest) (Digest, int64, error) {
	w, err := s.Writer()
	if err != nil {
		return Digest{}, 0, err
	}
	defer w.Close()
	if _, err := io.Copy(w, r); err != nil {
		return Digest{}, 0, fmt.Errorf("ingesting: %w", err)
	}
	return w.Commit(want, -1)
}

// Writer starts a new blob. Write to it, then Commit; Close without Commit
// discards what was written.
func (s *ContentStore) Writer() (*ContentWriter, error) {
	return s.writerIn(s.ingestDir(), "ingest-*")
}

// writerIn starts a new blob in a temp file of dir (on the store's file
// system) named after pattern, as os.CreateTemp does.
func (s *ContentStore) writerIn(dir, pattern string) (*ContentWriter, error) {
	f, err := os.CreateTemp(dir, pattern)
	if err != nil {
		return nil, fmt.Errorf("starting ingest: %w", err)
	}
	return &ContentWriter{s: s, f: f, h: sha256.New()}, nil
}

// ContentWriter streams one blob into a ContentStore, hashing as it goes.
type ContentWriter struct {
	s    *ContentStore
	f    *os.File
	h    hash.Hash
	n    int64
	done bool
}

// Write appends p to the blob.
func (w *ContentWriter) Write(p []byte) (int, error) {
	n, err := w.f.Write(p)
	w.h.Write(p[:n])
	w.n += int64(n)
	return n, err
}

// Digest returns the digest of what was written so far.
func (w *ContentWriter) Digest() Digest {
	var d Digest
	w.h.Sum(d[:0])
	return d
}

// Commit makes the blob visible under its digest and returns it with the
// size. want (unless zero) and size (unless negative) are checked first;
// a mismatch discards the blob and returns ErrDigestMismatch. Committing
// content that is already stored keeps the stored copy.
func (w *ContentWriter) Commit(want Digest, size int64) (Digest, int64, error) {
	d := w.Digest()
	defer w.Close()
	if (!want.IsZero() && want != d) || (size >= 0 && size != w.n) {
		return Digest{}, 0, fmt.Errorf("committing %s (%d bytes), want %s (%d bytes): %w", d, w.n, want, size, ErrDigestMismatch)
	}
	// No fsync: a blob cut short by a crash no longer matches its digest,
	// and every read verifies it (the blob is then dropped and rebuilt),
	// as Go's build cache does. Syncing each layer costs more than a
	// cache miss after a power failure.
	if err := w.f.Chmod(0o444); err != nil {
		return Digest{}, 0, fmt.Errorf("committing %s: %w", d, err)
	}
	if fi, err := os.Stat(w.s.path(d)); err == nil && fi.Size() == w.n {
		return d, w.n, nil // deduplicated
	}
	if err := os.Rename(w.f.Name(), w.s.path(d)); err != nil {
		return Digest{}, 0, fmt.Errorf("committing %s: %w", d, err)
	}
	w.done = true
	return d, w.n, nil
}

// Close releases the writer, discarding the blob unless it was committed.
func (w *ContentWriter) Close() error {
	if w.f == nil {
		return nil
	}
	err := w.f.Close()
	if !w.done {
		os.Remove(w.f.Name())
	}
	w.f = nil
	return err
}

// verifyingReader hashes what it reads and fails at EOF on a mismatch.
type verifyingReader struct {
	f         *os.File
	h         hash.Hash
	want      Digest
	onCorrupt func()
}

func (r *verifyingReader) Read(p []byte) (int, error) {
	n, err := r.f.Read(p)
	r.h.Write(p[:n])
	if err == io.EOF {
		var got Digest
		r.h.Sum(got[:0])
		if got != r.want {
			r.onCorrupt()
			return n, fmt.Errorf("content %s hashes to %s: %w", r.want, got, ErrCorrupt)
		}
	}
	return n, err
}

func (r *verifyingReader) Close() error { return r.f.Close() }
