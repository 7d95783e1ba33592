package engine

import (
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
// image env, shell and workdir the checks read) but not checked. A
// target that does not evaluate has Err set, with the findings before
// the error; the others are checked all the same.
func Check(tree *packages.Tree, targets []*packages.Image, opts ...PlanOption) ([]ImageCheck, error) {
	cfg := planConfig{platform: HostPlatform()}
	for _, o := range opts {
		o(&cfg)
	}
	order, err := tree.Closure(targets...)
	if err != nil {
		return nil, err
	}
	wanted := make(map[*packages.Image]bool, len(targets))
	for _, img := range targets {
		wanted[img] = true
	}
	done := make(map[string]*ImagePlan, len(order))
	var out []ImageCheck
	for _, img := range order {
		ip := &ImagePlan{Image: img, Platform: cfg.platformOf(img.Package), BuildArgs: cfg.buildArgs(img.Package)}
		done[img.Name] = ip
		opt := cfg.evalOptions(tree, img, ip.Platform, ip.BuildArgs, done)
		if wanted[img] {
			out = append(out, checkImage(ip, opt))
		}
		if ip.Build == nil {
			ip.Build, _ = rules.Evaluate(img.Package.Containerfile, opt) // for the images built on it
		}
	}
	return out, nil
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
