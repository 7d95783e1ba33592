package cache

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stagex/sxmake/cache/cachetest"
	"google.golang.org/protobuf/encoding/protowire"
)

func gzipped(t *testing.T, raw string) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	zw.Write([]byte(raw))
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func TestActionResultRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		r    RemoteResult
	}{
		{"layer only", RemoteResult{Layer: DigestOf([]byte("l")), LayerSize: 123}},
		{"layer and log", RemoteResult{Layer: DigestOf([]byte("l")), LayerSize: 1 << 40, Log: DigestOf([]byte("log")), LogSize: 7}},
		{"exit code", RemoteResult{Layer: DigestOf([]byte("l")), LayerSize: 1, ExitCode: -1}},
		{"empty layer", RemoteResult{Layer: DigestOf(nil)}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := UnmarshalActionResult(MarshalActionResult(tc.r))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.r, got); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
		})
	}
}

// An ActionResult written by another client, with fields sxmake does not
// use and several output files, decodes to the layer output.
func TestActionResultForeignFields(t *testing.T) {
	layer := DigestOf([]byte("layer"))
	digest := func(d Digest, size int64) []byte {
		b := protowire.AppendTag(nil, dgHash, protowire.BytesType)
		b = protowire.AppendString(b, d.Hex())
		b = protowire.AppendTag(b, dgSize, protowire.VarintType)
		return protowire.AppendVarint(b, uint64(size))
	}
	file := func(path string, d Digest, size int64) []byte {
		b := protowire.AppendTag(nil, ofPath, protowire.BytesType)
		b = protowire.AppendString(b, path)
		b = protowire.AppendTag(b, 4, protowire.VarintType) // is_executable
		b = protowire.AppendVarint(b, 1)
		b = protowire.AppendTag(b, ofDigest, protowire.BytesType)
		return protowire.AppendBytes(b, digest(d, size))
	}
	var b []byte
	b = protowire.AppendTag(b, arOutputFiles, protowire.BytesType)
	b = protowire.AppendBytes(b, file("other", DigestOf([]byte("x")), 1))
	b = protowire.AppendTag(b, 9, protowire.BytesType) // execution_metadata
	b = protowire.AppendBytes(b, []byte{0x0a, 0x01, 'w'})
	b = protowire.AppendTag(b, arOutputFiles, protowire.BytesType)
	b = protowire.AppendBytes(b, file(layerPath, layer, 42))
	got, err := UnmarshalActionResult(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(RemoteResult{Layer: layer, LayerSize: 42}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
	if _, err := UnmarshalActionResult([]byte{0xff, 0xff}); err == nil {
		t.Error("garbage decoded without error")
	}
}

// memServer is an HTTP cache server in memory speaking Bazel's protocol,
// a fake for the conformance suite (the nginx test uses a real one).
func memServer(t *testing.T) *httptest.Server {
	var mu sync.Mutex
	m := map[string][]byte{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		switch r.Method {
		case http.MethodGet, http.MethodHead:
			v, ok := m[r.URL.Path]
			if !ok {
				http.NotFound(w, r)
				return
			}
			w.Write(v)
		case http.MethodPut:
			v, _ := io.ReadAll(r.Body)
			m[r.URL.Path] = v
			w.WriteHeader(http.StatusCreated)
		}
	}))
	t.Cleanup(srv.Close)
	return srv
}

// remoteSuite is the conformance suite of Remote implementations.
func remoteSuite(t *testing.T, newRemote func(t *testing.T) Remote) {
	ctx := context.Background()
	t.Run("missing", func(t *testing.T) {
		r := newRemote(t)
		if _, err := r.Result(ctx, ActionKey{1}); !errors.Is(err, ErrNotFound) {
			t.Errorf("Result of a missing key: %v, want ErrNotFound", err)
		}
		if _, err := r.Blob(ctx, DigestOf([]byte("x")), 1); !errors.Is(err, ErrNotFound) {
			t.Errorf("Blob of a missing digest: %v, want ErrNotFound", err)
		}
		if ok, err := r.HasBlob(ctx, DigestOf([]byte("x"))); ok || err != nil {
			t.Errorf("HasBlob of a missing digest: %v, %v", ok, err)
		}
	})
	t.Run("push and pull", func(t *testing.T) {
		r := newRemote(t)
		src, dst := newStore(t), newStore(t)
		layer := gzipped(t, "the layer's tar")
		ld, ls, err := src.Ingest(bytes.NewReader(layer), Digest{})
		if err != nil {
			t.Fatal(err)
		}
		logd, _, _ := src.Ingest(strings.NewReader("make: done\n"), Digest{})
		want := Result{Layer: ld, DiffID: DigestOf([]byte("the layer's tar")), LayerSize: ls, Log: logd}
		key := ActionKey{7}
		if _, err := Push(ctx, r, key, want, src); err != nil {
			t.Fatal(err)
		}
		// Pushing again sends no blob (HasBlob, or the registry's own check).
		if tr, err := Push(ctx, r, key, want, src); err != nil || tr.Out != resultWireSize {
			t.Errorf("second push: %d bytes out, %v; want only the entry", tr.Out, err)
		}
		got, tr, err := Pull(ctx, r, key, dst)
		if err != nil {
			t.Fatal(err)
		}
		got.Created = time.Time{}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("pulled result (-want +got):\n%s", diff)
		}
		if tr.In < ls {
			t.Errorf("transfer in %d bytes, less than the layer's %d", tr.In, ls)
		}
		for _, d := range []Digest{ld, logd} {
			if err := dst.Verify(d); err != nil {
				t.Errorf("pulled blob: %v", err)
			}
		}
		// A second pull fetches no blob.
		if _, tr, err := Pull(ctx, r, key, dst); err != nil || tr.In != resultWireSize {
			t.Errorf("second pull: %d bytes in, %v; want only the entry", tr.In, err)
		}
	})
}

