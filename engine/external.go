package engine

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"sync"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/rules"
)

// Imports are the images imported into a cache (`sxmake import`): base
// images from outside any tree, which a tree loaded with
// packages.WithExternalImages(Names()...) may use as stagex/<name> in FROM
// and COPY --from. Their blobs are in the cache's content store; a build
// uses their layers as it uses a dependency's exported layers. Safe for
// concurrent use.
type Imports struct {
	store *cache.ContentStore
	reg   *cache.Images

	mu     sync.Mutex
	loaded map[string]*imageResult
}

// NewImports returns the imports of the opened cache c.
func NewImports(c *cache.Cache) *Imports {
	return &Imports{store: c.Store, reg: c.Images, loaded: map[string]*imageResult{}}
}

// Names returns the names of the imported images, sorted.
func (im *Imports) Names() ([]string, error) { return im.reg.Names() }

// Add imports src as the image name (referenced as stagex/<name>),
// replacing any image imported under that name before; source says where
// it came from, for people. Every blob is verified as it is stored.
func (im *Imports) Add(name string, src *image.Source, source string) (cache.ImportedImage, error) {
	if err := cache.CheckImageName(name); err != nil {
		return cache.ImportedImage{}, err
	}
	got, err := image.Import(src, im.store)
	if err != nil {
		return cache.ImportedImage{}, fmt.Errorf("importing %s: %w", name, err)
	}
	rec := cache.ImportedImage{
		Name:      name,
		MediaType: got.Manifest.MediaType,
		Manifest:  got.Manifest.Digest,
		Size:      got.Manifest.Size,
		Platform:  platformString(*got.Manifest.Platform),
		Source:    source,
	}
	if err := im.reg.Put(rec); err != nil {
		return cache.ImportedImage{}, err
	}
	im.mu.Lock()
	delete(im.loaded, name)
	im.mu.Unlock()
	return rec, nil
}

func platformString(p image.Platform) string {
	s := p.OS + "/" + p.Architecture
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// result returns the imported image ref ("stagex/core-busybox:tag" or a
// bare name) as a build's dependency: its layers, from its manifest, and
// its config, as stored.
func (im *Imports) result(ref string) (*imageResult, error) {
	name := externalName(ref)
	im.mu.Lock()
	res := im.loaded[name]
	im.mu.Unlock()
	if res != nil {
		return res, nil
	}
	rec, err := im.reg.Get(name)
	if err != nil {
		return nil, err
	}
	res, err = storedResult(im.store, rec.Manifest)
	if err != nil {
		return nil, fmt.Errorf("imported image %s: %w (import it again)", name, err)
	}
	im.mu.Lock()
	im.loaded[name] = res
	im.mu.Unlock()
	return res, nil
}

// storedResult returns the image whose manifest m is in store, with its
// config and layers, as a build's dependency: its layers, from the
// manifest, and its config, as stored. Every layer must be stored.
func storedResult(store *cache.ContentStore, m cache.Digest) (*imageResult, error) {
	mb, err := readBlob(store, m)
	if err != nil {
		return nil, err
	}
	var mf image.Manifest
	if err := json.Unmarshal(mb, &mf); err != nil {
		return nil, fmt.Errorf("manifest: %w", err)
	}
	cb, err := readBlob(store, mf.Config.Digest)
	if err != nil {
		return nil, err
	}
	c, err := image.BaseConfig(cb)
	if err != nil {
		return nil, err
	}
	ls, err := image.BaseLayers(mf, c)
	if err != nil {
		return nil, err
	}
	res := &imageResult{config: c, digest: m}
	for _, l := range ls {
		if _, err := store.Size(l.Digest); err != nil {
			return nil, fmt.Errorf("layer %s: %w", l.Digest, err)
		}
		// Chain IDs are derived from the diffIDs by exported() where the
		// layers are used.
		res.layers = append(res.layers, layer{Layer: l})
	}
	return res, nil
}

// config returns the image config that stages built FROM the imported
// image ref start with, as the plan evaluates them.
func (im *Imports) config(ref string) (rules.ImageConfig, error) {
	res, err := im.result(ref)
	if err != nil {
		return rules.ImageConfig{}, err
	}
	c := res.config.Config
	out := rules.ImageConfig{
		Env: c.Env, WorkingDir: c.WorkingDir, Shell: c.Shell, User: c.User,
		Entrypoint: c.Entrypoint, Cmd: c.Cmd, ArgsEscaped: c.ArgsEscaped,
		Labels: c.Labels, StopSignal: c.StopSignal, OnBuild: c.OnBuild,
		ExposedPorts: sortedKeys(c.ExposedPorts), Volumes: sortedKeys(c.Volumes),
		Author: res.config.Author,
	}
	if h := c.Healthcheck; h != nil {
		out.Healthcheck = &rules.Healthcheck{
			Test: h.Test, Interval: h.Interval, Timeout: h.Timeout,
			StartPeriod: h.StartPeriod, StartInterval: h.StartInterval, Retries: h.Retries,
		}
	}
	return out, nil
}

// externalName is the image name of a stagex/ reference.
func externalName(ref string) string { return packages.ImageName(ref) }

func sortedKeys(m map[string]struct{}) []string {
	if len(m) == 0 {
		return nil
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// readBlob reads the small blob d fully, verifying it.
func readBlob(store *cache.ContentStore, d cache.Digest) ([]byte, error) {
	r, err := store.Open(d)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	return b, nil
}

// WithImports lets the plan evaluate stages built FROM images imported
// into a cache (the tree must have been loaded with their names, see
// packages.WithExternalImages).
func WithImports(im *Imports) PlanOption {
	return func(c *planConfig) { c.imports = im }
}

// importedConfig is the plan's ImageConfig for an external image.
func (c *planConfig) importedConfig(ref string) (rules.ImageConfig, error) {
	if c.imports == nil {
		return rules.ImageConfig{}, fmt.Errorf("image %s is external, but the plan has no imports (WithImports)", ref)
	}
	return c.imports.config(ref)
}
