package engine

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sort"
	"sync"
	"syscall"
	"time"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/sandbox"
)

// Runner runs one RUN step in a sandbox.
type Runner interface {
	Run(ctx context.Context, spec sandbox.Spec) (sandbox.Result, error)
}

var (
	_ Runner          = (*sandbox.Sandbox)(nil)
	_ packages.Hasher = (*cache.FileHashes)(nil)
)

// epoch is StageX's SOURCE_DATE_EPOCH, the time its builds are pinned to.
var epoch = time.Unix(packages.SourceDateEpoch, 0).UTC()

// Builder executes plans: it runs every action whose result is not cached,
// in dependency order, and writes each image as an OCI layout. What a
// Builder holds is shared by every Build on it, and several Builds may run
// at once (plans for several platforms, whose images have the same names):
// the cache, the runner, the jobs slots (at most jobs actions run in all),
// the actions in flight (an action two builds need runs once), the layers
// gzipped, and what was exported to each --cache-to remote (an action two
// builds reach is pushed once). What is a build's own (its results,
// output directory and events) is in planBuild.
type Builder struct {
	tree    *packages.Tree
	runner  Runner
	store   *cache.ContentStore
	actions *cache.Actions
	snaps   *cache.Snapshots
	logs    *cache.Logs
	imports *Imports // images imported into the cache (external.go)
	hashes  *cache.FileHashes

	jobs      int
	keepGoing bool
	noCache   bool
	dryRun    bool
	network   map[string]bool // images allowed the host network
	limits    sandbox.Limits  // of every RUN step
	logLimit  int64           // bytes of a step's output kept in its log; 0: all
	published *Published      // images taken as published (published.go); nil: none

	slots   chan struct{} // one token per concurrently running action
	flights flights       // actions being looked up or run, by key
	gzipped sync.Map      // image.DiffID -> *gzipOnce: intermediate layers an image exports
	remotes remotes       // --cache-from, --cache-to (remote.go)
}

// Option configures a Builder.
type Option func(*Builder)

// WithJobs runs at most n actions at once, over all the Builder's builds
// (default: the number of CPUs).
func WithJobs(n int) Option { return func(b *Builder) { b.jobs = n } }

// WithKeepGoing keeps building images that do not depend on a failed one.
func WithKeepGoing() Option { return func(b *Builder) { b.keepGoing = true } }

// WithNoCache runs every action, ignoring (but refreshing) cached results.
func WithNoCache() Option { return func(b *Builder) { b.noCache = true } }

// WithDryRun looks every action up without running any or writing
// anything: an action without a cached result is reported as
// ActionWouldRun, and so is everything after it in its image and every
// image that needs that image.
func WithDryRun() Option { return func(b *Builder) { b.dryRun = true } }

// WithNetwork lets the RUN steps of the named images reach the host network
// unless they say --network=none. The policy is part of each action key.
func WithNetwork(images ...string) Option {
	return func(b *Builder) {
		for _, n := range images {
			b.network[n] = true
		}
	}
}

// WithStepLimits bounds each RUN step's memory, tasks and time (default:
// sandbox.DefaultLimits). A step that reaches a limit fails; one that
// does not runs as without, so limits are no input of action keys.
func WithStepLimits(l sandbox.Limits) Option { return func(b *Builder) { b.limits = l } }

// DefaultStepLog is how much of a RUN step's output its log keeps by
// default: more than any build prints (a compiler's verbose build log is
// megabytes), less than would fill a cache's disk.
const DefaultStepLog = 4 << 30

// WithStepLog keeps the first n bytes of each RUN step's output in its log
// (0: all of it); the rest still reaches the progress output.
func WithStepLog(n int64) Option { return func(b *Builder) { b.logLimit = n } }

// NewBuilder returns a Builder for tree on the opened cache c, running RUN
// steps with runner. The caller closes c once the Builder's builds have
// returned.
func NewBuilder(tree *packages.Tree, c *cache.Cache, runner Runner, opts ...Option) *Builder {
	b := &Builder{
		tree:     tree,
		runner:   runner,
		store:    c.Store,
		actions:  c.Actions,
		snaps:    c.Snapshots,
		logs:     c.Logs,
		imports:  NewImports(c),
		hashes:   c.Files,
		jobs:     runtime.NumCPU(),
		network:  map[string]bool{},
		limits:   sandbox.DefaultLimits(),
		logLimit: DefaultStepLog,
		flights:  flights{m: map[cache.ActionKey]*inFlight{}},
	}
	for _, o := range opts {
		o(b)
	}
	// Files the engine creates (snapshots, parents of copied files, mount
	// points) get their modes through the umask: pin it, as BuildKit's
	// daemon runs with 022, so that the caller's umask changes no byte.
	syscall.Umask(0o022)
	b.slots = make(chan struct{}, max(b.jobs, 1))
	return b
}

