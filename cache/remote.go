package cache

import (
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"time"
)

// Remote caches are caches shared between machines: a directory a CI
// system saves and restores (dir:PATH), a server speaking Bazel's HTTP
// remote-cache protocol (http://HOST/PREFIX) or an OCI registry
// (registry:HOST/REPO). Their vocabulary is Bazel's:
//
//	ac/<action key hex>   an action result: an REAPI ActionResult protobuf
//	                      naming the layer blob as the output file
//	                      "layer.tar.gz" and the log as its stdout
//	cas/<sha256 hex>      a blob
//
// Nothing read from a remote is trusted: Pull checks every blob against
// its digest and size, and recomputes the layer's diffID from its bytes,
// before anything reaches the local cache. A remote entry naming content
// that does not match is rejected (ErrRejected) and never used.

// Source is a remote cache that is read: --cache-from. A Source is never
// written to.
type Source interface {
	// Result returns the entry of key, or an error wrapping ErrNotFound.
	// The entry is unverified.
	Result(ctx context.Context, key ActionKey) (RemoteResult, error)
	// Blob returns a reader of blob d, or an error wrapping ErrNotFound.
	// The bytes are unverified.
	Blob(ctx context.Context, d Digest, size int64) (io.ReadCloser, error)
	String() string
}

// Sink is a remote cache that is written: --cache-to.
type Sink interface {
	// HasBlob reports whether the remote holds blob d. It may answer
	// false for a blob it holds, when asking costs as much as a PutBlob
	// that finds the blob there and reads nothing.
	HasBlob(ctx context.Context, d Digest) (bool, error)
	// PutBlob stores size bytes of r as blob d.
	PutBlob(ctx context.Context, d Digest, size int64, r io.Reader) error
	// PutResult stores the entry of key. Callers store the blobs it
	// names first.
	PutResult(ctx context.Context, key ActionKey, r RemoteResult) error
	String() string
}

// Remote is a remote cache that can be read and written.
type Remote interface {
	Source
	Sink
}

// RemoteResult is an action result as a remote stores it: the blobs,
// without what the local cache derives or keeps for itself (the diffID is
// recomputed from the layer's bytes).
type RemoteResult struct {
	Layer     Digest
	LayerSize int64
	Log       Digest // zero: no log
	LogSize   int64
	ExitCode  int
}

// ErrRejected marks a remote cache entry whose content does not match it:
// a blob that does not hash to its digest or has another size, or a layer
// that is not a gzip stream. The entry is not used.
var ErrRejected = errors.New("remote cache entry rejected")

// Mode says which results a --cache-to remote receives.
type Mode int

const (
	// ModeMin exports the results of the actions whose layers are layers
	// of the targets' images.
	ModeMin Mode = iota
	// ModeMax exports the result of every action of the build.
	ModeMax
)

func (m Mode) String() string { return [...]string{"min", "max"}[m] }

// ParseRemote parses a remote cache reference, with an optional
// ",mode=min" or ",mode=max" at its end:
//
//	dir:PATH
//	http://HOST[:PORT]/PREFIX, https://...
//	registry:HOST[:PORT]/REPO
//
// Credentials never come from the reference (a URL with user info is an
// error): see Credentials.
func ParseRemote(ref string) (Remote, Mode, error) {
	mode := ModeMin
	spec := ref
	if i := strings.LastIndex(ref, ",mode="); i >= 0 {
		switch ref[i+len(",mode="):] {
		case "min":
		case "max":
			mode = ModeMax
		default:
			return nil, 0, fmt.Errorf("remote cache %q: mode must be min or max", ref)
		}
		spec = ref[:i]
	}
	switch {
	case strings.HasPrefix(spec, "dir:"):
		path := strings.TrimPrefix(spec, "dir:")
		if path == "" {
			return nil, 0, fmt.Errorf("remote cache %q: no directory", ref)
		}
		return NewDirRemote(path), mode, nil
	case strings.HasPrefix(spec, "http://"), strings.HasPrefix(spec, "https://"):
		r, err := NewHTTPRemote(spec)
		if err != nil {
			return nil, 0, fmt.Errorf("remote cache %q: %w", ref, err)
		}
		return r, mode, nil
	case strings.HasPrefix(spec, "registry:"):
		r, err := NewRegistryRemote(strings.TrimPrefix(spec, "registry:"))
		if err != nil {
			return nil, 0, fmt.Errorf("remote cache %q: %w", ref, err)
		}
		return r, mode, nil
	}
	return nil, 0, fmt.Errorf("remote cache %q: want dir:PATH, http(s)://HOST/PREFIX or registry:HOST/REPO", ref)
}

