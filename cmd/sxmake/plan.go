package main

import (
	"fmt"
	"io"
	"sort"

	"github.com/stagex/sxmake/engine"
	"github.com/stagex/sxmake/rules"
)

// printPlan prints, for `sxmake -n`, every image the targets need in build
// order with its build args and the evaluated steps of each stage.
func printPlan(w io.Writer, g *globalFlags, names []string) error {
	tree, err := g.load()
	if err != nil {
		return err
	}
	targets, err := resolve(tree, names)
	if err != nil {
		return err
	}
	var opts []engine.PlanOption
	if g.platform != "" {
		p, err := rules.ParsePlatform(g.platform)
		if err != nil {
			return usagef("--platform: %v", err)
		}
		opts = append(opts, engine.WithPlatform(p))
	}
	plan, err := engine.NewPlan(tree, targets, opts...)
	if err != nil {
		return err
	}
	for i, ip := range plan.Images {
		if i > 0 {
			fmt.Fprintln(w)
		}
		writeImagePlan(w, i+1, len(plan.Images), ip)
	}
	return nil
}

func writeImagePlan(w io.Writer, n, total int, ip *engine.ImagePlan) {
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
		for _, step := range st.Steps {
			fmt.Fprintf(w, "  %d:%d\t%s\n", step.Pos.Line, step.Pos.Col, step)
		}
	}
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
