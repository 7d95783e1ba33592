package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/engine"
	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/packages"
)

func newVerifyCmd(g *globalFlags, bf *buildFlags) *cobra.Command {
	var digestsFile string
	cmd := &cobra.Command{
		Use:   "verify [--digests FILE] TARGET...",
		Short: "Rebuild from nothing and compare with out/ or a digests file",
		Long: `Rebuild the targets and everything they need without any cache (a fresh
store, the same sources; no image taken as published, even one sxmake
preseed pulled) and compare each image's manifest digest with the
layout in out/ or, with --digests, with a StageX digests file
("<sha256> <stage>-<name>" lines). For an image that differs from its
layout in out/, name the first differing layer and the files inside it,
and show a diffoscope report of that layer when diffoscope is installed.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("verify needs at least one target")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			return verify(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), g, bf, digestsFile, args)
		},
	}
	cmd.Flags().StringVar(&digestsFile, "digests", "", "compare with this StageX digests file instead of out/")
	return cmd
}

func verify(ctx context.Context, stdout, stderr io.Writer, g *globalFlags, bf *buildFlags, digestsFile string, names []string) error {
	// The plan needs the images imported into the cache, and the fetch
	// its file hashes; the rebuild uses a fresh cache.
	c, err := openCache(ctx, stderr, g.cacheDir())
	if err != nil {
		return err
	}
	plan, tree, want, err := verifyPlan(ctx, stderr, c, g, bf, digestsFile, names)
	if err = errors.Join(err, c.Close()); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp("", "sxmake-verify-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp)
	fresh, err := cache.Open(filepath.Join(tmp, "cache"))
	if err != nil {
		return err
	}
	defer fresh.Close()
	// The build's cache is removed at the end: no command shows its logs.
	prog, err := newProgress(progressConfig{mode: bf.progress}, stdout, stderr)
	if err != nil {
		return err
	}
	opts, err := bf.options()
	if err != nil {
		prog.close()
		return err
	}
	report, err := buildPlan(ctx, tree, fresh, plan, prog, bf.sandboxOptions(), opts, engine.WithOutDir(filepath.Join(tmp, "out")))
	if err != nil {
		return err
	}
	bad := 0
	for _, ir := range report.Images {
		refs, ok := want[ir.Name]
		if !ok {
			continue
		}
		if slices.Contains(refs, ir.Digest.Hex()) {
			fmt.Fprintf(stdout, "reproduced  %s %s\n", ir.Digest.Hex(), safeLine(ir.Name))
			printEmulated(stdout, ir)
			continue
		}
		bad++
		fmt.Fprintf(stdout, "DIFFERS     %s %s (expected %s)\n", ir.Digest.Hex(), safeLine(ir.Name), strings.Join(refs, " or "))
		printEmulated(stdout, ir)
		if digestsFile == "" {
			explainDifference(stdout, filepath.Join(bf.outDirOf(tree), ir.Name), ir.Layout)
		}
	}
	if bad > 0 {
		return fmt.Errorf("%d image(s) not reproduced", bad)
	}
	return nil
}

// verifyPlan plans the targets, finds the digests to verify them against
// and fetches their sources.
func verifyPlan(ctx context.Context, stderr io.Writer, c *cache.Cache, g *globalFlags, bf *buildFlags, digestsFile string, names []string) (*engine.Plan, *packages.Tree, packages.Digests, error) {
	plan, tree, err := makePlan(g, c, names)
	if err != nil {
		return nil, nil, nil, err
	}
	want, err := referenceDigests(plan, bf.outDirOf(tree), digestsFile)
	if err != nil {
		return nil, nil, nil, err
	}
	return plan, tree, want, fetchSources(ctx, stderr, c, tree, bf, engine.Packages(plan))
}

// printEmulated says when the image's RUN steps ran emulated, which can
// explain a difference from a native build.
func printEmulated(w io.Writer, ir engine.ImageReport) {
	if len(ir.Emulated) > 0 {
		fmt.Fprintf(w, "            its RUN steps ran emulated, through %s\n", strings.Join(ir.Emulated, ", "))
	}
}

// referenceDigests returns the digests to verify the plan's images
// against: from the digests file (each platform's), or from the layouts
// in outDir.
func referenceDigests(plan *engine.Plan, outDir, digestsFile string) (packages.Digests, error) {
	want := packages.Digests{}
	if digestsFile != "" {
		data, err := os.ReadFile(digestsFile)
		if err != nil {
			return nil, err
		}
		return packages.ParseDigests(digestsFile, data)
	}
	for _, ip := range plan.Images {
		d, _, err := image.LayoutManifest(filepath.Join(outDir, ip.Image.Name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, err
		}
		want[ip.Image.Name] = []string{d.Hex()}
	}
	for _, t := range plan.Targets {
		if _, ok := want[t.Name]; !ok {
			return nil, fmt.Errorf("nothing to verify %s against: no layout in %s (build it first, or give --digests)", t.Name, outDir)
		}
	}
	return want, nil
}

// explainDifference prints where two layouts of an image differ.
func explainDifference(w io.Writer, want, got string) {
	d, err := image.CompareLayouts(want, got)
	if err != nil || d == nil {
		return
	}
	if d.Index < 0 {
		fmt.Fprintf(w, "            the layers are identical; the config differs\n")
		return
	}
	fmt.Fprintf(w, "            first differing layer: %d of %d (%s, rebuilt %s)\n", d.Index+1, d.Layers[0], short(d.Want), short(d.Got))
	for i, f := range d.Files {
		if i == 20 {
			fmt.Fprintf(w, "            ... and %d more files\n", len(d.Files)-i)
			break
		}
		fmt.Fprintf(w, "            %s: %s\n", safeLine(f.Path), safeLine(f.What))
	}
	if path, err := exec.LookPath("diffoscope"); err == nil && d.WantPath != "" && d.GotPath != "" {
		out, _ := exec.Command(path, "--text", "-", d.WantPath, d.GotPath).CombinedOutput()
		fmt.Fprintf(w, "%s\n", safe(strings.Join(lastLines(out, 200), "\n")))
	}
}

func short(d image.Digest) string {
	if d.IsZero() {
		return "none"
	}
	return d.Hex()[:12]
}

func newDigestsCmd(g *globalFlags, bf *buildFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "digests [TARGET...]",
		Short: "Write StageX digests files from the layouts in out/",
		Long: `Write digests/<stage>.txt in the tree, one "<sha256> <stage>-<name>" line per
image with a layout in out/ (the per-platform manifest digest; one line
per platform for a multi-platform image), sorted by name, as StageX
publishes them. With targets, only those images.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			tree, err := g.load()
			if err != nil {
				return err
			}
			imgs := tree.Images()
			if len(args) > 0 {
				if imgs, err = resolve(tree, args); err != nil {
					return err
				}
			}
			outDir := bf.outDir
			if outDir == "" {
				outDir = tree.OutDir()
			}
			return writeDigests(cmd.OutOrStdout(), tree, imgs, outDir)
		},
	}
}

// writeDigests writes digests/<stage>.txt for the images with a layout.
func writeDigests(w io.Writer, tree *packages.Tree, imgs []*packages.Image, outDir string) error {
	byStage := map[string][]string{}
	for _, img := range imgs {
		ds, err := image.LayoutManifests(filepath.Join(outDir, img.Name))
		if errors.Is(err, os.ErrNotExist) {
			continue
		}
		if err != nil {
			return err
		}
		// A multi-platform image has one line per platform, in index order.
		for _, d := range ds {
			stage := img.Package.Stage
			byStage[stage] = append(byStage[stage], d.Hex()+" "+img.Name)
		}
	}
	for stage, lines := range byStage {
		sort.SliceStable(lines, func(i, j int) bool { return strings.Fields(lines[i])[1] < strings.Fields(lines[j])[1] })
		path := filepath.Join(tree.Dir("digests"), stage+".txt")
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return err
		}
		tmp := path + ".tmp"
		if err := os.WriteFile(tmp, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			return err
		}
		if err := os.Rename(tmp, path); err != nil {
			return err
		}
		fmt.Fprintf(w, "%s: %d images\n", path, len(lines))
	}
	return nil
}
