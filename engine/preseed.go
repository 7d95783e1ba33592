package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/engine/registry"
	"github.com/stagex/sxmake/packages"
)

// A Registry serves the published images of a tree by digest.
type Registry interface {
	// Manifest returns the manifest of image name that d pins, and its
	// media type; an error wrapping registry.ErrNotFound if it has none.
	Manifest(ctx context.Context, name string, d image.Digest) (string, []byte, error)
	// Blob returns a reader of blob desc (a config or a layer) of image
	// name. The bytes are not trusted: Preseed checks them.
	Blob(ctx context.Context, name string, desc image.Descriptor) (io.ReadCloser, error)
	// Ref names image name pinned by d, for people.
	Ref(name string, d image.Digest) string
}

var _ Registry = (*registry.Namespace)(nil)

// PreseedOption configures Preseed.
type PreseedOption func(*preseedConfig)

type preseedConfig struct {
	jobs     int
	outDir   string
	progress PullProgress
}

// PullProgress hears how the downloads of a preseed go; either may be nil.
type PullProgress struct {
	Start func(blobs int, bytes int64) // the layers to download, once the manifests are in
	Add   func(bytes int64)            // more bytes downloaded
}

// WithPullJobs downloads at most n blobs at once (default 8).
func WithPullJobs(n int) PreseedOption { return func(c *preseedConfig) { c.jobs = n } }

// WithPreseedOut writes the layouts to dir/<image> (default: out/ in the
// tree).
func WithPreseedOut(dir string) PreseedOption { return func(c *preseedConfig) { c.outDir = dir } }

// WithPullProgress reports the downloads to p.
func WithPullProgress(p PullProgress) PreseedOption {
	return func(c *preseedConfig) { c.progress = p }
}

// PreseedReport says what Preseed did.
type PreseedReport struct {
	Images []PreseedImage // dependencies first
	Bytes  int64          // downloaded
}

// PreseedImage is the outcome of one image.
type PreseedImage struct {
	Name    string
	Digests []image.Digest // the manifest of each platform, in plan order
	Err     error          // nil: recorded, its layout written
}

// Failed returns the images not recorded.
func (r *PreseedReport) Failed() []PreseedImage {
	var out []PreseedImage
	for _, pi := range r.Images {
		if pi.Err != nil {
			out = append(out, pi)
		}
	}
	return out
}

// ErrNotPublished is returned (wrapped) for an image the digests files
// list no digest of for its platform.
var ErrNotPublished = errors.New("no published digest")

// Preseed pulls from reg the images of plans (one plan per platform) as
// digests publishes them (per image, the manifest digests of its
// platforms, as StageX's digests files list them), into the cache c, and
// records each with the definition it has in tree now: the tree is
// trusted to be what those digests were published for. Each image's
// layout goes to the output directory as its build would write it.
//
// Every manifest, config and layer is checked against its digest and
// size before it is kept. An image is recorded, and its layout written,
// only when all of it is stored for every platform and every image it
// needs is recorded too; otherwise its report says why, and nothing of
// it is recorded. The error is non-nil when some image failed.
func Preseed(ctx context.Context, tree *packages.Tree, c *cache.Cache, plans []*Plan, digests map[string][]image.Digest, reg Registry, opts ...PreseedOption) (*PreseedReport, error) {
	cfg := preseedConfig{jobs: 8, outDir: tree.OutDir()}
	for _, o := range opts {
		o(&cfg)
	}
	ps := &preseed{cfg: cfg, store: c.Store, reg: reg, pub: NewPublished(c), records: c.Published}
	units := ps.units(plans)
	ps.pullManifests(ctx, units, digests)
	ps.pullLayers(ctx, units)
	work, err := os.MkdirTemp(c.Dir, "preseed-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(work)
	report := ps.record(units, work)
	report.Bytes = ps.bytes
	var errs []error
	for _, pi := range report.Failed() {
		errs = append(errs, fmt.Errorf("%s: %w", pi.Name, pi.Err))
	}
	return report, errors.Join(errs...)
}

// preseed is the work of one Preseed.
type preseed struct {
	cfg     preseedConfig
	store   *cache.ContentStore
	reg     Registry
	pub     *Published
	records *cache.Published

	mu    sync.Mutex
	bytes int64
}

// unit is one image on one platform.
type unit struct {
	ip       *ImagePlan
	deps     []*unit
	manifest image.Descriptor // the published manifest of the platform
	layers   []image.Descriptor
	err      error
}

func (u *unit) key() string { return u.ip.Image.Name + " " + u.ip.Platform.String() }

// units returns the images of plans, each image and platform once,
// dependencies first.
func (ps *preseed) units(plans []*Plan) []*unit {
	byKey := map[string]*unit{}
	var out []*unit
	for _, plan := range plans {
		byName := map[string]*unit{}
		for _, ip := range plan.Images {
			u := &unit{ip: ip}
			if prev := byKey[u.key()]; prev != nil {
				byName[ip.Image.Name] = prev
				continue
			}
			for _, dep := range ip.Image.Deps {
				u.deps = append(u.deps, byName[dep.Name])
			}
			byKey[u.key()], byName[ip.Image.Name] = u, u
			out = append(out, u)
		}
	}
	return out
}

// each calls fn for every item, at most jobs at once.
func each[T any](items []T, jobs int, fn func(T)) {
	sem := make(chan struct{}, max(jobs, 1))
	var wg sync.WaitGroup
	for _, it := range items {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			fn(it)
		})
	}
	wg.Wait()
}

