package cache

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
)

// layerPath is the output file of an ActionResult that is the layer.
const layerPath = "layer.tar.gz"

// maxResultSize bounds what is read of an action-cache entry.
const maxResultSize = 1 << 20

// Field numbers of build.bazel.remote.execution.v2 messages.
const (
	arOutputFiles  = 2 // ActionResult.output_files, OutputFile
	arExitCode     = 4 // ActionResult.exit_code, int32
	arStdoutDigest = 6 // ActionResult.stdout_digest, Digest
	ofPath         = 1 // OutputFile.path
	ofDigest       = 2 // OutputFile.digest
	dgHash         = 1 // Digest.hash, lowercase hex
	dgSize         = 2 // Digest.size_bytes
)

// MarshalActionResult encodes r as an REAPI ActionResult protobuf, the
// value Bazel's remote caches keep under ac/: the layer is the output file
// "layer.tar.gz", the log is stdout.
func MarshalActionResult(r RemoteResult) []byte {
	digest := func(d Digest, size int64) []byte {
		var b []byte
		b = protowire.AppendTag(b, dgHash, protowire.BytesType)
		b = protowire.AppendString(b, d.Hex())
		if size != 0 {
			b = protowire.AppendTag(b, dgSize, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(size))
		}
		return b
	}
	var of []byte
	of = protowire.AppendTag(of, ofPath, protowire.BytesType)
	of = protowire.AppendString(of, layerPath)
	of = protowire.AppendTag(of, ofDigest, protowire.BytesType)
	of = protowire.AppendBytes(of, digest(r.Layer, r.LayerSize))
	var b []byte
	b = protowire.AppendTag(b, arOutputFiles, protowire.BytesType)
	b = protowire.AppendBytes(b, of)
	if r.ExitCode != 0 {
		b = protowire.AppendTag(b, arExitCode, protowire.VarintType)
		b = protowire.AppendVarint(b, uint64(int64(int32(r.ExitCode))))
	}
	if !r.Log.IsZero() {
		b = protowire.AppendTag(b, arStdoutDigest, protowire.BytesType)
		b = protowire.AppendBytes(b, digest(r.Log, r.LogSize))
	}
	return b
}

// UnmarshalActionResult decodes the fields of an ActionResult that
// MarshalActionResult writes, skipping any others.
func UnmarshalActionResult(b []byte) (RemoteResult, error) {
	var r RemoteResult
	found := false
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		switch {
		case num == arOutputFiles && typ == protowire.BytesType:
			var path string
			var d Digest
			var size int64
			err := fields(v, func(num protowire.Number, typ protowire.Type, v []byte, _ uint64) error {
				switch {
				case num == ofPath && typ == protowire.BytesType:
					path = string(v)
				case num == ofDigest && typ == protowire.BytesType:
					var err error
					d, size, err = parseDigestMsg(v)
					return err
				}
				return nil
			})
			if err != nil {
				return err
			}
			if path == layerPath {
				r.Layer, r.LayerSize, found = d, size, true
			}
		case num == arExitCode && typ == protowire.VarintType:
			r.ExitCode = int(int32(n))
		case num == arStdoutDigest && typ == protowire.BytesType:
			var err error
			r.Log, r.LogSize, err = parseDigestMsg(v)
			return err
		}
		return nil
	})
	if err != nil {
		return RemoteResult{}, fmt.Errorf("decoding action result: %w", err)
	}
	if !found {
		return RemoteResult{}, fmt.Errorf("action result has no %s output", layerPath)
	}
	return r, nil
}

func parseDigestMsg(b []byte) (Digest, int64, error) {
	var d Digest
	var size int64
	err := fields(b, func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error {
		switch {
		case num == dgHash && typ == protowire.BytesType:
			if len(v) != 2*len(d) {
				return fmt.Errorf("digest %q: %w", v, ErrBadDigest)
			}
			if _, err := hex.Decode(d[:], v); err != nil {
				return fmt.Errorf("digest %q: %w", v, ErrBadDigest)
			}
		case num == dgSize && typ == protowire.VarintType:
			size = int64(n)
		}
		return nil
	})
	if size < 0 {
		return d, 0, fmt.Errorf("negative size %d", size)
	}
	return d, size, err
}

// fields calls fn for each field of a protobuf message: bytes fields get
// v, varints n.
func fields(b []byte, fn func(num protowire.Number, typ protowire.Type, v []byte, n uint64) error) error {
	for len(b) > 0 {
		num, typ, l := protowire.ConsumeTag(b)
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		var v []byte
		var n uint64
		switch typ {
		case protowire.BytesType:
			v, l = protowire.ConsumeBytes(b)
		case protowire.VarintType:
			n, l = protowire.ConsumeVarint(b)
		default:
			l = protowire.ConsumeFieldValue(num, typ, b)
		}
		if l < 0 {
			return protowire.ParseError(l)
		}
		b = b[l:]
		if err := fn(num, typ, v, n); err != nil {
			return err
		}
	}
	return nil
}

// store is the storage under a Bazel-style remote: two namespaces, "ac"
// and "cas", of named values.
type store interface {
	get(ctx context.Context, ns, name string) (io.ReadCloser, error) // ErrNotFound when absent
	has(ctx context.Context, ns, name string) (bool, error)
	put(ctx context.Context, ns, name string, size int64, r io.Reader) error
}

// bazelRemote is a Remote over a store, in Bazel's layout.
type bazelRemote struct {
	s    store
	name string
}

var _ Remote = (*bazelRemote)(nil)

func (b *bazelRemote) String() string { return b.name }

