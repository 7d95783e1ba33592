package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/stagex/sxmake/engine"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/rules"
	"github.com/stagex/sxmake/sandbox"
)

// buildFlags are the flags of a build.
type buildFlags struct {
	jobs      int
	keepGoing bool
	noCache   bool
	outDir    string
	cacheDir  string
	network   []string
	progress  string
	json      bool
	offline   bool
	cacheFrom []string // --cache-from remotes (cache.go)
	cacheTo   []string // --cache-to remotes
}

// defaultCacheDir is $XDG_CACHE_HOME/sxmake, or ~/.cache/sxmake.
func defaultCacheDir() string {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "sxmake")
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "sxmake-cache")
	}
	return filepath.Join(home, ".cache", "sxmake")
}

// build builds the targets for each platform of --platform and prints
// each target's digest. With several platforms each image's layout in
// out/ lists them all (as BuildKit's multi-platform OCI output does).
func build(ctx context.Context, stdout, stderr io.Writer, g *globalFlags, bf *buildFlags, names []string) error {
	ps, err := parsePlatforms(g.platform)
	if err != nil {
		return err
	}
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	if len(ps) <= 1 {
		_, err := buildFor(ctx, stdout, stderr, g, bf, names, ps, bf.outDir)
		return err
	}
	return buildPlatforms(ctx, stdout, stderr, g, bf, names, ps)
}

// platformBuild is the outcome of building for one platform.
type platformBuild struct {
	plan   *engine.Plan
	report *engine.Report
}

// buildFor builds the targets for the platform in ps (none: the host's)
// into outDir ("" for the default), printing a summary on stderr and the
// targets' digests on stdout.
func buildFor(ctx context.Context, stdout, stderr io.Writer, g *globalFlags, bf *buildFlags, names []string, ps []rules.Platform, outDir string) (*platformBuild, error) {
	plan, tree, err := makePlanFor(g, names, ps)
	if err != nil {
		return nil, err
	}
	if err := fetchSources(ctx, stderr, tree, bf.offline, plan); err != nil {
		return nil, err
	}
	prog, err := newProgress(bf.progress, bf.json, stdout, stderr)
	if err != nil {
		return nil, err
	}
	opts, err := bf.builderOptions(ctx, stderr)
	if err != nil {
		prog.close()
		return nil, err
	}
	if outDir != "" {
		opts = append(opts, engine.WithOutDir(outDir))
	}
	start := time.Now()
	report, err := buildPlan(ctx, tree, plan, bf.cacheDirOrDefault(), prog, opts...)
	if report == nil {
		return nil, err
	}
	pb := &platformBuild{plan, report}
	if !bf.json {
		printBuild(stdout, stderr, bf, "", pb, time.Since(start))
	}
	return pb, err
}

// builderOptions are the engine options of a build: the flags', the
// remote caches', and a notice while another sxmake holds the cache.
func (bf *buildFlags) builderOptions(ctx context.Context, stderr io.Writer) ([]engine.BuildOption, error) {
	remote, err := bf.remoteOptions()
	if err != nil {
		return nil, err
	}
	cacheDir := bf.cacheDirOrDefault()
	return append(append(bf.options(), remote...), engine.WithCacheWait(ctx, func() {
		fmt.Fprintf(stderr, "sxmake: waiting for another sxmake using the cache %s\n", cacheDir)
	})), nil
}

// printBuild prints the summary of pb on stderr, prefixed with label, and
// its targets' digests on stdout in StageX's digests-file format.
func printBuild(stdout, stderr io.Writer, bf *buildFlags, label string, pb *platformBuild, elapsed time.Duration) {
	r := pb.report
	fmt.Fprintf(stderr, "sxmake: %s%d actions run, %d cached, %d of %d images built in %.2fs\n",
		label, r.Ran, r.Cached, len(r.Images)-len(r.Failed()), len(r.Images), elapsed.Seconds())
	printRemoteSummary(stderr, bf, r)
	targets := map[string]bool{}
	for _, img := range pb.plan.Targets {
		targets[img.Name] = true
	}
	for _, ir := range r.Images {
		if ir.Err == nil && targets[ir.Name] {
			fmt.Fprintf(stdout, "%s %s\n", ir.Digest.Hex(), ir.Name)
		}
	}
}

// buildPlan builds plan with a Builder on cacheDir (the sandbox's state
// under it) configured by opts, reporting to prog, which it closes. The
// report is nil when the build could not start.
func buildPlan(ctx context.Context, tree *packages.Tree, plan *engine.Plan, cacheDir string, prog progress, opts ...engine.BuildOption) (*engine.Report, error) {
	defer prog.close()
	b, err := openBuilder(tree, cacheDir, prog.event, opts...)
	if err != nil {
		return nil, err
	}
	defer b.Close()
	return b.Build(ctx, plan)
}

// openBuilder opens a Builder on cacheDir, running steps in a sandbox
// whose state is under it, reporting to event.
func openBuilder(tree *packages.Tree, cacheDir string, event func(engine.Event), opts ...engine.BuildOption) (*engine.Builder, error) {
	sb, err := sandbox.New(filepath.Join(cacheDir, "run"))
	if err != nil {
		return nil, err
	}
	return engine.NewBuilder(tree, cacheDir, sb, append(opts, engine.WithEvents(event))...)
}

func (bf *buildFlags) cacheDirOrDefault() string {
	if bf.cacheDir != "" {
		return bf.cacheDir
	}
	return defaultCacheDir()
}

// options are the engine options the flags ask for.
func (bf *buildFlags) options() []engine.BuildOption {
	var opts []engine.BuildOption
	if bf.jobs > 0 {
		opts = append(opts, engine.WithJobs(bf.jobs))
	}
	if bf.keepGoing {
		opts = append(opts, engine.WithKeepGoing())
	}
	if bf.noCache {
		opts = append(opts, engine.WithNoCache())
	}
	if bf.outDir != "" {
		opts = append(opts, engine.WithOutDir(bf.outDir))
	}
	if len(bf.network) > 0 {
		opts = append(opts, engine.WithNetwork(bf.network...))
	}
	return opts
}
