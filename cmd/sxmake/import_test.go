package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/cmd/internal/oracle"
	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// baseTimes are the times a base image's config records: its creation and
// its history entry's (nil: none).
type baseTimes struct{ created, history *time.Time }

// baseLayout writes an image holding the host's static busybox as /bin/sh
// and an /etc/passwd to dir, and returns it. Its config records times, or
// by default those BuildKit exports with SOURCE_DATE_EPOCH=1.
func baseLayout(t *testing.T, dir string, times *baseTimes) *image.Image {
	t.Helper()
	bb, err := os.ReadFile("/bin/busybox")
	if err != nil {
		t.Fatalf("busybox-static is needed: %v", err)
	}
	mtime := time.Unix(1e9, 0)
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	for _, h := range []*tar.Header{
		{Name: "bin/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "bin/busybox", Typeflag: tar.TypeReg, Mode: 0o755, Size: int64(len(bb))},
		{Name: "bin/sh", Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777},
		{Name: "bin/mkdir", Typeflag: tar.TypeSymlink, Linkname: "busybox", Mode: 0o777},
		{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755},
		{Name: "etc/passwd", Typeflag: tar.TypeReg, Mode: 0o644, Size: 31},
	} {
		h.ModTime = mtime
		tw.WriteHeader(h)
		switch h.Name {
		case "bin/busybox":
			tw.Write(bb)
		case "etc/passwd":
			tw.Write([]byte("root:x:0:0:root:/root:/bin/sh\n\n"))
		}
	}
	tw.Close()
	store, err := cache.OpenContentStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	w, err := store.Writer()
	if err != nil {
		t.Fatal(err)
	}
	epoch := time.Unix(1, 0)
	l, err := image.Compress(w, &tb, &epoch)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Commit(l.Digest, l.Size); err != nil {
		t.Fatal(err)
	}
	c := image.NewConfig(image.Platform{OS: "linux", Architecture: "amd64"})
	c.Config.Env = []string{"PATH=/bin", "GREETING=from-base"}
	c.History = []image.History{{CreatedBy: "COPY rootfs/ / # buildkit", Comment: image.HistoryComment}}
	opts := []image.Option{image.WithEpoch(epoch), image.WithStageXAnnotations("imp-base", "1", epoch)}
	if times != nil {
		// Without an epoch, times are written as they are.
		c.Created, c.History[0].Created, opts = times.created, times.history, opts[1:]
	}
	img, err := image.New("imp-base", c, []image.Layer{l}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := image.WriteLayout(dir, img, store); err != nil {
		t.Fatal(err)
	}
	return img
}

// unpackLayout applies every layer of the layout's (single) image to a new
// directory and returns it.
func unpackLayout(t *testing.T, layout string, opts ...image.ReadOption) string {
	t.Helper()
	src, err := image.ReadLayout(layout, opts...)
	if err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	for i := range src.Manifest.Layers {
		r, err := src.OpenLayer(i)
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(r)
		if err != nil {
			t.Fatal(err)
		}
		if err := image.Unpack(root, zr); err != nil {
			t.Fatal(err)
		}
		r.Close()
	}
	return root
}

// TestImportThenBuild imports an OCI layout as stagex/imp-base and builds
// a package of another tree FROM it and COPY --from it; BuildKit, given
// the same layout as an oci-layout context, must agree on the digest.
func TestImportThenBuild(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	work := t.TempDir()
	cacheDir := filepath.Join(work, "cache")
	layouts := filepath.Join(work, "layouts")
	base := baseLayout(t, filepath.Join(layouts, "imp-base"), nil)

	tree := filepath.Join(work, "tree")
	app := filepath.Join(tree, "packages", "user", "app")
	os.MkdirAll(app, 0o755)
	os.WriteFile(filepath.Join(app, "package.toml"), []byte("[package]\nname = \"app\"\nversion = \"1.0\"\n"), 0o644)
	os.WriteFile(filepath.Join(app, "Containerfile"), []byte(`FROM stagex/imp-base AS build
RUN mkdir -p /out && echo "$GREETING" > /out/greeting
FROM stagex/imp-base
COPY --from=stagex/imp-base /etc/passwd /copied/passwd
COPY --from=build /out/ /data/
`), 0o644)

	sxmake := func(args ...string) string {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if st := run(append([]string{"--cache-dir", cacheDir}, args...), &stdout, &stderr); st != 0 {
			t.Fatalf("sxmake %s: exit status %d\n%s", strings.Join(args, " "), st, stderr.String())
		}
		return stdout.String()
	}
	// Before the import, the tree does not load.
	var stderr bytes.Buffer
	if st := run([]string{"--cache-dir", cacheDir, "-C", tree, "-n", "user-app"}, &bytes.Buffer{}, &stderr); st != 1 || !strings.Contains(stderr.String(), "unknown image stagex/imp-base") {
		t.Fatalf("build before import: status %d, stderr:\n%s", st, stderr.String())
	}
	if diff := cmp.Diff(base.DigestsLine()+"\n", sxmake("import", "imp-base", filepath.Join(layouts, "imp-base"))); diff != "" {
		t.Errorf("import output (-want +got):\n%s", diff)
	}
	out := filepath.Join(work, "out")
	got := sxmake("-C", tree, "-o", out, "--progress", "plain", "user-app")
	digest, name, _ := strings.Cut(strings.TrimSpace(got), " ")
	if name != "user-app" || len(digest) != 64 {
		t.Fatalf("build output %q, want <digest> user-app", got)
	}
	if err := image.Validate(filepath.Join(out, "user-app")); err != nil {
		t.Fatal(err)
	}
	root := unpackLayout(t, filepath.Join(out, "user-app"))
	for file, want := range map[string]string{
		"data/greeting": "from-base\n",
		"copied/passwd": "root:x:0:0:root:/root:/bin/sh\n\n",
		"etc/passwd":    "root:x:0:0:root:/root:/bin/sh\n\n",
	} {
		b, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Errorf("%s: %v", file, err)
			continue
		}
		if diff := cmp.Diff(want, string(b)); diff != "" {
			t.Errorf("%s (-want +got):\n%s", file, diff)
		}
	}
	// A second build is fully cached and gives the same digest.
	if again := sxmake("-C", tree, "-o", out, "user-app"); again != got {
		t.Errorf("second build printed %q, want %q", again, got)
	}

	t.Run("oracle", func(t *testing.T) {
		if want := oracleDigest(t, startOracle(t), tree, layouts); want != digest {
			t.Errorf("sxmake built %s, BuildKit %s", digest, want)
		}
	})
}

// oracleDigest builds user-app of tree with the oracle d, the images it
// imports (imp-base) offered from layouts, and returns its digest.
func oracleDigest(t *testing.T, d *oracle.Daemon, tree, layouts string) string {
	t.Helper()
	tr, err := packages.Load(tree, packages.WithExternalImages("imp-base"))
	if err != nil {
		t.Fatal(err)
	}
	want, err := d.Build(context.Background(), tr, tr.Image("user-app"), layouts, false)
	if err != nil {
		t.Fatal(err)
	}
	return want
}

// An imported base image's own creation time does not reach the images
// built FROM it: BuildKit resets it, and their history decides. With a
// base created at 0 and one created after the epoch, sxmake gives
// BuildKit's digests. (The build read an imported config as it was, and
// kept a creation time of 0: 00:00:00Z where BuildKit wrote 00:00:01Z.)
// A base whose history has no times gets them as BuildKit gives them.
func TestImportedBaseCreated(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	d := startOracle(t)
	zero, epoch := time.Unix(0, 0).UTC(), time.Unix(packages.SourceDateEpoch, 0).UTC()
	later := time.Date(2023, 11, 14, 22, 13, 20, 0, time.UTC)
	for _, tc := range []struct {
		name  string
		times baseTimes
	}{
		{"created at 0", baseTimes{created: &zero, history: &epoch}},
		{"created after the epoch", baseTimes{created: &later, history: &later}},
		{"history without times", baseTimes{created: &later}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			work := t.TempDir()
			layouts := filepath.Join(work, "layouts")
			base := baseLayout(t, filepath.Join(layouts, "imp-base"), &tc.times)
			if want := `"created":"` + tc.times.created.Format(time.RFC3339) + `"`; !strings.Contains(string(base.Config.Bytes), want) {
				t.Fatalf("base config %s lacks %s", base.Config.Bytes, want)
			}
			tree := writeFiles(t, map[string]string{
				"packages/user/app/package.toml":  "[package]\nname = \"app\"\nversion = \"1\"\n",
				"packages/user/app/Containerfile": "FROM stagex/imp-base\nCOPY <<EOF /hello\nhello\nEOF\n",
			})
			cacheDir := filepath.Join(work, "cache")
			var stdout, stderr bytes.Buffer
			if st := run([]string{"--cache-dir", cacheDir, "import", "imp-base", filepath.Join(layouts, "imp-base")}, &stdout, &stderr); st != 0 {
				t.Fatalf("import: exit status %d\n%s", st, stderr.String())
			}
			stdout.Reset()
			if st := run([]string{"--cache-dir", cacheDir, "-C", tree, "-o", filepath.Join(work, "out"), "user-app"}, &stdout, &stderr); st != 0 {
				t.Fatalf("build: exit status %d\n%s", st, stderr.String())
			}
			got, _, _ := strings.Cut(stdout.String(), " ")
			if want := oracleDigest(t, d, tree, layouts); got != want {
				t.Errorf("sxmake built %s, BuildKit %s", got, want)
			}
		})
	}
}

