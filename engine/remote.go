package engine

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"

	"github.com/stagex/sxmake/cache"
)

// Remote caches (--cache-from, --cache-to). On a local miss the Builder
// asks each --cache-from remote, in order, for the action's result; a
// result whose blobs verify (cache.Pull) is stored locally and used as a
// hit. A remote is never written to unless it is a --cache-to remote.
//
// After the build, each --cache-to remote receives results and their
// blobs: with mode=max those of every action the build reached (ran or
// found cached), with mode=min those of the actions whose layers are
// layers of the targets' images (the target stages' layers, including
// those of the images they are FROM). Since a key hashes the content of
// its inputs, a build from a mode=min cache still runs the stages whose
// files the targets copy, then finds the targets' own steps cached.
//
// A failed build still exports what it reached (mode=max) or the targets
// that were built (mode=min). Dry runs and --no-cache do not consult
// --cache-from remotes. A remote entry that is rejected, or a remote that
// fails, is a CacheWarning event and a miss, never a failed build; a
// failed export fails the build.

// exportTo is a --cache-to remote.
type exportTo struct {
	sink cache.Sink
	mode cache.Mode
}

// WithCacheFrom looks up actions missing from the local cache in srcs, in
// order.
func WithCacheFrom(srcs ...cache.Source) Option {
	return func(b *Builder) { b.remotes.from = append(b.remotes.from, srcs...) }
}

// WithCacheTo exports results to dst after each build, as mode says.
func WithCacheTo(dst cache.Sink, mode cache.Mode) Option {
	return func(b *Builder) { b.remotes.to = append(b.remotes.to, exportTo{sink: dst, mode: mode}) }
}

// remotes are a Builder's remote caches. The result of an action is
// pushed to each --cache-to remote once, whichever of the Builder's builds
// reach it.
type remotes struct {
	from []cache.Source
	to   []exportTo

	mu     sync.Mutex
	pushed []map[cache.ActionKey]bool // per --cache-to remote
}

// claim returns the keys not yet pushed to the i-th --cache-to remote,
// marking them pushed: the caller pushes them.
func (r *remotes) claim(i int, keys []cache.ActionKey) []cache.ActionKey {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.pushed == nil {
		r.pushed = make([]map[cache.ActionKey]bool, len(r.to))
	}
	if r.pushed[i] == nil {
		r.pushed[i] = map[cache.ActionKey]bool{}
	}
	var out []cache.ActionKey
	for _, k := range keys {
		if !r.pushed[i][k] {
			r.pushed[i][k] = true
			out = append(out, k)
		}
	}
	return out
}

// remoteUse is what one build did with remote caches.
type remoteUse struct {
	rmu      sync.Mutex
	reached  map[cache.ActionKey]cache.Digest // action key -> its layer's diffID
	hits     int
	transfer cache.Transfer
}

// reach notes that the action of key has the layer of diffID d in the
// local cache, when there is a --cache-to remote to export it to.
func (b *planBuild) reach(key cache.ActionKey, d cache.Digest) {
	if len(b.remotes.to) > 0 {
		b.remoteUse.note(key, d)
	}
}

func (r *remoteUse) note(key cache.ActionKey, d cache.Digest) {
	r.rmu.Lock()
	defer r.rmu.Unlock()
	if r.reached == nil {
		r.reached = map[cache.ActionKey]cache.Digest{}
	}
	r.reached[key] = d
}

func (r *remoteUse) add(t cache.Transfer, hit bool) {
	r.rmu.Lock()
	defer r.rmu.Unlock()
	r.transfer.In += t.In
	r.transfer.Out += t.Out
	if hit {
		r.hits++
	}
}

// totals returns the results pulled and the bytes moved.
func (r *remoteUse) totals() (int, cache.Transfer) {
	r.rmu.Lock()
	defer r.rmu.Unlock()
	return r.hits, r.transfer
}

// pull looks key up in the --cache-from remotes. A rejected entry or a
// failing remote is reported as a CacheWarning and is a miss.
func (ib *imageBuild) pull(ctx context.Context, key cache.ActionKey, a *action) (*layer, cache.Digest, bool) {
	b := ib.b
	for _, src := range b.remotes.from {
		res, t, err := cache.Pull(ctx, src, key, b.store)
		if err == nil {
			err = b.actions.Put(key, res)
		}
		var l *layer
		var log cache.Digest
		ok := false
		if err == nil {
			if l, log, ok = ib.lookup(key, a.parent); !ok {
				err = fmt.Errorf("%s: action %s: result not usable", src, key)
			}
		}
		b.add(t, ok)
		if ok {
			return l, log, true
		}
		if ctx.Err() != nil {
			return nil, cache.Digest{}, false
		}
		if !errors.Is(err, cache.ErrNotFound) {
			ib.emit(Event{Kind: CacheWarning, Action: a.label, Name: a.name, Err: err})
		}
	}
	return nil, cache.Digest{}, false
}

// export pushes results to the --cache-to remotes (see the comment at the
// top of this file), but none that another build on the Builder pushed.
func (b *planBuild) export(ctx context.Context, plan *Plan) error {
	b.rmu.Lock()
	reached := make([]cache.ActionKey, 0, len(b.reached))
	for k := range b.reached {
		reached = append(reached, k)
	}
	layerOf := b.reached
	b.rmu.Unlock()
	sort.Slice(reached, func(i, j int) bool { return string(reached[i][:]) < string(reached[j][:]) })
	inTargets := map[cache.Digest]bool{}
	for _, img := range plan.Targets {
		if res := b.result(img.Name); res != nil {
			for _, l := range res.layers {
				inTargets[cache.Digest(l.DiffID)] = true
			}
		}
	}
	var errs []error
	for i, to := range b.remotes.to {
		var keys []cache.ActionKey
		for _, k := range reached {
			if to.mode == cache.ModeMax || inTargets[layerOf[k]] {
				keys = append(keys, k)
			}
		}
		if err := b.pushAll(ctx, to.sink, b.remotes.claim(i, keys)); err != nil {
			errs = append(errs, fmt.Errorf("exporting to %s: %w", to.sink, err))
		}
	}
	return errors.Join(errs...)
}

// pushAll pushes the results of keys to dst, a few at a time.
func (b *planBuild) pushAll(ctx context.Context, dst cache.Sink, keys []cache.ActionKey) error {
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		errs []error
		sem  = make(chan struct{}, 4)
		exp  = cache.NewExporter(dst, b.store)
	)
	for _, k := range keys {
		res, err := b.actions.Get(k)
		if err != nil {
			return err
		}
		if !res.Layer.IsZero() && res.Layer == res.DiffID {
			// Remotes hold layers as images do: gzipped.
			if _, err := b.compressed(layer{Layer: resultLayer(res), key: k}); err != nil {
				return err
			}
			if res, err = b.actions.Get(k); err != nil {
				return err
			}
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			t, err := exp.Push(ctx, k, res)
			b.add(t, false)
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}