func newStore(t *testing.T) *ContentStore {
	t.Helper()
	s, err := OpenContentStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestDirRemote(t *testing.T) {
	remoteSuite(t, func(t *testing.T) Remote { return NewDirRemote(filepath.Join(t.TempDir(), "remote")) })
}

func TestHTTPRemoteNginx(t *testing.T) {
	remoteSuite(t, func(t *testing.T) Remote {
		url, _ := cachetest.Nginx(t)
		r, err := NewHTTPRemote(url)
		if err != nil {
			t.Fatal(err)
		}
		return r
	})
}

func TestRegistryRemote(t *testing.T) {
	remoteSuite(t, func(t *testing.T) Remote {
		host, _ := cachetest.Registry(t)
		r, err := NewRegistryRemote(host + "/sxmake/cache")
		if err != nil {
			t.Fatal(err)
		}
		return r
	})
}

func TestHTTPRemoteFake(t *testing.T) {
	remoteSuite(t, func(t *testing.T) Remote {
		r, err := NewHTTPRemote(memServer(t).URL + "/prefix/")
		if err != nil {
			t.Fatal(err)
		}
		return r
	})
}

// Entries whose content does not match are rejected, and nothing of them
// reaches the local store.
func TestPullRejectsPoison(t *testing.T) {
	ctx := context.Background()
	good := gzipped(t, "good layer")
	evil := gzipped(t, "evil layer")
	notGzip := []byte("not a gzip stream")
	tests := []struct {
		name    string
		entry   RemoteResult
		blobs   map[Digest][]byte // what the remote's cas/ holds under each digest
		wantErr error
	}{
		{"blob does not hash to its digest", RemoteResult{Layer: DigestOf(good), LayerSize: int64(len(evil))},
			map[Digest][]byte{DigestOf(good): evil}, ErrRejected},
		{"size differs", RemoteResult{Layer: DigestOf(good), LayerSize: int64(len(good)) - 1},
			map[Digest][]byte{DigestOf(good): good}, ErrRejected},
		{"layer is not gzip", RemoteResult{Layer: DigestOf(notGzip), LayerSize: int64(len(notGzip))},
			map[Digest][]byte{DigestOf(notGzip): notGzip}, ErrRejected},
		{"log does not match", RemoteResult{Layer: DigestOf(good), LayerSize: int64(len(good)), Log: DigestOf([]byte("log")), LogSize: 3},
			map[Digest][]byte{DigestOf(good): good, DigestOf([]byte("log")): []byte("gol")}, ErrRejected},
		{"blob missing", RemoteResult{Layer: DigestOf(good), LayerSize: int64(len(good))}, nil, ErrNotFound},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			r := NewDirRemote(dir)
			for d, b := range tc.blobs {
				writeFile(t, filepath.Join(dir, "cas", d.Hex()), b)
			}
			key := ActionKey{9}
			writeFile(t, filepath.Join(dir, "ac", key.String()), MarshalActionResult(tc.entry))
			dst := newStore(t)
			_, _, err := Pull(ctx, r, key, dst)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("Pull: %v, want %v", err, tc.wantErr)
			}
			var stored []Digest
			dst.Walk(func(d Digest, _ int64) error { stored = append(stored, d); return nil })
			for _, d := range stored {
				if d == tc.entry.Layer && !bytes.Equal(tc.blobs[d], good) {
					t.Errorf("the rejected layer %s was stored", d)
				}
				if d == tc.entry.Log {
					t.Errorf("the rejected log %s was stored", d)
				}
			}
		})
	}
	t.Run("garbage entry", func(t *testing.T) {
		dir := t.TempDir()
		writeFile(t, filepath.Join(dir, "ac", ActionKey{1}.String()), []byte("\xff\xff\xff"))
		if _, _, err := Pull(ctx, NewDirRemote(dir), ActionKey{1}, newStore(t)); !errors.Is(err, ErrRejected) {
			t.Errorf("Pull: %v, want ErrRejected", err)
		}
	})
}

