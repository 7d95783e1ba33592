package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stagex/sxmake/cache"
)

// tarDir writes the files under dir as a tar to file, names relative to
// dir, sorted; gzipped if zip.
func tarDir(t *testing.T, dir, file string, zip bool) {
	t.Helper()
	var buf bytes.Buffer
	var w io.Writer = &buf
	var zw *gzip.Writer
	if zip {
		zw = gzip.NewWriter(&buf)
		w = zw
	}
	tw := tar.NewWriter(w)
	var names []string
	filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			rel, _ := filepath.Rel(dir, p)
			names = append(names, rel)
		}
		return err
	})
	sort.Strings(names)
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		tw.WriteHeader(&tar.Header{Name: n, Mode: 0o644, Size: int64(len(b)), Typeflag: tar.TypeReg})
		tw.Write(b)
	}
	tw.Close()
	if zw != nil {
		zw.Close()
	}
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

// gunzipBlob returns the gunzipped content of blob d of store.
func gunzipBlob(t *testing.T, store *cache.ContentStore, d Digest) []byte {
	t.Helper()
	r, err := store.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	zr, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// dockerArchive writes img as `docker save` would: manifest.json, the
// config as <hex>.json and each layer as <n>/layer.tar (uncompressed).
func dockerArchive(t *testing.T, img *Image, store *cache.ContentStore, file string) {
	t.Helper()
	dir := t.TempDir()
	entry := dockerManifest{Config: img.Config.Digest.Hex() + ".json", RepoTags: []string{"core-test:latest"}}
	os.WriteFile(filepath.Join(dir, entry.Config), img.Config.Bytes, 0o644)
	for i, l := range img.Layers {
		name := filepath.Join(string(rune('a'+i)), "layer.tar")
		os.MkdirAll(filepath.Join(dir, filepath.Dir(name)), 0o755)
		os.WriteFile(filepath.Join(dir, name), gunzipBlob(t, store, l.Digest), 0o644)
		entry.Layers = append(entry.Layers, name)
	}
	b, _ := json.Marshal([]dockerManifest{entry})
	os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o644)
	tarDir(t, dir, file, false)
}

func TestReadAndImport(t *testing.T) {
	img, store := testImage(t)
	layout := t.TempDir()
	if err := WriteLayout(layout, img, store); err != nil {
		t.Fatal(err)
	}
	tmp := t.TempDir()
	ociTar, ociTgz, docker := filepath.Join(tmp, "oci.tar"), filepath.Join(tmp, "oci.tar.gz"), filepath.Join(tmp, "docker.tar")
	tarDir(t, layout, ociTar, false)
	tarDir(t, layout, ociTgz, true)
	dockerArchive(t, img, store, docker)

	// docker-archive layers are stored gzipped: same diffIDs and config,
	// a new manifest.
	dockerManifestBytes, _ := json.MarshalIndent(Manifest{
		SchemaVersion: 2, MediaType: MediaTypeManifest, Config: img.Config.Descriptor,
		Layers: []Descriptor{{MediaType: MediaTypeLayerGzip, Digest: img.Layers[0].Digest, Size: img.Layers[0].Size}},
	}, "", "  ")
	for _, tc := range []struct {
		name     string
		read     func() (*Source, error)
		manifest []byte
	}{
		{"layout", func() (*Source, error) { return ReadLayout(layout) }, img.Manifest.Bytes},
		{"oci archive", func() (*Source, error) { return ReadArchive(ociTar) }, img.Manifest.Bytes},
		{"gzipped oci archive", func() (*Source, error) { return ReadArchive(ociTgz) }, img.Manifest.Bytes},
		{"docker archive", func() (*Source, error) { return ReadArchive(docker) }, dockerManifestBytes},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := tc.read()
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			dst, err := cache.OpenContentStore(t.TempDir())
			if err != nil {
				t.Fatal(err)
			}
			got, err := Import(src, dst)
			if err != nil {
				t.Fatal(err)
			}
			want := Imported{
				Manifest: Descriptor{MediaType: MediaTypeManifest, Digest: DigestOf(tc.manifest), Size: int64(len(tc.manifest)),
					Platform: &Platform{OS: "linux", Architecture: "amd64"}},
				Config: img.Config.Descriptor,
			}
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("Import (-want +got):\n%s", diff)
			}
			for _, d := range []Digest{got.Manifest.Digest, got.Config.Digest, img.Layers[0].Digest} {
				if err := dst.Verify(d); err != nil {
					t.Errorf("blob %s not imported: %v", d, err)
				}
			}
			if diff := cmp.Diff(gunzipBlob(t, store, img.Layers[0].Digest), gunzipBlob(t, dst, img.Layers[0].Digest)); diff != "" {
				t.Errorf("layer content (-want +got):\n%s", diff)
			}
		})
	}
}

