package image

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/opencontainers/umoci/oci/cas"
	casdir "github.com/opencontainers/umoci/oci/cas/dir"
	"github.com/opencontainers/umoci/oci/casext"
	"github.com/opencontainers/umoci/pkg/hardening"

	"github.com/stagex/sxmake/cache"
)

// Reading an OCI image layout (sxmake's out/, an import, verify's
// rebuild) goes through umoci's CAS engine: oci/cas/dir checks the
// layout's oci-layout version and its blobs/ and index.json, and
// casext.GetVerifiedBlob every blob read against the digest and size of
// its descriptor. Writing layouts stays ours (layout.go, manifest.go):
// umoci's JSON is not BuildKit's. Measured by TestUmociJSONIsNotBuildKits,
// umoci's PutIndex and PutBlobJSON given BuildKit's documents: index.json
// gains a trailing newline (421 bytes for BuildKit's 420); the manifest
// (630 for 754) and the nested index (290 for 374) come out compact with a
// newline where BuildKit indents by two spaces; the config keeps its size
// plus the newline (406 for 405) but takes image-spec's field order
// (created, architecture, os, ...) where BuildKit sorts the keys. Each
// would change the digest of the image.

// ociReader reads an OCI layout's top index and blobs; open's reader fails
// at its end, with an error wrapping cache.ErrDigestMismatch, unless the
// bytes are the descriptor's.
type ociReader interface {
	index() (Index, error)
	open(d Descriptor) (io.ReadCloser, error)
}

// dirLayout is an OCI layout directory read through umoci.
type dirLayout struct {
	eng cas.Engine
}

// openLayout opens the OCI layout directory dir for reading.
func openLayout(dir string) (*dirLayout, error) {
	// casdir's error for a missing directory does not wrap fs.ErrNotExist,
	// which callers test for (digests skips images never built).
	if _, err := os.Stat(dir); err != nil {
		return nil, err
	}
	eng, err := casdir.Open(dir)
	if err != nil {
		return nil, fmt.Errorf("opening OCI layout %s: %w", dir, err)
	}
	return &dirLayout{eng: eng}, nil
}

func (l *dirLayout) Close() error { return l.eng.Close() }

func (l *dirLayout) index() (Index, error) {
	ix, err := l.eng.GetIndex(context.Background())
	if err != nil {
		return Index{}, err
	}
	var idx Index
	return idx, convertJSON(ix, &idx)
}

func (l *dirLayout) open(d Descriptor) (io.ReadCloser, error) {
	var id ispec.Descriptor
	if err := convertJSON(d, &id); err != nil {
		return nil, err
	}
	r, err := casext.NewEngine(l.eng).GetVerifiedBlob(context.Background(), id)
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	return &verifiedBlob{r: r, d: d.Digest}, nil
}

// walk walks every descriptor reachable from the top index with umoci,
// which reads and parses each index, manifest and config it meets:
// verified against its descriptor, with one media type per document
// (CVE-2021-41190).
func (l *dirLayout) walk() error {
	ix, err := l.eng.GetIndex(context.Background())
	if err != nil {
		return err
	}
	ext := casext.NewEngine(l.eng)
	for _, d := range ix.Manifests {
		if err := ext.Walk(context.Background(), d, func(casext.DescriptorPath) error { return nil }); err != nil {
			return err
		}
	}
	return nil
}

// verifiedBlob is a blob umoci reads: its verification (the digest and
// size against the descriptor) reports on Close, which verifiedBlob does
// at the end of the bytes, so that reading to the end fails as our other
// readers do. Mismatches are cache.ErrDigestMismatch too.
type verifiedBlob struct {
	r      io.ReadCloser
	d      Digest
	closed bool
	err    error // of Close
}

func (v *verifiedBlob) Read(p []byte) (int, error) {
	n, err := v.r.Read(p)
	if errors.Is(err, io.EOF) {
		if cerr := v.Close(); cerr != nil {
			err = cerr
		}
	}
	return n, v.ours(err)
}