func writeFile(t *testing.T, path string, b []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestParseRemote(t *testing.T) {
	tests := []struct {
		ref      string
		wantName string
		wantMode Mode
		wantErr  string
	}{
		{"dir:/tmp/c", "dir:/tmp/c", ModeMin, ""},
		{"dir:/tmp/c,mode=max", "dir:/tmp/c", ModeMax, ""},
		{"dir:/tmp/c,mode=min", "dir:/tmp/c", ModeMin, ""},
		{"http://127.0.0.1:8080/cache/", "http://127.0.0.1:8080/cache", ModeMin, ""},
		{"https://cache.example/x,mode=max", "https://cache.example/x", ModeMax, ""},
		{"dir:/tmp/c,mode=all", "", 0, "mode must be min or max"},
		{"dir:", "", 0, "no directory"},
		{"https://user:pw@cache.example/x", "", 0, "credentials do not belong in the URL"},
		{"s3://bucket", "", 0, "want dir:PATH"},
	}
	for _, tc := range tests {
		t.Run(tc.ref, func(t *testing.T) {
			r, mode, err := ParseRemote(tc.ref)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("error %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff([]any{tc.wantName, tc.wantMode}, []any{r.String(), mode}); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestCredentials(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	t.Setenv("DOCKER_CONFIG", "")
	t.Setenv("SXMAKE_CACHE_AUTH", "")
	t.Setenv("DOCKER_AUTH_CONFIG", `{"auths":{"env.example":{"auth":"ZW52dXNlcjplbnZwYXNz"}}}`)
	writeFile(t, filepath.Join(home, ".docker", "config.json"), []byte(`{"auths":{"https://file.example":{"auth":"ZmlsZXVzZXI6ZmlsZTpwYXNz"}}}`))
	tests := []struct {
		host, user, pass string
		ok               bool
	}{
		{"env.example", "envuser", "envpass", true},
		{"file.example", "fileuser", "file:pass", true},
		{"other.example", "", "", false},
	}
	for _, tc := range tests {
		u, p, ok := Credentials(tc.host)
		if diff := cmp.Diff([]any{tc.user, tc.pass, tc.ok}, []any{u, p, ok}); diff != "" {
			t.Errorf("%s (-want +got):\n%s", tc.host, diff)
		}
	}
}

// FsckDir finds nothing wrong in a remote directory Push wrote, and finds
// a changed blob and an entry whose blob is gone.
func TestFsckDir(t *testing.T) {
	ctx := context.Background()
	dir := filepath.Join(t.TempDir(), "remote")
	src := newStore(t)
	ld, ls, _ := src.Ingest(bytes.NewReader(gzipped(t, "layer")), Digest{})
	if _, err := Push(ctx, NewDirRemote(dir), ActionKey{1}, Result{Layer: ld, LayerSize: ls}, src); err != nil {
		t.Fatal(err)
	}
	rep, err := FsckDir(dir)
	if err != nil || len(rep.Problems) != 0 || rep.Results != 1 || rep.Blobs != 1 {
		t.Fatalf("sound remote: %+v, %v", rep, err)
	}
	writeFile(t, filepath.Join(dir, "cas", ld.Hex()), []byte("changed"))
	rep, _ = FsckDir(dir)
	want := []string{
		"cas/" + ld.Hex() + ": hashes to " + DigestOf([]byte("changed")).String(),
		"ac/" + ActionKey{1}.String() + ": layer " + ld.String() + " is not in cas/ (or does not verify)",
	}
	if diff := cmp.Diff(want, rep.Problems); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
}

// The HTTP remote sends the credentials of SXMAKE_CACHE_AUTH; without
// them the server's refusal is an error, not a miss.
func TestHTTPRemoteAuth(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "ci" || p != "s3cret" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	r, err := NewHTTPRemote(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	t.Setenv("DOCKER_CONFIG", t.TempDir())
	t.Setenv("DOCKER_AUTH_CONFIG", "")
	t.Setenv("SXMAKE_CACHE_AUTH", "")
	if _, err := r.Result(context.Background(), ActionKey{1}); err == nil || errors.Is(err, ErrNotFound) {
		t.Errorf("without credentials: %v, want a refusal", err)
	}
	t.Setenv("SXMAKE_CACHE_AUTH", "ci:s3cret")
	if _, err := r.Result(context.Background(), ActionKey{1}); !errors.Is(err, ErrNotFound) {
		t.Errorf("with credentials: %v, want ErrNotFound", err)
	}
}
