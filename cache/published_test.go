package cache

import (
	"bytes"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPublished(t *testing.T) {
	dir := t.TempDir()
	p := OpenPublished(dir)
	if ms, err := p.Manifests(); err != nil || ms != nil {
		t.Fatalf("Manifests of an empty cache = %v, %v; want none", ms, err)
	}
	a := PublishedImage{Name: "core-busybox", Platform: "linux/amd64", MediaType: "application/vnd.oci.image.manifest.v1+json",
		Manifest: DigestOf([]byte("a")), Size: 1, Source: "docker.io/stagex/core-busybox@sha256:...", Definition: []string{"sxmake definition v1", "image core-busybox"}}
	b := a
	b.Platform, b.Manifest = "linux/arm64/v8", DigestOf([]byte("b"))
	for _, img := range []PublishedImage{a, b} {
		if err := p.Put(img); err != nil {
			t.Fatal(err)
		}
	}
	a.Size = 3 // recording again replaces the record
	if err := p.Put(a); err != nil {
		t.Fatal(err)
	}
	p = OpenPublished(dir)
	for _, want := range []PublishedImage{a, b} {
		got, err := p.Get(want.Name, want.Platform)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Get(%s, %s) (-want +got):\n%s", want.Name, want.Platform, diff)
		}
	}
	ms, err := p.Manifests()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Digest{a.Manifest, b.Manifest}, ms); diff != "" {
		t.Errorf("Manifests (-want +got):\n%s", diff)
	}
	for _, tc := range [][2]string{{"core-busybox", "linux/386"}, {"core-other", "linux/amd64"}, {"../x", "linux/amd64"}, {"core-busybox", "../../x"}} {
		if _, err := p.Get(tc[0], tc[1]); !errors.Is(err, ErrNotFound) {
			t.Errorf("Get(%q, %q) error = %v, want ErrNotFound", tc[0], tc[1], err)
		}
	}
	for _, img := range []PublishedImage{{Name: "a/b", Platform: "linux/amd64"}, {Name: "core-x", Platform: "linux"}, {Name: "core-x", Platform: "linux/../amd64"}} {
		if err := p.Put(img); err == nil {
			t.Errorf("Put(%q, %q) succeeded, want an error", img.Name, img.Platform)
		}
	}
}

// gc keeps the manifest, config and layers of a published image, which
// no action result names.
func TestCollectKeepsPublished(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ingest := func(b []byte) Digest {
		d, _, err := c.Store.Ingest(bytes.NewReader(b), Digest{})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	layer, config := ingest([]byte("layer")), ingest([]byte("{}"))
	manifest := ingest([]byte(fmt.Sprintf(`{"config":{"digest":%q},"layers":[{"digest":%q}]}`, config, layer)))
	other := ingest([]byte("unreferenced"))
	if err := c.Published.Put(PublishedImage{Name: "core-x", Platform: "linux/amd64", Manifest: manifest}); err != nil {
		t.Fatal(err)
	}
	pinned, err := c.Pinned()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Collect(c.Actions, c.Store, pinned, c.Logs, c.SnapshotDir(), GCOptions{MaxBytes: 1, Now: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, d := range []Digest{layer, config, manifest} {
		if _, err := c.Store.Size(d); err != nil {
			t.Errorf("gc removed %s of the published image: %v", d, err)
		}
	}
	if _, err := c.Store.Size(other); !errors.Is(err, ErrNotFound) {
		t.Errorf("gc kept the unreferenced blob: %v", err)
	}
}
