package image

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/stagex/sxmake/cache"
)

// MergeLayouts writes to dir one OCI layout holding the images of the
// single-platform layouts srcs (each as WriteLayout writes it), listed in
// one nested index in the order of srcs, as BuildKit writes a
// multi-platform build (BUILDKIT_MULTI_PLATFORM=1): index.json keeps the
// annotations of the first source's, pointing at the new nested index.
// It returns the nested index's digest. Each platform's manifest, and so
// its digest, is the one of its source.
func MergeLayouts(dir string, srcs []string) (Digest, error) {
	if len(srcs) == 0 {
		return Digest{}, fmt.Errorf("merging layouts: none given")
	}
	var manifests []Descriptor
	var top Descriptor
	for i, src := range srcs {
		t, nested, err := readNested(src)
		if err != nil {
			return Digest{}, fmt.Errorf("merging %s: %w", src, err)
		}
		if i == 0 {
			top = t
		}
		manifests = append(manifests, nested.Manifests...)
		if err := copyBlobs(src, dir, t.Digest); err != nil {
			return Digest{}, fmt.Errorf("merging %s: %w", src, err)
		}
	}
	idx, err := json.MarshalIndent(Index{SchemaVersion: 2, MediaType: MediaTypeIndex, Manifests: manifests}, "", "  ")
	if err != nil {
		return Digest{}, err
	}
	blob := newBlob(MediaTypeIndex, idx)
	bdir := filepath.Join(dir, "blobs", "sha256")
	if err := writeFileAtomic(filepath.Join(bdir, blob.Digest.Hex()), idx); err != nil {
		return Digest{}, err
	}
	top.Digest, top.Size = blob.Digest, blob.Size
	topJSON, err := json.Marshal(Index{SchemaVersion: 2, MediaType: MediaTypeIndex, Manifests: []Descriptor{top}})
	if err != nil {
		return Digest{}, err
	}
	if err := writeFileAtomic(filepath.Join(dir, "oci-layout"), []byte(layoutFile)); err != nil {
		return Digest{}, err
	}
	if err := writeFileAtomic(filepath.Join(dir, "index.json"), topJSON); err != nil {
		return Digest{}, err
	}
	return blob.Digest, nil
}

// readNested returns the top descriptor of the layout src and the nested
// index it points at.
func readNested(src string) (Descriptor, Index, error) {
	l, err := openLayout(src)
	if err != nil {
		return Descriptor{}, Index{}, err
	}
	defer l.Close()
	top, err := l.index()
	if err != nil {
		return Descriptor{}, Index{}, err
	}
	if len(top.Manifests) != 1 || top.Manifests[0].MediaType != MediaTypeIndex {
		return Descriptor{}, Index{}, fmt.Errorf("index.json: want one nested index")
	}
	b, err := readJSON(l, top.Manifests[0])
	if err != nil {
		return Descriptor{}, Index{}, err
	}
	var nested Index
	if err := json.Unmarshal(b, &nested); err != nil {
		return Descriptor{}, Index{}, err
	}
	return top.Manifests[0], nested, nil
}

// copyBlobs copies the blobs of layout src to layout dst, except skip
// (the source's own nested index), verifying each against its name.
func copyBlobs(src, dst string, skip Digest) error {
	sdir := filepath.Join(src, "blobs", "sha256")
	ddir, err := layoutDirs(dst)
	if err != nil {
		return err
	}
	ents, err := os.ReadDir(sdir)
	if err != nil {
		return err
	}
	for _, e := range ents {
		if e.Name() == skip.Hex() {
			continue
		}
		d, err := cache.ParseDigest("sha256:" + e.Name())
		if err != nil {
			continue // not a blob (a temp file)
		}
		f, err := os.Open(filepath.Join(sdir, e.Name()))
		if err != nil {
			return err
		}
		fi, _ := f.Stat()
		err = writeBlob(ddir, Descriptor{Digest: d, Size: fi.Size()}, io.Reader(f))
		f.Close()
		if err != nil {
			return err
		}
	}
	return nil
}
