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
func WithCacheFrom(srcs ...cache.Source) BuildOption {
	return func(b *Builder) { b.from = append(b.from, srcs...) }
}

// WithCacheTo exports results to dst after the build, as mode says.
func WithCacheTo(dst cache.Sink, mode cache.Mode) BuildOption {
	return func(b *Builder) { b.to = append(b.to, exportTo{dst, mode}) }
}

// WithCacheWait makes NewBuilder wait for another process using the cache
// directory until ctx is done, calling notice if it has to wait. Two
// builds on one cache run one after the other: the action cache is held
// for a whole build.
func WithCacheWait(ctx context.Context, notice func()) BuildOption {
	return func(b *Builder) { b.wait, b.waitDone, b.waitNotice = true, ctx.Done(), notice }
}

// remoteState is the Builder's bookkeeping for remote caches.
type remoteState struct {
	from []cache.Source
	to   []exportTo

	wait       bool // WithCacheWait
	waitDone   <-chan struct{}
	waitNotice func()

	rmu      sync.Mutex
	reached  map[cache.ActionKey]cache.Digest // action key -> its layer's diffID
	hits     int
	transfer cache.Transfer
}

// reach notes that the action of key has the layer of diffID d in the
// local cache.
func (r *remoteState) reach(key cache.ActionKey, d cache.Digest) {
	if len(r.to) == 0 {
		return
	}
	r.rmu.Lock()
	defer r.rmu.Unlock()
	if r.reached == nil {
		r.reached = map[cache.ActionKey]cache.Digest{}
	}
	r.reached[key] = d
}

func (r *remoteState) add(t cache.Transfer, hit bool) {
	r.rmu.Lock()
	defer r.rmu.Unlock()
	r.transfer.In += t.In
	r.transfer.Out += t.Out
	if hit {
		r.hits++
	}
}

// pull looks key up in the --cache-from remotes. A rejected entry or a
// failing remote is reported as a CacheWarning and is a miss.
func (ib *imageBuild) pull(ctx context.Context, key cache.ActionKey, a *action) (*layer, bool) {
	b := ib.b
	for _, src := range b.from {
		res, t, err := cache.Pull(ctx, src, key, b.store)
		if err == nil {
			err = b.actions.Put(key, res)
		}
		var l *layer
		ok := false
		if err == nil {
			if l, ok = ib.lookup(key, a.parent); !ok {
				err = fmt.Errorf("%s: action %s: result not usable", src, key)
			}
		}
		b.add(t, ok)
		if ok {
			return l, true
		}
		if ctx.Err() != nil {
			return nil, false
		}
		if !errors.Is(err, cache.ErrNotFound) {
			ib.emit(Event{Kind: CacheWarning, Action: a.label, Name: a.name, Err: err})
		}
	}
	return nil, false
}

// export pushes results to the --cache-to remotes (see the comment at the
// top of this file).
func (b *Builder) export(ctx context.Context, plan *Plan) error {
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
	for _, to := range b.to {
		var keys []cache.ActionKey
		for _, k := range reached {
			if to.mode == cache.ModeMax || inTargets[layerOf[k]] {
				keys = append(keys, k)
			}
		}
		if err := b.pushAll(ctx, to.sink, keys); err != nil {
			errs = append(errs, fmt.Errorf("exporting to %s: %w", to.sink, err))
		}
	}
	return errors.Join(errs...)
}

// pushAll pushes the results of keys to dst, a few at a time.
func (b *Builder) pushAll(ctx context.Context, dst cache.Sink, keys []cache.ActionKey) error {
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
