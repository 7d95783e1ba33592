package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/engine"
	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/engine/registry"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/rules"
)

// defaultRegistry is where StageX publishes its images.
const defaultRegistry = "docker.io/stagex"

func newPreseedCmd(g *globalFlags, bf *buildFlags) *cobra.Command {
	var reg string
	cmd := &cobra.Command{
		Use:   "preseed [--registry REG] [IMAGE...]",
		Short: "Pull the published images of digests/*.txt, which builds then use instead of building them",
		Long: `Pull from a registry the images the tree's digests files (digests/*.txt)
pin, all of them or the closures of the images named, into the cache, and
write each one's layout to out/ as its build would (the layout BuildKit's
OCI export writes around the published manifest, byte for byte). REG is
a registry and a path, each image being the repository REG/<image>:
docker.io/stagex (the default) or quay.io/stagex, which serve the same
digests. Every manifest, config and layer is checked against its digest
before it is kept; an image the registry lacks, or whose content does not
match, is reported by name, and nothing of it is recorded.

Each image is recorded with the definition it was published for: its
package files, build args and platform, and the digests of the images it
needs. sxmake trusts that the tree at preseed time is what the digests
files were published for, as StageX's make preseed does: preseed a clean
checkout of the release whose digests it pulls. A build then takes an
image as published, running nothing, while the definition it has is the
recorded one; an image whose package changed is built, and the images
that need it too unless it comes out with its published digest. The
images named on the command line are always built, unless
--use-published.`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if bf.offline {
				return usagef("preseed downloads: --offline does not apply")
			}
			return preseed(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), g, bf, reg, args)
		},
	}
	cmd.Flags().StringVar(&reg, "registry", defaultRegistry, "pull REG/<image>@<digest> (quay.io/stagex serves the same digests)")
	return cmd
}

func preseed(ctx context.Context, stdout, stderr io.Writer, g *globalFlags, bf *buildFlags, regName string, names []string) error {
	reg, err := registry.NewNamespace(regName)
	if err != nil {
		return usageError{err}
	}
	ps, err := parsePlatforms(g.platform)
	if err != nil {
		return err
	}
	if len(ps) == 0 {
		ps = []rules.Platform{engine.HostPlatform()}
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	c, err := openCache(ctx, stderr, g.cacheDir())
	if err != nil {
		return err
	}
	defer c.Close()
	tree, err := g.load()
	if err != nil {
		return err
	}
	published, err := tree.ReadDigests()
	if err != nil {
		return err
	}
	if len(names) == 0 {
		if names = publishedImages(stderr, tree, published); len(names) == 0 {
			return fmt.Errorf("the digests files (digests/*.txt) list no image of the tree")
		}
	}
	var plans []*engine.Plan
	for _, p := range ps {
		plan, err := planTree(g, c, tree, names, []rules.Platform{p})
		if err != nil {
			return err
		}
		plans = append(plans, plan)
	}
	digests, err := parseDigests(published)
	if err != nil {
		return err
	}
	progress, done := pullProgress(stderr)
	opts := []engine.PreseedOption{engine.WithPullProgress(progress)}
	if bf.outDir != "" {
		opts = append(opts, engine.WithPreseedOut(bf.outDir))
	}
	if bf.jobs > 0 {
		opts = append(opts, engine.WithPullJobs(bf.jobs))
	}
	report, err := engine.Preseed(ctx, tree, c, plans, digests, reg, opts...)
	done()
	if report == nil {
		return err
	}
	for _, pi := range report.Images {
		if pi.Err != nil {
			fmt.Fprintf(stderr, "sxmake: %s: %v\n", pi.Name, pi.Err)
			continue
		}
		for _, d := range pi.Digests {
			fmt.Fprintf(stdout, "%s %s\n", d.Hex(), pi.Name)
		}
	}
	failed := len(report.Failed())
	fmt.Fprintf(stderr, "sxmake: %d of %d images preseeded from %s, %s downloaded\n",
		len(report.Images)-failed, len(report.Images), reg, humanBytes(report.Bytes))
	if failed > 0 {
		return fmt.Errorf("%d images not preseeded", failed)
	}
	return nil
}

// publishedImages returns the images of tree that the digests files
// list, sorted, noting those the tree does not have.
func publishedImages(stderr io.Writer, tree *packages.Tree, published packages.Digests) []string {
	var names, unknown []string
	for name := range published {
		if tree.Image(name) != nil {
			names = append(names, name)
		} else {
			unknown = append(unknown, name)
		}
	}
	sort.Strings(names)
	if len(unknown) > 0 {
		sort.Strings(unknown)
		fmt.Fprintf(stderr, "sxmake: the digests files list %d images the tree does not have (first: %s)\n", len(unknown), unknown[0])
	}
	return names
}

// parseDigests turns the hex digests of the digests files into digests.
func parseDigests(published packages.Digests) (map[string][]image.Digest, error) {
	out := make(map[string][]image.Digest, len(published))
	for name, list := range published {
		for _, hex := range list {
			d, err := cache.ParseDigest("sha256:" + hex)
			if err != nil {
				return nil, fmt.Errorf("%s: %w", name, err)
			}
			out[name] = append(out[name], d)
		}
	}
	return out, nil
}

// pullProgress shows the downloads as a progress bar of bytes on a
// terminal, and as one line when they start otherwise; done removes the
// bar.
func pullProgress(stderr io.Writer) (p engine.PullProgress, done func()) {
	f, ok := stderr.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return engine.PullProgress{Start: func(blobs int, bytes int64) {
			fmt.Fprintf(stderr, "sxmake: downloading %d layers, %s\n", blobs, humanBytes(bytes))
		}}, func() {}
	}
	var mu sync.Mutex
	var bar *progressbar.ProgressBar
	p = engine.PullProgress{
		Start: func(blobs int, bytes int64) {
			mu.Lock()
			defer mu.Unlock()
			bar = progressbar.NewOptions64(bytes, progressbar.OptionSetWriter(stderr),
				progressbar.OptionSetDescription(fmt.Sprintf("pulling %d layers", blobs)),
				progressbar.OptionShowBytes(true), progressbar.OptionThrottle(100*time.Millisecond),
				progressbar.OptionClearOnFinish())
		},
		Add: func(n int64) {
			mu.Lock()
			defer mu.Unlock()
			if bar != nil {
				bar.Add64(n)
			}
		},
	}
	return p, func() {
		mu.Lock()
		defer mu.Unlock()
		if bar != nil {
			bar.Clear()
		}
	}
}