func (b *bazelRemote) Result(ctx context.Context, key ActionKey) (RemoteResult, error) {
	rc, err := b.s.get(ctx, "ac", key.String())
	if err != nil {
		return RemoteResult{}, err
	}
	defer rc.Close()
	data, err := io.ReadAll(io.LimitReader(rc, maxResultSize))
	if err != nil {
		return RemoteResult{}, fmt.Errorf("reading action %s: %w", key, err)
	}
	r, err := UnmarshalActionResult(data)
	if err != nil {
		return RemoteResult{}, fmt.Errorf("action %s: %w: %w", key, ErrRejected, err)
	}
	return r, nil
}

func (b *bazelRemote) Blob(ctx context.Context, d Digest, _ int64) (io.ReadCloser, error) {
	return b.s.get(ctx, "cas", d.Hex())
}

func (b *bazelRemote) HasBlob(ctx context.Context, d Digest) (bool, error) {
	return b.s.has(ctx, "cas", d.Hex())
}

func (b *bazelRemote) PutBlob(ctx context.Context, d Digest, size int64, r io.Reader) error {
	return b.s.put(ctx, "cas", d.Hex(), size, r)
}

func (b *bazelRemote) PutResult(ctx context.Context, key ActionKey, r RemoteResult) error {
	data := MarshalActionResult(r)
	return b.s.put(ctx, "ac", key.String(), int64(len(data)), bytes.NewReader(data))
}

// NewDirRemote returns the remote cache in directory dir, laid out as
// Bazel's disk cache is: dir/ac/<key hex>, dir/cas/<sha256 hex>. Entries
// are written to dir/tmp and renamed into place, so several processes may
// share it and a killed one leaves only temp files, which the first write
// of a later process removes once they are an hour old.
func NewDirRemote(dir string) Remote {
	return &bazelRemote{s: &dirStore{dir: dir}, name: "dir:" + dir}
}

type dirStore struct {
	dir   string
	swept sync.Once
}

func (d *dirStore) path(ns, name string) string { return filepath.Join(d.dir, ns, name) }

// sweep removes temp files of killed writers.
func (d *dirStore) sweep() {
	tmp := filepath.Join(d.dir, "tmp")
	ents, _ := os.ReadDir(tmp)
	for _, e := range ents {
		if fi, err := e.Info(); err == nil && time.Since(fi.ModTime()) > time.Hour {
			os.Remove(filepath.Join(tmp, e.Name()))
		}
	}
}

func (d *dirStore) get(_ context.Context, ns, name string) (io.ReadCloser, error) {
	f, err := os.Open(d.path(ns, name))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("%s/%s: %w", ns, name, ErrNotFound)
	}
	return f, err
}

func (d *dirStore) has(_ context.Context, ns, name string) (bool, error) {
	_, err := os.Stat(d.path(ns, name))
	if errors.Is(err, fs.ErrNotExist) {
		return false, nil
	}
	return err == nil, err
}

func (d *dirStore) put(_ context.Context, ns, name string, size int64, r io.Reader) error {
	d.swept.Do(d.sweep)
	tmp := filepath.Join(d.dir, "tmp")
	for _, dir := range []string{tmp, filepath.Join(d.dir, ns)} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
	}
	f, err := os.CreateTemp(tmp, name+".*")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	n, err := io.Copy(f, r)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil && n != size {
		err = fmt.Errorf("%s/%s: wrote %d bytes, want %d", ns, name, n, size)
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), d.path(ns, name))
}

// FsckDir verifies the remote cache directory dir (as NewDirRemote lays it
// out): every blob of cas/ against its digest, and every entry of ac/
// decodes and names blobs of cas/ of the sizes it says. It changes nothing.
func FsckDir(dir string) (FsckReport, error) {
	var rep FsckReport
	sizes := map[Digest]int64{}
	blobs, err := os.ReadDir(filepath.Join(dir, "cas"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return rep, err
	}
	for _, e := range blobs {
		rep.Blobs++
		d, err := ParseDigest("sha256:" + e.Name())
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("cas/%s: not a sha256 digest", e.Name()))
			continue
		}
		f, err := os.Open(filepath.Join(dir, "cas", e.Name()))
		if err != nil {
			return rep, err
		}
		h := sha256.New()
		n, err := io.Copy(h, f)
		f.Close()
		if err != nil {
			return rep, err
		}
		if got := Digest(h.Sum(nil)); got != d {
			rep.Problems = append(rep.Problems, fmt.Sprintf("cas/%s: hashes to %s", e.Name(), got))
			continue
		}
		sizes[d] = n
	}
	entries, err := os.ReadDir(filepath.Join(dir, "ac"))
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return rep, err
	}
	for _, e := range entries {
		rep.Results++
		data, err := os.ReadFile(filepath.Join(dir, "ac", e.Name()))
		if err != nil {
			return rep, err
		}
		rr, err := UnmarshalActionResult(data)
		if err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("ac/%s: %v", e.Name(), err))
			continue
		}
		for _, b := range []struct {
			what string
			d    Digest
			size int64
		}{{"layer", rr.Layer, rr.LayerSize}, {"log", rr.Log, rr.LogSize}} {
			if b.what == "log" && b.d.IsZero() {
				continue
			}
			if size, ok := sizes[b.d]; !ok {
				rep.Problems = append(rep.Problems, fmt.Sprintf("ac/%s: %s %s is not in cas/ (or does not verify)", e.Name(), b.what, b.d))
			} else if size != b.size {
				rep.Problems = append(rep.Problems, fmt.Sprintf("ac/%s: %s %s is %d bytes, the entry says %d", e.Name(), b.what, b.d, size, b.size))
			}
		}
	}
	return rep, nil
}
