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
	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/rules"
)

// printPlan prints, for `sxmake -n`, every image the targets need in build
// order with its build args and the evaluated steps of each stage.
//
// Each step with an action is marked "cached" when the cache has its
// result, "run" otherwise; with explain, the inputs that changed since the
// action last ran follow each first action to run. A RUN that StageX's
// builds give the network (it has no --network flag) is followed by a
// line saying whether it gets it here; on stderr, a summary names the
// images whose such steps run offline.
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
	allowed, err := bf.networkImages()
	if err != nil {
		return err
	}
	net := networkPolicy{allowed: map[string]bool{}}
	for _, n := range allowed {
		net.allowed[n] = true
	}
	for i, ip := range plan.Images {
		if i > 0 {
			fmt.Fprintln(w)
		}
		writeImagePlan(w, i+1, len(plan.Images), ip, st, explain, &net)
	}
	if len(net.offline) > 0 {
		fmt.Fprintf(stderr, "sxmake: %d RUN steps of %d images have no --network=none, so StageX's builds give them the network; they run offline unless allowed (--allow-network IMAGE, or a line IMAGE in %s): %s\n",
			net.steps, len(net.offline), bf.allowlistPath(), safeLine(strings.Join(net.offline, " ")))
	}
	return nil
}

// networkPolicy says which images' RUN steps get the network, and
// collects the images whose steps StageX runs online that will run
// offline.
type networkPolicy struct {
	allowed map[string]bool
	offline []string // in plan order
	steps   int      // their steps
}

// note returns the line printed under a RUN step of image that StageX
// gives the network, and records it when it runs offline.
func (n *networkPolicy) note(image string) string {
	if n.allowed[image] {
		return "network: host (allowed)"
	}
	if len(n.offline) == 0 || n.offline[len(n.offline)-1] != image {
		n.offline = append(n.offline, image)
	}
	n.steps++
	return "network: offline here; StageX's builds give this step the network (--allow-network " + safeLine(image) + ")"
}

// actionStatus is what a dry run found for one action.
type actionStatus struct {
	cached  bool
	explain []string // set for the first action to run of an image
}

// imageStatus is what a dry run found for one image: published (its
// digest), or built for the reason why, with the changed inputs of its
// definition in explain.
type imageStatus struct {
	published image.Digest
	why       string
	explain   []string
}

// dryRunStatus is what a dry run found, by action name and image name.
type dryRunStatus struct {
	actions map[string]actionStatus
	images  map[string]imageStatus
}

// dryRun looks up every action of plan in the cache, and every published
// image, without running anything.
func dryRun(ctx context.Context, tree *packages.Tree, c *cache.Cache, plan *engine.Plan, bf *buildFlags) (*dryRunStatus, error) {
	var mu sync.Mutex
	st := &dryRunStatus{actions: map[string]actionStatus{}, images: map[string]imageStatus{}}
	events := func(ev engine.Event) {
		mu.Lock()
		defer mu.Unlock()
		switch ev.Kind {
		case engine.ActionCached:
			st.actions[ev.Name] = actionStatus{cached: true}
		case engine.ActionWouldRun:
			st.actions[ev.Name] = actionStatus{explain: ev.Explain}
		case engine.ImagePublished:
			st.images[ev.Image] = imageStatus{published: ev.Digest}
		case engine.ImageFromSource:
			if len(ev.Explain) > 0 {
				st.images[ev.Image] = imageStatus{why: ev.Explain[0], explain: ev.Explain[1:]}
			}
		case engine.ImageSkipped:
			if _, known := st.images[ev.Image]; !known {
				dep := strings.TrimPrefix(ev.Err.Error(), engine.ErrDependencyFailed.Error()+": ")
				st.images[ev.Image] = imageStatus{why: fmt.Sprintf("needs %s, which is to build", dep)}
			}
		}
	}
	opts, err := bf.options()
	if err != nil {
		return nil, err
	}
	opts = append(opts, engine.WithDryRun())
	if pub := bf.published(c); pub != nil {
		opts = append(opts, engine.WithPublished(pub))
	}
	b := engine.NewBuilder(tree, c, nil, opts...)
	if _, err := b.Build(ctx, plan, engine.WithEvents(events)); err != nil {
		return nil, err
	}
	return st, nil
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

func writeImagePlan(w io.Writer, n, total int, ip *engine.ImagePlan, st *dryRunStatus, explain bool, net *networkPolicy) {
	pkg := ip.Image.Package
	fmt.Fprintf(w, "# %d/%d %s\n", n, total, safeLine(ip.Image.Name))
	img := st.images[ip.Image.Name]
	published := !img.published.IsZero()
	fmt.Fprintf(w, "status     %s\n", safeLine(imageStatusText(ip, st, img)))
	if explain {
		for _, e := range img.explain {
			fmt.Fprintf(w, "\t\texplain: %s\n", safeLine(e))
		}
	}
	fmt.Fprintf(w, "package    packages/%s/%s %s\n", safeLine(pkg.Stage), safeLine(pkg.Name), safeLine(pkg.Tag()))
	fmt.Fprintf(w, "target     %s\n", safeLine(ip.Build.Target.Label()))
	fmt.Fprintf(w, "platform   %s\n", ip.Platform)
	keys := make([]string, 0, len(ip.BuildArgs))
	for k := range ip.BuildArgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "build-arg  %s=%s\n", safeLine(k), safeLine(ip.BuildArgs[k]))
	}
	for _, stage := range ip.Build.Stages {
		fmt.Fprintf(w, "stage %d %s FROM %s\n", stage.Index, safeLine(stage.Label()), safeLine(baseLabel(stage.Base)))
		for i, step := range stage.Steps {
			// Multi-line steps (heredocs) keep their lines, indented.
			text := strings.ReplaceAll(safe(step.String()), "\n", "\n\t\t")
			mark := ""
			s, known := st.actions[engine.ActionName(ip.Image.Name, stage, i)]
			switch {
			case !hasAction(step):
			case published:
				mark = "published"
			case known && s.cached:
				mark = "cached"
			default:
				mark = "run"
			}
			fmt.Fprintf(w, "  %d:%d\t%s\t%s\n", step.Pos.Line, step.Pos.Col, mark, text)
			if step.NetworkByDefault() && !published {
				fmt.Fprintf(w, "\t\t%s\n", net.note(ip.Image.Name))
			}
			if explain {
				for _, e := range s.explain {
					fmt.Fprintf(w, "\t\texplain: %s\n", safeLine(e))
				}
			}
		}
	}
}

// imageStatusText says whether a build takes ip's image as published,
// from the cache (every action cached) or builds it, and why it is not
// published, unless it is not published at all.
func imageStatusText(ip *engine.ImagePlan, st *dryRunStatus, img imageStatus) string {
	if !img.published.IsZero() {
		return "published " + img.published.String()
	}
	status := "cached"
	for _, stage := range ip.Build.Stages {
		for i, step := range stage.Steps {
			if s := st.actions[engine.ActionName(ip.Image.Name, stage, i)]; hasAction(step) && !s.cached {
				status = "build"
			}
		}
	}
	if img.why != "" {
		status += ": " + img.why
	}
	return status
}

// hasAction reports whether step is an action (it makes a layer).
func hasAction(step *rules.Step) bool {
	return step.Kind != rules.Config || !step.EmptyLayer
}

func baseLabel(b rules.Base) string {
	switch b.Kind {
	case rules.StageBase:
		return b.Stage.Label()
	case rules.ImageBase:
		return b.Ref
	}
	return "scratch"
}
