package image

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/stagex/sxmake/cache"
)

// Provider opens blobs by digest; *cache.ContentStore is one.
type Provider interface {
	Open(d Digest) (io.ReadCloser, error)
}

var _ Provider = (*cache.ContentStore)(nil)

// layoutFile is the oci-layout file containerd's exporter writes.
const layoutFile = `{"imageLayoutVersion":"1.0.0"}`

// WriteLayout writes img as an OCI image layout in dir (created if
// needed): oci-layout, blobs/sha256/<hex> for the layers (read from
// blobs), config, manifest and nested index, then index.json last. Each
// file goes to a temp file renamed into place; a blob already present
// with the right size is not written again. Layer blobs are verified
// against their digests while copied. Once index.json is in place, files
// of blobs/sha256 that img does not reference are removed, so rewriting a
// package's layout leaves exactly the files BuildKit's export would.
func WriteLayout(dir string, img *Image, blobs Provider) error {
	bdir, err := layoutDirs(dir)
	if err != nil {
		return fmt.Errorf("writing layout %s: %w", dir, err)
	}
	for _, l := range img.Layers {
		if err := writeLayerBlob(bdir, l.Descriptor, blobs); err != nil {
			return fmt.Errorf("writing layout %s: %w", dir, err)
		}
	}
	for _, b := range []Blob{img.Config, img.Manifest, img.Index} {
		if err := writeBlob(bdir, b.Descriptor, bytes.NewReader(b.Bytes)); err != nil {
			return fmt.Errorf("writing layout %s: %w", dir, err)
		}
	}
	if err := writeFileAtomic(filepath.Join(dir, "oci-layout"), []byte(layoutFile)); err != nil {
		return fmt.Errorf("writing layout %s: %w", dir, err)
	}
	if err := writeFileAtomic(filepath.Join(dir, "index.json"), img.TopIndex); err != nil {
		return fmt.Errorf("writing layout %s: %w", dir, err)
	}
	if err := pruneBlobs(bdir, img); err != nil {
		return fmt.Errorf("writing layout %s: %w", dir, err)
	}
	return nil
}

// layoutDirs makes dir and dir/blobs/sha256 directories of their own and
// returns the latter. A layout directory may come from a hostile tree
// (out/ of a checkout): a symbolic link or file in their place is
// removed, so that neither the writes nor pruneBlobs's removals follow a
// link out of it (blobs/sha256 -> /etc would have emptied /etc).
func layoutDirs(dir string) (string, error) {
	if err := os.MkdirAll(filepath.Dir(dir), 0o755); err != nil {
		return "", err
	}
	for _, p := range []string{dir, filepath.Join(dir, "blobs"), filepath.Join(dir, "blobs", "sha256")} {
		fi, err := os.Lstat(p)
		if err == nil && fi.IsDir() {
			continue
		}
		if err == nil {
			if err := os.Remove(p); err != nil {
				return "", err
			}
		}
		if err := os.Mkdir(p, 0o755); err != nil {
			return "", err
		}
	}
	return filepath.Join(dir, "blobs", "sha256"), nil
}

// pruneBlobs removes the files of bdir that img does not reference (blobs
// of an image written there before, leftover temp files), so the layout
// holds exactly what BuildKit's would.
func pruneBlobs(bdir string, img *Image) error {
	keep := map[string]bool{
		img.Config.Digest.Hex():   true,
		img.Manifest.Digest.Hex(): true,
		img.Index.Digest.Hex():    true,
	}
	for _, l := range img.Layers {
		keep[l.Digest.Hex()] = true
	}
	ents, err := os.ReadDir(bdir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if keep[e.Name()] || e.IsDir() {
			continue
		}
		if err := os.Remove(filepath.Join(bdir, e.Name())); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
	}
	return nil
}

func writeLayerBlob(bdir string, d Descriptor, blobs Provider) error {
	if present(bdir, d) {
		return nil
	}
	r, err := blobs.Open(d.Digest)
	if err != nil {
		return err
	}
	defer r.Close()
	return writeBlob(bdir, d, r)
}

func present(bdir string, d Descriptor) bool {
	fi, err := os.Lstat(filepath.Join(bdir, d.Digest.Hex()))
	return err == nil && fi.Mode().IsRegular() && fi.Size() == d.Size
}

// writeBlob writes r as the blob d, checking its digest and size before
// renaming it into place.
func writeBlob(bdir string, d Descriptor, r io.Reader) error {
	if present(bdir, d) {
		return nil
	}
	f, err := os.CreateTemp(bdir, ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	h := &countingHash{h: sha256.New()}
	_, err = io.Copy(io.MultiWriter(f, h), r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing blob %s: %w", d.Digest, err)
	}
	if got := Digest(h.sum()); got != d.Digest || h.n != d.Size {
		return fmt.Errorf("blob %s: got %s (%d bytes), want %d bytes: %w", d.Digest, got, h.n, d.Size, cache.ErrDigestMismatch)
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(bdir, d.Digest.Hex()))
}

// writeFileAtomic writes want to path via a temp file and rename, skipping
// the write if path already is a regular file holding the same bytes.
// Anything else there (a symbolic link to /dev/zero or a FIFO, say) is
// replaced unread.
func writeFileAtomic(path string, want []byte) error {
	if fi, err := os.Lstat(path); err == nil && fi.Mode().IsRegular() {
		if old, err := os.ReadFile(path); err == nil && bytes.Equal(old, want) {
			return nil
		}
	}
	f, err := os.CreateTemp(filepath.Dir(path), ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(want)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	if err := os.Chmod(f.Name(), 0o644); err != nil {
		return err
	}
	return os.Rename(f.Name(), path)
}
