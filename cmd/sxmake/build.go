package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/engine"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/rules"
	"github.com/stagex/sxmake/sandbox"
)

// buildFlags are the flags of a build.
type buildFlags struct {
	jobs        int
	keepGoing   bool
	noCache     bool
	outDir      string
	cacheDir    string
	network     []string // --allow-network
	networkFile string   // --allow-network-file
	progress    string
	json        bool
	offline     bool
	cacheFrom   []string // --cache-from remotes (cache.go)
	cacheTo     []string // --cache-to remotes

	// usePublished lets the targets too be taken as published.
	usePublished bool

	fileMirrors []string // --file-mirrors (fetch.go)

	stepMemory   byteSize // --step-memory; -1: the default
	stepLog      byteSize // --step-log
	stepPids     int64    // --step-pids; -1: the default
	stepTimeout  time.Duration
	cgroupParent string

	timings string // --timings FILE
}

// progressConfig is how the flags ask to render a build's events; the
// images of a multi-platform build are named with their platform.
func (bf *buildFlags) progressConfig(multiPlatform bool) progressConfig {
	logCmd := "sxmake log"
	if bf.cacheDir != "" {
		logCmd += " --cache-dir " + shellQuote(bf.cacheDir)
	}
	return progressConfig{mode: bf.progress, json: bf.json, platforms: multiPlatform, logCmd: logCmd}
}

// shellQuote quotes s for a POSIX shell when it needs it.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_./=:@+,") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
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
	opts, err := bf.builderOptions()
	if err != nil {
		return nil, err
	}
	c, err := openCache(ctx, stderr, bf.cacheDirOrDefault())
	if err != nil {
		return nil, err
	}
	defer c.Close()
	plan, tree, err := makePlanFor(g, c, names, ps)
	if err != nil {
		return nil, err
	}
	pub := bf.published(c)
	if err := fetchSources(ctx, stderr, c, tree, bf, engine.PackagesToBuild(pub, plan)); err != nil {
		return nil, err
	}
	if pub != nil {
		opts = append(opts, engine.WithPublished(pub))
	}
	prog, err := newProgress(bf.progressConfig(false), stdout, stderr)
	if err != nil {
		return nil, err
	}
	var buildOpts []engine.BuildOption
	if outDir != "" {
		buildOpts = append(buildOpts, engine.WithOutDir(outDir))
	}
	start := time.Now()
	report, err := buildPlan(ctx, tree, c, plan, prog, bf.sandboxOptions(), opts, buildOpts...)
	if report == nil {
		return nil, err
	}
	pb := &platformBuild{plan, report}
	if !bf.json {
		printBuild(stdout, stderr, bf, "", pb, time.Since(start))
	}
	if bf.timings != "" {
		if terr := writeTimings(bf.timings, []*platformBuild{pb}); err == nil {
			err = terr
		}
	}
	return pb, err
}

// builderOptions are the engine options of a build: the flags' and the
// remote caches'.
func (bf *buildFlags) builderOptions() ([]engine.Option, error) {
	opts, err := bf.options()
	if err != nil {
		return nil, err
	}
	remote, err := bf.remoteOptions()
	if err != nil {
		return nil, err
	}
	return append(opts, remote...), nil
}

// published returns what builds on the cache c take as published (sxmake
// preseed): nil with --no-cache, which builds everything.
func (bf *buildFlags) published(c *cache.Cache) *engine.Published {
	if bf.noCache {
		return nil
	}
	var opts []engine.PublishedOption
	if bf.usePublished {
		opts = append(opts, engine.UsePublishedTargets())
	}
	return engine.NewPublished(c, opts...)
}

// printBuild prints the summary of pb on stderr, prefixed with label, and
// its targets' digests on stdout in StageX's digests-file format.
func printBuild(stdout, stderr io.Writer, bf *buildFlags, label string, pb *platformBuild, elapsed time.Duration) {
	r := pb.report
	published := ""
	if r.Published > 0 {
		published = fmt.Sprintf(" (%d published)", r.Published)
	}
	fmt.Fprintf(stderr, "sxmake: %s%d actions run, %d cached, %d of %d images built%s in %.2fs\n",
		label, r.Ran, r.Cached, len(r.Images)-len(r.Failed()), len(r.Images), published, elapsed.Seconds())
	printRemoteSummary(stderr, bf, r)
	for _, ir := range r.Images {
		if len(ir.Emulated) > 0 {
			fmt.Fprintf(stderr, "sxmake: %s%s: RUN steps ran emulated, through %s\n", label, safeLine(ir.Name), strings.Join(ir.Emulated, ", "))
		}
	}
	printTimes(stderr, label, pb)
	targets := map[string]bool{}
	for _, img := range pb.plan.Targets {
		targets[img.Name] = true
	}
	for _, ir := range r.Images {
		if ir.Err == nil && targets[ir.Name] {
			fmt.Fprintf(stdout, "%s %s\n", ir.Digest.Hex(), safeLine(ir.Name))
		}
	}
}