// planBuild is one Build: a plan on a Builder, with the results, output
// directory and events of its own.
type planBuild struct {
	*Builder
	outDir  string
	events  func(Event)
	every   time.Duration            // BuildProgress events: how often
	track   *tracker                 // what is done, for progress and timings (estimate.go)
	targets map[*packages.Image]bool // the images the plan was asked for

	mu      sync.Mutex
	results map[string]*imageResult // by image name

	remoteUse // what this build reached, pulled and pushed (remote.go)
}

// BuildOption configures one Build.
type BuildOption func(*planBuild)

// WithOutDir writes image layouts to dir/<image> (default: out/ in the tree).
func WithOutDir(dir string) BuildOption { return func(b *planBuild) { b.outDir = dir } }

// WithEvents reports progress to fn, which must be safe for concurrent use.
func WithEvents(fn func(Event)) BuildOption { return func(b *planBuild) { b.events = fn } }

// WithProgressEvery reports a BuildProgress event every d as well as at
// the start of the build (the only one by default).
func WithProgressEvery(d time.Duration) BuildOption { return func(b *planBuild) { b.every = d } }

// Report summarises a build.
type Report struct {
	Images     []ImageReport  // in plan order
	Actions    []ActionTiming // every action run, found cached or failed, by start time
	Start, End time.Time
	Ran        int // actions run
	Cached     int // actions whose result came from the cache
	Published  int // images taken as published (WithPublished), running nothing
	// Remote counts the cached actions whose result came from a
	// --cache-from remote; Transfer the bytes moved from and to remotes.
	Remote   int
	Transfer cache.Transfer
}

// ImageReport is the outcome of one image.
type ImageReport struct {
	Name   string
	Digest image.Digest // the per-platform manifest digest
	Layout string       // the OCI layout directory
	Err    error        // nil on success
	// Emulated are the binfmt_misc entries ("qemu-i386") through which
	// the RUN steps this build ran for the image ran, sorted; empty when
	// they all ran natively (cached steps say nothing). Emulation can
	// change bytes: see sandbox.Result.Emulator.
	Emulated []string
	// Start is when the images it needs were built and its own build
	// began, End when it ended; both zero for an image not built.
	Start, End time.Time
	// Published says the image is the published one (WithPublished):
	// nothing ran for it.
	Published bool
}

// Failed returns the images that did not build.
func (r *Report) Failed() []ImageReport {
	var out []ImageReport
	for _, ir := range r.Images {
		if ir.Err != nil {
			out = append(out, ir)
		}
	}
	return out
}

// ErrDependencyFailed marks an image skipped because an image it needs
// failed.
var ErrDependencyFailed = errors.New("dependency failed")

// Build builds every image of plan. Images build as soon as the images
// they need are built, at most the Builder's jobs actions at a time (with
// those of other builds on b). Without keep-going the first failure
// cancels the rest. The error is non-nil when any image failed; the report
// says which.
func (b *Builder) Build(ctx context.Context, plan *Plan, opts ...BuildOption) (*Report, error) {
	pb := &planBuild{
		Builder: b,
		outDir:  b.tree.OutDir(),
		events:  func(Event) {},
		results: map[string]*imageResult{},
	}
	for _, o := range opts {
		o(pb)
	}
	return pb.build(ctx, plan)
}

func (b *planBuild) build(ctx context.Context, plan *Plan) (*Report, error) {
	b.targets = targetSet(plan)
	parent := ctx
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	if !b.dryRun {
		b.track = newTracker(plan, b.actions, b.jobs, start)
		defer b.reportProgress()()
	}
	done := make(map[string]chan struct{}, len(plan.Images))
	for _, ip := range plan.Images {
		done[ip.Image.Name] = make(chan struct{})
	}
	report := &Report{Images: make([]ImageReport, len(plan.Images))}
	var wg sync.WaitGroup
	for i, ip := range plan.Images {
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer close(done[ip.Image.Name])
			report.Images[i] = b.buildWhenReady(ctx, ip, done)
			if report.Images[i].Err != nil && !b.keepGoing && !b.dryRun {
				cancel()
			}
		}()
	}
	wg.Wait()
	var errs []error
	for _, ir := range report.Images {
		if ir.Err != nil && !errors.Is(ir.Err, ErrDependencyFailed) && !errors.Is(ir.Err, context.Canceled) && !errors.Is(ir.Err, ErrWouldRun) {
			errs = append(errs, fmt.Errorf("%s: %w", ir.Name, ir.Err))
		}
	}
	report.Ran, report.Cached, report.Published = b.counts()
	report.Actions = b.track.timings()
	report.Start, report.End = start, time.Now()
	if len(b.remotes.to) > 0 && !b.dryRun {
		if err := b.export(parent, plan); err != nil {
			errs = append(errs, err)
		}
	}
	report.Remote, report.Transfer = b.remoteUse.totals()
	if len(errs) == 0 && len(report.Failed()) > 0 {
		errs = append(errs, ctx.Err())
	}
	return report, errors.Join(errs...)
}