// pullManifests stores the manifest and config of each unit: the one of
// its image's published digests whose config is for its platform.
func (ps *preseed) pullManifests(ctx context.Context, units []*unit, digests map[string][]image.Digest) {
	each(units, ps.cfg.jobs, func(u *unit) {
		name, want := u.ip.Image.Name, imagePlatform(u.ip.Platform)
		var seen []string
		for _, d := range digests[name] {
			desc, m, c, err := ps.manifest(ctx, name, d)
			if err != nil {
				u.err = err
				return
			}
			got := image.Platform{OS: c.OS, Architecture: c.Architecture, Variant: c.Variant}
			if got.OS == want.OS && got.Architecture == want.Architecture && got.Variant == want.Variant {
				u.manifest, u.layers = desc, m.Layers
				u.err = checkLayerTypes(m)
				return
			}
			seen = append(seen, fmt.Sprintf("%s is %s", d, platformString(got)))
		}
		if len(seen) == 0 {
			u.err = fmt.Errorf("%w in digests/*.txt", ErrNotPublished)
			return
		}
		u.err = fmt.Errorf("%w for %s (%s)", ErrNotPublished, u.ip.Platform, strings.Join(seen, ", "))
	})
}

// manifest stores the manifest d of image name and its config, unless
// stored already, and returns them.
func (ps *preseed) manifest(ctx context.Context, name string, d image.Digest) (image.Descriptor, image.Manifest, image.Config, error) {
	var m image.Manifest
	var c image.Config
	mb, err := readBlob(ps.store, d)
	mediaType := ""
	if err != nil {
		if mediaType, mb, err = ps.reg.Manifest(ctx, name, d); err != nil {
			return image.Descriptor{}, m, c, err
		}
		if _, _, err := ps.store.Ingest(bytes.NewReader(mb), d); err != nil {
			return image.Descriptor{}, m, c, fmt.Errorf("%s: %w", ps.reg.Ref(name, d), err)
		}
	}
	if err := json.Unmarshal(mb, &m); err != nil {
		return image.Descriptor{}, m, c, fmt.Errorf("%s: manifest: %w", ps.reg.Ref(name, d), err)
	}
	if m.MediaType != "" {
		mediaType = m.MediaType
	}
	if err := ps.blob(ctx, name, m.Config); err != nil {
		return image.Descriptor{}, m, c, err
	}
	cb, err := readBlob(ps.store, m.Config.Digest)
	if err != nil {
		return image.Descriptor{}, m, c, err
	}
	if err := json.Unmarshal(cb, &c); err != nil {
		return image.Descriptor{}, m, c, fmt.Errorf("%s: config: %w", ps.reg.Ref(name, d), err)
	}
	return image.Descriptor{MediaType: mediaType, Digest: d, Size: int64(len(mb))}, m, c, nil
}

// checkLayerTypes refuses layers the engine cannot unpack.
func checkLayerTypes(m image.Manifest) error {
	for _, l := range m.Layers {
		switch l.MediaType {
		case image.MediaTypeLayerGzip, image.MediaTypeDockerLayerGzip:
		default:
			return fmt.Errorf("layer %s: unsupported media type %q (sxmake unpacks gzip layers)", l.Digest, l.MediaType)
		}
	}
	return nil
}

// blob stores blob desc of image name unless stored already, checking its
// digest and size before it is kept.
func (ps *preseed) blob(ctx context.Context, name string, desc image.Descriptor) error {
	if size, err := ps.store.Size(desc.Digest); err == nil && size == desc.Size {
		return nil
	}
	rc, err := ps.reg.Blob(ctx, name, desc)
	if err != nil {
		return err
	}
	defer rc.Close()
	w, err := ps.store.Writer()
	if err != nil {
		return err
	}
	defer w.Close()
	r := &progressReader{r: io.LimitReader(rc, desc.Size+1), add: ps.add}
	if _, err := io.Copy(w, r); err != nil {
		return fmt.Errorf("fetching %s of %s: %w", desc.Digest, name, err)
	}
	if _, _, err := w.Commit(desc.Digest, desc.Size); err != nil {
		return fmt.Errorf("%s of %s: %w", desc.Digest, name, err)
	}
	return nil
}

func (ps *preseed) add(n int64) {
	ps.mu.Lock()
	ps.bytes += n
	ps.mu.Unlock()
	if ps.cfg.progress.Add != nil {
		ps.cfg.progress.Add(n)
	}
}