// Transfer counts the bytes of blobs and entries moved to or from remotes.
type Transfer struct {
	In, Out int64
}

// Pull fetches the entry of key from src and the blobs it names into
// store, verifying each, and returns the result as the local cache keeps
// it (with the diffID computed from the layer). Blobs already in store
// are not fetched again. An entry whose content does not match gives an
// error wrapping ErrRejected; a missing entry one wrapping ErrNotFound.
func Pull(ctx context.Context, src Source, key ActionKey, store *ContentStore) (Result, Transfer, error) {
	var t Transfer
	rr, err := src.Result(ctx, key)
	if err != nil {
		return Result{}, t, err
	}
	t.In += resultWireSize
	if rr.Layer.IsZero() {
		return Result{}, t, fmt.Errorf("%s: action %s: no layer: %w", src, key, ErrRejected)
	}
	diffID, n, err := pullLayer(ctx, src, rr.Layer, rr.LayerSize, store)
	t.In += n
	if err != nil {
		return Result{}, t, fmt.Errorf("%s: action %s: %w", src, key, err)
	}
	if !rr.Log.IsZero() {
		n, err := pullBlob(ctx, src, rr.Log, rr.LogSize, store)
		t.In += n
		if err != nil {
			return Result{}, t, fmt.Errorf("%s: action %s: log: %w", src, key, err)
		}
	}
	return Result{Layer: rr.Layer, DiffID: diffID, LayerSize: rr.LayerSize, Log: rr.Log, ExitCode: rr.ExitCode, Created: time.Now()}, t, nil
}

// resultWireSize approximates the bytes of one entry, for Transfer.
const resultWireSize = 200

// pullBlob copies blob d of size bytes from src into store unless it is
// there, and returns how many bytes it fetched.
func pullBlob(ctx context.Context, src Source, d Digest, size int64, store *ContentStore) (int64, error) {
	if got, err := store.Size(d); err == nil && got == size {
		return 0, nil
	}
	rc, err := src.Blob(ctx, d, size)
	if err != nil {
		return 0, err
	}
	defer rc.Close()
	w, err := store.Writer()
	if err != nil {
		return 0, err
	}
	defer w.Close()
	n, err := io.Copy(w, io.LimitReader(rc, size+1))
	if err != nil {
		return n, fmt.Errorf("fetching %s: %w", d, err)
	}
	if _, _, err := w.Commit(d, size); err != nil {
		return n, fmt.Errorf("%w: %w", ErrRejected, err)
	}
	return n, nil
}

