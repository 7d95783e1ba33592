package image

import (
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/stagex/sxmake/cache"
)

// Media types of images read from outside a tree besides the OCI ones
// BuildKit writes: uncompressed OCI layers and Docker's schema 2 types.
const (
	MediaTypeLayer              = "application/vnd.oci.image.layer.v1.tar"
	MediaTypeLayerZstd          = "application/vnd.oci.image.layer.v1.tar+zstd"
	MediaTypeDockerLayer        = "application/vnd.docker.image.rootfs.diff.tar"
	MediaTypeDockerLayerGzip    = "application/vnd.docker.image.rootfs.diff.tar.gzip"
	MediaTypeDockerConfig       = "application/vnd.docker.container.image.v1+json"
	MediaTypeDockerManifest     = "application/vnd.docker.distribution.manifest.v2+json"
	MediaTypeDockerManifestList = "application/vnd.docker.distribution.manifest.list.v2+json"
)

// ErrNoPlatform is returned (wrapped) when an image source holds no
// manifest for the platform asked for.
var ErrNoPlatform = errors.New("no manifest for the platform")

// Source is a single-platform image read from outside a package tree (an
// OCI layout, an OCI or docker archive, a rootfs tarball): its config and
// manifest, and the layers in the form they are stored in the source.
// Layer blobs are read lazily through OpenLayer; Import copies them.
type Source struct {
	Platform Platform
	Config   Blob
	Manifest Manifest
	// ManifestBlob is the manifest as stored in the source; its
	// descriptor is zero when the source has no OCI manifest (a
	// docker-archive or a rootfs tarball).
	ManifestBlob Blob
	DiffIDs      []DiffID // from the config, one per manifest layer

	open  func(d Descriptor) (io.ReadCloser, error)
	close func() error
}

// OpenLayer returns a reader of the blob of layer i as the source stores
// it. The reader fails at its end, with an error wrapping
// cache.ErrDigestMismatch, if the bytes do not match the descriptor.
func (s *Source) OpenLayer(i int) (io.ReadCloser, error) {
	return s.open(s.Manifest.Layers[i])
}

// ReadOption configures the Read functions.
type ReadOption func(*readOptions)

type readOptions struct {
	platform Platform
}

// ForPlatform selects the manifest of platform p (default linux/amd64)
// among those of an index. A variant or OS version in p must match; one
// left empty matches any.
func ForPlatform(p Platform) ReadOption {
	return func(o *readOptions) { o.platform = p }
}

func readOpts(opts []ReadOption) readOptions {
	o := readOptions{platform: Platform{OS: "linux", Architecture: "amd64"}}
	for _, opt := range opts {
		opt(&o)
	}
	return o
}

// ReadLayout reads the OCI image layout in dir (such as out/<stage>-<name>/),
// through umoci's CAS engine, following nested indexes from index.json
// down to the manifest of the platform asked for. Every blob read is
// checked against its digest and size. The Source holds the layout open
// until Close.
func ReadLayout(dir string, opts ...ReadOption) (*Source, error) {
	l, err := openLayout(dir)
	if err != nil {
		return nil, err
	}
	s, err := readOCI(l, readOpts(opts))
	if err != nil {
		l.Close()
		return nil, fmt.Errorf("reading OCI layout %s: %w", dir, err)
	}
	s.close = l.Close
	return s, nil
}

// readOCI reads the OCI layout l.
func readOCI(l ociReader, o readOptions) (*Source, error) {
	idx, err := l.index()
	if err != nil {
		return nil, err
	}
	readBlob := func(d Descriptor) ([]byte, error) { return readJSON(l, d) }
	md, err := selectManifest(idx.Manifests, o.platform, readBlob, 0)
	if err != nil {
		return nil, err
	}
	mb, err := readBlob(md)
	if err != nil {
		return nil, err
	}
	var m Manifest
	if err := json.Unmarshal(mb, &m); err != nil {
		return nil, fmt.Errorf("manifest %s: %w", md.Digest, err)
	}
	cb, err := readBlob(m.Config)
	if err != nil {
		return nil, err
	}
	s := &Source{Manifest: m, ManifestBlob: Blob{Descriptor: md, Bytes: mb}, open: l.open}
	s.ManifestBlob.Platform = nil
	s.ManifestBlob.Annotations = nil
	s.ManifestBlob.MediaType = manifestMediaType(m, md)
	if err := s.setConfig(cb, m.Config.MediaType); err != nil {
		return nil, err
	}
	if md.Platform != nil {
		s.Platform = *md.Platform
	}
	return s, nil
}

// manifestMediaType is the media type of a manifest: its own field, else
// the descriptor's.
func manifestMediaType(m Manifest, d Descriptor) string {
	if m.MediaType != "" {
		return m.MediaType
	}
	if d.MediaType != "" {
		return d.MediaType
	}
	return MediaTypeManifest
}