// multiPlatformLayout writes a layout whose index.json points at an index
// that nests a one-platform index per image (BuildKit's shape, one level
// deeper), and returns its directory.
func multiPlatformLayout(t *testing.T, imgs []*Image, store *cache.ContentStore) string {
	t.Helper()
	dir := t.TempDir()
	bdir := filepath.Join(dir, "blobs", "sha256")
	os.MkdirAll(bdir, 0o755)
	put := func(b []byte) {
		os.WriteFile(filepath.Join(bdir, DigestOf(b).Hex()), b, 0o644)
	}
	var nested []Descriptor
	for _, img := range imgs {
		for _, b := range []Blob{img.Config, img.Manifest, img.Index} {
			put(b.Bytes)
		}
		for _, l := range img.Layers {
			put(gzipBlobBytes(t, store, l.Digest))
		}
		nested = append(nested, img.Index.Descriptor)
	}
	outer, _ := json.Marshal(Index{SchemaVersion: 2, MediaType: MediaTypeIndex, Manifests: nested})
	put(outer)
	top, _ := json.Marshal(Index{SchemaVersion: 2, MediaType: MediaTypeIndex, Manifests: []Descriptor{newBlob(MediaTypeIndex, outer).Descriptor}})
	os.WriteFile(filepath.Join(dir, "index.json"), top, 0o644)
	os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(layoutFile), 0o644)
	return dir
}

func gzipBlobBytes(t *testing.T, store *cache.ContentStore, d Digest) []byte {
	r, err := store.Open(d)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestReadSelectsPlatform(t *testing.T) {
	amd, store := testImage(t)
	c := NewConfig(Platform{Architecture: "arm64", OS: "linux", Variant: "v8"})
	arm, err := New("core-test", c, amd.Layers, WithEpoch(epoch1))
	if err != nil {
		t.Fatal(err)
	}
	dir := multiPlatformLayout(t, []*Image{amd, arm}, store)
	for _, tc := range []struct {
		name string
		opts []ReadOption
		want Digest
		err  error
	}{
		{"default linux/amd64", nil, amd.Manifest.Digest, nil},
		{"linux/arm64", []ReadOption{ForPlatform(Platform{OS: "linux", Architecture: "arm64"})}, arm.Manifest.Digest, nil},
		{"linux/arm64/v8", []ReadOption{ForPlatform(Platform{OS: "linux", Architecture: "arm64", Variant: "v8"})}, arm.Manifest.Digest, nil},
		{"linux/arm64/v7", []ReadOption{ForPlatform(Platform{OS: "linux", Architecture: "arm64", Variant: "v7"})}, Digest{}, ErrNoPlatform},
		{"linux/riscv64", []ReadOption{ForPlatform(Platform{OS: "linux", Architecture: "riscv64"})}, Digest{}, ErrNoPlatform},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src, err := ReadLayout(dir, tc.opts...)
			if !errors.Is(err, tc.err) {
				t.Fatalf("ReadLayout error = %v, want %v", err, tc.err)
			}
			if err != nil {
				return
			}
			if diff := cmp.Diff(tc.want, src.ManifestBlob.Digest); diff != "" {
				t.Errorf("manifest (-want +got):\n%s", diff)
			}
		})
	}
}

func TestReadRefusesCorruptBlobs(t *testing.T) {
	img, store := testImage(t)
	for _, tc := range []struct {
		name   string
		blob   func() Digest
		atRead bool // the JSON blobs are checked when read, layers when imported
	}{
		{"layer", func() Digest { return img.Layers[0].Digest }, false},
		{"config", func() Digest { return img.Config.Digest }, true},
		{"manifest", func() Digest { return img.Manifest.Digest }, true},
		{"nested index", func() Digest { return img.Index.Digest }, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			layout := t.TempDir()
			if err := WriteLayout(layout, img, store); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(layout, "blobs", "sha256", tc.blob().Hex())
			b, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			b[len(b)/2] ^= 1 // same size, other content
			os.Chmod(p, 0o644)
			if err := os.WriteFile(p, b, 0o644); err != nil {
				t.Fatal(err)
			}
			dst, _ := cache.OpenContentStore(t.TempDir())
			src, err := ReadLayout(layout)
			if err == nil {
				_, err = Import(src, dst)
			}
			if !errors.Is(err, cache.ErrDigestMismatch) {
				t.Fatalf("error = %v, want ErrDigestMismatch", err)
			}
			if tc.atRead != (src == nil) {
				t.Errorf("refused at read: %v, want %v", src == nil, tc.atRead)
			}
			if _, err := dst.Size(tc.blob()); !errors.Is(err, cache.ErrNotFound) {
				t.Errorf("corrupt blob stored: %v", err)
			}
		})
	}
}

