package engine

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/engine/registry"
	"github.com/stagex/sxmake/packages"
)

// layoutRegistry serves the images of OCI layouts dir/<name>, as a
// registry serves a published image's manifest and blobs; tampered
// blobs come with one byte changed.
type layoutRegistry struct {
	dir      string
	tampered map[image.Digest]bool
}

var _ Registry = (*layoutRegistry)(nil)

func (r *layoutRegistry) open(name string, d image.Digest) (io.ReadCloser, error) {
	b, err := os.ReadFile(filepath.Join(r.dir, name, "blobs", "sha256", d.Hex()))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", r.Ref(name, d), registry.ErrNotFound)
	}
	if r.tampered[d] {
		b[len(b)/2] ^= 1
	}
	return io.NopCloser(bytes.NewReader(b)), err
}

func (r *layoutRegistry) Manifest(_ context.Context, name string, d image.Digest) (string, []byte, error) {
	rc, err := r.open(name, d)
	if err != nil {
		return "", nil, err
	}
	b, err := io.ReadAll(rc)
	return image.MediaTypeManifest, b, err
}

func (r *layoutRegistry) Blob(_ context.Context, name string, desc image.Descriptor) (io.ReadCloser, error) {
	return r.open(name, desc.Digest)
}

func (r *layoutRegistry) Ref(name string, d image.Digest) string {
	return "fake/" + name + "@" + d.String()
}

// publishLayouts writes a one-file image of each image of plan to
// dir/<name> as a build would, and returns their manifests.
func publishLayouts(t *testing.T, plan *Plan, dir string) map[string][]image.Digest {
	t.Helper()
	store, err := cache.OpenContentStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	digests := map[string][]image.Digest{}
	for _, ip := range plan.Images {
		name := ip.Image.Name
		var tb bytes.Buffer
		tw := tar.NewWriter(&tb)
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(name))})
		tw.Write([]byte(name))
		tw.Close()
		w, err := store.Writer()
		if err != nil {
			t.Fatal(err)
		}
		l, err := image.Compress(w, &tb, &epoch)
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := w.Commit(l.Digest, l.Size); err != nil {
			t.Fatal(err)
		}
		c := image.NewConfig(imagePlatform(ip.Platform))
		c.History = []image.History{{CreatedBy: "COPY " + name + " / # buildkit", Comment: image.HistoryComment}}
		img, err := image.New(name, c, []image.Layer{l}, image.WithEpoch(epoch), image.WithStageXAnnotations(name, "1", epoch))
		if err != nil {
			t.Fatal(err)
		}
		if err := image.WriteLayout(filepath.Join(dir, name), img, store); err != nil {
			t.Fatal(err)
		}
		digests[name] = []image.Digest{img.Manifest.Digest}
	}
	return digests
}

func recordedNames(t *testing.T, c *cache.Cache, plan *Plan) []string {
	t.Helper()
	var out []string
	for _, ip := range plan.Images {
		if _, err := c.Published.Get(ip.Image.Name, ip.Platform.String()); err == nil {
			out = append(out, ip.Image.Name)
		}
	}
	return out
}

// Preseed stores and records every image, writing the layouts the build
// wrote; content that does not match its digest, a digest the registry
// lacks and an image the digests do not list fail their image and the
// images that need it, with nothing of them recorded.
func TestPreseed(t *testing.T) {
	root := chainTree(t)
	tree, err := packages.Load(root)
	if err != nil {
		t.Fatal(err)
	}
	plan := planOf(t, tree, "core-c")
	published := filepath.Join(t.TempDir(), "published")
	digests := publishLayouts(t, plan, published)
	preseed := func(reg *layoutRegistry, digests map[string][]image.Digest) (*cache.Cache, string, *PreseedReport, error) {
		c, err := cache.Open(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		out := filepath.Join(t.TempDir(), "out")
		report, err := Preseed(context.Background(), tree, c, []*Plan{plan}, digests, reg, WithPreseedOut(out))
		return c, out, report, err
	}

	c, out, report, err := preseed(&layoutRegistry{dir: published}, digests)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"core-a", "core-b", "core-c"}, recordedNames(t, c, plan)); diff != "" {
		t.Errorf("recorded (-want +got):\n%s", diff)
	}
	for _, name := range []string{"core-a", "core-b", "core-c"} {
		if diff := cmp.Diff(layoutFiles(t, filepath.Join(published, name)), layoutFiles(t, filepath.Join(out, name))); diff != "" {
			t.Errorf("layout of %s (-published +preseeded):\n%s", name, diff)
		}
	}
	if report.Bytes == 0 {
		t.Error("no bytes counted")
	}
	// What a build will take as published: all but the target.
	if diff := cmp.Diff([]string{"core-a", "core-b"}, settledNames(NewPublished(c), plan)); diff != "" {
		t.Errorf("settled after preseed (-want +got):\n%s", diff)
	}

	var b image.Manifest
	_, b, err = image.LayoutManifest(filepath.Join(published, "core-b"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		reg     *layoutRegistry
		digests map[string][]image.Digest
		want    []string // the error of each image
	}{
		{"tampered layer", &layoutRegistry{dir: published, tampered: map[image.Digest]bool{b.Layers[0].Digest: true}}, digests,
			[]string{"", "digest mismatch", "needs core-b, which is not recorded"}},
		{"tampered manifest", &layoutRegistry{dir: published, tampered: map[image.Digest]bool{digests["core-b"][0]: true}}, digests,
			[]string{"", "digest mismatch", "needs core-b, which is not recorded"}},
		{"not in the registry", &layoutRegistry{dir: t.TempDir()}, digests,
			[]string{"not found in the registry", "not found in the registry", "not found in the registry"}},
		{"not in the digests", &layoutRegistry{dir: published}, map[string][]image.Digest{"core-a": digests["core-a"], "core-c": digests["core-c"]},
			[]string{"", "no published digest in digests/*.txt", "needs core-b, which is not recorded"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, out, report, err := preseed(tc.reg, tc.digests)
			if err == nil {
				t.Fatal("no error")
			}
			var recorded []string
			for i, pi := range report.Images {
				if pi.Err == nil {
					recorded = append(recorded, pi.Name)
					if tc.want[i] != "" {
						t.Errorf("%s recorded, want an error %q", pi.Name, tc.want[i])
					}
					continue
				}
				if _, err := os.Stat(filepath.Join(out, pi.Name)); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("out/%s written for an image not recorded", pi.Name)
				}
				if tc.want[i] == "" || !strings.Contains(pi.Err.Error(), tc.want[i]) {
					t.Errorf("%s: error %v, want %q", pi.Name, pi.Err, tc.want[i])
				}
			}
			if diff := cmp.Diff(recorded, recordedNames(t, c, plan)); diff != "" {
				t.Errorf("records (-report +cache):\n%s", diff)
			}
		})
	}
}

// layoutFiles returns every file of a layout and its content.
func layoutFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.Walk(dir, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[rel] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}
