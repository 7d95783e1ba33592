package image

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
)

// Ingester stores blobs by content; *cache.ContentStore is one. Ingest
// must check the content against want unless want is zero.
type Ingester interface {
	Ingest(r io.Reader, want Digest) (Digest, int64, error)
}

// Imported is what Import stored: the manifest (its descriptor carries the
// platform) and the config.
type Imported struct {
	Manifest Descriptor
	Config   Descriptor
}

// Import copies the image of src into store, verifying every blob against
// its digest, and returns the descriptor of the manifest stored.
//
// Gzipped layers are copied as they are. Uncompressed layers (those of a
// docker-archive, or an uncompressed OCI layout) are gzipped as Compress
// does without an epoch, which keeps their diffIDs but changes their
// digests, so the manifest stored is then a new one listing the gzipped
// blobs; otherwise it is the source's manifest, byte for byte. Other
// compressions (zstd) are refused: the engine unpacks gzip only.
func Import(src *Source, store Ingester) (Imported, error) {
	layers := make([]Descriptor, len(src.Manifest.Layers))
	changed := src.ManifestBlob.Bytes == nil
	for i, d := range src.Manifest.Layers {
		nd, err := importLayer(src, i, store)
		if err != nil {
			return Imported{}, fmt.Errorf("importing layer %d (%s): %w", i, d.Digest, err)
		}
		if nd.Digest != d.Digest {
			changed = true
		}
		layers[i] = nd
	}
	if _, _, err := store.Ingest(readerOfBytes(src.Config.Bytes), src.Config.Digest); err != nil {
		return Imported{}, fmt.Errorf("importing config: %w", err)
	}
	mb := src.ManifestBlob
	if changed {
		m := src.Manifest
		m.SchemaVersion = 2
		m.MediaType = MediaTypeManifest
		m.Config = src.Config.Descriptor
		m.Layers = layers
		b, err := json.MarshalIndent(m, "", "  ")
		if err != nil {
			return Imported{}, fmt.Errorf("encoding manifest: %w", err)
		}
		mb = newBlob(MediaTypeManifest, b)
	}
	if _, _, err := store.Ingest(readerOfBytes(mb.Bytes), mb.Digest); err != nil {
		return Imported{}, fmt.Errorf("importing manifest: %w", err)
	}
	md := Descriptor{MediaType: mb.MediaType, Digest: mb.Digest, Size: mb.Size}
	p := src.Platform
	md.Platform = &p
	return Imported{Manifest: md, Config: src.Config.Descriptor}, nil
}

// importLayer stores layer i of src, gzipping it if it is uncompressed,
// and returns the descriptor of what was stored.
func importLayer(src *Source, i int, store Ingester) (Descriptor, error) {
	d := src.Manifest.Layers[i]
	r, err := src.OpenLayer(i)
	if err != nil {
		return Descriptor{}, err
	}
	defer r.Close()
	switch d.MediaType {
	case MediaTypeLayerGzip, MediaTypeDockerLayerGzip:
		if _, _, err := store.Ingest(r, d.Digest); err != nil {
			return Descriptor{}, err
		}
		return Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size}, nil
	case MediaTypeLayer, MediaTypeDockerLayer:
		pr, pw := io.Pipe()
		type result struct {
			l   Layer
			err error
		}
		done := make(chan result, 1)
		go func() {
			l, err := Compress(pw, r, nil)
			pw.CloseWithError(err)
			done <- result{l, err}
		}()
		dg, n, err := store.Ingest(pr, Digest{})
		pr.CloseWithError(err)
		res := <-done
		if res.err != nil {
			return Descriptor{}, res.err
		}
		if err != nil {
			return Descriptor{}, err
		}
		if res.l.DiffID != src.DiffIDs[i] {
			return Descriptor{}, fmt.Errorf("layer tar has diffID %s, config says %s", res.l.DiffID, src.DiffIDs[i])
		}
		return Descriptor{MediaType: MediaTypeLayerGzip, Digest: dg, Size: n}, nil
	}
	return Descriptor{}, fmt.Errorf("unsupported layer media type %q (sxmake reads gzip and uncompressed layers)", d.MediaType)
}

func readerOfBytes(b []byte) io.Reader { return bytes.NewReader(b) }