// setConfig parses the config blob cb and checks it against the manifest.
func (s *Source) setConfig(cb []byte, mediaType string) error {
	var c Config
	if err := json.Unmarshal(cb, &c); err != nil {
		return fmt.Errorf("config: %w", err)
	}
	if len(c.RootFS.DiffIDs) != len(s.Manifest.Layers) {
		return fmt.Errorf("config lists %d diffIDs for %d layers", len(c.RootFS.DiffIDs), len(s.Manifest.Layers))
	}
	if mediaType == "" {
		mediaType = MediaTypeConfig
	}
	s.Config = Blob{Descriptor: Descriptor{MediaType: mediaType, Digest: DigestOf(cb), Size: int64(len(cb))}, Bytes: cb}
	s.DiffIDs = c.RootFS.DiffIDs
	s.Platform = Platform{OS: c.OS, Architecture: c.Architecture, Variant: c.Variant, OSVersion: c.OSVersion}
	return nil
}

// maxIndexDepth bounds how deep nested indexes are followed.
const maxIndexDepth = 8

// selectManifest returns the descriptor of the manifest for p among ds,
// descending into nested indexes. An index entry without a platform
// matches any (BuildKit's layout index.json entry has none).
func selectManifest(ds []Descriptor, p Platform, read func(Descriptor) ([]byte, error), depth int) (Descriptor, error) {
	var seen []string
	d, ok, err := findManifest(ds, p, read, depth, &seen)
	if err != nil || ok {
		return d, err
	}
	have := ""
	if len(seen) > 0 {
		have = " (have " + strings.Join(seen, ", ") + ")"
	}
	return Descriptor{}, fmt.Errorf("%w: %s%s", ErrNoPlatform, platformString(p), have)
}

// findManifest is selectManifest's search; it adds the platforms it
// passes over to seen.
func findManifest(ds []Descriptor, p Platform, read func(Descriptor) ([]byte, error), depth int, seen *[]string) (Descriptor, bool, error) {
	if depth > maxIndexDepth {
		return Descriptor{}, false, fmt.Errorf("indexes nested more than %d deep", maxIndexDepth)
	}
	for _, d := range ds {
		if d.Platform != nil && !platformMatches(*d.Platform, p) {
			*seen = append(*seen, platformString(*d.Platform))
			continue
		}
		switch d.MediaType {
		case MediaTypeManifest, MediaTypeDockerManifest:
			if d.Platform == nil {
				// Check the config's platform when the index does not say.
				ok, err := configMatches(d, p, read)
				if err != nil {
					return Descriptor{}, false, err
				}
				if !ok {
					continue
				}
				d.Platform = &p
			}
			return d, true, nil
		case MediaTypeIndex, MediaTypeDockerManifestList:
			b, err := read(d)
			if err != nil {
				return Descriptor{}, false, err
			}
			var idx Index
			if err := json.Unmarshal(b, &idx); err != nil {
				return Descriptor{}, false, fmt.Errorf("index %s: %w", d.Digest, err)
			}
			md, ok, err := findManifest(idx.Manifests, p, read, depth+1, seen)
			if err != nil || ok {
				return md, ok, err
			}
		}
	}
	return Descriptor{}, false, nil
}

// configMatches reads the manifest d and its config and reports whether
// the config's platform is p.
func configMatches(d Descriptor, p Platform, read func(Descriptor) ([]byte, error)) (bool, error) {
	b, err := read(d)
	if err != nil {
		return false, err
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return false, fmt.Errorf("manifest %s: %w", d.Digest, err)
	}
	cb, err := read(m.Config)
	if err != nil {
		return false, err
	}
	var c Config
	if err := json.Unmarshal(cb, &c); err != nil {
		return false, fmt.Errorf("config %s: %w", m.Config.Digest, err)
	}
	return platformMatches(Platform{OS: c.OS, Architecture: c.Architecture, Variant: c.Variant, OSVersion: c.OSVersion}, p), nil
}

// platformMatches reports whether have is the platform want asks for.
func platformMatches(have, want Platform) bool {
	if have.OS != want.OS || have.Architecture != want.Architecture {
		return false
	}
	if want.Variant != "" && have.Variant != want.Variant {
		return false
	}
	return want.OSVersion == "" || have.OSVersion == want.OSVersion
}

func platformString(p Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// checkedReader passes a blob through and fails at its end if it does not
// have the digest and size of want.
type checkedReader struct {
	r    io.ReadCloser
	want Descriptor
	h    *countingHash
}

func (c *checkedReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.h.Write(p[:n])
	if c.h.n > c.want.Size {
		return n, fmt.Errorf("blob %s: longer than %d bytes: %w", c.want.Digest, c.want.Size, cache.ErrDigestMismatch)
	}
	if err == io.EOF {
		if got := Digest(c.h.sum()); got != c.want.Digest || c.h.n != c.want.Size {
			return n, fmt.Errorf("blob %s: content has digest %s and %d bytes, want %d: %w", c.want.Digest, got, c.h.n, c.want.Size, cache.ErrDigestMismatch)
		}
	}
	return n, err
}

func (c *checkedReader) Close() error { return c.r.Close() }

func newCheckedReader(r io.ReadCloser, want Descriptor) *checkedReader {
	return &checkedReader{r: r, want: want, h: &countingHash{h: sha256.New()}}
}
