package image

import (
	"archive/tar"
	"bytes"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stagex/sxmake/cache"
)

func TestNormalizeName(t *testing.T) {
	for _, tc := range []struct{ in, full, tag string }{
		{"core-foo", "docker.io/library/core-foo:latest", "latest"},
		{"stagex/core-foo", "docker.io/stagex/core-foo:latest", "latest"},
		{"stagex/core-foo:1.2", "docker.io/stagex/core-foo:1.2", "1.2"},
		{"localhost:5000/x", "localhost:5000/x:latest", "latest"},
		{"quay.io/a/b:v1", "quay.io/a/b:v1", "v1"},
	} {
		t.Run(tc.in, func(t *testing.T) {
			full, tag := normalizeName(tc.in)
			if diff := cmp.Diff([]string{tc.full, tc.tag}, []string{full, tag}); diff != "" {
				t.Errorf("normalizeName(%q) (-want +got):\n%s", tc.in, diff)
			}
		})
	}
}

func TestDiffIDText(t *testing.T) {
	d := DiffID(sha256.Sum256([]byte("x")))
	b, err := json.Marshal(struct{ D DiffID }{d})
	if err != nil {
		t.Fatal(err)
	}
	var back struct{ D DiffID }
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if back.D != d {
		t.Errorf("round trip of %s gave %s", d, back.D)
	}
	if _, err := ParseDiffID("sha256:xyz"); err == nil {
		t.Error("ParseDiffID accepted a malformed diffID")
	}
}

// TestConfigKeepsBaseHistory checks that history inherited from a base
// image keeps its times while new entries are clamped to the epoch.
func TestConfigKeepsBaseHistory(t *testing.T) {
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	later := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	base := NewConfig(Platform{Architecture: "amd64", OS: "linux"})
	base.History = []History{{Created: &old, CreatedBy: "COPY a / # buildkit", Comment: HistoryComment}}
	c := base
	c.History = append(append([]History(nil), base.History...), History{Created: &later, CreatedBy: "COPY b / # buildkit", Comment: HistoryComment})
	b, err := encodeConfig(c, []DiffID{{1}, {2}}, &epoch1, &base)
	if err != nil {
		t.Fatal(err)
	}
	var got Config
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	var times []string
	for _, h := range got.History {
		times = append(times, h.Created.UTC().Format(time.RFC3339))
	}
	if diff := cmp.Diff([]string{"2020-01-02T03:04:05Z", "1970-01-01T00:00:01Z"}, times); diff != "" {
		t.Errorf("history times (-want +got):\n%s", diff)
	}
	if got.Created == nil || !got.Created.Equal(epoch1) {
		t.Errorf("created = %v, want the epoch", got.Created)
	}
}

// testImage builds a one-layer image whose blob is in a fresh store.
func testImage(t *testing.T) (*Image, *cache.ContentStore) {
	img, store, _ := testImageIn(t)
	return img, store
}

// testImageIn is testImage also returning the store's directory.
func testImageIn(t *testing.T) (*Image, *cache.ContentStore, string) {
	t.Helper()
	storeDir := t.TempDir()
	store, err := cache.OpenContentStore(storeDir)
	if err != nil {
		t.Fatal(err)
	}
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "f", Typeflag: tar.TypeReg, Mode: 0o644, Size: 2, ModTime: time.Unix(99, 0)})
	tw.Write([]byte("hi"))
	tw.Close()
	w, err := store.Writer()
	if err != nil {
		t.Fatal(err)
	}
	l, err := Compress(w, &tb, &epoch1)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Commit(l.Digest, l.Size); err != nil {
		t.Fatal(err)
	}
	c := NewConfig(Platform{Architecture: "amd64", OS: "linux"})
	c.History = []History{{CreatedBy: "COPY f / # buildkit", Comment: HistoryComment}}
	img, err := New("core-test", c, []Layer{l}, WithEpoch(epoch1), WithStageXAnnotations("core-test", "1", epoch1))
	if err != nil {
		t.Fatal(err)
	}
	return img, store, storeDir
}

