package engine

import (
	"encoding/json"
	"fmt"
	"io/fs"
	"path/filepath"
	"sort"
	"sync"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/packages"
)

// Published images stand in for building: `sxmake preseed` pulls the
// images a tree's digests files pin and records, for each, the definition
// it was published for (see definition). A build takes an image as
// published, running nothing, exactly while the definition it derives
// for it now is the recorded one. The definition names the digests of
// the images it needs, as this build has them: a package edited is built
// again, and the images that need it are taken published again only if
// its new digest is the published one (early cutoff); otherwise they are
// built too, and so on up the graph.

// definitionVersion is the first line of every definition. Change it when
// what a definition covers changes, so that no older record matches.
const definitionVersion = "sxmake definition v1"

// Published decides which images a build takes as published. Safe for
// concurrent use.
type Published struct {
	reg     *cache.Published
	store   *cache.ContentStore
	hashes  *cache.FileHashes
	imports *Imports
	targets bool // the images asked for may be taken published too

	mu    sync.Mutex
	files map[*packages.Package]packageFiles // hashed once
}

type packageFiles struct {
	lines []string
	err   error
}

// PublishedOption configures NewPublished.
type PublishedOption func(*Published)

// UsePublishedTargets lets a build take the images it is asked for as
// published too; by default they are always built.
func UsePublishedTargets() PublishedOption { return func(p *Published) { p.targets = true } }

// NewPublished returns the published images recorded in the opened cache c.
func NewPublished(c *cache.Cache, opts ...PublishedOption) *Published {
	p := &Published{reg: c.Published, store: c.Store, hashes: c.Files, imports: NewImports(c), files: map[*packages.Package]packageFiles{}}
	for _, o := range opts {
		o(p)
	}
	return p
}

// WithPublished lets the Builder's builds take images as published (see
// Published) instead of building them.
func WithPublished(p *Published) Option { return func(b *Builder) { b.published = p } }

// definition returns the labelled lines of what ip's image is made of:
// its name, platform, Containerfile target and build args, every file of
// its package directory by content and mode (its package.toml pins its
// sources by hash), and the digest of each image it needs: digest(dep)
// for the tree's (a false from it ends the definition there, unknown),
// the imported one for an external image.
func (p *Published) definition(ip *ImagePlan, digest func(*packages.Image) (image.Digest, bool)) ([]string, bool, error) {
	in := &inputs{lines: []string{definitionVersion}}
	in.add("image", ip.Image.Name)
	in.add("platform", ip.Platform.String())
	in.add("target", ip.Image.Target)
	keys := make([]string, 0, len(ip.BuildArgs))
	for k := range ip.BuildArgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		in.add("build-arg", k+"="+ip.BuildArgs[k])
	}
	files, err := p.packageFiles(ip.Image.Package)
	if err != nil {
		return nil, false, err
	}
	for _, f := range files {
		in.add("file", f)
	}
	for _, dep := range ip.Image.Deps {
		d, ok := digest(dep)
		if !ok {
			return nil, false, nil
		}
		in.add("dep", dep.Name+" "+d.String())
	}
	for _, name := range ip.Image.External {
		res, err := p.imports.result(name)
		if err != nil {
			return nil, false, err
		}
		in.add("external", name+" "+res.digest.String())
	}
	return in.lines, true, nil
}

// packageFiles describes every file of pkg's directory, once per
// Published. A fetch/ directory at its top is left out: sxmake reads a
// package's sources from the tree's fetch/<stage>/<name>/ (StageX's make
// copies them into the package directory), and package.toml pins them.
func (p *Published) packageFiles(pkg *packages.Package) ([]string, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if f, ok := p.files[pkg]; ok {
		return f.lines, f.err
	}
	var lines []string
	err := filepath.WalkDir(pkg.Dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(pkg.Dir, path)
		if rel == "." {
			return nil
		}
		if rel == "fetch" && d.IsDir() {
			return filepath.SkipDir
		}
		fi, err := d.Info()
		if err != nil {
			return err
		}
		line, err := describeFile(filepath.ToSlash(rel), path, fi, p.hashes)
		lines = append(lines, line)
		return err
	})
	if err != nil {
		err = fmt.Errorf("hashing %s: %w", pkg.Dir, err)
		lines = nil
	}
	p.files[pkg] = packageFiles{lines, err}
	return lines, err
}

