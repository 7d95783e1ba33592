// Command sxmake builds StageX package trees: `sxmake core-llvm` builds that
// image and every image it needs.
//
// Exit status: 0 success, 1 build or definition failure, 2 usage error.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/engine"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/rules"
	"github.com/stagex/sxmake/sandbox"
)

func main() {
	// When this process is a sandboxed step's init, Init never returns.
	sandbox.Init()
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// usageError marks a mistake in the command line (exit status 2).
type usageError struct{ err error }

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{fmt.Errorf(format, args...)}
}

// run executes one sxmake command line and returns its exit status.
func run(args []string, stdout, stderr io.Writer) int {
	// Every file sxmake writes (fetched sources, snapshots, layouts) gets
	// its mode through the umask: pin it so the caller's changes nothing.
	syscall.Umask(0o022)
	if path := os.Getenv("SXMAKE_CPUPROFILE"); path != "" {
		// For profiling sxmake itself; see BENCHMARKS.md.
		if f, err := os.Create(path); err == nil {
			pprof.StartCPUProfile(f)
			defer pprof.StopCPUProfile()
		}
	}
	root := newRootCmd()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	if err == nil {
		return 0
	}
	fmt.Fprintf(stderr, "sxmake: %s\n", safe(describe(err)))
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "Run 'sxmake --help' for usage.\n")
		return 2
	}
	return 1
}

// describe renders an error for the terminal: a Containerfile error gets
// its source line and a caret, wrapped or not (what wraps it comes first).
func describe(err error) string {
	var re *rules.Error
	if !errors.As(err, &re) {
		return err.Error()
	}
	return strings.Replace(err.Error(), re.Error(), re.Detail(), 1)
}

// globalFlags are the flags every subcommand shares.
type globalFlags struct {
	dir       string
	platform  string
	verbose   bool
	cacheDir  func() string // the cache directory (--cache-dir or the default)
	stderr    io.Writer     // where -v notes go
	buildArgs []string      // --build-arg (see argOverrides)
}

func newRootCmd() *cobra.Command {
	g := &globalFlags{}
	var dryRun, explain bool
	bf := &buildFlags{stepMemory: -1, stepPids: -1, stepLog: engine.DefaultStepLog}
	g.cacheDir = bf.cacheDirOrDefault
	root := &cobra.Command{
		Use:   "sxmake [flags] TARGET...",
		Short: "Build StageX packages reproducibly, without Docker",
		Long: `sxmake builds images of a StageX package tree and every image they need.

A TARGET names an image: core-llvm, stagex/core-llvm, or a bare llvm when
only one stage has it. Subpackages are images too (core-clang).`,
		SilenceUsage:  true,
		SilenceErrors: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("no target given (try 'sxmake ls' to list images)")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if dryRun || explain {
				return printPlan(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), g, bf, explain, args)
			}
			return bf.offlineHint(build(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), g, bf, args))
		},
	}
	root.PersistentPreRun = func(cmd *cobra.Command, _ []string) { g.stderr = cmd.ErrOrStderr() }
	pf := root.PersistentFlags()
	pf.StringVarP(&g.dir, "directory", "C", ".", "the package tree (the directory holding packages/)")
	pf.BoolVarP(&g.verbose, "verbose", "v", false, "print notes: the directories of the tree that are not packages")
	pf.StringVar(&g.platform, "platform", "", "target platform for packages that name none (default: the host's)")
	pf.StringArrayVar(&g.buildArgs, "build-arg", nil, "BUILDKIT_DOCKERFILE_CHECK=VALUE: the Dockerfile checks' setting instead of StageX's; BUILDKIT_DOCKERFILE_CHECK alone: each Containerfile's # check= (the only build arg not from package.toml)")
	f := root.Flags()
	f.BoolVarP(&dryRun, "dry-run", "n", false, "print what would be built, in order, without building")
	f.BoolVar(&explain, "explain", false, "like -n, and say for each action to run which input changed since it last ran")
	pf.IntVarP(&bf.jobs, "jobs", "j", 0, "run at most N actions at once (default: the number of CPUs)")
	pf.BoolVarP(&bf.keepGoing, "keep-going", "k", false, "after a failure, keep building what does not depend on it")
	pf.BoolVar(&bf.noCache, "no-cache", false, "run every action, ignoring cached results and published images")
	pf.BoolVar(&bf.usePublished, "use-published", false, "take the targets too as published (sxmake preseed) while their definition is the published one")
	pf.StringVarP(&bf.outDir, "output", "o", "", "write image layouts to DIR/<image> (default: out/ in the tree)")
	pf.StringSliceVar(&bf.network, "allow-network", nil, "let RUN steps of these images use the host network (unless --network=none)")
	pf.StringVar(&bf.networkFile, "allow-network-file", "", "also allow the images listed in this file, one a line (default: $XDG_CONFIG_HOME/sxmake/allow-network when it exists)")
	pf.StringVar(&bf.progress, "progress", "auto", "progress output: auto, tty or plain")
	pf.BoolVar(&bf.json, "json", false, "print build events as JSON lines on stdout")
	pf.StringVar(&bf.timings, "timings", "", "write when each action started and ended, and whether it ran or was cached, to FILE as JSON")
	pf.BoolVar(&bf.offline, "offline", false, "download nothing: fail before building when a source is missing")
	pf.Var(&bf.stepMemory, "step-memory", "kill a RUN step whose memory exceeds SIZE (500M, 8G; 0: no limit) and fail it (default: 3/4 of the host's memory)")
	pf.Var(&bf.stepLog, "step-log", "keep the first SIZE of each RUN step's output in its log (100M, 8G; 0: all of it); the rest is shown, not kept")
	pf.Int64Var(&bf.stepPids, "step-pids", -1, "fail a RUN step that would have more than N processes and threads at once (0: no limit; default: 15% of the kernel's task limit)")
	pf.DurationVar(&bf.stepTimeout, "step-timeout", 0, "kill and fail a RUN step running longer than this (90m, 2h; default: no limit)")
	pf.StringVar(&bf.cgroupParent, "cgroup-parent", "", "put each RUN step's cgroup under this cgroup (default: /sxmake)")
	pf.StringSliceVar(&bf.fileMirrors, "file-mirrors", nil, "let file:// mirrors read files under these directories, and nowhere else (default: $SXMAKE_FILE_MIRRORS, a list like PATH; none)")
	pf.StringVar(&bf.cacheDir, "cache-dir", "", "the cache directory (default: $XDG_CACHE_HOME/sxmake or ~/.cache/sxmake)")
	pf.StringArrayVar(&bf.cacheFrom, "cache-from", nil, "also look actions up in this remote cache, never writing to it: dir:PATH, http(s)://HOST/PREFIX or registry:HOST/REPO (repeatable)")
	pf.StringArrayVar(&bf.cacheTo, "cache-to", nil, "after the build, export results to this remote cache; add ,mode=max for every action, not only the targets' layers (repeatable)")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageError{err} })
	root.AddCommand(newGraphCmd(g), newLsCmd(g), newFetchCmd(g, bf), newVerifyCmd(g, bf), newDigestsCmd(g, bf), newImportCmd(g), newCacheCmd(g, bf))
	root.AddCommand(newPushCmd(g, bf), newCheckCmd(g, bf), newLogCmd(g), newPreseedCmd(g, bf))
	return root
}

