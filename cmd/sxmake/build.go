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

// build builds the targets and prints a summary with each image's digest.
func build(ctx context.Context, stdout, stderr io.Writer, g *globalFlags, bf *buildFlags, names []string) error {
	plan, tree, err := makePlan(g, names)
	if err != nil {
		return err
	}
	if err := fetchSources(ctx, stderr, tree, plan, bf.offline); err != nil {
		return err
	}
	cacheDir := bf.cacheDirOrDefault()
	sb, err := sandbox.New(filepath.Join(cacheDir, "run"))
	if err != nil {
		return err
	}
	prog, err := newProgress(bf.progress, bf.json, stdout, stderr)
	if err != nil {
		return err
	}
	opts := append(bf.options(), engine.WithEvents(prog.event))
	b, err := engine.NewBuilder(tree, cacheDir, sb, opts...)
	if err != nil {
		return err
	}
	defer b.Close()
	ctx, stop := signal.NotifyContext(ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	start := time.Now()
	report, err := b.Build(ctx, plan)
	prog.close()
	if bf.json {
		return err
	}
	fmt.Fprintf(stderr, "sxmake: %d actions run, %d cached, %d of %d images built in %.2fs\n",
		report.Ran, report.Cached, len(report.Images)-len(report.Failed()), len(report.Images), time.Since(start).Seconds())
	// stdout gets the targets' digests in StageX's digests-file format.
	targets := map[string]bool{}
	for _, img := range plan.Targets {
		targets[img.Name] = true
	}
	for _, ir := range report.Images {
		if ir.Err == nil && targets[ir.Name] {
			fmt.Fprintf(stdout, "%s %s\n", ir.Digest.Hex(), ir.Name)
		}
	}
	return err
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