// buildWhenReady waits for the images ip needs, then builds it. An image
// whose Dockerfile checks fail (StageX's error=true) fails first.
func (b *planBuild) buildWhenReady(ctx context.Context, ip *ImagePlan, done map[string]chan struct{}) ImageReport {
	r := ImageReport{Name: ip.Image.Name}
	if !b.dryRun {
		if r.Err = b.check(ip); r.Err != nil {
			return r
		}
	}
	deps := append([]*packages.Image(nil), ip.Image.Deps...)
	sort.Slice(deps, func(i, j int) bool { return deps[i].Name < deps[j].Name })
	for _, d := range deps {
		select {
		case <-done[d.Name]:
		case <-ctx.Done():
			r.Err = ctx.Err()
			return r
		}
		if b.result(d.Name) == nil {
			if b.dryRun {
				// d would run: say whether ip's published image could
				// still be taken, once d is built.
				b.takePublished(ip)
			}
			r.Err = fmt.Errorf("%w: %s", ErrDependencyFailed, d.Name)
			b.emit(ip, Event{Kind: ImageSkipped, Err: r.Err})
			return r
		}
	}
	r.Start = time.Now()
	res, err := b.takePublished(ip)
	if res == nil && err == nil {
		res, err = b.buildImage(ctx, ip)
	}
	r.End = time.Now()
	if err != nil {
		r.Err = err
		if !errors.Is(err, ErrWouldRun) {
			b.emit(ip, Event{Kind: ImageFailed, Err: err})
		}
		return r
	}
	b.mu.Lock()
	b.results[r.Name] = res
	b.mu.Unlock()
	r.Digest, r.Layout, r.Emulated, r.Published = res.digest, res.layout, res.emulated, res.published
	if !res.published {
		b.emit(ip, Event{Kind: ImageDone, Digest: res.digest})
	}
	return r
}

// check reports the findings of ip's Dockerfile checks: as warnings, or
// as the image's failure when the check config makes them errors.
func (b *planBuild) check(ip *ImagePlan) error {
	if err := ip.CheckErr(); err != nil {
		b.emit(ip, Event{Kind: ImageFailed, Err: err})
		return err
	}
	for i := range ip.Findings {
		b.emit(ip, Event{Kind: CheckWarning, Finding: &ip.Findings[i]})
	}
	return nil
}

// takePublished returns ip's published image, its layout written, if the
// build takes it (see Published.choose), and nil if it is to be built.
func (b *planBuild) takePublished(ip *ImagePlan) (*imageResult, error) {
	if b.published == nil {
		return nil, nil
	}
	c := b.published.choose(ip, b.targets[ip.Image], func(dep *packages.Image) (image.Digest, bool) {
		if r := b.result(dep.Name); r != nil {
			return r.digest, true
		}
		return image.Digest{}, false
	})
	if c.rec == nil {
		ev := Event{Kind: ImageFromSource}
		if c.why != "" {
			ev.Explain = append([]string{c.why}, c.explain...)
		}
		b.emit(ip, ev)
		return nil, nil
	}
	if !b.dryRun {
		if err := b.published.write(ip, c, b.outDir); err != nil {
			return nil, err
		}
	}
	c.res.published = true
	b.emit(ip, Event{Kind: ImagePublished, Digest: c.res.digest})
	return c.res, nil
}

func (b *planBuild) result(name string) *imageResult {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.results[name]
}

func (b *planBuild) counts() (ran, cached, published int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, r := range b.results {
		ran += r.ran
		cached += r.cached
		if r.published {
			published++
		}
	}
	return ran, cached, published
}

// acquire takes one of the jobs slots.
func (b *Builder) acquire(ctx context.Context) error {
	select {
	case b.slots <- struct{}{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (b *Builder) release() { <-b.slots }