// TestImportCommand checks `sxmake import`'s outcomes that need no root:
// what it accepts, what it refuses and how it says so.
func TestImportCommand(t *testing.T) {
	work := t.TempDir()
	layout := filepath.Join(work, "layout")
	base := baseLayout(t, layout, nil)
	rootfs := filepath.Join(work, "rootfs.tar")
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	tw.WriteHeader(&tar.Header{Name: "etc/", Typeflag: tar.TypeDir, Mode: 0o755})
	tw.Close()
	os.WriteFile(rootfs, tb.Bytes(), 0o644)
	cacheDir := filepath.Join(work, "cache")
	for _, tc := range []struct {
		name       string
		args       []string
		wantStatus int
		wantOut    string // stdout, exactly
		wantErr    string // a part of stderr
	}{
		{"layout", []string{"import", "core-base", layout}, 0, base.DigestsLine()[:64] + " core-base\n", ""},
		{"rootfs", []string{"import", "--rootfs", "core-root", rootfs}, 0, "", ""},
		{"bad name", []string{"import", "Core/Base", layout}, 1, "", `image name "Core/Base"`},
		{"missing source", []string{"import", "core-x", filepath.Join(work, "nope")}, 1, "", "no such file"},
		{"rootfs directory", []string{"import", "--rootfs", "core-x", layout}, 2, "", "want a tarball"},
		{"other platform", []string{"--platform", "linux/arm64", "import", "core-x", layout}, 1, "", "no manifest for the platform: linux/arm64 (have linux/amd64)"},
		{"not an image", []string{"import", "core-x", rootfs}, 1, "", "neither index.json"},
		{"one argument", []string{"import", "core-x"}, 2, "", "expected NAME and SOURCE"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			st := run(append([]string{"--cache-dir", cacheDir}, tc.args...), &stdout, &stderr)
			if st != tc.wantStatus || !strings.Contains(stderr.String(), tc.wantErr) {
				t.Fatalf("sxmake %s: status %d, want %d; stderr:\n%s", strings.Join(tc.args, " "), st, tc.wantStatus, stderr.String())
			}
			if tc.wantOut != "" {
				if diff := cmp.Diff(tc.wantOut, stdout.String()); diff != "" {
					t.Errorf("stdout (-want +got):\n%s", diff)
				}
			}
		})
	}
	names, err := cache.OpenImages(cacheDir).Names()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{"core-base", "core-root"}, names); diff != "" {
		t.Errorf("imported images (-want +got):\n%s", diff)
	}
}

// startOracle starts a BuildKit oracle daemon with a state of its own
// (concurrent users of oracle.Start share one) until the test ends; it
// skips the test when the oracle is not built (testdata/oracle/run-oracle.sh).
func startOracle(t *testing.T) *oracle.Daemon {
	t.Helper()
	if _, err := os.Stat(filepath.Join(oracle.Dir(), "bin", "buildctl")); err != nil {
		t.Skip("the BuildKit oracle is not built (testdata/oracle/run-oracle.sh)")
	}
	state, err := os.MkdirTemp("", "sxmake-oracle-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(state) })
	d, err := oracle.StartIn(state)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(d.Stop)
	return d
}
