package engine

import (
	"fmt"
	"runtime"

	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/rules"
)

// Plan is what a build will do, computed without running anything: every
// image of the targets' closure, dependencies first, each with its
// Containerfile evaluated for its platform and build args.
type Plan struct {
	Images  []*ImagePlan      // dependencies first; ties broken by name
	Targets []*packages.Image // the images asked for
}

// ImagePlan is one image of a Plan.
type ImagePlan struct {
	Image     *packages.Image
	Platform  rules.Platform
	BuildArgs map[string]string // as given to the build (package.toml-derived)
	Build     *rules.Build      // the evaluated Containerfile, up to the image's stage

	// Checks is the Dockerfile check config of the build (StageX's:
	// findings are errors) and Findings what the checks found, as
	// BuildKit's build finds them: over the stages the image needs.
	Checks   rules.CheckConfig
	Findings []rules.Finding
}

// CheckErr is the error that fails the image before any of its steps
// runs: the findings, when the check config makes them errors.
func (ip *ImagePlan) CheckErr() error {
	if !ip.Checks.Error || len(ip.Findings) == 0 {
		return nil
	}
	return &rules.CheckError{Findings: ip.Findings}
}

// PlanOption configures NewPlan.
type PlanOption func(*planConfig)

type planConfig struct {
	platform     rules.Platform
	imports      *Imports           // images imported into the cache (external.go)
	argOverrides map[string]*string // WithBuildArgs (check.go)
}

// WithPlatform sets the platform of images whose package.toml names none.
// The default is the host's.
func WithPlatform(p rules.Platform) PlanOption {
	return func(c *planConfig) { c.platform = p }
}

// namedContexts are the build contexts every StageX build gets besides the
// package directory: fetch/ holds the package's downloaded sources.
var namedContexts = map[string]bool{"fetch": true}

// NewPlan evaluates the closure of targets in tree. A dependency's image
// config (Env, WorkingDir, Shell, User, Entrypoint...) is the config its own
// plan ends with, so a pallet's SHELL reaches the packages built FROM it.
func NewPlan(tree *packages.Tree, targets []*packages.Image, opts ...PlanOption) (*Plan, error) {
	cfg := planConfig{platform: HostPlatform()}
	for _, o := range opts {
		o(&cfg)
	}
	order, err := tree.Closure(targets...)
	if err != nil {
		return nil, err
	}
	plan := &Plan{Targets: targets}
	byName := make(map[string]*ImagePlan, len(order))
	for _, img := range order {
		ip, err := planImage(tree, img, cfg, byName)
		if err != nil {
			return nil, err
		}
		byName[img.Name] = ip
		plan.Images = append(plan.Images, ip)
	}
	return plan, nil
}

func planImage(tree *packages.Tree, img *packages.Image, cfg planConfig, done map[string]*ImagePlan) (*ImagePlan, error) {
	ip := &ImagePlan{Image: img, Platform: cfg.platformOf(img.Package), BuildArgs: cfg.buildArgs(img.Package)}
	checks, err := img.Package.Containerfile.CheckConfig(ip.BuildArgs)
	if err != nil {
		return nil, err
	}
	ip.Checks = checks
	opt := cfg.evalOptions(tree, img, ip.Platform, ip.BuildArgs, done)
	opt.Checks, opt.Report = checks, func(fd rules.Finding) { ip.Findings = append(ip.Findings, fd) }
	if ip.Build, err = rules.Evaluate(img.Package.Containerfile, opt); err != nil {
		return nil, err
	}
	rules.SortFindings(ip.Findings)
	return ip, nil
}

// platformOf is the platform pkg is built for.
func (cfg planConfig) platformOf(pkg *packages.Package) rules.Platform {
	if len(pkg.Platforms) > 0 {
		return pkg.Platforms[0]
	}
	return cfg.platform
}

// evalOptions are the options img's Containerfile is evaluated with: its
// build args and platform, and the configs of the images it is built on,
// which done holds (dependencies are planned first).
func (cfg planConfig) evalOptions(tree *packages.Tree, img *packages.Image, p rules.Platform, args map[string]string, done map[string]*ImagePlan) rules.EvalOptions {
	return rules.EvalOptions{
		BuildArgs:     args,
		Target:        img.Target,
		Platform:      p,
		BuildPlatform: HostPlatform(),
		NamedContexts: namedContexts,
		ImageConfig: func(ref string, _ rules.Platform) (rules.ImageConfig, error) {
			if tree.IsExternal(ref) {
				return cfg.importedConfig(ref) // an imported image (sxmake import)
			}
			dep, err := tree.Resolve(ref)
			if err != nil {
				return rules.ImageConfig{}, err
			}
			ip := done[dep.Name]
			if ip == nil {
				panic(fmt.Sprintf("engine: %s planned before its dependency %s", img.Name, dep.Name))
			}
			if ip.Build == nil {
				return rules.ImageConfig{}, fmt.Errorf("%s does not evaluate", dep.Name)
			}
			return ip.Build.Target.Config, nil
		},
	}
}

// HostPlatform is the platform sxmake builds for by default.
func HostPlatform() rules.Platform {
	p := rules.Platform{OS: "linux", Arch: runtime.GOARCH}
	if p.Arch == "arm" {
		p.Variant = "v7"
	}
	return p
}