func (v *verifiedBlob) Close() error {
	if !v.closed {
		v.closed, v.err = true, v.ours(v.r.Close())
	}
	return v.err
}

func (v *verifiedBlob) ours(err error) error {
	if errors.Is(err, hardening.ErrDigestMismatch) || errors.Is(err, hardening.ErrSizeMismatch) {
		return fmt.Errorf("blob %s: %w: %w", v.d, err, cache.ErrDigestMismatch)
	}
	return err
}

// convertJSON converts between our OCI types and image-spec's, which
// share their JSON.
func convertJSON(from, to any) error {
	b, err := json.Marshal(from)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, to)
}

// fsLayout is an OCI layout held in an fs.FS (an OCI archive).
type fsLayout struct {
	fsys fs.FS
}

func (l fsLayout) index() (Index, error) {
	b, err := fs.ReadFile(l.fsys, "index.json")
	if err != nil {
		return Index{}, err
	}
	var idx Index
	if err := json.Unmarshal(b, &idx); err != nil {
		return Index{}, fmt.Errorf("index.json: %w", err)
	}
	return idx, nil
}

func (l fsLayout) open(d Descriptor) (io.ReadCloser, error) {
	if err := digest.Digest(d.Digest.String()).Validate(); err != nil {
		return nil, err
	}
	r, err := l.fsys.Open(path.Join("blobs", "sha256", d.Digest.Hex()))
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	return newCheckedReader(r, d), nil
}

// readJSON reads the whole JSON blob d (an index, manifest or config).
func readJSON(l ociReader, d Descriptor) ([]byte, error) {
	const maxJSON = 16 << 20 // configs and manifests are small
	if d.Size > maxJSON {
		return nil, fmt.Errorf("blob %s: %d bytes is too large for a JSON document", d.Digest, d.Size)
	}
	r, err := l.open(d)
	if err != nil {
		return nil, err
	}
	b, err := io.ReadAll(r)
	if cerr := r.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("blob %s: %w", d.Digest, err)
	}
	return b, nil
}

// firstManifest returns the descriptor of the first image manifest of l,
// following nested indexes from the top index.
func firstManifest(l ociReader) (Descriptor, error) {
	idx, err := l.index()
	if err != nil {
		return Descriptor{}, err
	}
	for depth := 0; depth <= maxIndexDepth; depth++ {
		if len(idx.Manifests) == 0 {
			return Descriptor{}, errors.New("empty index")
		}
		d := idx.Manifests[0]
		if d.MediaType != MediaTypeIndex && d.MediaType != MediaTypeDockerManifestList {
			return d, nil
		}
		b, err := readJSON(l, d)
		if err != nil {
			return Descriptor{}, err
		}
		if idx = (Index{}); json.Unmarshal(b, &idx) != nil {
			return Descriptor{}, fmt.Errorf("index %s: not JSON", d.Digest)
		}
	}
	return Descriptor{}, fmt.Errorf("indexes nested more than %d deep", maxIndexDepth)
}

// allManifests returns the descriptors of every image manifest ds lists,
// following nested indexes, in index order.
func allManifests(l ociReader, ds []Descriptor, depth int) ([]Descriptor, error) {
	if depth > maxIndexDepth {
		return nil, fmt.Errorf("indexes nested more than %d deep", maxIndexDepth)
	}
	var out []Descriptor
	for _, d := range ds {
		if d.MediaType != MediaTypeIndex && d.MediaType != MediaTypeDockerManifestList {
			out = append(out, d)
			continue
		}
		b, err := readJSON(l, d)
		if err != nil {
			return nil, err
		}
		var idx Index
		if err := json.Unmarshal(b, &idx); err != nil {
			return nil, fmt.Errorf("index %s: %w", d.Digest, err)
		}
		more, err := allManifests(l, idx.Manifests, depth+1)
		if err != nil {
			return nil, err
		}
		out = append(out, more...)
	}
	return out, nil
}
