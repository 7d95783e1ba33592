package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"sync"
	"time"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/sandbox"
)

// action is a step bound to its inputs: the unit that is keyed, cached and
// run. apply makes the step's changes: it gets the parent's snapshot dirs
// (top first; the empty dir for scratch) and a fresh upper dir whose
// content, diffed against the parent, becomes the action's layer.
type action struct {
	name   string // stable across runs, for --explain
	label  string // for progress
	in     *inputs
	parent *state
	apply  func(ctx context.Context, lowers []string, upper, work string, log io.Writer) error
	// exported says the image will export the layer (the step is in its
	// target stage): it is gzipped as it is made. Other layers are kept
	// uncompressed, and gzipped only if some image exports them after all.
	exported bool
	// link says apply writes into nothing (COPY --link): it gets the
	// empty dir as its lowers, and the layer is what it wrote, over the
	// parent all the same.
	link bool
	// process is set by apply when it ran a process: how long it ran.
	process time.Duration
	// emulator is set by apply when the process ran emulated: the
	// binfmt_misc entry it ran through (sandbox.Result.Emulator).
	emulator string
}

// do returns the layer of a, from the cache when its key has a result
// whose blob is still stored, by running it otherwise. Two images built at
// once from the same Containerfile stage (a package and its subpackage)
// share their actions: the second waits for the first's result.
func (ib *imageBuild) do(ctx context.Context, a *action) (*layer, error) {
	begin := time.Now()
	b := ib.b
	key := a.in.key()
	f, leader := b.flight(key)
	if !leader {
		select {
		case <-f.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	if !b.noCache || !leader {
		if l, log, ok := ib.lookup(key, a.parent); ok {
			if leader {
				defer b.land(key, f)
			}
			ib.cachedAction(a, key, l, log, begin)
			return l, nil
		}
	}
	if !leader {
		// The other run failed or was not kept: run it here.
		return ib.do(ctx, a)
	}
	defer b.land(key, f)
	if !b.noCache && !b.dryRun && len(b.remotes.from) > 0 {
		if l, log, ok := ib.pull(ctx, key, a); ok {
			ib.cachedAction(a, key, l, log, begin)
			return l, nil
		}
	}
	if b.dryRun {
		ib.emit(Event{Kind: ActionWouldRun, Action: a.label, Name: a.name, Explain: ib.explain(a)})
		return nil, ErrWouldRun
	}
	if err := b.acquire(ctx); err != nil {
		return nil, err
	}
	defer b.release()
	return ib.runAction(ctx, a, key)
}

// cachedAction reports a's result l, found in a cache, whose run printed
// the blob log.
func (ib *imageBuild) cachedAction(a *action, key cache.ActionKey, l *layer, log cache.Digest, begin time.Time) {
	ib.cached++
	ib.b.reach(key, cache.Digest(l.DiffID))
	end := time.Now()
	ib.rec.ended(a.name, cache.StatusCached, log, begin, end)
	ib.emit(Event{Kind: ActionCached, Action: a.label, Name: a.name, Step: ib.rec.number(a.name), Time: end, Duration: end.Sub(begin)})
}

// runAction runs a, whose key is key, and stores its result. Its output
// streams to a log file of the cache as it is printed (sxmake log -f reads
// it meanwhile), which becomes a blob when the action ends, whatever the
// outcome; a killed process leaves the file (cache.Logs).
func (ib *imageBuild) runAction(ctx context.Context, a *action, key cache.ActionKey) (*layer, error) {
	b := ib.b
	log, err := b.logs.Create()
	if err != nil {
		return nil, err
	}
	defer log.Close()
	start := time.Now()
	step := ib.rec.number(a.name)
	if err := ib.rec.started(a.name, log.Name(), start); err != nil {
		return nil, err
	}
	ib.emit(Event{Kind: ActionStarted, Action: a.label, Name: a.name, Step: step, Time: start})
	out := &stepOutput{log: log, limit: b.logLimit, emit: func(p []byte) {
		ib.emit(Event{Kind: ActionLog, Action: a.label, Name: a.name, Step: step, Log: p})
	}}
	l, err := ib.run1(ctx, a, out)
	if err == nil && out.err != nil {
		err = fmt.Errorf("writing the log: %w", out.err)
	}
	end := time.Now()
	var tail []byte
	if err != nil {
		tail = log.Tail(failureTail)
	}
	logDigest, cerr := log.Commit()
	if err == nil && cerr != nil {
		err = fmt.Errorf("storing the log: %w", cerr)
	}
	if err != nil {
		status := cache.StatusFailed
		if ctx.Err() != nil {
			status = cache.StatusInterrupted
		}
		ib.rec.ended(a.name, status, logDigest, start, end)
		if werr := ib.rec.write(); werr != nil {
			err = errors.Join(err, werr)
		}
		ib.emit(Event{Kind: ActionFailed, Action: a.label, Name: a.name, Step: step, Time: end, Duration: end.Sub(start), Err: err, Log: tail, Emulator: a.emulator})
		return nil, err
	}
	d := end.Sub(start)
	res := cache.Result{Layer: l.Digest, DiffID: cache.Digest(l.DiffID), LayerSize: l.Size, Log: logDigest, Duration: d}
	if err := b.actions.PutRun(key, res, a.name, cache.Record{Key: key.String(), Inputs: a.in.lines}); err != nil {
		return nil, err
	}
	ib.rec.ended(a.name, cache.StatusRan, logDigest, start, end)
	if err := ib.rec.write(); err != nil {
		return nil, err
	}
	l.key = key
	ib.ran++
	if a.emulator != "" {
		ib.emulated[a.emulator] = true
	}
	b.reach(key, cache.Digest(l.DiffID))
	ib.emit(Event{Kind: ActionDone, Action: a.label, Name: a.name, Step: step, Time: end, Duration: d, Process: a.process, Emulator: a.emulator})
	return l, nil
}

// failureTail is how much of a failed action's log its event carries:
// the progress output prints its last lines.
const failureTail = 64 << 10

// inFlight is an action being looked up or run; done closes when it ends.
type inFlight struct{ done chan struct{} }

// flights are the actions in flight, by key, of a Builder's builds: one
// action needed by two images (a package and its subpackage, or a
// single-platform package in a multi-platform build) runs once.
type flights struct {
	mu sync.Mutex
	m  map[cache.ActionKey]*inFlight
}

// flight returns the flight of key, and whether the caller leads it (and
// must land it).
func (b *Builder) flight(key cache.ActionKey) (*inFlight, bool) {
	b.flights.mu.Lock()
	defer b.flights.mu.Unlock()
	if f, ok := b.flights.m[key]; ok {
		return f, false
	}
	f := &inFlight{done: make(chan struct{})}
	b.flights.m[key] = f
	return f, true
}

// land ends the flight of key.
func (b *Builder) land(key cache.ActionKey, f *inFlight) {
	b.flights.mu.Lock()
	delete(b.flights.m, key)
	b.flights.mu.Unlock()
	close(f.done)
}

// ErrWouldRun ends a dry run of an image at its first action to run: what
// follows depends on that action's output, which only running it can tell.
var ErrWouldRun = errors.New("would run")

// explain says why a has no cached result: each input that changed since
// the action last ran, or that it never ran.
func (ib *imageBuild) explain(a *action) []string {
	if ib.b.noCache {
		return []string{"--no-cache"}
	}
	rec, err := ib.b.actions.LastRecord(a.name)
	if err != nil {
		return []string{"never ran"}
	}
	lines := explain(rec.Inputs, a.in.lines)
	if len(lines) == 0 {
		// Same inputs, but the result or its blob is gone.
		return []string{"result missing from the cache"}
	}
	return lines
}

// lookup returns the cached layer of key, if its blob is in the store, and
// the log of the run that made it.
func (ib *imageBuild) lookup(key cache.ActionKey, parent *state) (*layer, cache.Digest, bool) {
	res, err := ib.b.actions.Get(key)
	if err != nil || res.Layer.IsZero() {
		return nil, cache.Digest{}, false
	}
	if size, err := ib.b.store.Size(res.Layer); err != nil || size != res.LayerSize {
		return nil, cache.Digest{}, false
	}
	l := &layer{Layer: resultLayer(res), key: key}
	l.chain = cache.Chain(parent.chain(), res.DiffID)
	return l, res.Log, true
}

// resultLayer is the layer of a cached result: a gzip blob as BuildKit
// exports it, or the uncompressed tar of an intermediate step.
func resultLayer(res cache.Result) image.Layer {
	l := image.Layer{
		Descriptor: image.Descriptor{MediaType: image.MediaTypeLayerTar, Digest: res.Layer, Size: res.LayerSize},
		DiffID:     image.DiffID(res.DiffID),
	}
	if l.Compressed() {
		l.MediaType = image.MediaTypeLayerGzip
		l.Annotations = map[string]string{image.AnnotationRewrittenTimestamp: fmt.Sprint(epoch.Unix())}
	}
	return l
}

// run1 runs a: prepares the parent's snapshots and an upper dir, applies
// the step (its output to log), diffs the upper dir into a layer blob and
// keeps the upper dir as the new snapshot.
func (ib *imageBuild) run1(ctx context.Context, a *action, log io.Writer) (*layer, error) {
	b := ib.b
	base := a.parent.layers
	if a.link {
		base = nil
	}
	lowers, err := b.lowerDirs(base)
	if err != nil {
		return nil, err
	}
	upper, work, err := b.snaps.Prepare()
	if err != nil {
		return nil, err
	}
	defer b.snaps.Discard(upper)
	if err := a.apply(ctx, lowers, upper, work, log); err != nil {
		return nil, err
	}
	return b.commitLayer(ctx, a.parent, base, upper, a.exported)
}

// stepOutput is where a running step's output goes: its log file, up to
// limit bytes (0: no limit), and an event for each write. A step printing
// without end would otherwise fill the cache's file system: past the
// limit, the log says where it was cut and keeps nothing more.
type stepOutput struct {
	log     io.Writer
	limit   int64
	written int64
	emit    func([]byte)
	err     error
}

func (w *stepOutput) Write(p []byte) (int, error) {
	if w.err == nil && (w.limit == 0 || w.written < w.limit) {
		keep := p
		if w.limit > 0 && int64(len(keep)) > w.limit-w.written {
			keep = keep[:w.limit-w.written]
		}
		var n int
		n, w.err = w.log.Write(keep)
		w.written += int64(n)
		if w.err == nil && w.limit > 0 && w.written == w.limit {
			_, w.err = fmt.Fprintf(w.log, "\n[sxmake: the log is cut here, at %d bytes (--step-log); the step's further output is not kept]\n", w.limit)
		}
	}
	w.emit(append([]byte(nil), p...))
	return len(p), nil
}

// commitLayer turns upper, the changes made over the layers base (parent's,
// or none for a --link copy), into a layer blob in the content store
// (gzipped if exported, else the tar) and the snapshot over parent.
func (b *Builder) commitLayer(ctx context.Context, parent *state, base []layer, upper string, exported bool) (*layer, error) {
	view, release, err := b.view(base)
	if err != nil {
		return nil, err
	}
	defer release()
	w, err := b.store.Writer()
	if err != nil {
		return nil, err
	}
	defer w.Close()
	il, err := image.DiffLayer(ctx, w, upper, view, epoch, exported)
	if err != nil {
		return nil, fmt.Errorf("writing layer: %w", err)
	}
	if _, _, err := w.Commit(il.Digest, il.Size); err != nil {
		return nil, fmt.Errorf("storing layer: %w", err)
	}
	l := &layer{Layer: il, chain: cache.Chain(parent.chain(), cache.Digest(il.DiffID))}
	if err := b.snaps.Commit(upper, l.chain); err != nil {
		return nil, err
	}
	return l, nil
}

// compressed returns l as an image exports it: gzipped. The tar of an
// intermediate step is gzipped once per build, and the cached result of
// the action that made it then names the gzip blob, which later builds
// use as is.
func (b *Builder) compressed(l layer) (layer, error) {
	if l.Compressed() {
		return l, nil
	}
	v, _ := b.gzipped.LoadOrStore(l.DiffID, &gzipOnce{})
	g := v.(*gzipOnce)
	g.once.Do(func() { g.layer, g.err = b.gzip(l.Layer) })
	if g.err != nil {
		return l, g.err
	}
	if l.key != (cache.ActionKey{}) {
		if res, err := b.actions.Get(l.key); err == nil && res.Layer == res.DiffID {
			res.Layer, res.LayerSize = g.layer.Digest, g.layer.Size
			if err := b.actions.Put(l.key, res); err != nil {
				return l, err
			}
		}
	}
	l.Layer = g.layer
	return l, nil
}

// gzipOnce is the gzipping of one uncompressed layer in a build.
type gzipOnce struct {
	once  sync.Once
	layer image.Layer
	err   error
}

// gzip stores the gzip blob of the stored uncompressed layer l.
func (b *Builder) gzip(l image.Layer) (image.Layer, error) {
	rc, err := b.store.Open(l.Digest)
	if err != nil {
		return image.Layer{}, err
	}
	defer rc.Close()
	w, err := b.store.Writer()
	if err != nil {
		return image.Layer{}, err
	}
	defer w.Close()
	gz, err := image.CompressRewritten(w, rc, epoch)
	if err != nil {
		return image.Layer{}, err
	}
	if gz.DiffID != l.DiffID {
		return image.Layer{}, fmt.Errorf("stored tar of layer %s has diffID %s", l.DiffID, gz.DiffID)
	}
	if _, _, err := w.Commit(gz.Digest, gz.Size); err != nil {
		return image.Layer{}, fmt.Errorf("storing layer: %w", err)
	}
	return gz, nil
}

// lowerDirs returns the snapshot dirs of layers, top first, unpacking the
// ones not on disk; the empty dir stands for no layers.
func (b *Builder) lowerDirs(layers []layer) ([]string, error) {
	if len(layers) == 0 {
		return []string{b.snaps.Empty()}, nil
	}
	dirs := make([]string, len(layers))
	for i := range layers {
		if err := b.materialize(layers[:i+1]); err != nil {
			return nil, err
		}
		dirs[len(layers)-1-i] = b.snaps.Path(layers[i].chain)
	}
	return dirs, nil
}

// materialize unpacks the top layer of stack into its snapshot dir, as
// BuildKit's overlayfs snapshotter does: the bottom layer as a plain
// directory, any other as an overlay upper dir over the layers below
// (deletions as whiteouts), which must be materialized already.
func (b *Builder) materialize(stack []layer) error {
	top := stack[len(stack)-1]
	if b.snaps.Has(top.chain) {
		return nil
	}
	var opts []image.UnpackOption
	if n := len(stack) - 1; n > 0 {
		lowers := make([]string, n)
		for i, l := range stack[:n] {
			lowers[n-1-i] = b.snaps.Path(l.chain)
		}
		opts = append(opts, image.OverLowers(lowers...))
	}
	upper, _, err := b.snaps.Prepare()
	if err != nil {
		return err
	}
	defer b.snaps.Discard(upper)
	if err := b.unpack(upper, top, opts); err != nil {
		return fmt.Errorf("unpacking layer %s: %w", top.Digest, err)
	}
	return b.snaps.Commit(upper, top.chain)
}

// unpack applies the stored layer l to dir.
func (b *Builder) unpack(dir string, l layer, opts []image.UnpackOption) error {
	rc, err := b.store.Open(l.Digest)
	if err != nil {
		return err
	}
	defer rc.Close()
	return image.Unpack(dir, rc, opts...)
}

// withMount mounts the overlay of lowers under upper (read-only without
// upper) on a temporary mount point and calls fn with it. Over nothing
// (the empty dir alone, as for a scratch stage's first step) fn gets upper
// itself: the overlay would show upper alone, and creating files through
// overlayfs costs more than directly, a visible part of a cold build.
func (b *Builder) withMount(lowers []string, upper, work string, fn func(root string) error) error {
	if upper != "" && len(lowers) == 1 && lowers[0] == b.snaps.Empty() {
		return fn(upper)
	}
	mnt, err := b.snaps.MkdirTemp()
	if err != nil {
		return err
	}
	defer os.Remove(mnt)
	if err := sandbox.MountOverlay(mnt, lowers, upper, work); err != nil {
		return err
	}
	ferr := fn(mnt)
	if err := sandbox.Unmount(mnt); err != nil {
		return errors.Join(ferr, err)
	}
	return ferr
}

// view returns a read-only directory holding the merged file system of
// layers, and a function to release it.
func (b *Builder) view(layers []layer) (string, func(), error) {
	lowers, err := b.lowerDirs(layers)
	if err != nil {
		return "", nil, err
	}
	if len(lowers) == 1 {
		// The bottom snapshot over nothing has no whiteouts: use it as is.
		return lowers[0], func() {}, nil
	}
	mnt, err := b.snaps.MkdirTemp()
	if err != nil {
		return "", nil, err
	}
	if err := sandbox.MountOverlay(mnt, lowers, "", ""); err != nil {
		os.Remove(mnt)
		return "", nil, err
	}
	return mnt, func() { sandbox.Unmount(mnt); os.Remove(mnt) }, nil
}
