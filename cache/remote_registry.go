package cache

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/containerd/containerd/v2/core/remotes"
	"github.com/containerd/containerd/v2/core/remotes/docker"
	"github.com/containerd/errdefs"
	"github.com/containerd/log"
	"github.com/opencontainers/go-digest"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/sirupsen/logrus"
)

// A registry remote keeps each action result as an OCI artifact in one
// repository, tagged with the action key's hex digits:
//
//	manifest (application/vnd.oci.image.manifest.v1+json)
//	  artifactType  application/vnd.sxmake.action.v1
//	  config        the ActionResult protobuf (MediaTypeActionResult)
//	  layers        the layer blob, then the log blob if any
//	  annotations   dev.sxmake.action.key: the key
//
// so the registry keeps every blob a result names for as long as the tag.
// Blobs are the repository's blobs. It speaks to the registry through
// containerd's remotes, with credentials from Credentials.
const (
	ArtifactTypeAction    = "application/vnd.sxmake.action.v1"
	MediaTypeActionResult = "application/vnd.sxmake.action-result.v1+protobuf"
	mediaTypeLog          = "application/vnd.sxmake.log.v1"
	annotationKey         = "dev.sxmake.action.key"
)

type registryRemote struct {
	repo     string // HOST/REPO
	resolver remotes.Resolver

	mu      sync.Mutex
	pushing map[digest.Digest]chan struct{} // pushes in progress
}

var _ Remote = (*registryRemote)(nil)

// NewRegistryRemote returns the remote cache in the OCI registry
// repository ref (HOST[:PORT]/REPO). Loopback hosts are spoken to over
// plain HTTP, others over HTTPS.
func NewRegistryRemote(ref string) (Remote, error) {
	host, path, ok := strings.Cut(ref, "/")
	if strings.Contains(host, "@") {
		return nil, fmt.Errorf("credentials do not belong in the reference: use the docker config or SXMAKE_CACHE_AUTH")
	}
	if !ok || host == "" || path == "" || strings.ContainsAny(path, ":@") {
		return nil, fmt.Errorf("want HOST/REPO without tag or digest")
	}
	auth := docker.NewDockerAuthorizer(docker.WithAuthCreds(func(h string) (string, string, error) {
		u, p, _ := Credentials(h)
		return u, p, nil
	}))
	resolver := docker.NewResolver(docker.ResolverOptions{
		Hosts: docker.ConfigureDefaultRegistries(docker.WithPlainHTTP(docker.MatchLocalhost), docker.WithAuthorizer(auth)),
	})
	return &registryRemote{repo: ref, resolver: resolver, pushing: map[digest.Digest]chan struct{}{}}, nil
}

// quietLog keeps containerd's info lines (every 404 of a lookup) off
// sxmake's output.
var quietLog = func() *logrus.Entry {
	l := logrus.New()
	l.SetLevel(logrus.WarnLevel)
	return logrus.NewEntry(l)
}()

func quiet(ctx context.Context) context.Context { return log.WithLogger(ctx, quietLog) }

func (r *registryRemote) String() string { return "registry:" + r.repo }

func (r *registryRemote) tagRef(key ActionKey) string { return r.repo + ":" + key.String() }

func notFound(err error, what string) error {
	if errdefs.IsNotFound(err) {
		return fmt.Errorf("%s: %w", what, ErrNotFound)
	}
	return fmt.Errorf("%s: %w", what, err)
}

// fetchVerified reads the small blob desc fully and checks its digest.
func fetchVerified(ctx context.Context, f remotes.Fetcher, desc ocispec.Descriptor) ([]byte, error) {
	rc, err := f.Fetch(ctx, desc)
	if err != nil {
		return nil, notFound(err, desc.Digest.String())
	}
	defer rc.Close()
	b, err := io.ReadAll(io.LimitReader(rc, maxResultSize))
	if err != nil {
		return nil, err
	}
	if got := digest.FromBytes(b); got != desc.Digest {
		return nil, fmt.Errorf("%s hashes to %s: %w", desc.Digest, got, ErrRejected)
	}
	return b, nil
}

func (r *registryRemote) Result(ctx context.Context, key ActionKey) (RemoteResult, error) {
	ctx = quiet(ctx)
	name, desc, err := r.resolver.Resolve(ctx, r.tagRef(key))
	if err != nil {
		return RemoteResult{}, notFound(err, "action "+key.String())
	}
	f, err := r.resolver.Fetcher(ctx, name)
	if err != nil {
		return RemoteResult{}, err
	}
	mb, err := fetchVerified(ctx, f, desc)
	if err != nil {
		return RemoteResult{}, fmt.Errorf("action %s: manifest: %w", key, err)
	}
	var m ocispec.Manifest
	if err := json.Unmarshal(mb, &m); err != nil || m.Config.MediaType != MediaTypeActionResult {
		return RemoteResult{}, fmt.Errorf("action %s: not an sxmake action manifest: %w", key, ErrRejected)
	}
	cb, err := fetchVerified(ctx, f, m.Config)
	if err != nil {
		return RemoteResult{}, fmt.Errorf("action %s: result: %w", key, err)
	}
	rr, err := UnmarshalActionResult(cb)
	if err != nil {
		return RemoteResult{}, fmt.Errorf("action %s: %w: %w", key, ErrRejected, err)
	}
	return rr, nil
}

