package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
)

// ErrInvalid is wrapped by every error Validate reports.
var ErrInvalid = errors.New("invalid image")

// Validate checks the OCI layout in dir the way every image test should.
// umoci's CAS engine first checks it as an OCI layout (oci-layout,
// blobs/, index.json) and walks every descriptor reachable from
// index.json, reading each index, manifest and config, verified against
// its descriptor and parsed with umoci's checks. Then, as BuildKit writes
// them: each blob (nested indexes, manifests, configs, layers) exists with
// the digest and size its descriptor claims; media types are BuildKit's;
// each manifest's config lists one diffID per layer, each equal to the
// SHA-256 of the gunzipped layer, which must be a readable tar; non-empty
// history entries match the layer count; a nested index's platform matches
// the config.
func Validate(dir string) error {
	l, err := openLayout(dir)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	defer l.Close()
	if err := l.walk(); err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	top, err := l.index()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrInvalid, err)
	}
	v := validator{open: l.open}
	return v.index(top, nil)
}

// ValidateImage checks img as Validate checks a layout, reading layer
// blobs from blobs and the JSON blobs from img itself.
func ValidateImage(img *Image, blobs Provider) error {
	small := map[Digest][]byte{}
	for _, b := range []Blob{img.Config, img.Manifest, img.Index} {
		small[b.Digest] = b.Bytes
	}
	v := validator{open: func(d Descriptor) (io.ReadCloser, error) {
		if b, ok := small[d.Digest]; ok {
			return io.NopCloser(bytes.NewReader(b)), nil
		}
		return blobs.Open(d.Digest)
	}}
	var top Index
	if err := json.Unmarshal(img.TopIndex, &top); err != nil {
		return invalid("index.json: %v", err)
	}
	return v.index(top, nil)
}

type validator struct {
	open func(Descriptor) (io.ReadCloser, error)
}

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// read returns the whole blob d after checking its digest and size.
func (v validator) read(d Descriptor) ([]byte, error) {
	r, err := v.open(d)
	if err != nil {
		return nil, invalid("blob %s: %v", d.Digest, err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, invalid("blob %s: %v", d.Digest, err)
	}
	if int64(len(b)) != d.Size || DigestOf(b) != d.Digest {
		return nil, invalid("blob %s: has %d bytes and digest %s, descriptor says %d", d.Digest, len(b), DigestOf(b), d.Size)
	}
	return b, nil
}

func (v validator) index(idx Index, platform *Platform) error {
	if idx.SchemaVersion != 2 || idx.MediaType != MediaTypeIndex {
		return invalid("index: schemaVersion %d, mediaType %q", idx.SchemaVersion, idx.MediaType)
	}
	if len(idx.Manifests) == 0 {
		return invalid("index lists no manifest")
	}
	for _, d := range idx.Manifests {
		body, err := v.read(d)
		if err != nil {
			return err
		}
		switch d.MediaType {
		case MediaTypeIndex:
			var nested Index
			if err := json.Unmarshal(body, &nested); err != nil {
				return invalid("index %s: %v", d.Digest, err)
			}
			err = v.index(nested, d.Platform)
		case MediaTypeManifest:
			p := d.Platform
			if p == nil {
				p = platform
			}
			err = v.manifest(body, p)
		default:
			err = invalid("descriptor %s: media type %q", d.Digest, d.MediaType)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

func (v validator) manifest(b []byte, platform *Platform) error {
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return invalid("manifest: %v", err)
	}
	if m.SchemaVersion != 2 || m.MediaType != MediaTypeManifest || m.Config.MediaType != MediaTypeConfig {
		return invalid("manifest: schemaVersion %d, mediaType %q, config mediaType %q", m.SchemaVersion, m.MediaType, m.Config.MediaType)
	}
	cb, err := v.read(m.Config)
	if err != nil {
		return err
	}
	var c Config
	if err := json.Unmarshal(cb, &c); err != nil {
		return invalid("config: %v", err)
	}
	if c.RootFS.Type != "layers" {
		return invalid("config: rootfs type %q", c.RootFS.Type)
	}
	if platform != nil && (platform.OS != c.OS || platform.Architecture != c.Architecture || platform.Variant != c.Variant) {
		return invalid("platform %s/%s/%s in index, %s/%s/%s in config", platform.OS, platform.Architecture, platform.Variant, c.OS, c.Architecture, c.Variant)
	}
	if len(c.RootFS.DiffIDs) != len(m.Layers) {
		return invalid("config lists %d diffIDs for %d layers", len(c.RootFS.DiffIDs), len(m.Layers))
	}
	if len(c.History) > 0 {
		n := 0
		for _, h := range c.History {
			if !h.EmptyLayer {
				n++
			}
		}
		if n != len(m.Layers) {
			return invalid("config history has %d layer entries for %d layers", n, len(m.Layers))
		}
	}
	for i, l := range m.Layers {
		if err := v.layer(l, c.RootFS.DiffIDs[i]); err != nil {
			return err
		}
	}
	return nil
}

// layer checks a gzip layer blob streaming: digest, size, diffID, tar.
func (v validator) layer(d Descriptor, want DiffID) error {
	if d.MediaType != MediaTypeLayerGzip {
		return invalid("layer %s: media type %q", d.Digest, d.MediaType)
	}
	r, err := v.open(d)
	if err != nil {
		return invalid("layer %s: %v", d.Digest, err)
	}
	defer r.Close()
	blob := &countingHash{h: sha256.New()}
	zr, err := gzip.NewReader(io.TeeReader(r, blob))
	if err != nil {
		return invalid("layer %s: %v", d.Digest, err)
	}
	diff := &countingHash{h: sha256.New()}
	tr := tar.NewReader(io.TeeReader(zr, diff))
	for {
		_, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return invalid("layer %s: tar: %v", d.Digest, err)
		}
	}
	if _, err := io.Copy(io.Discard, zr); err != nil {
		return invalid("layer %s: %v", d.Digest, err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return invalid("layer %s: %v", d.Digest, err)
	}
	if got := Digest(blob.sum()); got != d.Digest || blob.n != d.Size {
		return invalid("layer %s: has digest %s and %d bytes, descriptor says %d", d.Digest, got, blob.n, d.Size)
	}
	if got := DiffID(diff.sum()); got != want {
		return invalid("layer %s: diffID %s, config says %s", d.Digest, got, want)
	}
	return nil
}
