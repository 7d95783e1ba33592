package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/engine"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/rules"
)

// printPlan prints, for `sxmake -n`, every image the targets need in build
// order with its build args and the evaluated steps of each stage.
//
// Each step with an action is marked "cached" when the cache has its
// result, "run" otherwise; with explain, the inputs that changed since the
// action last ran follow each first action to run.
func printPlan(ctx context.Context, w, stderr io.Writer, g *globalFlags, bf *buildFlags, explain bool, names []string) error {
	c, err := openCache(ctx, stderr, g.cacheDir())
	if err != nil {
		return err
	}
	defer c.Close()
	plan, tree, err := makePlan(g, c, names)
	if err != nil {
		return err
	}
	st, err := dryRun(ctx, tree, c, plan, bf)
	if err != nil {
		return err
	}
	for i, ip := range plan.Images {
		if i > 0 {
			fmt.Fprintln(w)
		}
		writeImagePlan(w, i+1, len(plan.Images), ip, st, explain)
	}
	return nil
}

// actionStatus is what a dry run found for one action.
type actionStatus struct {
	cached  bool
	explain []string // set for the first action to run of an image
}

// dryRun looks up every action of plan in the cache without running any.
func dryRun(ctx context.Context, tree *packages.Tree, c *cache.Cache, plan *engine.Plan, bf *buildFlags) (map[string]actionStatus, error) {
	var mu sync.Mutex
	status := map[string]actionStatus{}
	events := func(ev engine.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch ev.Kind {
		case engine.ActionCached:
			status[ev.Name] = actionStatus{cached: true}
		case engine.ActionWouldRun:
			status[ev.Name] = actionStatus{explain: ev.Explain}
		}
	}
	b := engine.NewBuilder(tree, c, nil, append(bf.options(), engine.WithDryRun())...)
	if _, err := b.Build(ctx, plan, engine.WithEvents(events)); err != nil {
		return nil, err
	}
	return status, nil
}

// parsePlatforms parses --platform: a comma-separated list of linux
// platforms, or "" for the host's.
func parsePlatforms(list string) ([]rules.Platform, error) {
	if list == "" {
		return nil, nil
	}
	var out []rules.Platform
	for _, s := range strings.Split(list, ",") {
		p, err := rules.ParsePlatform(strings.TrimSpace(s))
		if err != nil {
			return nil, usagef("--platform: %v", err)
		}
		if p.OS != "linux" {
			return nil, usagef("--platform %s: sxmake builds linux images only", s)
		}
		out = append(out, p)
	}
	return out, nil
}

// makePlan loads the tree and plans the named targets, with the images
// imported into the cache c.
func makePlan(g *globalFlags, c *cache.Cache, names []string) (*engine.Plan, *packages.Tree, error) {
	ps, err := parsePlatforms(g.platform)
	if err != nil {
		return nil, nil, err
	}
	if len(ps) > 1 {
		return nil, nil, usagef("--platform %s: this command takes one platform", g.platform)
	}
	return makePlanFor(g, c, names, ps)
}

// makePlanFor plans the named targets for the platform in ps (none: the
// host's), with the images imported into the cache c.
func makePlanFor(g *globalFlags, c *cache.Cache, names []string, ps []rules.Platform) (*engine.Plan, *packages.Tree, error) {
	tree, err := g.load()
	if err != nil {
		return nil, nil, err
	}
	plan, err := planTree(g, c, tree, names, ps)
	if err != nil {
		return nil, nil, err
	}
	return plan, tree, nil
}

// planTree plans the named targets of tree for the platform in ps (none:
// the host's), with the images imported into the cache c and --build-arg.
func planTree(g *globalFlags, c *cache.Cache, tree *packages.Tree, names []string, ps []rules.Platform) (*engine.Plan, error) {
	opts, err := g.planOptions(c)
	if err != nil {
		return nil, err
	}
	if len(ps) > 0 {
		opts = append(opts, engine.WithPlatform(ps[0]))
	}
	targets, err := resolve(tree, names)
	if err != nil {
		return nil, err
	}
	return engine.NewPlan(tree, targets, opts...)
}

func writeImagePlan(w io.Writer, n, total int, ip *engine.ImagePlan, status map[string]actionStatus, explain bool) {
	pkg := ip.Image.Package
	fmt.Fprintf(w, "# %d/%d %s\n", n, total, ip.Image.Name)
	fmt.Fprintf(w, "package    packages/%s/%s %s\n", pkg.Stage, pkg.Name, pkg.Version)
	fmt.Fprintf(w, "target     %s\n", targetName(ip.Build))
	fmt.Fprintf(w, "platform   %s\n", ip.Platform)
	keys := make([]string, 0, len(ip.BuildArgs))
	for k := range ip.BuildArgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "build-arg  %s=%s\n", k, ip.BuildArgs[k])
	}
	for _, st := range ip.Build.Stages {
		fmt.Fprintf(w, "stage %d %s FROM %s\n", st.Index, stageLabel(st), baseLabel(st.Base))
		for i, step := range st.Steps {
			// Multi-line steps (heredocs) keep their lines, indented.
			text := strings.ReplaceAll(step.String(), "\n", "\n\t\t")
			mark := ""
			s, known := status[engine.ActionName(ip.Image.Name, st, i)]
			switch {
			case !hasAction(step):
			case known && s.cached:
				mark = "cached"
			default:
				mark = "run"
			}
			fmt.Fprintf(w, "  %d:%d\t%s\t%s\n", step.Pos.Line, step.Pos.Col, mark, text)
			if explain {
				for _, e := range s.explain {
					fmt.Fprintf(w, "\t\texplain: %s\n", e)
				}
			}
		}
	}
}

// hasAction reports whether step is an action (it makes a layer).
func hasAction(step *rules.Step) bool {
	return step.Kind != rules.Config || !step.EmptyLayer
}

func targetName(b *rules.Build) string {
	if b.Target.Name != "" {
		return b.Target.Name
	}
	return fmt.Sprintf("stage %d", b.Target.Index)
}

func stageLabel(st *rules.Stage) string {
	if st.Name == "" {
		return "(unnamed)"
	}
	return st.Name
}

func baseLabel(b rules.Base) string {
	switch b.Kind {
	case rules.StageBase:
		return "stage " + stageLabel(b.Stage)
	case rules.ImageBase:
		return b.Ref
	}
	return "scratch"
}
