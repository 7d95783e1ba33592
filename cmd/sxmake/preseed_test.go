package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/stagex/sxmake/cache/cachetest"
	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// preseedTree is a tree of five images over the demo's busybox seed:
// core-base; core-mid and core-side, both built with core-base; and
// user-top, built with both.
func preseedTree(t *testing.T) string {
	t.Helper()
	seed := filepath.Join(repoTestdata(t), "stagex", "packages", "bootstrap", "busybox")
	toml, _ := os.ReadFile(filepath.Join(seed, "package.toml"))
	cf, _ := os.ReadFile(filepath.Join(seed, "Containerfile"))
	pkg := func(name string) string { return "[package]\nname = \"" + name + "\"\nversion = \"1.0\"\n" }
	const tail = "\nFROM scratch AS package\nCOPY --from=build /out/ /\n"
	return writeFiles(t, map[string]string{
		"packages/bootstrap/busybox/package.toml":  string(toml),
		"packages/bootstrap/busybox/Containerfile": string(cf),
		"packages/core/base/package.toml":          pkg("base"),
		"packages/core/base/Containerfile": "FROM stagex/bootstrap-busybox AS build\n" +
			"RUN mkdir -p /out && echo base > /out/base\n" + tail,
		"packages/core/mid/package.toml": pkg("mid"),
		"packages/core/mid/mid.txt":      "mid v1\n",
		"packages/core/mid/Containerfile": "FROM stagex/bootstrap-busybox AS build\n" +
			"COPY --from=stagex/core-base . /\nCOPY mid.txt /src/\n" +
			"RUN mkdir -p /out && cat /base /src/mid.txt | tr a-z A-Z > /out/mid\n" + tail,
		"packages/core/side/package.toml": pkg("side"),
		"packages/core/side/Containerfile": "FROM stagex/bootstrap-busybox AS build\n" +
			"COPY --from=stagex/core-base . /\nRUN mkdir -p /out && wc -c /base > /out/side\n" + tail,
		"packages/user/top/package.toml": pkg("top"),
		"packages/user/top/Containerfile": "FROM stagex/bootstrap-busybox AS build\n" +
			"COPY --from=stagex/core-mid . /in/\nCOPY --from=stagex/core-side . /in/\n" +
			"RUN mkdir -p /out && cat /in/mid /in/side > /out/top\n" + tail,
	})
}

var preseedImages = []string{"bootstrap-busybox", "core-base", "core-mid", "core-side", "user-top"}

