package engine

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/sandbox"
	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

func TestMain(m *testing.M) {
	sandbox.Init()
	os.Exit(m.Run())
}

// demoCopy copies the demo tree to a temporary directory, with the seed
// busybox in its fetch directory, so that a test can edit it.
func demoCopy(t *testing.T) string {
	t.Helper()
	dst := t.TempDir()
	src := filepath.Join("..", "testdata", "stagex")
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if rel == filepath.Join("fetch", "bootstrap", "busybox", "busybox") {
			return nil
		}
		return copyFile(p, filepath.Join(dst, rel))
	})
	if err != nil {
		t.Fatal(err)
	}
	bb := filepath.Join(dst, "fetch", "bootstrap", "busybox", "busybox")
	if err := os.MkdirAll(filepath.Dir(bb), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := copyFile("/bin/busybox", bb); err != nil {
		t.Fatalf("the demo tree's seed is Debian's busybox-static (apt-get install busybox-static): %v", err)
	}
	return dst
}

func copyFile(src, dst string) error {
	data, err := os.ReadFile(src)
	if err != nil {
		return err
	}
	fi, err := os.Stat(src)
	if err != nil {
		return err
	}
	return os.WriteFile(dst, data, fi.Mode().Perm())
}

// buildRun is the outcome of one build.
type buildRun struct {
	report  *Report
	err     error
	digests map[string]string   // image -> manifest digest
	ran     map[string][]string // image -> labels of the actions that ran
}

