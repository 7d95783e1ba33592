package registry

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/errdefs"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"

	"github.com/stagex/sxmake/engine/image"
)

// Namespace is the repositories of a registry under one prefix, one per
// image, as StageX publishes: image core-busybox of the namespace
// docker.io/stagex is the repository docker.io/stagex/core-busybox.
// quay.io/stagex serves the same digests. Safe for concurrent use.
type Namespace struct {
	prefix   string
	resolver remotes.Resolver
}

// NewNamespace returns the namespace prefix, "HOST[:PORT]/PATH".
func NewNamespace(prefix string) (*Namespace, error) {
	prefix = strings.TrimSuffix(prefix, "/")
	host, path, ok := strings.Cut(prefix, "/")
	if !ok || host == "" || path == "" || strings.ContainsAny(path, ":@") || strings.Contains(prefix, "://") {
		return nil, fmt.Errorf("registry %q: want HOST[:PORT]/PATH, like docker.io/stagex", prefix)
	}
	return &Namespace{prefix: prefix, resolver: resolver()}, nil
}

// String returns the prefix.
func (n *Namespace) String() string { return n.prefix }

// Ref returns the reference of image name pinned by d.
func (n *Namespace) Ref(name string, d image.Digest) string {
	return n.prefix + "/" + name + "@" + d.String()
}

// maxManifestSize bounds what Manifest reads: a manifest lists layers,
// never their bytes.
const maxManifestSize = 4 << 20

// Manifest returns the manifest of image name that d pins, checked against
// d, and its media type. An index (a manifest list) is refused: StageX's
// digests files pin each platform's manifest. A digest the registry lacks
// gives an error wrapping ErrNotFound.
func (n *Namespace) Manifest(ctx context.Context, name string, d image.Digest) (string, []byte, error) {
	ref := n.Ref(name, d)
	fetcher, desc, err := resolvePinned(ctx, n.resolver, ref)
	if err != nil {
		return "", nil, err
	}
	switch desc.MediaType {
	case ocispec.MediaTypeImageManifest, image.MediaTypeDockerManifest:
	case ocispec.MediaTypeImageIndex, image.MediaTypeDockerManifestList:
		return "", nil, fmt.Errorf("%s is an index, not a platform's manifest", ref)
	default:
		return "", nil, fmt.Errorf("%s: unsupported manifest media type %q", ref, desc.MediaType)
	}
	if desc.Size > maxManifestSize {
		return "", nil, fmt.Errorf("%s: manifest of %d bytes", ref, desc.Size)
	}
	rc, err := fetcher.Fetch(ctx, desc)
	if err != nil {
		return "", nil, fmt.Errorf("fetching %s: %w", ref, err)
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxManifestSize+1))
	if err != nil {
		return "", nil, fmt.Errorf("fetching %s: %w", ref, err)
	}
	if got := image.DigestOf(b); got != d {
		return "", nil, fmt.Errorf("%s: the registry served content of digest %s", ref, got)
	}
	return desc.MediaType, b, nil
}

// Blob returns a reader of blob desc (a config or a layer) of image name.
// The caller verifies what it reads against the descriptor.
func (n *Namespace) Blob(ctx context.Context, name string, desc image.Descriptor) (io.ReadCloser, error) {
	repo := n.prefix + "/" + name
	fetcher, err := n.resolver.Fetcher(ctx, repo)
	if err != nil {
		return nil, fmt.Errorf("fetching %s from %s: %w", desc.Digest, repo, err)
	}
	rc, err := fetcher.Fetch(ctx, ocispec.Descriptor{MediaType: desc.MediaType, Digest: digest.Digest(desc.Digest.String()), Size: desc.Size})
	if errdefs.IsNotFound(err) {
		return nil, fmt.Errorf("%s@%s: %w", repo, desc.Digest, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("fetching %s from %s: %w", desc.Digest, repo, err)
	}
	return rc, nil
}