// load reads the package tree named by -C.
// Images imported into the cache (sxmake import) may be used as
// stagex/<name> without being packages of the tree.
func (g *globalFlags) load() (*packages.Tree, error) {
	imported, err := cache.OpenImages(g.cacheDir()).Names()
	if err != nil {
		return nil, err
	}
	tree, err := packages.Load(g.dir, packages.WithExternalImages(imported...))
	if err == nil && g.verbose && g.stderr != nil {
		for _, s := range tree.Skipped {
			fmt.Fprintf(g.stderr, "sxmake: note: %s (StageX's generator skips it too)\n", safeLine(s.String()))
		}
	}
	return tree, err
}

// argOverrides parses --build-arg: KEY=VALUE sets a build arg, KEY leaves
// it out. Build args come from package.toml, so that the tree alone
// decides every image; only the Dockerfile checks' setting, which changes
// no image, may be overridden.
func (g *globalFlags) argOverrides() (map[string]*string, error) {
	out := map[string]*string{}
	for _, a := range g.buildArgs {
		k, v, ok := strings.Cut(a, "=")
		if k != rules.CheckArg {
			return nil, usagef("--build-arg %s: only %s can be set (the other build args come from package.toml)", a, rules.CheckArg)
		}
		if ok {
			out[k] = &v
		} else {
			out[k] = nil
		}
	}
	return out, nil
}

// planOptions are the options of every plan: --build-arg, and the images
// imported into the cache c (sxmake import) unless c is nil.
func (g *globalFlags) planOptions(c *cache.Cache) ([]engine.PlanOption, error) {
	args, err := g.argOverrides()
	if err != nil {
		return nil, err
	}
	opts := []engine.PlanOption{engine.WithBuildArgs(args)}
	if c != nil {
		opts = append(opts, engine.WithImports(engine.NewImports(c)))
	}
	return opts, nil
}

// resolve maps target names to images of tree.
func resolve(tree *packages.Tree, names []string) ([]*packages.Image, error) {
	var imgs []*packages.Image
	for _, n := range names {
		img, err := tree.Resolve(n)
		if err != nil {
			return nil, err
		}
		imgs = append(imgs, img)
	}
	return imgs, nil
}

// exactArgs is cobra.ExactArgs reporting a usage error.
func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(_ *cobra.Command, args []string) error {
		if len(args) != n {
			return usagef("expected %s, got %d arguments", what, len(args))
		}
		return nil
	}
}
