package image

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/stagex/sxmake/cache"
)

// The three manifest annotations StageX passes to BuildKit's exporter.
const (
	AnnotationVersion = "org.opencontainers.image.version"
	AnnotationCreated = "org.opencontainers.image.created"
	AnnotationSource  = "containerd.io/distribution.source.docker.io"

	// annotations of index.json's entry, set by containerd's exporter.
	annotationImageName = "io.containerd.image.name"
	annotationRefName   = "org.opencontainers.image.ref.name"
)

// Platform is an OCI platform.
type Platform struct {
	Architecture string   `json:"architecture"`
	OS           string   `json:"os"`
	OSVersion    string   `json:"os.version,omitempty"`
	OSFeatures   []string `json:"os.features,omitempty"`
	Variant      string   `json:"variant,omitempty"`
}

// Descriptor points at a blob, as in OCI manifests and indexes.
type Descriptor struct {
	MediaType    string            `json:"mediaType"`
	Digest       Digest            `json:"digest"`
	Size         int64             `json:"size"`
	URLs         []string          `json:"urls,omitempty"`
	Annotations  map[string]string `json:"annotations,omitempty"`
	Data         []byte            `json:"data,omitempty"`
	Platform     *Platform         `json:"platform,omitempty"`
	ArtifactType string            `json:"artifactType,omitempty"`
}