func (r *registryRemote) Blob(ctx context.Context, d Digest, size int64) (io.ReadCloser, error) {
	ctx = quiet(ctx)
	f, err := r.resolver.Fetcher(ctx, r.repo)
	if err != nil {
		return nil, err
	}
	rc, err := f.Fetch(ctx, ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.Digest(d.String()), Size: size})
	if err != nil {
		return nil, notFound(err, d.String())
	}
	// The fetcher asks the registry at the first read.
	br := bufio.NewReader(rc)
	if _, err := br.Peek(1); err != nil && err != io.EOF {
		rc.Close()
		return nil, notFound(err, d.String())
	}
	return struct {
		io.Reader
		io.Closer
	}{br, rc}, nil
}

// HasBlob always says no: pushing a blob the registry has costs one HEAD
// request (PutBlob then reads nothing), as much as asking would.
func (r *registryRemote) HasBlob(context.Context, Digest) (bool, error) { return false, nil }

func (r *registryRemote) PutBlob(ctx context.Context, d Digest, size int64, rd io.Reader) error {
	return r.push(ctx, r.repo, ocispec.Descriptor{MediaType: "application/octet-stream", Digest: digest.Digest(d.String()), Size: size}, rd)
}

// push pushes desc, one push of a digest at a time: containerd's pusher
// fails a second concurrent push of a blob rather than waiting for it.
func (r *registryRemote) push(ctx context.Context, ref string, desc ocispec.Descriptor, rd io.Reader) error {
	ctx = quiet(ctx)
	var ch chan struct{}
	for {
		r.mu.Lock()
		wait, busy := r.pushing[desc.Digest]
		if !busy {
			ch = make(chan struct{})
			r.pushing[desc.Digest] = ch
			r.mu.Unlock()
			break
		}
		r.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	defer func() {
		r.mu.Lock()
		delete(r.pushing, desc.Digest)
		r.mu.Unlock()
		close(ch)
	}()
	p, err := r.resolver.Pusher(ctx, ref)
	if err != nil {
		return err
	}
	w, err := p.Push(ctx, desc)
	if errdefs.IsAlreadyExists(err) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("pushing %s: %w", desc.Digest, err)
	}
	defer w.Close()
	if _, err := io.Copy(w, rd); err != nil {
		return fmt.Errorf("pushing %s: %w", desc.Digest, err)
	}
	if err := w.Commit(ctx, desc.Size, desc.Digest); err != nil && !errdefs.IsAlreadyExists(err) {
		return fmt.Errorf("pushing %s: %w", desc.Digest, err)
	}
	return nil
}

func (r *registryRemote) PutResult(ctx context.Context, key ActionKey, rr RemoteResult) error {
	cfg := MarshalActionResult(rr)
	m := ocispec.Manifest{
		MediaType:    ocispec.MediaTypeImageManifest,
		ArtifactType: ArtifactTypeAction,
		Config:       ocispec.Descriptor{MediaType: MediaTypeActionResult, Digest: digest.FromBytes(cfg), Size: int64(len(cfg))},
		Layers: []ocispec.Descriptor{{
			MediaType: ocispec.MediaTypeImageLayerGzip, Digest: digest.Digest(rr.Layer.String()), Size: rr.LayerSize,
		}},
	}
	m.SchemaVersion = 2
	// The key makes the manifest of each action distinct: the pusher
	// skips a manifest whose digest the registry has, tag and all.
	m.Annotations = map[string]string{annotationKey: key.String()}
	if !rr.Log.IsZero() {
		m.Layers = append(m.Layers, ocispec.Descriptor{MediaType: mediaTypeLog, Digest: digest.Digest(rr.Log.String()), Size: rr.LogSize})
	}
	if err := r.push(ctx, r.repo, m.Config, bytes.NewReader(cfg)); err != nil {
		return err
	}
	mb, err := json.Marshal(m)
	if err != nil {
		return err
	}
	desc := ocispec.Descriptor{MediaType: m.MediaType, Digest: digest.Digest(fmt.Sprintf("sha256:%x", sha256.Sum256(mb))), Size: int64(len(mb))}
	err = r.push(ctx, r.tagRef(key), desc, bytes.NewReader(mb))
	if errors.Is(err, errdefs.ErrAlreadyExists) {
		return nil
	}
	return err
}
