package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/stagex/sxmake/engine"
	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/rules"
)

// buildPlatforms builds the targets once per platform, all platforms at
// once (builds on one Builder, sharing the cache and -j), each into a layout of
// its own, then merges each image's layouts into out/<image>: one nested
// index listing the platforms in the order given, byte for byte as
// BuildKit writes a multi-platform build. A package whose package.toml
// names its platforms is built for those only.
func buildPlatforms(ctx context.Context, stdout, stderr io.Writer, g *globalFlags, bf *buildFlags, names []string, ps []rules.Platform) error {
	opts, err := bf.builderOptions()
	if err != nil {
		return err
	}
	c, err := openCache(ctx, stderr, bf.cacheDirOrDefault())
	if err != nil {
		return err
	}
	defer c.Close()
	work, err := os.MkdirTemp(c.Dir, "platforms-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	tree, err := g.load()
	if err != nil {
		return err
	}
	builds := make([]*platformBuild, len(ps))
	plans := make([]*engine.Plan, len(ps))
	for i, p := range ps {
		if plans[i], err = planTree(g, c, tree, names, []rules.Platform{p}); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
		builds[i] = &platformBuild{plan: plans[i]}
	}
	pub := bf.published(c)
	if err := fetchSources(ctx, stderr, c, tree, bf, engine.PackagesToBuild(pub, plans...)); err != nil {
		return err
	}
	if pub != nil {
		opts = append(opts, engine.WithPublished(pub))
	}
	b, err := openBuilder(tree, c, bf.sandboxOptions(), opts...)
	if err != nil {
		return err
	}
	if err := buildAtOnce(ctx, stdout, stderr, b, bf, work, ps, builds); err != nil {
		return err
	}
	layouts := map[string][]string{} // image -> its per-platform layouts
	seen := map[string]bool{}        // image + platform already built
	var order []string
	for _, pb := range builds {
		for j, ip := range pb.plan.Images {
			key := ip.Image.Name + " " + ip.Platform.String()
			if seen[key] {
				continue
			}
			seen[key] = true
			if layouts[ip.Image.Name] == nil {
				order = append(order, ip.Image.Name)
			}
			layouts[ip.Image.Name] = append(layouts[ip.Image.Name], pb.report.Images[j].Layout)
		}
	}
	outDir := bf.outDir
	if outDir == "" {
		outDir = tree.OutDir()
	}
	for _, name := range order {
		dest := filepath.Join(outDir, name)
		if err := os.RemoveAll(dest); err != nil {
			return err
		}
		d, err := image.MergeLayouts(dest, layouts[name])
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintf(stderr, "[%s] index  %s (%d platforms)\n", safeLine(name), d, len(layouts[name]))
	}
	return nil
}

// buildAtOnce builds the plans of builds (one per platform of ps) at once
// on b, writing to work/<i>, and prints each platform's summary and
// digests in the order of ps.
func buildAtOnce(ctx context.Context, stdout, stderr io.Writer, b *engine.Builder, bf *buildFlags, work string, ps []rules.Platform, builds []*platformBuild) error {
	prog, err := newProgress(bf.progressConfig(true), stdout, stderr)
	if err != nil {
		return err
	}
	closeProgress := sync.OnceFunc(prog.close)
	defer closeProgress()

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	errs := make([]error, len(builds))
	var wg sync.WaitGroup
	for i, pb := range builds {
		out := engine.WithOutDir(filepath.Join(work, fmt.Sprint(i)))
		wg.Go(func() {
			// A build's progress is its platform's.
			event := func(ev engine.Event) {
				if ev.Kind == engine.BuildProgress {
					ev.Platform = ps[i].String()
				}
				prog.event(ev)
			}
			pb.report, errs[i] = b.Build(ctx, pb.plan, out, engine.WithEvents(event), engine.WithProgressEvery(prog.every()))
			if errs[i] != nil && !bf.keepGoing {
				cancel() // the other platforms' builds stop too
			}
		})
	}
	wg.Wait()
	closeProgress() // before the summaries
	elapsed := time.Since(start)
	var failed, cancelled []error
	for i, pb := range builds {
		if pb.report != nil && !bf.json {
			printBuild(stdout, stderr, bf, ps[i].String()+": ", pb, elapsed)
		}
		switch err := errs[i]; {
		case err == nil:
		case errors.Is(err, context.Canceled) && ctx.Err() != nil:
			cancelled = append(cancelled, fmt.Errorf("%s: %w", ps[i], err))
		default:
			failed = append(failed, fmt.Errorf("%s: %w", ps[i], err))
		}
	}
	if bf.timings != "" {
		if err := writeTimings(bf.timings, builds); err != nil {
			failed = append(failed, err)
		}
	}
	if len(failed) > 0 {
		return errors.Join(failed...) // not the cancellations they caused
	}
	return errors.Join(cancelled...)
}