// choice is what a build does with one image: take the published image
// rec, whose blobs make res, or (rec nil) build it, for the reason why
// ("" when the image is not published at all); explain lists the inputs
// of the definition that changed since it was published.
type choice struct {
	rec     *cache.PublishedImage
	res     *imageResult
	why     string
	explain []string
}

// choose decides whether ip's image is taken published, digest giving the
// digests of the images it needs (false: not known yet). target says the
// build was asked for the image.
func (p *Published) choose(ip *ImagePlan, target bool, digest func(*packages.Image) (image.Digest, bool)) choice {
	rec, err := p.reg.Get(ip.Image.Name, ip.Platform.String())
	if err != nil {
		return choice{} // not published
	}
	if target && !p.targets {
		return choice{why: "named on the command line (--use-published takes the published image)"}
	}
	lines, known, err := p.definition(ip, digest)
	if err != nil {
		return choice{why: fmt.Sprintf("its definition cannot be read: %v", err)}
	}
	if !known {
		for _, dep := range ip.Image.Deps {
			if _, ok := digest(dep); !ok {
				return choice{why: fmt.Sprintf("needs %s, which is to build; taken published if %s comes out with its published digest", dep.Name, dep.Name)}
			}
		}
	}
	if changed := explain(rec.Definition, lines); len(changed) > 0 {
		return choice{why: "its definition changed since it was published", explain: changed}
	}
	res, err := storedResult(p.store, rec.Manifest)
	if err != nil {
		return choice{why: fmt.Sprintf("the published image is not whole in the cache (sxmake preseed again): %v", err)}
	}
	return choice{rec: &rec, res: res}
}

// write writes the layout of the published image c chose for ip in
// dir/<name>, as the build of ip would.
func (p *Published) write(ip *ImagePlan, c choice, dir string) error {
	img, err := p.assemble(ip, c.rec.Manifest)
	if err != nil {
		return err
	}
	c.res.layout = filepath.Join(dir, ip.Image.Name)
	if err := image.WriteLayout(c.res.layout, img, p.store); err != nil {
		return fmt.Errorf("writing %s: %w", c.res.layout, err)
	}
	return nil
}

// assemble returns the stored image of manifest m as the build of ip
// writes it: BuildKit's layout around the published manifest.
func (p *Published) assemble(ip *ImagePlan, m cache.Digest) (*image.Image, error) {
	mb, err := readBlob(p.store, m)
	if err != nil {
		return nil, err
	}
	var mf image.Manifest
	if err := json.Unmarshal(mb, &mf); err != nil {
		return nil, fmt.Errorf("published image %s: %w", m, err)
	}
	cb, err := readBlob(p.store, mf.Config.Digest)
	if err != nil {
		return nil, err
	}
	img, err := image.Assemble(ip.Image.Name, mb, cb, image.WithEpoch(epoch), image.WithPlatform(imagePlatform(ip.Platform)))
	if err != nil {
		return nil, fmt.Errorf("published image %s: %w", m, err)
	}
	return img, nil
}

// Settled returns the images of plan that a build takes as published
// whatever it builds: each is published with the definition it has now,
// needing only settled images. A build never needs their sources.
func (p *Published) Settled(plan *Plan) map[*packages.Image]bool {
	targets := targetSet(plan)
	settled := map[*packages.Image]bool{}
	digests := map[*packages.Image]image.Digest{}
	for _, ip := range plan.Images {
		c := p.choose(ip, targets[ip.Image], func(dep *packages.Image) (image.Digest, bool) {
			d, ok := digests[dep]
			return d, ok
		})
		if c.rec != nil {
			settled[ip.Image], digests[ip.Image] = true, c.rec.Manifest
		}
	}
	return settled
}

// targetSet returns the images plan was asked for.
func targetSet(plan *Plan) map[*packages.Image]bool {
	m := make(map[*packages.Image]bool, len(plan.Targets))
	for _, t := range plan.Targets {
		m[t] = true
	}
	return m
}
