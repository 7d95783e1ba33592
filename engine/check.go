package engine

import (
	"runtime"
	"slices"
	"strings"
	"sync"

	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/rules"
)

// ImageCheck is what the Dockerfile checks found in one image's
// Containerfile, as BuildKit's lint request (StageX's `make check`) finds
// it for the image with the tree's build args: over every stage for a
// package's main image (no --target), over the stages it needs for a
// subpackage.
type ImageCheck struct {
	Image    *packages.Image
	Checks   rules.CheckConfig // the config the build args and the file give
	Findings []rules.Finding   // sorted by line
	Err      error             // the definition error that stopped the checks, if any
}

// Check runs the Dockerfile checks of targets without building anything.
// The images they are built on are evaluated for their configs (the base
// image env, shell and workdir the checks read) but not checked; a main
// image's lint request reads those of every stage, as BuildKit's does. A
// target that does not evaluate has Err set, with the findings before the
// error; the others are checked all the same. Images are evaluated at
// once, each after those it is built on.
func Check(tree *packages.Tree, targets []*packages.Image, opts ...PlanOption) ([]ImageCheck, error) {
	cfg := planConfig{platform: HostPlatform()}
	for _, o := range opts {
		o(&cfg)
	}
	wanted := make(map[*packages.Image]bool, len(targets))
	bases := map[*packages.Image][]*packages.Image{} // what each image is built on
	all := slices.Clone(targets)
	for _, img := range targets {
		wanted[img] = true
		bases[img] = lintBases(tree, img, cfg)
		all = append(all, bases[img]...)
	}
	order, err := tree.Closure(all...)
	if err != nil {
		return nil, err
	}
	plans := make(map[string]*ImagePlan, len(order))
	evaluated := make(map[*packages.Image]chan struct{}, len(order))
	for _, img := range order {
		plans[img.Name] = &ImagePlan{Image: img, Platform: cfg.platformOf(img.Package), BuildArgs: cfg.buildArgs(img.Package)}
		evaluated[img] = make(chan struct{})
	}
	checks := make(map[*packages.Image]ImageCheck, len(targets))
	var mu sync.Mutex
	var wg sync.WaitGroup
	slots := make(chan struct{}, runtime.NumCPU())
	for _, img := range order {
		wg.Go(func() {
			defer close(evaluated[img])
			for _, dep := range append(img.Deps, bases[img]...) {
				<-evaluated[dep]
			}
			slots <- struct{}{}
			defer func() { <-slots }()
			ip := plans[img.Name]
			opt := cfg.evalOptions(tree, img, ip.Platform, ip.BuildArgs, plans)
			if wanted[img] {
				ic := checkImage(ip, opt)
				mu.Lock()
				checks[img] = ic
				mu.Unlock()
			}
			if ip.Build == nil {
				ip.Build, _ = rules.Evaluate(img.Package.Containerfile, opt) // for the images built on it
			}
		})
	}
	wg.Wait()
	var out []ImageCheck
	for _, img := range order {
		if wanted[img] {
			out = append(out, checks[img])
		}
	}
	return out, nil
}

// lintBases are the images of the tree a lint request of img reads the
// configs of besides its dependencies: those of the stages a main image
// does not need (BuildKit's lint request evaluates them all). References
// that are no image of the tree are left to the evaluation to report.
func lintBases(tree *packages.Tree, img *packages.Image, cfg planConfig) []*packages.Image {
	if img.Target != "" {
		return nil
	}
	refOpts := []rules.RefOption{rules.WithNamedContexts(namedNames()...), rules.WithAllStages(), rules.WithRefPlatform(cfg.platformOf(img.Package))}
	refs, err := img.Package.Containerfile.ImageRefs("", cfg.buildArgs(img.Package), refOpts...)
	if err != nil {
		return nil // the evaluation reports it
	}
	var out []*packages.Image
	for _, r := range refs {
		if !strings.HasPrefix(r.Name, "stagex/") {
			continue
		}
		if dep, err := tree.Resolve(r.Name); err == nil && dep != img && !slices.Contains(img.Deps, dep) {
			out = append(out, dep)
		}
	}
	return out
}

// namedNames lists namedContexts.
func namedNames() []string {
	var out []string
	for n := range namedContexts {
		out = append(out, n)
	}
	return out
}

// checkImage evaluates ip as a lint request does, keeping the result in
// ip.Build when it evaluates.
func checkImage(ip *ImagePlan, opt rules.EvalOptions) ImageCheck {
	f := ip.Image.Package.Containerfile
	ic := ImageCheck{Image: ip.Image}
	if ic.Checks, ic.Err = f.CheckConfig(ip.BuildArgs); ic.Err != nil {
		return ic
	}
	opt.Checks, opt.Report = ic.Checks, func(fd rules.Finding) { ic.Findings = append(ic.Findings, fd) }
	opt.AllStages = ip.Image.Target == ""
	ip.Build, ic.Err = rules.Evaluate(f, opt)
	rules.SortFindings(ic.Findings)
	return ic
}

// WithBuildArgs changes the build args derived from package.toml: each
// key is set to its value, or removed when the value is nil. sxmake
// check uses it to check with other Dockerfile check settings
// (BUILDKIT_DOCKERFILE_CHECK).
func WithBuildArgs(args map[string]*string) PlanOption {
	return func(c *planConfig) { c.argOverrides = args }
}

// buildArgs are the build args of pkg, overrides applied.
func (cfg planConfig) buildArgs(pkg *packages.Package) map[string]string {
	args := pkg.BuildArgs()
	for k, v := range cfg.argOverrides {
		if v == nil {
			delete(args, k)
		} else {
			args[k] = *v
		}
	}
	return args
}