// build plans and builds targets in tree with the cache in cacheDir.
func build(t *testing.T, ctx context.Context, tree, cacheDir string, targets []string, opts []Option, buildOpts ...BuildOption) *buildRun {
	t.Helper()
	sandboxtest.RequiresRoot(t)
	pt, err := packages.Load(tree)
	if err != nil {
		t.Fatal(err)
	}
	var imgs []*packages.Image
	for _, n := range targets {
		img, err := pt.Resolve(n)
		if err != nil {
			t.Fatal(err)
		}
		imgs = append(imgs, img)
	}
	plan, err := NewPlan(pt, imgs)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := sandbox.New(filepath.Join(cacheDir, "run"))
	if err != nil {
		t.Fatal(err)
	}
	run := &buildRun{digests: map[string]string{}, ran: map[string][]string{}}
	var mu sync.Mutex
	events := func(ev Event) {
		if ev.Kind == ActionDone {
			mu.Lock()
			run.ran[ev.Image] = append(run.ran[ev.Image], ev.Action)
			mu.Unlock()
		}
	}
	c, err := cache.Open(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	run.report, run.err = NewBuilder(pt, c, sb, opts...).Build(ctx, plan, append([]BuildOption{WithEvents(events)}, buildOpts...)...)
	for _, ir := range run.report.Images {
		if ir.Err != nil {
			continue
		}
		run.digests[ir.Name] = ir.Digest.String()
		if err := image.Validate(ir.Layout); err != nil {
			t.Errorf("%s: invalid layout: %v", ir.Name, err)
		}
	}
	return run
}

func mustBuild(t *testing.T, tree, cacheDir string, targets ...string) *buildRun {
	t.Helper()
	r := build(t, context.Background(), tree, cacheDir, targets, nil)
	if r.err != nil {
		t.Fatalf("build %s: %v", strings.Join(targets, " "), r.err)
	}
	return r
}

// A second build of the same inputs runs nothing and gives the same
// digests; touching files' mtimes changes nothing either.
func TestBuildCachedAndMtimeIndependent(t *testing.T) {
	tree, cacheDir := demoCopy(t), t.TempDir()
	first := mustBuild(t, tree, cacheDir, "user-hello")
	if len(first.digests) != 6 || first.report.Ran == 0 {
		t.Fatalf("cold build: %d images, %d actions run; want 6 images, some actions", len(first.digests), first.report.Ran)
	}
	for name := range first.digests {
		if _, err := os.Stat(filepath.Join(tree, "out", name, "index.json")); err != nil {
			t.Errorf("no OCI layout for %s in out/: %v", name, err)
		}
	}
	later := time.Now().Add(time.Hour)
	filepath.WalkDir(filepath.Join(tree, "packages"), func(p string, _ fs.DirEntry, _ error) error {
		return os.Chtimes(p, later, later)
	})
	second := mustBuild(t, tree, cacheDir, "user-hello")
	if second.report.Ran != 0 {
		t.Errorf("second build ran %d actions (%v), want 0", second.report.Ran, second.ran)
	}
	if diff := cmp.Diff(first.digests, second.digests); diff != "" {
		t.Errorf("digests changed (-first +second):\n%s", diff)
	}
}

// Editing a package's patch reruns its steps from the COPY of the patch
// on, and no step of any other package; a dependent whose input stays the
// same is not rebuilt (early cutoff).
func TestBuildPatchEditReruns(t *testing.T) {
	tree, cacheDir := demoCopy(t), t.TempDir()
	first := mustBuild(t, tree, cacheDir, "pallet-clang")
	patch := filepath.Join(tree, "packages", "core", "llvm", "0001-fix-build.patch")
	data, _ := os.ReadFile(patch)
	edited := strings.Replace(string(data), `+echo "patched"`, `+echo "patched twice"`, 1)
	if edited == string(data) {
		t.Fatal("patch fixture changed: no line to edit")
	}
	os.WriteFile(patch, []byte(edited), 0o644)

	second := mustBuild(t, tree, cacheDir, "pallet-clang")
	// pallet-clang needs core-clang, a subpackage of core/llvm: the build
	// stage reruns from the COPY of the patches (WORKDIR's mkdir too, its
	// parent having changed), and the clang stage copies the same files.
	want := map[string][]string{
		"core-clang": {
			"build 9:1 COPY /*.patch /src/patches/",
			"build 10:1 ADD /llvm.config /src/",
			"build 11:1 WORKDIR /src/llvm-project-17.0.6.src",
			"build 13:1 RUN --network=none /bin/sh -e -c 'for p in /src/patches/*.patch; do patch -p1 < \"$p\"; done ...",
			"package-clang 20:1 COPY --from=build /rootfs/usr/bin/*clang* /usr/bin/",
		},
	}
	if diff := cmp.Diff(want, second.ran); diff != "" {
		t.Errorf("actions rerun after the patch edit (-want +got):\n%s", diff)
	}
	for _, same := range []string{"core-clang", "pallet-clang", "core-gcc"} {
		if first.digests[same] != second.digests[same] {
			t.Errorf("%s digest changed, want it identical (its content did not change)", same)
		}
	}
}

// With -k, a failure stops only the images that need the failed one.
func TestBuildKeepGoing(t *testing.T) {
	tree, cacheDir := demoCopy(t), t.TempDir()
	cf := filepath.Join(tree, "packages", "core", "musl", "Containerfile")
	data, _ := os.ReadFile(cf)
	os.WriteFile(cf, []byte(strings.Replace(string(data), "sh build.sh /rootfs", "exit 3", 1)), 0o644)

	r := build(t, context.Background(), tree, cacheDir, []string{"user-hello", "user-tool"}, []Option{WithKeepGoing()})
	if r.err == nil || !strings.Contains(r.err.Error(), "core-musl") {
		t.Fatalf("build error = %v, want the failure of core-musl", r.err)
	}
	var built []string
	for name := range r.digests {
		built = append(built, name)
	}
	sort.Strings(built)
	want := []string{"bootstrap-busybox", "core-busybox", "core-filesystem", "user-tool"}
	if diff := cmp.Diff(want, built); diff != "" {
		t.Errorf("images built with -k (-want +got):\n%s", diff)
	}
	for _, ir := range r.report.Images {
		if ir.Name == "user-hello" && !errors.Is(ir.Err, ErrDependencyFailed) {
			t.Errorf("user-hello error = %v, want ErrDependencyFailed", ir.Err)
		}
	}
}

// A build interrupted midway leaves a cache from which the next build
// finishes with the digests of an uninterrupted build.
func TestBuildInterruptedThenResumed(t *testing.T) {
	tree := demoCopy(t)
	clean := mustBuild(t, tree, t.TempDir(), "user-hello")

	cacheDir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	n := 0
	stopAfter := func(ev Event) {
		if ev.Kind == ActionDone {
			if n++; n == 5 {
				cancel()
			}
		}
	}
	r := build(t, ctx, tree, cacheDir, []string{"user-hello"}, nil, WithEvents(stopAfter))
	if r.err == nil {
		t.Fatal("interrupted build succeeded")
	}
	resumed := mustBuild(t, tree, cacheDir, "user-hello")
	if diff := cmp.Diff(clean.digests, resumed.digests); diff != "" {
		t.Errorf("digests after resuming (-clean +resumed):\n%s", diff)
	}
	if resumed.report.Cached == 0 {
		t.Error("the resumed build reused nothing of the interrupted one")
	}
}

// Only the layers an image exports are gzipped. A stage the image does
// not contain keeps its layer as the tar it was diffed into; a stage the
// target stage is built FROM has its layers gzipped when the image is
// written, and its cached results then name the gzip blobs, so a second
// build finds everything and runs nothing.
func TestOnlyExportedLayersCompressed(t *testing.T) {
	tree, cacheDir := t.TempDir(), t.TempDir()
	pkg := filepath.Join(tree, "packages", "core", "layers")
	files := map[string]string{
		"package.toml": "[package]\nname = \"layers\"\nversion = \"1\"\n",
		"Containerfile": "FROM scratch AS scratchpad\nCOPY d.txt /d.txt\n\n" +
			"FROM scratch AS build\nCOPY a.txt /a.txt\nCOPY b.txt /b.txt\n\n" +
			"FROM build AS package\nCOPY --from=scratchpad /d.txt /d.txt\nCOPY c.txt /c.txt\n",
		"a.txt": "a", "b.txt": "b", "c.txt": "c", "d.txt": "d",
	}
	os.MkdirAll(pkg, 0o755)
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(pkg, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	first := mustBuild(t, tree, cacheDir, "core-layers")

	actions, err := cache.OpenActions(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	store, err := cache.OpenContentStore(filepath.Join(cacheDir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	var tars, gzips int
	err = actions.Walk(func(_ cache.ActionKey, r cache.Result) error {
		if r.Layer == r.DiffID {
			tars++
		} else {
			gzips++
		}
		if size, err := store.Size(r.Layer); err != nil || size != r.LayerSize {
			t.Errorf("layer blob %s: size %d, error %v; the result says %d", r.Layer, size, err, r.LayerSize)
		}
		return nil
	})
	actions.Close()
	if err != nil {
		t.Fatal(err)
	}
	// scratchpad's COPY stays a tar; build's two COPYs (gzipped when the
	// image was written) and package's two are gzip.
	if tars != 1 || gzips != 4 {
		t.Errorf("cached results: %d uncompressed and %d gzip layers, want 1 and 4", tars, gzips)
	}

	second := mustBuild(t, tree, cacheDir, "core-layers")
	if second.report.Ran != 0 || second.digests["core-layers"] != first.digests["core-layers"] {
		t.Errorf("second build ran %v, digest %s; want nothing run and %s", second.ran, second.digests["core-layers"], first.digests["core-layers"])
	}
}