// pullLayer is pullBlob for a gzipped layer: it also returns the diffID,
// the digest of the uncompressed bytes, rejecting what is not gzip. A
// layer already in store is read back for its diffID.
func pullLayer(ctx context.Context, src Source, d Digest, size int64, store *ContentStore) (Digest, int64, error) {
	var rc io.ReadCloser
	local := false
	if got, err := store.Size(d); err == nil && got == size {
		if rc, err = store.Open(d); err == nil {
			local = true
		}
	}
	if !local {
		var err error
		if rc, err = src.Blob(ctx, d, size); err != nil {
			return Digest{}, 0, err
		}
	}
	defer rc.Close()
	pr, pw := io.Pipe()
	type sum struct {
		d   Digest
		err error
	}
	done := make(chan sum, 1)
	go func() {
		h := sha256.New()
		zr, err := gzip.NewReader(pr)
		if err == nil {
			_, err = io.Copy(h, zr)
		}
		io.Copy(io.Discard, pr) // let the writer finish
		var s sum
		h.Sum(s.d[:0])
		s.err = err
		done <- s
	}()
	var w io.Writer = pw
	var cw *ContentWriter
	if !local {
		var err error
		if cw, err = store.Writer(); err != nil {
			pw.CloseWithError(err)
			<-done
			return Digest{}, 0, err
		}
		defer cw.Close()
		w = io.MultiWriter(cw, pw)
	}
	n, err := io.Copy(w, io.LimitReader(rc, size+1))
	pw.CloseWithError(err)
	s := <-done
	if local {
		n = 0
	}
	if err != nil {
		return Digest{}, n, fmt.Errorf("fetching %s: %w", d, err)
	}
	if s.err != nil {
		return Digest{}, n, fmt.Errorf("%w: layer %s: %w", ErrRejected, d, s.err)
	}
	if cw != nil {
		if _, _, err := cw.Commit(d, size); err != nil {
			return Digest{}, n, fmt.Errorf("%w: %w", ErrRejected, err)
		}
	}
	return s.d, n, nil
}

// Push stores the result of key and the blobs it names in dst, blobs
// first, skipping blobs dst holds. Blobs are read from store, verified.
func Push(ctx context.Context, dst Sink, key ActionKey, r Result, store *ContentStore) (Transfer, error) {
	return NewExporter(dst, store).Push(ctx, key, r)
}

// Exporter pushes results from a local store to one Sink, each blob at
// most once however many results name it. Safe for concurrent use.
type Exporter struct {
	dst   Sink
	store *ContentStore

	mu    sync.Mutex
	blobs map[Digest]*blobPush
}

type blobPush struct {
	done chan struct{}
	err  error
}

// NewExporter returns an Exporter from store to dst.
func NewExporter(dst Sink, store *ContentStore) *Exporter {
	return &Exporter{dst: dst, store: store, blobs: map[Digest]*blobPush{}}
}

// Push stores the result of key and the blobs it names, blobs first.
func (e *Exporter) Push(ctx context.Context, key ActionKey, r Result) (Transfer, error) {
	var t Transfer
	rr := RemoteResult{Layer: r.Layer, LayerSize: r.LayerSize, Log: r.Log, ExitCode: r.ExitCode}
	if !r.Log.IsZero() {
		size, err := e.store.Size(r.Log)
		if err != nil {
			return t, err
		}
		rr.LogSize = size
	}
	for _, b := range []struct {
		d    Digest
		size int64
	}{{rr.Layer, rr.LayerSize}, {rr.Log, rr.LogSize}} {
		if b.d.IsZero() {
			continue
		}
		n, err := e.pushBlob(ctx, b.d, b.size)
		t.Out += n
		if err != nil {
			return t, fmt.Errorf("%s: %w", e.dst, err)
		}
	}
	if err := e.dst.PutResult(ctx, key, rr); err != nil {
		return t, fmt.Errorf("%s: %w", e.dst, err)
	}
	t.Out += resultWireSize
	return t, nil
}

// pushBlob pushes blob d unless dst has it or another Push did, and
// returns the bytes sent.
func (e *Exporter) pushBlob(ctx context.Context, d Digest, size int64) (int64, error) {
	e.mu.Lock()
	if bp, ok := e.blobs[d]; ok {
		e.mu.Unlock()
		select {
		case <-bp.done:
			return 0, bp.err
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
	bp := &blobPush{done: make(chan struct{})}
	e.blobs[d] = bp
	e.mu.Unlock()
	defer close(bp.done)
	if ok, err := e.dst.HasBlob(ctx, d); err != nil || ok {
		bp.err = err
		return 0, err
	}
	rc, err := e.store.Open(d)
	if err != nil {
		bp.err = err
		return 0, err
	}
	defer rc.Close()
	cr := &countingReader{r: rc}
	bp.err = e.dst.PutBlob(ctx, d, size, cr)
	return cr.n, bp.err
}

// countingReader counts the bytes read through it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}