// buildPlan builds plan with a Builder on the cache c (the sandbox's
// state under it, configured by sbOpts) configured by opts and buildOpts,
// reporting to prog, which it closes. The report is nil when the build
// could not start.
func buildPlan(ctx context.Context, tree *packages.Tree, c *cache.Cache, plan *engine.Plan, prog progress, sbOpts []sandbox.Option, opts []engine.Option, buildOpts ...engine.BuildOption) (*engine.Report, error) {
	defer prog.close()
	b, err := openBuilder(tree, c, sbOpts, opts...)
	if err != nil {
		return nil, err
	}
	return b.Build(ctx, plan, append(buildOpts, engine.WithEvents(prog.event), engine.WithProgressEvery(prog.every()))...)
}

// openBuilder returns a Builder on the cache c, running steps in a sandbox
// (configured by sbOpts) whose state is under it.
func openBuilder(tree *packages.Tree, c *cache.Cache, sbOpts []sandbox.Option, opts ...engine.Option) (*engine.Builder, error) {
	sb, err := sandbox.New(filepath.Join(c.Dir, "run"), sbOpts...)
	if err != nil {
		return nil, err
	}
	return engine.NewBuilder(tree, c, sb, opts...), nil
}

// outDirOf is where layouts of tree go: -o, or out/ in the tree.
func (bf *buildFlags) outDirOf(tree *packages.Tree) string {
	if bf.outDir != "" {
		return bf.outDir
	}
	return tree.OutDir()
}

func (bf *buildFlags) cacheDirOrDefault() string {
	if bf.cacheDir != "" {
		return bf.cacheDir
	}
	return defaultCacheDir()
}

// options are the engine options the flags (and the network allowlist)
// ask for (-o is a build's own: engine.WithOutDir).
func (bf *buildFlags) options() ([]engine.Option, error) {
	var opts []engine.Option
	if bf.jobs > 0 {
		opts = append(opts, engine.WithJobs(bf.jobs))
	}
	if bf.keepGoing {
		opts = append(opts, engine.WithKeepGoing())
	}
	if bf.noCache {
		opts = append(opts, engine.WithNoCache())
	}
	network, err := bf.networkImages()
	if err != nil {
		return nil, err
	}
	if len(network) > 0 {
		opts = append(opts, engine.WithNetwork(network...))
	}
	return append(opts, engine.WithStepLimits(bf.stepLimits()), engine.WithStepLog(int64(bf.stepLog))), nil
}

// stepLimits are the limits of each RUN step: sandbox.DefaultLimits,
// changed by the --step-* flags (0: no limit).
func (bf *buildFlags) stepLimits() sandbox.Limits {
	l := sandbox.DefaultLimits()
	if bf.stepMemory >= 0 {
		l.Memory = int64(bf.stepMemory)
	}
	if bf.stepPids >= 0 {
		l.Pids = bf.stepPids
	}
	l.Timeout = bf.stepTimeout
	return l
}

// sandboxOptions are the sandbox's options the flags ask for.
// SXMAKE_EMULATE (a comma-separated list, such as linux/386) names
// platforms whose steps run through qemu even where the host runs them
// natively, to test or measure the emulated path.
func (bf *buildFlags) sandboxOptions() []sandbox.Option {
	var opts []sandbox.Option
	if bf.cgroupParent != "" {
		opts = append(opts, sandbox.WithCgroupParent(strings.Trim(bf.cgroupParent, "/")))
	}
	if e := os.Getenv("SXMAKE_EMULATE"); e != "" {
		opts = append(opts, sandbox.WithEmulation(strings.Split(e, ",")...))
	}
	return opts
}

// byteSize is a flag holding a size in bytes, written 500M or 2G
// (parseBytes); negative means unset.
type byteSize int64

func (b *byteSize) Set(s string) error {
	n, err := parseBytes(s)
	*b = byteSize(n)
	return err
}

func (b *byteSize) String() string {
	if *b < 0 {
		return ""
	}
	return strconv.FormatInt(int64(*b), 10)
}

func (b *byteSize) Type() string { return "size" }
