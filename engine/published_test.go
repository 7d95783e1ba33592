package engine

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/packages"
)

// chainTree is core-a <- core-b <- core-c, each a COPY of a file of its own.
func chainTree(t *testing.T) string {
	pkg := func(name string) string { return "[package]\nname = \"" + name + "\"\nversion = \"1\"\n" }
	return writeTree(t, map[string]string{
		"packages/core/a/package.toml":  pkg("a"),
		"packages/core/a/Containerfile": "FROM scratch AS package\nCOPY a.txt /\n",
		"packages/core/a/a.txt":         "a",
		"packages/core/b/package.toml":  pkg("b"),
		"packages/core/b/Containerfile": "FROM stagex/core-a AS package\nCOPY b.txt /\n",
		"packages/core/b/b.txt":         "b",
		// A package's own fetch/ is not part of its definition.
		"packages/core/b/fetch/big.tar": "sources",
		"packages/core/c/package.toml":  pkg("c"),
		"packages/core/c/Containerfile": "FROM stagex/core-b AS package\nCOPY c.txt /\n",
		"packages/core/c/c.txt":         "c",
	})
}

// storeImage stores a one-layer image of name in c and returns its
// manifest's digest and the layer's.
func storeImage(t *testing.T, c *cache.Cache, name string) (manifest, layer image.Digest) {
	t.Helper()
	ingest := func(b []byte) image.Digest {
		d, _, err := c.Store.Ingest(bytes.NewReader(b), image.Digest{})
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	layerBytes := []byte("layer of " + name)
	layer = ingest(layerBytes)
	config := []byte(fmt.Sprintf(`{"architecture":"amd64","os":"linux","rootfs":{"type":"layers","diff_ids":[%q]}}`, image.DigestOf([]byte(name))))
	cd := ingest(config)
	m := fmt.Sprintf(`{"schemaVersion":2,"mediaType":%q,"config":{"mediaType":%q,"digest":%q,"size":%d},"layers":[{"mediaType":%q,"digest":%q,"size":%d}]}`,
		image.MediaTypeManifest, image.MediaTypeConfig, cd, len(config), image.MediaTypeLayerGzip, layer, len(layerBytes))
	return ingest([]byte(m)), layer
}

// publish records every image of plan as published with the definition
// it has now, as sxmake preseed does, and returns their manifests.
func publish(t *testing.T, c *cache.Cache, plan *Plan) map[string]image.Digest {
	t.Helper()
	p := NewPublished(c)
	digests := map[string]image.Digest{}
	for _, ip := range plan.Images {
		m, _ := storeImage(t, c, ip.Image.Name)
		lines, known, err := p.definition(ip, func(dep *packages.Image) (image.Digest, bool) {
			d, ok := digests[dep.Name]
			return d, ok
		})
		if err != nil || !known {
			t.Fatalf("definition of %s: %v, %v", ip.Image.Name, known, err)
		}
		rec := cache.PublishedImage{Name: ip.Image.Name, Platform: ip.Platform.String(), Manifest: m, Definition: lines}
		if err := c.Published.Put(rec); err != nil {
			t.Fatal(err)
		}
		digests[ip.Image.Name] = m
	}
	return digests
}

func settledNames(p *Published, plan *Plan) []string {
	var out []string
	for _, ip := range plan.Images {
		if p.Settled(plan)[ip.Image] {
			out = append(out, ip.Image.Name)
		}
	}
	return out
}

// A build takes an image as published exactly while its definition, with
// the digests its dependencies have in the build, is the published one.
func TestPublishedChoose(t *testing.T) {
	root := chainTree(t)
	c, err := cache.Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	load := func() *Plan {
		tree, err := packages.Load(root)
		if err != nil {
			t.Fatal(err)
		}
		return planOf(t, tree, "core-c")
	}
	plan := load()
	digests := publish(t, c, plan)
	known := func(m map[string]image.Digest) func(*packages.Image) (image.Digest, bool) {
		return func(dep *packages.Image) (image.Digest, bool) { d, ok := m[dep.Name]; return d, ok }
	}
	pub := NewPublished(c)
	if diff := cmp.Diff([]string{"core-a", "core-b"}, settledNames(pub, plan)); diff != "" {
		t.Errorf("settled (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"core-a", "core-b", "core-c"}, settledNames(NewPublished(c, UsePublishedTargets()), plan)); diff != "" {
		t.Errorf("settled with the targets (-want +got):\n%s", diff)
	}
	if got := pub.choose(plan.image("core-c"), true, known(digests)); got.rec != nil || got.why != "named on the command line (--use-published takes the published image)" {
		t.Errorf("target: %+v", got)
	}
	var pkgs []string
	for _, pkg := range PackagesToBuild(pub, plan) {
		pkgs = append(pkgs, pkg.ID())
	}
	if diff := cmp.Diff([]string{"core-c"}, pkgs); diff != "" {
		t.Errorf("packages to fetch (-want +got):\n%s", diff)
	}

	// Editing b's fetch/ changes nothing; editing b.txt changes b's
	// definition.
	os.WriteFile(filepath.Join(root, "packages/core/b/fetch/big.tar"), []byte("other"), 0o644)
	if diff := cmp.Diff([]string{"core-a", "core-b"}, settledNames(NewPublished(c), load())); diff != "" {
		t.Errorf("settled after a fetch/ edit (-want +got):\n%s", diff)
	}
	os.WriteFile(filepath.Join(root, "packages/core/b/b.txt"), []byte("B"), 0o644)
	plan, pub = load(), NewPublished(c)
	if diff := cmp.Diff([]string{"core-a"}, settledNames(pub, plan)); diff != "" {
		t.Errorf("settled after an edit of b (-want +got):\n%s", diff)
	}
	got := pub.choose(plan.image("core-b"), false, known(digests))
	if got.rec != nil || got.why != "its definition changed since it was published" || len(got.explain) != 1 ||
		!strings.HasPrefix(got.explain[0], `file changed: "b.txt" -rw-r--r-- 1 `) {
		t.Errorf("edited core-b: %+v", got)
	}
	got = pub.choose(plan.image("core-c"), false, known(map[string]image.Digest{"core-a": digests["core-a"]}))
	if got.rec != nil || got.why != "needs core-b, which is to build; taken published if core-b comes out with its published digest" {
		t.Errorf("core-c before core-b is built: %+v", got)
	}
	// core-b rebuilt with its published digest: core-c is published
	// (early cutoff); with another digest, it is built.
	if got := pub.choose(plan.image("core-c"), false, known(digests)); got.rec == nil || got.rec.Manifest != digests["core-c"] {
		t.Errorf("core-c after core-b came out as published: %+v", got)
	}
	other := map[string]image.Digest{"core-b": image.DigestOf([]byte("other"))}
	got = pub.choose(plan.image("core-c"), false, known(other))
	want := fmt.Sprintf("dep changed: core-b %s -> core-b %s", digests["core-b"], other["core-b"])
	if got.rec != nil || got.why != "its definition changed since it was published" || !cmp.Equal(got.explain, []string{want}) {
		t.Errorf("core-c after core-b came out different: %+v", got)
	}

	// A blob gone from the cache: built.
	_, layer := storeImage(t, c, "core-a")
	if err := c.Store.Delete(layer); err != nil {
		t.Fatal(err)
	}
	got = pub.choose(plan.image("core-a"), false, known(digests))
	if got.rec != nil || !strings.HasPrefix(got.why, "the published image is not whole in the cache (sxmake preseed again): layer "+layer.String()) {
		t.Errorf("core-a without its layer: %+v", got)
	}
}
