package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/rules"
)

// buildPlatforms builds the targets once per platform, each into a layout
// of its own, then merges each image's layouts into out/<image>: one
// nested index listing the platforms in the order given, byte for byte as
// BuildKit writes a multi-platform build. A package whose package.toml
// names its platforms is built for those only.
func buildPlatforms(ctx context.Context, stdout, stderr io.Writer, g *globalFlags, bf *buildFlags, names []string, ps []rules.Platform) error {
	if err := os.MkdirAll(bf.cacheDirOrDefault(), 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp(bf.cacheDirOrDefault(), "platforms-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	layouts := map[string][]string{} // image -> its per-platform layouts
	seen := map[string]bool{}        // image + platform already built
	var order []string
	for i, p := range ps {
		dir := filepath.Join(work, fmt.Sprint(i))
		pb, err := buildFor(ctx, stdout, stderr, g, bf, names, []rules.Platform{p}, dir)
		if err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
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
		tree, err := g.load()
		if err != nil {
			return err
		}
		outDir = filepath.Join(tree.Root, "out")
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
		fmt.Fprintf(stderr, "[%s] index  %s (%d platforms)\n", name, d, len(layouts[name]))
	}
	return nil
}