func TestWriteLayout(t *testing.T) {
	img, store := testImage(t)
	if err := ValidateImage(img, store); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := WriteLayout(dir, img, store); err != nil {
		t.Fatal(err)
	}
	if err := Validate(dir); err != nil {
		t.Fatal(err)
	}
	// A second write with the layer gone from the store succeeds: blobs
	// already in the layout at the right size are not written again.
	if err := store.Delete(img.Layers[0].Digest); err != nil {
		t.Fatal(err)
	}
	if err := WriteLayout(dir, img, store); err != nil {
		t.Errorf("rewriting a complete layout: %v", err)
	}
	// Writing another image over it leaves only that image's blobs.
	other, otherStore := testImage(t)
	c := NewConfig(Platform{Architecture: "amd64", OS: "linux"})
	c.History = []History{{CreatedBy: "COPY g / # buildkit", Comment: HistoryComment}}
	other, err := New("core-test", c, other.Layers, WithEpoch(epoch1), WithStageXAnnotations("core-test", "2", epoch1))
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteLayout(dir, other, otherStore); err != nil {
		t.Fatal(err)
	}
	if err := Validate(dir); err != nil {
		t.Fatal(err)
	}
	want := []string{other.Config.Digest.Hex(), other.Manifest.Digest.Hex(), other.Index.Digest.Hex(), other.Layers[0].Digest.Hex()}
	sort.Strings(want)
	if diff := cmp.Diff(want, blobNames(t, dir)); diff != "" {
		t.Errorf("blobs after rewriting the layout (-want +got):\n%s", diff)
	}
	if got, want := img.DigestsLine(), img.Manifest.Digest.Hex()+" core-test"; got != want {
		t.Errorf("DigestsLine = %q, want %q", got, want)
	}
}

func TestWriteLayoutRefusesCorruptBlob(t *testing.T) {
	img, store, storeDir := testImageIn(t)
	d := img.Layers[0].Digest
	// Corrupt the stored layer in place (the store's documented layout),
	// keeping its size.
	p := filepath.Join(storeDir, "blobs", "sha256", d.Hex())
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)-1] ^= 0xff
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	err = WriteLayout(dir, img, store)
	if !errors.Is(err, cache.ErrCorrupt) {
		t.Fatalf("WriteLayout with a corrupt blob: error %v, want ErrCorrupt", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "blobs/sha256", d.Hex())); err == nil {
		t.Error("the corrupt blob was written to the layout")
	}
	if _, err := os.Stat(filepath.Join(dir, "index.json")); err == nil {
		t.Error("index.json was written for an incomplete layout")
	}
}

func TestValidateCatchesBrokenLayouts(t *testing.T) {
	for _, tc := range []struct {
		name    string
		breakIt func(t *testing.T, dir string, img *Image)
	}{
		{"flipped layer byte", func(t *testing.T, dir string, img *Image) {
			p := filepath.Join(dir, "blobs/sha256", img.Layers[0].Digest.Hex())
			b, _ := os.ReadFile(p)
			b[20] ^= 1
			os.WriteFile(p, b, 0o644)
		}},
		{"missing config", func(t *testing.T, dir string, img *Image) {
			os.Remove(filepath.Join(dir, "blobs/sha256", img.Config.Digest.Hex()))
		}},
		{"wrong diffID", func(t *testing.T, dir string, img *Image) {
			c := NewConfig(Platform{Architecture: "amd64", OS: "linux"})
			bad, err := New("core-test", c, []Layer{{Descriptor: img.Layers[0].Descriptor, DiffID: DiffID{7}}})
			if err != nil {
				t.Fatal(err)
			}
			for _, b := range []Blob{bad.Config, bad.Manifest, bad.Index} {
				os.WriteFile(filepath.Join(dir, "blobs/sha256", b.Digest.Hex()), b.Bytes, 0o644)
			}
			os.WriteFile(filepath.Join(dir, "index.json"), bad.TopIndex, 0o644)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img, store := testImage(t)
			dir := t.TempDir()
			if err := WriteLayout(dir, img, store); err != nil {
				t.Fatal(err)
			}
			tc.breakIt(t, dir, img)
			if err := Validate(dir); !errors.Is(err, ErrInvalid) {
				t.Errorf("Validate: error %v, want ErrInvalid", err)
			}
		})
	}
}
