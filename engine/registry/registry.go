// Package registry moves OCI image layouts to and from container
// registries, with containerd's remotes (the Docker registry HTTP API).
//
// Vocabulary: a reference names an image in a registry,
// "HOST[:PORT]/REPO[:TAG][@DIGEST]"; a layout is an OCI image layout
// directory as sxmake writes it to out/. Registries on localhost are
// spoken to over plain HTTP, others over HTTPS. Credentials come from the
// Docker config (~/.docker/config.json or $DOCKER_CONFIG/config.json,
// "auths" entries), never from the command line.
package registry

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/core/content"
	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/containerd/v2/plugins/content/local"
	"github.com/containerd/errdefs"
	"github.com/containerd/platforms"
	specs "github.com/opencontainers/image-spec/specs-go"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// resolver returns a resolver using the Docker config's credentials.
func resolver() remotes.Resolver {
	auth := docker.NewDockerAuthorizer(docker.WithAuthCreds(dockerCredentials))
	return docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(
			docker.WithPlainHTTP(docker.MatchLocalhost),
			docker.WithAuthorizer(auth),
		),
	})
}

// dockerCredentials looks host up in the Docker config's "auths".
func dockerCredentials(host string) (string, string, error) {
	dir := os.Getenv("DOCKER_CONFIG")
	if dir == "" {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", "", nil
		}
		dir = filepath.Join(home, ".docker")
	}
	data, err := os.ReadFile(filepath.Join(dir, "config.json"))
	if err != nil {
		return "", "", nil // no config: anonymous
	}
	var cfg struct {
		Auths map[string]struct {
			Auth string `json:"auth"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(data, &cfg); err != nil {
		return "", "", fmt.Errorf("docker config: %w", err)
	}
	for _, key := range []string{host, "https://" + host, "http://" + host} {
		if a, ok := cfg.Auths[key]; ok && a.Auth != "" {
			dec, err := base64.StdEncoding.DecodeString(a.Auth)
			if err != nil {
				return "", "", fmt.Errorf("docker config auth for %s: %w", host, err)
			}
			user, pass, _ := strings.Cut(string(dec), ":")
			return user, pass, nil
		}
	}
	return "", "", nil
}

// Push uploads the image of the layout dir (its index.json's first entry,
// every platform it lists) to ref, and returns the pushed descriptor.
func Push(ctx context.Context, dir, ref string) (ocispec.Descriptor, error) {
	desc, err := topDescriptor(dir)
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	pusher, err := resolver().Pusher(ctx, ref)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("pushing to %s: %w", ref, err)
	}
	if err := remotes.PushContent(ctx, pusher, desc, layout(dir), nil, platforms.All, nil); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("pushing %s to %s: %w", dir, ref, err)
	}
	return desc, nil
}

// Resolve returns the descriptor ref names in its registry.
func Resolve(ctx context.Context, ref string) (ocispec.Descriptor, error) {
	_, desc, err := resolver().Resolve(ctx, ref)
	if err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("resolving %s: %w", ref, err)
	}
	return desc, nil
}

// topDescriptor is the first entry of the layout's index.json, without
// the annotations that only name it in the layout.
func topDescriptor(dir string) (ocispec.Descriptor, error) {
	data, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		return ocispec.Descriptor{}, err
	}
	var idx ocispec.Index
	if err := json.Unmarshal(data, &idx); err != nil {
		return ocispec.Descriptor{}, fmt.Errorf("%s/index.json: %w", dir, err)
	}
	if len(idx.Manifests) == 0 {
		return ocispec.Descriptor{}, fmt.Errorf("%s/index.json: no image", dir)
	}
	d := idx.Manifests[0]
	d.Annotations = nil
	return d, nil
}

// layout reads the blobs of an OCI layout for containerd.
type layout string

var _ content.Provider = layout("")

func (l layout) ReaderAt(_ context.Context, desc ocispec.Descriptor) (content.ReaderAt, error) {
	f, err := os.Open(filepath.Join(string(l), "blobs", desc.Digest.Algorithm().String(), desc.Digest.Encoded()))
	if err != nil {
		return nil, err
	}
	return sizedFile{f, desc.Size}, nil
}

type sizedFile struct {
	*os.File
	size int64
}

func (f sizedFile) Size() int64 { return f.size }

// Pull downloads the image ref names, which must pin a digest
// ("HOST/REPO[:TAG]@sha256:..."), with every platform it lists, into a
// new OCI layout at dir. Every blob is verified against its digest.
func Pull(ctx context.Context, ref, dir string) error {
	fetcher, desc, err := resolvePinned(ctx, resolver(), ref)
	if err != nil {
		return err
	}
	store, err := local.NewStore(dir)
	if err != nil {
		return err
	}
	handler := images.Handlers(remotes.FetchHandler(store, fetcher), images.ChildrenHandler(store))
	if err := images.Dispatch(ctx, handler, nil, desc); err != nil {
		return fmt.Errorf("pulling %s: %w", ref, err)
	}
	os.RemoveAll(filepath.Join(dir, "ingest"))
	idx, err := json.Marshal(ocispec.Index{Versioned: specs.Versioned{SchemaVersion: 2}, MediaType: ocispec.MediaTypeImageIndex, Manifests: []ocispec.Descriptor{desc}})
	if err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(dir, "index.json"), idx, 0o644)
}

// ErrNotFound is returned (wrapped) for a digest the registry does not
// have.
var ErrNotFound = errors.New("not found in the registry")

// resolvePinned resolves ref, which must pin a digest, and returns a
// fetcher of its repository and the registry's descriptor of the digest.
func resolvePinned(ctx context.Context, r remotes.Resolver, ref string) (remotes.Fetcher, ocispec.Descriptor, error) {
	_, pinned, ok := strings.Cut(ref, "@")
	if !ok {
		return nil, ocispec.Descriptor{}, fmt.Errorf("pulling %s: pin a digest (REF@sha256:...)", ref)
	}
	name, desc, err := r.Resolve(ctx, ref)
	if errdefs.IsNotFound(err) {
		return nil, ocispec.Descriptor{}, fmt.Errorf("%s: %w", ref, ErrNotFound)
	}
	if err != nil {
		return nil, ocispec.Descriptor{}, fmt.Errorf("resolving %s: %w", ref, err)
	}
	if desc.Digest.String() != pinned {
		return nil, ocispec.Descriptor{}, fmt.Errorf("pulling %s: the registry served %s", ref, desc.Digest)
	}
	fetcher, err := r.Fetcher(ctx, name)
	if err != nil {
		return nil, ocispec.Descriptor{}, fmt.Errorf("pulling %s: %w", ref, err)
	}
	return fetcher, desc, nil
}