// checkout copies the package tree and digests files of tree, as a fresh
// checkout has them: no out/, no fetch/.
func checkout(t *testing.T, tree string) string {
	t.Helper()
	dst := t.TempDir()
	err := filepath.WalkDir(tree, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(tree, p)
		top, _, _ := strings.Cut(rel, string(filepath.Separator))
		if top == "out" || top == "fetch" {
			return filepath.SkipDir
		}
		if d.IsDir() {
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		data, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), data, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	return dst
}

// dirFiles returns every file under dir and its content.
func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := os.ReadFile(p)
		rel, _ := filepath.Rel(dir, p)
		files[rel] = string(data)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// buildEvents builds args with --json and returns, per image, the actions
// that ran, and the images taken published.
func buildEvents(t *testing.T, args ...string) (ran map[string][]string, published []string) {
	t.Helper()
	code, stdout, stderr := sxmake(t, append(args, "--json")...)
	if code != 0 {
		t.Fatalf("sxmake %s: exit %d\n%s%s", strings.Join(args, " "), code, stdout, stderr)
	}
	ran = map[string][]string{}
	sc := bufio.NewScanner(strings.NewReader(stdout))
	for sc.Scan() {
		var ev struct{ Kind, Image, Action string }
		if json.Unmarshal(sc.Bytes(), &ev) != nil {
			continue
		}
		switch ev.Kind {
		case "done":
			ran[ev.Image] = append(ran[ev.Image], ev.Action)
		case "published":
			published = append(published, ev.Image)
		}
	}
	sort.Strings(published)
	return ran, published
}

func imagesOf(ran map[string][]string) []string {
	var out []string
	for img := range ran {
		out = append(out, img)
	}
	sort.Strings(out)
	return out
}

// recorded lists the images a cache has published records of.
func recorded(t *testing.T, cacheDir string) []string {
	t.Helper()
	files, _ := filepath.Glob(filepath.Join(cacheDir, "published", "*", "*.json"))
	var out []string
	for _, f := range files {
		out = append(out, strings.TrimSuffix(filepath.Base(f), ".json"))
	}
	sort.Strings(out)
	return out
}

// A tree built by sxmake, pushed to a registry with its digests files
// written, is preseeded on a fresh cache: every layout in out/ is the one
// the build wrote, byte for byte; a build of the top image offline runs
// only its actions; an edit rebuilds only what its inputs changed; a
// published image is verified from source.
func TestPreseed(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	host, _ := cachetest.Registry(t)
	reg := host + "/stagex"
	built := preseedTree(t)
	cacheA := filepath.Join(t.TempDir(), "cache")
	if code, _, stderr := sxmake(t, "-C", built, "--cache-dir", cacheA, "--progress", "plain", "user-top"); code != 0 {
		t.Fatalf("build: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := sxmake(t, append(append([]string{"-C", built, "push"}, preseedImages...), reg)...); code != 0 {
		t.Fatalf("push: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := sxmake(t, "-C", built, "digests"); code != 0 {
		t.Fatalf("digests: exit %d\n%s", code, stderr)
	}

	tree := checkout(t, built)
	cache := filepath.Join(t.TempDir(), "cache")
	code, stdout, stderr := sxmake(t, "-C", tree, "--cache-dir", cache, "preseed", "--registry", reg)
	if code != 0 {
		t.Fatalf("preseed: exit %d\n%s", code, stderr)
	}
	var want []string
	for _, f := range []string{"bootstrap.txt", "core.txt", "user.txt"} {
		data, _ := os.ReadFile(filepath.Join(built, "digests", f))
		want = append(want, strings.Split(strings.TrimSpace(string(data)), "\n")...)
	}
	if diff := cmp.Diff(strings.Join(want, "\n")+"\n", stdout); diff != "" {
		t.Errorf("preseed printed (-digests files +got):\n%s", diff)
	}
	if !strings.Contains(stderr, "5 of 5 images preseeded from "+reg) {
		t.Errorf("preseed summary:\n%s", stderr)
	}
	if diff := cmp.Diff(dirFiles(t, filepath.Join(built, "out")), dirFiles(t, filepath.Join(tree, "out"))); diff != "" {
		t.Errorf("out/ after preseed differs from out/ of the build (-built +preseeded):\n%s", diff)
	}
	if diff := cmp.Diff(preseedImages, recorded(t, cache)); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	topActions := 4 // user-top's COPY, COPY, RUN and the package stage's COPY

	t.Run("top runs only its actions, offline", func(t *testing.T) {
		ran, published := buildEvents(t, "-C", tree, "--cache-dir", cache, "--offline", "user-top")
		if diff := cmp.Diff([]string{"user-top"}, imagesOf(ran)); diff != "" {
			t.Errorf("images whose actions ran (-want +got):\n%s", diff)
		}
		if len(ran["user-top"]) != topActions {
			t.Errorf("user-top ran %d actions, want %d: %q", len(ran["user-top"]), topActions, ran["user-top"])
		}
		if diff := cmp.Diff(preseedImages[:4], published); diff != "" {
			t.Errorf("published (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff(dirFiles(t, filepath.Join(built, "out")), dirFiles(t, filepath.Join(tree, "out"))); diff != "" {
			t.Errorf("out/ after the build (-built +here):\n%s", diff)
		}
	})

	t.Run("dry run says published, cached or build, and why", func(t *testing.T) {
		code, stdout, stderr := sxmake(t, "-C", tree, "--cache-dir", cache, "-n", "user-top")
		if code != 0 {
			t.Fatalf("-n: exit %d\n%s", code, stderr)
		}
		for _, w := range []string{
			"status     published sha256:" + strings.Fields(want[1])[0] + "\n", // core-base
			"status     cached: named on the command line (--use-published takes the published image)\n",
		} {
			if !strings.Contains(stdout, w) {
				t.Errorf("-n lacks %q:\n%s", w, stdout)
			}
		}
		if n := strings.Count(stdout, "status     published"); n != 4 {
			t.Errorf("-n shows %d images published, want 4", n)
		}
		_, stdout, _ = sxmake(t, "-C", tree, "--cache-dir", cache, "-n", "--use-published", "user-top")
		if n := strings.Count(stdout, "status     published"); n != 5 {
			t.Errorf("-n --use-published shows %d images published, want 5:\n%s", n, stdout)
		}
	})

	t.Run("an edit that changes no output", func(t *testing.T) {
		// core-base is built again and comes out as published: the
		// images that need it stay published (early cutoff).
		f := filepath.Join(tree, "packages", "core", "base", "Containerfile")
		data, _ := os.ReadFile(f)
		os.WriteFile(f, append(data, "# a comment\n"...), 0o644)
		code, stdout, _ := sxmake(t, "-C", tree, "--cache-dir", cache, "--explain", "user-top")
		if code != 0 || !strings.Contains(stdout, "# 2/5 core-base\nstatus     build: its definition changed since it was published\n\t\texplain: file changed: \"Containerfile\" -rw-r--r-- ") {
			t.Errorf("--explain of the edited core-base:\n%s", stdout)
		}
		if !strings.Contains(stdout, "# 3/5 core-mid\nstatus     build: needs core-base, which is to build; taken published if core-base comes out with its published digest\n") {
			t.Errorf("--explain of core-mid:\n%s", stdout)
		}
		ran, published := buildEvents(t, "-C", tree, "--cache-dir", cache, "--offline", "user-top")
		if diff := cmp.Diff([]string{"core-base"}, imagesOf(ran)); diff != "" {
			t.Errorf("images whose actions ran (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"bootstrap-busybox", "core-mid", "core-side"}, published); diff != "" {
			t.Errorf("published (-want +got):\n%s", diff)
		}
	})

	t.Run("a middle package edited", func(t *testing.T) {
		os.WriteFile(filepath.Join(tree, "packages", "core", "mid", "mid.txt"), []byte("mid v2\n"), 0o644)
		ran, published := buildEvents(t, "-C", tree, "--cache-dir", cache, "--offline", "user-top")
		if diff := cmp.Diff([]string{"core-mid", "user-top"}, imagesOf(ran)); diff != "" {
			t.Errorf("images whose actions ran (-want +got):\n%s", diff)
		}
		if diff := cmp.Diff([]string{"bootstrap-busybox", "core-side"}, published); diff != "" {
			t.Errorf("published (-want +got):\n%s", diff)
		}
	})

	t.Run("verify rebuilds a published image from source", func(t *testing.T) {
		code, stdout, stderr := sxmake(t, "-C", tree, "--cache-dir", cache, "--progress", "plain", "verify", "core-side")
		if code != 0 || !strings.Contains(stdout, "reproduced  "+want[3]+"\n") {
			t.Errorf("verify: exit %d\n%s%s", code, stdout, stderr)
		}
	})

	t.Run("tampered content is rejected", func(t *testing.T) {
		// The registry behind a proxy that changes one byte of a layer of
		// core-mid and of the manifest of core-side.
		_, mid, err := image.LayoutManifest(filepath.Join(built, "out", "core-mid"))
		if err != nil {
			t.Fatal(err)
		}
		tampered := []string{
			"/v2/stagex/core-mid/blobs/" + mid.Layers[0].Digest.String(),
			"/v2/stagex/core-side/manifests/sha256:" + strings.Fields(want[3])[0],
		}
		proxy := tamperingProxy(t, host, tampered)
		tree := checkout(t, built)
		cache := filepath.Join(t.TempDir(), "cache")
		code, stdout, stderr := sxmake(t, "-C", tree, "--cache-dir", cache, "preseed", "--registry", proxy+"/stagex")
		if code != 1 {
			t.Fatalf("preseed through the tampering proxy: exit %d\n%s%s", code, stdout, stderr)
		}
		for _, w := range []string{
			"sxmake: core-mid: " + mid.Layers[0].Digest.String() + " of core-mid: committing ",
			"digest mismatch",
			"sxmake: core-side: " + proxy + "/stagex/core-side@sha256:" + strings.Fields(want[3])[0] + ": the registry served content of digest sha256:",
			"sxmake: user-top: needs core-mid, which is not recorded",
			"sxmake: 2 of 5 images preseeded",
		} {
			if !strings.Contains(stderr, w) {
				t.Errorf("preseed stderr lacks %q:\n%s", w, stderr)
			}
		}
		if diff := cmp.Diff([]string{"bootstrap-busybox", "core-base"}, recorded(t, cache)); diff != "" {
			t.Errorf("records (-want +got):\n%s", diff)
		}
		for _, img := range []string{"core-mid", "core-side", "user-top"} {
			if _, err := os.Stat(filepath.Join(tree, "out", img)); !os.IsNotExist(err) {
				t.Errorf("out/%s written for an image not preseeded: %v", img, err)
			}
		}
	})

	t.Run("a digest the registry lacks, an image the digests files lack", func(t *testing.T) {
		tree := checkout(t, built)
		core := filepath.Join(tree, "digests", "core.txt")
		data, _ := os.ReadFile(core)
		missing := strings.Repeat("ab", 32)
		os.WriteFile(core, []byte(strings.Replace(string(data), strings.Fields(want[3])[0], missing, 1)), 0o644)
		os.Remove(filepath.Join(tree, "digests", "user.txt"))
		cache := filepath.Join(t.TempDir(), "cache")
		code, _, stderr := sxmake(t, "-C", tree, "--cache-dir", cache, "preseed", "--registry", reg, "user-top")
		if code != 1 {
			t.Fatalf("preseed: exit %d\n%s", code, stderr)
		}
		for _, w := range []string{
			"sxmake: core-side: " + reg + "/core-side@sha256:" + missing + ": not found in the registry\n",
			"sxmake: user-top: no published digest in digests/*.txt\n",
		} {
			if !strings.Contains(stderr, w) {
				t.Errorf("preseed stderr lacks %q:\n%s", w, stderr)
			}
		}
		if diff := cmp.Diff([]string{"bootstrap-busybox", "core-base", "core-mid"}, recorded(t, cache)); diff != "" {
			t.Errorf("records (-want +got):\n%s", diff)
		}
	})
}

// tamperingProxy serves the registry at host through a proxy that flips
// one byte of the body of every GET of the paths tampered, and returns
// the proxy's host:port.
func tamperingProxy(t *testing.T, host string, tampered []string) string {
	t.Helper()
	target, _ := url.Parse("http://" + host)
	rp := httputil.NewSingleHostReverseProxy(target)
	rp.ModifyResponse = func(resp *http.Response) error {
		req := resp.Request
		hit := false
		for _, p := range tampered {
			hit = hit || req.URL.Path == p
		}
		if !hit || req.Method != http.MethodGet || resp.StatusCode != http.StatusOK {
			return nil
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil {
			return err
		}
		body[len(body)/2] ^= 1
		resp.Body = io.NopCloser(bytes.NewReader(body))
		return nil
	}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	return strings.TrimPrefix(srv.URL, "http://")
}

// A two-platform image is preseeded from the digests of both platforms
// into the layout its two-platform build wrote, one index listing both,
// byte for byte; an image whose package names its platform is published
// for that one.
func TestPreseedPlatforms(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	host, _ := cachetest.Registry(t)
	reg := host + "/stagex"
	built := writeFiles(t, map[string]string{
		"packages/core/one/package.toml":  "[package]\nname = \"one\"\nversion = \"1\"\nplatforms = [\"linux/amd64\"]\n",
		"packages/core/one/Containerfile": "FROM scratch AS package\nCOPY <<EOF /one\none\nEOF\n",
		"packages/core/mp/package.toml":   "[package]\nname = \"mp\"\nversion = \"1\"\n",
		"packages/core/mp/Containerfile":  "FROM scratch AS package\nARG TARGETARCH\nCOPY --from=stagex/core-one /one /\nCOPY <<EOF /arch\n${TARGETARCH}\nEOF\n",
	})
	platforms := "linux/amd64,linux/arm64"
	cacheA := filepath.Join(t.TempDir(), "cache")
	if code, _, stderr := sxmake(t, "-C", built, "--cache-dir", cacheA, "--progress", "plain", "--platform", platforms, "core-mp"); code != 0 {
		t.Fatalf("build: exit %d\n%s", code, stderr)
	}
	for _, args := range [][]string{{"push", "core-one", "core-mp", reg}, {"digests"}} {
		if code, _, stderr := sxmake(t, append([]string{"-C", built}, args...)...); code != 0 {
			t.Fatalf("%s: exit %d\n%s", args[0], code, stderr)
		}
	}
	data, _ := os.ReadFile(filepath.Join(built, "digests", "core.txt"))
	if n := strings.Count(string(data), " core-mp\n"); n != 2 {
		t.Fatalf("digests/core.txt has %d lines of core-mp, want 2:\n%s", n, data)
	}

	tree := checkout(t, built)
	cache := filepath.Join(t.TempDir(), "cache")
	if code, _, stderr := sxmake(t, "-C", tree, "--cache-dir", cache, "--platform", platforms, "preseed", "--registry", reg); code != 0 {
		t.Fatalf("preseed: exit %d\n%s", code, stderr)
	}
	if diff := cmp.Diff(dirFiles(t, filepath.Join(built, "out")), dirFiles(t, filepath.Join(tree, "out"))); diff != "" {
		t.Errorf("out/ after preseed differs from out/ of the build (-built +preseeded):\n%s", diff)
	}
	ran, published := buildEvents(t, "-C", tree, "--cache-dir", cache, "--platform", platforms, "--use-published", "core-mp")
	// Each platform's build takes core-one (amd64 only) as published.
	if diff := cmp.Diff([]string{"core-mp", "core-mp", "core-one", "core-one"}, published); len(ran) != 0 || diff != "" {
		t.Errorf("a build of what was preseeded ran %v; published (-want +got):\n%s", ran, diff)
	}
	if diff := cmp.Diff(dirFiles(t, filepath.Join(built, "out")), dirFiles(t, filepath.Join(tree, "out"))); diff != "" {
		t.Errorf("out/ after the build (-built +here):\n%s", diff)
	}
	// arm64 alone: core-mp's arm64 manifest, core-one's amd64 one.
	cache = filepath.Join(t.TempDir(), "cache")
	code, stdout, stderr := sxmake(t, "-C", checkout(t, built), "--cache-dir", cache, "--platform", "linux/arm64", "preseed", "--registry", reg, "core-mp")
	if code != 0 {
		t.Fatalf("preseed for arm64: exit %d\n%s", code, stderr)
	}
	one, _, err := image.LayoutManifest(filepath.Join(built, "out", "core-one"))
	if err != nil {
		t.Fatal(err)
	}
	arm, err := image.ReadLayout(filepath.Join(built, "out", "core-mp"), image.ForPlatform(image.Platform{OS: "linux", Architecture: "arm64"}))
	if err != nil {
		t.Fatal(err)
	}
	want := one.Hex() + " core-one\n" + arm.ManifestBlob.Digest.Hex() + " core-mp\n"
	if diff := cmp.Diff(want, stdout); diff != "" {
		t.Errorf("preseed for arm64 printed (-want +got):\n%s", diff)
	}
}