// Manifest is an OCI image manifest.
type Manifest struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType,omitempty"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Config        Descriptor        `json:"config"`
	Layers        []Descriptor      `json:"layers"`
	Subject       *Descriptor       `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// Index is an OCI image index.
type Index struct {
	SchemaVersion int               `json:"schemaVersion"`
	MediaType     string            `json:"mediaType,omitempty"`
	ArtifactType  string            `json:"artifactType,omitempty"`
	Manifests     []Descriptor      `json:"manifests"`
	Subject       *Descriptor       `json:"subject,omitempty"`
	Annotations   map[string]string `json:"annotations,omitempty"`
}

// Image is an exported image: its layers and the config, manifest, nested
// index and layout index.json blobs, each with its descriptor. Values are
// immutable once built by New.
type Image struct {
	Name     string // image name as given to New ("core-foo")
	Layers   []Layer
	Config   Blob
	Manifest Blob
	Index    Blob   // the nested one-platform index
	TopIndex []byte // index.json of the OCI layout
}

// Blob is a small JSON blob and its descriptor.
type Blob struct {
	Descriptor
	Bytes []byte
}

// Option configures New.
type Option func(*options)

type options struct {
	epoch       *time.Time
	annotations map[string]string
	platform    *Platform
	base        *Config
}

// WithEpoch sets SOURCE_DATE_EPOCH for history and creation times (layers
// must have been compressed with the same epoch by Compress).
func WithEpoch(t time.Time) Option {
	return func(o *options) { t := t.UTC(); o.epoch = &t }
}

// WithAnnotations sets the manifest annotations (BuildKit's
// annotation.<key>=<value> exporter options).
func WithAnnotations(a map[string]string) Option {
	return func(o *options) { o.annotations = a }
}

// WithStageXAnnotations sets the annotations of StageXAnnotations.
func WithStageXAnnotations(name, version string, created time.Time) Option {
	return WithAnnotations(StageXAnnotations(name, version, created))
}

// StageXAnnotations are the three manifest annotations StageX exports
// image name with: the version (its tag), the creation time (its
// SOURCE_DATE_EPOCH) and the distribution source stagex/<name>.
func StageXAnnotations(name, version string, created time.Time) map[string]string {
	return map[string]string{
		AnnotationVersion: version,
		AnnotationCreated: created.UTC().Format(time.RFC3339),
		AnnotationSource:  "stagex/" + name,
	}
}

// WithPlatform sets the platform recorded in the nested index (default:
// the config's OS, architecture and variant).
func WithPlatform(p Platform) Option {
	return func(o *options) { o.platform = &p }
}

// WithBase names the base image's config, whose history entries (from the
// first, while equal) keep their times.
func WithBase(c *Config) Option {
	return func(o *options) { o.base = c }
}

// New assembles the image named name (as given to the exporter, e.g.
// "core-foo") from its config and layers, bottom first, writing every JSON
// blob as BuildKit v0.26.3's OCI exporter does with multi-platform output:
// config, manifest, a one-platform nested index and the layout's
// index.json. Layer descriptors are used as given (see Compress).
//
// index.json's entry carries the image name (normalized as containerd
// does) and, like BuildKit's OCI exporter, an
// org.opencontainers.image.created annotation: the epoch in RFC 3339.
// Without WithEpoch BuildKit would put the wall clock there; New omits it.
func New(name string, c Config, layers []Layer, opts ...Option) (*Image, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	diffIDs := make([]DiffID, 0, len(layers))
	descs := make([]Descriptor, 0, len(layers))
	for _, l := range layers {
		diffIDs = append(diffIDs, l.DiffID)
		descs = append(descs, l.Descriptor)
	}
	if len(layers) == 0 {
		diffIDs, descs = nil, nil
	}
	img := &Image{Name: name, Layers: append([]Layer(nil), layers...)}
	cfg, err := encodeConfig(c, diffIDs, o.epoch, o.base)
	if err != nil {
		return nil, err
	}
	img.Config = newBlob(MediaTypeConfig, cfg)

	mfst, err := json.MarshalIndent(Manifest{
		SchemaVersion: 2,
		MediaType:     MediaTypeManifest,
		Config:        img.Config.Descriptor,
		Layers:        descs,
		Annotations:   o.annotations,
	}, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("encoding manifest: %w", err)
	}
	img.Manifest = newBlob(MediaTypeManifest, mfst)
	if err := img.wrap(Platform{Architecture: c.Architecture, OS: c.OS, Variant: c.Variant}, o); err != nil {
		return nil, err
	}
	return img, nil
}

// wrap sets img's nested index and index.json around its manifest, as
// BuildKit's OCI exporter writes them with multi-platform output: both
// depend only on the manifest's descriptor, the platform (def unless
// WithPlatform), the image name and the epoch.
func (img *Image) wrap(def Platform, o options) error {
	p := def
	if o.platform != nil {
		p = *o.platform
	}
	md := img.Manifest.Descriptor
	md.Platform = &p
	idx, err := json.MarshalIndent(Index{
		SchemaVersion: 2,
		MediaType:     MediaTypeIndex,
		Manifests:     []Descriptor{md},
	}, "", "  ")
	if err != nil {
		return fmt.Errorf("encoding index: %w", err)
	}
	img.Index = newBlob(MediaTypeIndex, idx)

	top := img.Index.Descriptor
	top.Annotations = map[string]string{}
	if o.epoch != nil {
		top.Annotations[AnnotationCreated] = o.epoch.Format(time.RFC3339)
	}
	if img.Name != "" {
		full, tag := normalizeName(img.Name)
		top.Annotations[annotationImageName] = full
		top.Annotations[annotationRefName] = tag
	}
	img.TopIndex, err = json.Marshal(Index{
		SchemaVersion: 2,
		MediaType:     MediaTypeIndex,
		Manifests:     []Descriptor{top},
	})
	if err != nil {
		return fmt.Errorf("encoding index.json: %w", err)
	}
	return nil
}

// Assemble returns the image named name whose manifest and config are the
// given bytes (an image pulled from a registry, which serves the manifest
// a digests file pins but not the layout around it), with the nested
// index and index.json New writes around them. For an image New made,
// with the same name and options (WithEpoch, WithPlatform), the result is
// New's, every byte: the layout BuildKit's OCI export wrote, rebuilt from
// what a registry serves. The platform defaults to the config's.
func Assemble(name string, manifest, config []byte, opts ...Option) (*Image, error) {
	var o options
	for _, opt := range opts {
		opt(&o)
	}
	var m Manifest
	if err := json.Unmarshal(manifest, &m); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	var c Config
	if err := json.Unmarshal(config, &c); err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	img := &Image{
		Name:     name,
		Config:   newBlob(m.Config.MediaType, config),
		Manifest: newBlob(manifestMediaType(m, Descriptor{}), manifest),
	}
	if m.Config.Digest != img.Config.Digest || m.Config.Size != img.Config.Size {
		return nil, fmt.Errorf("manifest %s names config %s, not %s", img.Manifest.Digest, m.Config.Digest, img.Config.Digest)
	}
	if len(m.Layers) != len(c.RootFS.DiffIDs) {
		return nil, fmt.Errorf("manifest %s: %d layers but %d diffIDs", img.Manifest.Digest, len(m.Layers), len(c.RootFS.DiffIDs))
	}
	for i, d := range m.Layers {
		img.Layers = append(img.Layers, Layer{Descriptor: d, DiffID: c.RootFS.DiffIDs[i]})
	}
	if err := img.wrap(Platform{Architecture: c.Architecture, OS: c.OS, Variant: c.Variant}, o); err != nil {
		return nil, err
	}
	return img, nil
}

// BaseLayers returns the layers of a base image (FROM stagex/...) for New:
// the base manifest's layer descriptors paired with its config's diffIDs,
// without annotations, since BuildKit drops a base layer's annotations
// (buildkit/rewritten-timestamp included) and never rewrites its bytes.
func BaseLayers(m Manifest, c Config) ([]Layer, error) {
	if len(m.Layers) != len(c.RootFS.DiffIDs) {
		return nil, fmt.Errorf("base image: %d layers but %d diffIDs", len(m.Layers), len(c.RootFS.DiffIDs))
	}
	out := make([]Layer, len(m.Layers))
	for i, d := range m.Layers {
		out[i] = Layer{
			Descriptor: Descriptor{MediaType: d.MediaType, Digest: d.Digest, Size: d.Size},
			DiffID:     c.RootFS.DiffIDs[i],
		}
	}
	return out, nil
}

// BaseConfig returns the config a stage built FROM a base image starts
// with: the base's config as parsed, without its creation time (BuildKit
// resets it; history entries keep theirs).
func BaseConfig(configJSON []byte) (Config, error) {
	var c Config
	if err := json.Unmarshal(configJSON, &c); err != nil {
		return Config{}, fmt.Errorf("parsing base image config: %w", err)
	}
	c.Created = nil
	return c, nil
}

func newBlob(mediaType string, b []byte) Blob {
	return Blob{
		Descriptor: Descriptor{MediaType: mediaType, Digest: DigestOf(b), Size: int64(len(b))},
		Bytes:      b,
	}
}

// DigestOf returns the digest of b.
func DigestOf(b []byte) Digest { return cache.DigestOf(b) }

// ManifestDigest returns the digest of the per-platform manifest: the one
// StageX publishes.
func (img *Image) ManifestDigest() Digest { return img.Manifest.Digest }

// DigestsLine returns img's line of a StageX digests file,
// "<hex> <stage>-<name>", without the newline.
func (img *Image) DigestsLine() string {
	return img.ManifestDigest().Hex() + " " + img.Name
}

// normalizeName turns an image name into the full reference and tag that
// containerd's exporter records ("core-foo" gives
// "docker.io/library/core-foo:latest" and "latest").
func normalizeName(name string) (full, tag string) {
	repo := name
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		repo, tag = name[:i], name[i+1:]
	}
	if at := strings.Index(repo, "@"); at >= 0 {
		return name, tag // a digest reference: left as is
	}
	first, _, hasSlash := strings.Cut(repo, "/")
	switch {
	case !hasSlash:
		repo = "docker.io/library/" + repo
	case !strings.ContainsAny(first, ".:") && first != "localhost":
		repo = "docker.io/" + repo
	}
	if tag == "" {
		tag = "latest"
	}
	return repo + ":" + tag, tag
}