// progressReader reports what it reads.
type progressReader struct {
	r   io.Reader
	add func(int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.add(int64(n))
	return n, err
}

// pullLayers stores the layers of every unit whose manifest is in, each
// layer once; a unit fails with the first of its layers that failed.
func (ps *preseed) pullLayers(ctx context.Context, units []*unit) {
	type pull struct {
		name string
		desc image.Descriptor
		err  error
	}
	var pulls []*pull
	byDigest := map[image.Digest]*pull{}
	var total int64
	for _, u := range units {
		if u.err != nil {
			continue
		}
		for _, l := range u.layers {
			if byDigest[l.Digest] != nil {
				continue
			}
			if size, err := ps.store.Size(l.Digest); err == nil && size == l.Size {
				continue
			}
			p := &pull{name: u.ip.Image.Name, desc: l}
			byDigest[l.Digest] = p
			pulls = append(pulls, p)
			total += l.Size
		}
	}
	if ps.cfg.progress.Start != nil {
		ps.cfg.progress.Start(len(pulls), total)
	}
	each(pulls, ps.cfg.jobs, func(p *pull) { p.err = ps.blob(ctx, p.name, p.desc) })
	for _, u := range units {
		for _, l := range u.layers {
			if p := byDigest[l.Digest]; p != nil && p.err != nil && u.err == nil {
				u.err = p.err
			}
		}
	}
}

// record writes the layout of each image all of whose units are in, and
// records them, dependencies first; work is a directory for the layouts
// of images with several platforms, merged into one.
func (ps *preseed) record(units []*unit, work string) *PreseedReport {
	report := &PreseedReport{}
	byImage := map[string][]*unit{}
	var order []string
	for _, u := range units {
		name := u.ip.Image.Name
		if byImage[name] == nil {
			order = append(order, name)
		}
		byImage[name] = append(byImage[name], u)
	}
	for _, name := range order {
		us := byImage[name]
		pi := PreseedImage{Name: name}
		for _, u := range us {
			pi.Digests = append(pi.Digests, u.manifest.Digest)
		}
		recs, err := ps.definitions(us)
		if err == nil {
			err = ps.writeLayout(name, us, filepath.Join(work, name))
		}
		for _, rec := range recs {
			if err != nil {
				break
			}
			err = ps.records.Put(rec)
		}
		if err != nil {
			for _, u := range us {
				if u.err == nil {
					u.err = err
				}
			}
			pi.Err = err
		}
		report.Images = append(report.Images, pi)
	}
	return report
}

// definitions returns the records of an image's units, or why it cannot
// be recorded.
func (ps *preseed) definitions(us []*unit) ([]cache.PublishedImage, error) {
	var recs []cache.PublishedImage
	for _, u := range us {
		if u.err != nil {
			return nil, u.err
		}
		for _, dep := range u.deps {
			if dep.err != nil {
				return nil, fmt.Errorf("needs %s, which is not recorded", dep.ip.Image.Name)
			}
		}
		digests := map[*packages.Image]image.Digest{}
		for _, dep := range u.deps {
			digests[dep.ip.Image] = dep.manifest.Digest
		}
		lines, _, err := ps.pub.definition(u.ip, func(dep *packages.Image) (image.Digest, bool) {
			d, ok := digests[dep]
			return d, ok
		})
		if err != nil {
			return nil, err
		}
		name, d := u.ip.Image.Name, u.manifest.Digest
		recs = append(recs, cache.PublishedImage{
			Name: name, Platform: u.ip.Platform.String(),
			MediaType: u.manifest.MediaType, Manifest: d, Size: u.manifest.Size,
			Source: ps.reg.Ref(name, d), Definition: lines,
		})
	}
	return recs, nil
}

// writeLayout writes the layout of image name, made of the units us (one
// per platform), to the output directory: as a build writes it, one
// nested index listing every platform in order; tmp is for the
// single-platform layouts merged into it.
func (ps *preseed) writeLayout(name string, us []*unit, tmp string) error {
	dest := filepath.Join(ps.cfg.outDir, name)
	if len(us) == 1 {
		return ps.writeOne(us[0], dest)
	}
	var srcs []string
	for i, u := range us {
		src := filepath.Join(tmp, fmt.Sprint(i))
		if err := ps.writeOne(u, src); err != nil {
			return err
		}
		srcs = append(srcs, src)
	}
	if err := os.RemoveAll(dest); err != nil {
		return err
	}
	_, err := image.MergeLayouts(dest, srcs)
	return err
}

func (ps *preseed) writeOne(u *unit, dest string) error {
	img, err := ps.pub.assemble(u.ip, u.manifest.Digest)
	if err != nil {
		return err
	}
	if err := image.WriteLayout(dest, img, ps.store); err != nil {
		return fmt.Errorf("writing %s: %w", dest, err)
	}
	return nil
}