func TestReadRootfsIsReproducible(t *testing.T) {
	write := func(mtime time.Time, zip bool) string {
		var buf bytes.Buffer
		var w io.Writer = &buf
		zw := gzip.NewWriter(&buf)
		if zip {
			w = zw
		}
		tw := tar.NewWriter(w)
		tw.WriteHeader(&tar.Header{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: mtime})
		tw.WriteHeader(&tar.Header{Name: "bin/sh", Typeflag: tar.TypeReg, Mode: 0o755, Size: 2, ModTime: mtime})
		tw.Write([]byte("#!"))
		tw.Close()
		zw.Close()
		f := filepath.Join(t.TempDir(), "rootfs.tar")
		os.WriteFile(f, buf.Bytes(), 0o644)
		return f
	}
	var digests []Digest
	for _, tc := range []struct {
		mtime time.Time
		zip   bool
	}{{time.Unix(1e9, 0), false}, {time.Unix(2e9, 0), false}, {time.Unix(1e9, 0), true}} {
		src, err := ReadRootfs(write(tc.mtime, tc.zip), epoch1)
		if err != nil {
			t.Fatal(err)
		}
		dst, _ := cache.OpenContentStore(t.TempDir())
		got, err := Import(src, dst)
		src.Close()
		if err != nil {
			t.Fatal(err)
		}
		digests = append(digests, got.Manifest.Digest)
		var names []string
		tr := tar.NewReader(bytes.NewReader(gunzipBlob(t, dst, src.Manifest.Layers[0].Digest)))
		for {
			h, err := tr.Next()
			if err != nil {
				break
			}
			if !h.ModTime.Equal(time.Unix(1, 0)) {
				t.Errorf("%s: mtime %v, want the epoch", h.Name, h.ModTime)
			}
			names = append(names, h.Name)
		}
		if diff := cmp.Diff([]string{"bin/", "bin/sh"}, names); diff != "" {
			t.Errorf("layer entries (-want +got):\n%s", diff)
		}
	}
	for _, d := range digests[1:] {
		if d != digests[0] {
			t.Errorf("manifest digests differ for the same tree: %v", digests)
		}
	}
}

// FuzzReadArchive feeds arbitrary bytes to ReadArchive as a tarball: it
// must fail cleanly or give a Source whose layers read (or fail) cleanly.
func FuzzReadArchive(f *testing.F) {
	tarOf := func(files ...string) []byte {
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for i := 0; i+1 < len(files); i += 2 {
			tw.WriteHeader(&tar.Header{Name: files[i], Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(files[i+1]))})
			tw.Write([]byte(files[i+1]))
		}
		tw.Close()
		return buf.Bytes()
	}
	f.Add(tarOf("index.json", `{"schemaVersion":2,"manifests":[{"mediaType":"application/vnd.oci.image.manifest.v1+json","digest":"sha256:0000000000000000000000000000000000000000000000000000000000000000","size":2}]}`))
	f.Add(tarOf("manifest.json", `[{"Config":"c.json","Layers":["l/layer.tar"]}]`, "c.json", `{"os":"linux","architecture":"amd64","rootfs":{"type":"layers","diff_ids":["sha256:0000000000000000000000000000000000000000000000000000000000000000"]}}`, "l/layer.tar", ""))
	f.Add([]byte{0x1f, 0x8b, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		file := filepath.Join(t.TempDir(), "a.tar")
		if err := os.WriteFile(file, data, 0o644); err != nil {
			t.Fatal(err)
		}
		src, err := ReadArchive(file)
		if err != nil {
			return
		}
		defer src.Close()
		for i := range src.Manifest.Layers {
			if r, err := src.OpenLayer(i); err == nil {
				io.Copy(io.Discard, io.LimitReader(r, 1<<20))
				r.Close()
			}
		}
	})
}
