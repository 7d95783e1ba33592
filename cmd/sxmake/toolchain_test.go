package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"

	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// The toolchain base: a Debian bookworm root file system with gcc, libc6-dev
// and make, made with mmdebstrap from the Debian mirror apt uses, with file
// times clamped to SOURCE_DATE_EPOCH. It depends on the mirror's state when
// it is made, so it is made once and kept, as <dir>/<toolchainRootfsName>
// with its sha256 in <dir>/<toolchainRootfsName>.sha256, checked before
// each use (a base that fails the check is made again). dir is
// $SXMAKE_TOOLCHAIN_DIR (CI names one that outlives its fresh $HOME), else
// <user cache dir>/sxmake-toolchain.
const (
	toolchainPackages   = "gcc,libc6-dev,make"
	toolchainEpoch      = "1700000000"
	toolchainRootfsName = "bookworm-gcc-libc6-dev-make-" + toolchainEpoch + ".tar"
)

// toolchainRootfs returns the toolchain base's tarball, running mmdebstrap
// when it is not made yet or fails its check. A lock file keeps
// concurrent tests (of this or another test binary) from making it twice
// or reading it half made.
func toolchainRootfs(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("SXMAKE_TOOLCHAIN_DIR")
	if dir == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			t.Fatalf("toolchain base: %v", err)
		}
		dir = filepath.Join(cache, "sxmake-toolchain")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, "lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if err := unix.Flock(int(lock.Fd()), unix.LOCK_EX); err != nil {
		t.Fatalf("locking %s: %v", lock.Name(), err)
	}
	defer unix.Flock(int(lock.Fd()), unix.LOCK_UN)

	tarball := filepath.Join(dir, toolchainRootfsName)
	if err := checkSum(tarball); err == nil {
		return tarball
	} else if !errors.Is(err, os.ErrNotExist) {
		t.Logf("making the toolchain base again: %v", err)
	}
	// Not made, failing its check, or made as a directory by an older
	// version of this test.
	if err := os.RemoveAll(tarball); err != nil {
		t.Fatal(err)
	}
	if _, err := exec.LookPath("mmdebstrap"); err != nil {
		t.Fatalf("making the toolchain base %s needs mmdebstrap (apt-get install mmdebstrap, or .ci/install-deps): %v", tarball, err)
	}
	t.Logf("making %s with mmdebstrap (once per cache dir)", tarball)
	start := time.Now()
	tmp := tarball + ".tmp"
	os.RemoveAll(tmp)
	// --format: mmdebstrap guesses it from the name otherwise, and makes
	// a directory of a name ending in .tmp.
	cmd := exec.Command("mmdebstrap", "--quiet", "--variant=minbase", "--format=tar", "--include="+toolchainPackages, "bookworm", tmp)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+toolchainEpoch)
	if out, err := cmd.CombinedOutput(); err != nil {
		os.RemoveAll(tmp)
		t.Fatalf("mmdebstrap: %v\n%s", err, out)
	}
	sum, err := fileSum(tmp)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(tarball+".sha256", []byte(sum+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, tarball); err != nil {
		t.Fatal(err)
	}
	t.Logf("mmdebstrap: %v", time.Since(start).Round(time.Second))
	return tarball
}

// checkSum checks the regular file path against the sha256 recorded in
// path.sha256.
func checkSum(path string) error {
	if fi, err := os.Stat(path); err != nil {
		return err
	} else if !fi.Mode().IsRegular() {
		return fmt.Errorf("%s is not a file", path)
	}
	want, err := os.ReadFile(path + ".sha256")
	if err != nil {
		return err
	}
	got, err := fileSum(path)
	if err != nil {
		return err
	}
	if got != strings.TrimSpace(string(want)) {
		return fmt.Errorf("%s: sha256 %s, recorded %s", path, got, strings.TrimSpace(string(want)))
	}
	return nil
}

// fileSum returns the hex sha256 of the file path.
func fileSum(path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// TestToolchainReproducible builds C code with a real toolchain end to end:
// the Debian base imported as stagex/debian-gcc, then testdata/toolchain's
// packages (our own C program, and GNU hello's upstream release tarball
// fetched from Debian's archive, ./configure && make && make install), each
// of which runs what it built before copying it into a FROM scratch image.
// Two cold builds (fresh trees, caches and out directories) must give
// identical digests, and the images must hold the installed files.
func TestToolchainReproducible(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	rootfs := toolchainRootfs(t)
	targets := []string{"user-greet", "user-hello"}

	var imports, builds, trees, outs [2]string
	for i := range builds {
		work := t.TempDir()
		cache := filepath.Join(work, "cache")
		trees[i], outs[i] = filepath.Join(work, "tree"), filepath.Join(work, "out")
		tree := trees[i]
		copyTree(t, filepath.Join(repoTestdata(t), "toolchain"), tree, false, time.Time{})

		start := time.Now()
		code, stdout, stderr := sxmake(t, "--cache-dir", cache, "import", "--rootfs", "debian-gcc", rootfs)
		if code != 0 {
			t.Fatalf("import: exit %d\n%s", code, stderr)
		}
		imports[i] = stdout
		imported := time.Since(start)

		start = time.Now()
		code, stdout, stderr = sxmake(t, append([]string{"-C", tree, "--cache-dir", cache, "-o", outs[i], "--progress", "plain"}, targets...)...)
		if code != 0 {
			t.Fatalf("cold build %d: exit %d\n%s", i+1, code, tail(stderr, 60))
		}
		builds[i] = stdout
		t.Logf("cold build %d: import %v, build %v", i+1, imported.Round(time.Millisecond), time.Since(start).Round(time.Millisecond))
	}
	if !strings.HasSuffix(imports[0], " debian-gcc\n") {
		t.Errorf("import printed %q, want <digest> debian-gcc", imports[0])
	}
	if diff := cmp.Diff(imports[0], imports[1]); diff != "" {
		t.Errorf("the two imports differ (-first +second):\n%s", diff)
	}
	if diff := cmp.Diff(builds[0], builds[1]); diff != "" {
		t.Errorf("the two cold builds differ (-first +second):\n%s", diff)
	}
	t.Logf("imported %s built %s", imports[0], builds[0])
	var names []string
	for _, l := range strings.Split(strings.TrimSpace(builds[0]), "\n") {
		digest, name, _ := strings.Cut(l, " ")
		if len(digest) != 64 {
			t.Errorf("build printed %q, want <digest> <image>", l)
		}
		names = append(names, name)
	}
	if diff := cmp.Diff(targets, names); diff != "" {
		t.Errorf("images built (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		image string
		files []string // regular files the image holds
	}{
		{"user-greet", []string{"usr/bin/greet", "usr/lib/libgreet.a", "usr/include/greet.h"}},
		{"user-hello", []string{"usr/bin/hello", "usr/share/man/man1/hello.1", "usr/share/info/hello.info"}},
	} {
		t.Run(tc.image, func(t *testing.T) {
			root := unpackLayout(t, filepath.Join(outs[0], tc.image))
			var missing []string
			for _, f := range tc.files {
				if fi, err := os.Stat(filepath.Join(root, f)); err != nil || !fi.Mode().IsRegular() || fi.Size() == 0 {
					missing = append(missing, fmt.Sprintf("%s (%v)", f, err))
				}
			}
			if len(missing) > 0 {
				t.Errorf("the image lacks %s", strings.Join(missing, ", "))
			}
		})
	}

	// BuildKit, given the same base as an oci-layout context, builds the
	// same images: what the toolchain embeds is reproducible there too.
	t.Run("oracle", func(t *testing.T) {
		d := startOracle(t)
		layouts := t.TempDir()
		src, err := image.ReadRootfs(rootfs, time.Unix(packages.SourceDateEpoch, 0))
		if err != nil {
			t.Fatal(err)
		}
		defer src.Close()
		writeSourceLayout(t, src, filepath.Join(layouts, "debian-gcc"))
		if got, want := src.ManifestBlob.Digest.Hex(), strings.Fields(imports[0])[0]; got != want {
			t.Fatalf("the base's layout holds manifest %s, the import %s", got, want)
		}
		// The first build's tree holds the sources sxmake fetched.
		tr, err := packages.Load(trees[0], packages.WithExternalImages("debian-gcc"))
		if err != nil {
			t.Fatal(err)
		}
		var lines []string
		for _, name := range targets {
			digest, err := d.Build(context.Background(), tr, tr.Image(name), layouts, false)
			if err != nil {
				t.Fatalf("BuildKit %s: %v", name, err)
			}
			lines = append(lines, strings.TrimPrefix(digest, "sha256:")+" "+name)
		}
		if diff := cmp.Diff(builds[0], strings.Join(lines, "\n")+"\n"); diff != "" {
			t.Errorf("sxmake and BuildKit differ (-sxmake +BuildKit):\n%s", diff)
		}
	})
}

// writeSourceLayout writes src to dir as a one-manifest OCI image layout.
func writeSourceLayout(t *testing.T, src *image.Source, dir string) {
	t.Helper()
	blobs := filepath.Join(dir, "blobs", "sha256")
	if err := os.MkdirAll(blobs, 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(d image.Descriptor, r io.Reader) {
		t.Helper()
		f, err := os.Create(filepath.Join(blobs, d.Digest.Hex()))
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		if _, err := io.Copy(f, r); err != nil {
			t.Fatal(err)
		}
	}
	write(src.ManifestBlob.Descriptor, bytes.NewReader(src.ManifestBlob.Bytes))
	write(src.Config.Descriptor, bytes.NewReader(src.Config.Bytes))
	for i, l := range src.Manifest.Layers {
		r, err := src.OpenLayer(i)
		if err != nil {
			t.Fatal(err)
		}
		write(l, r)
		r.Close()
	}
	index, err := json.Marshal(map[string]any{
		"schemaVersion": 2,
		"mediaType":     "application/vnd.oci.image.index.v1+json",
		"manifests":     []image.Descriptor{src.ManifestBlob.Descriptor},
	})
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{"index.json": string(index), "oci-layout": `{"imageLayoutVersion":"1.0.0"}`}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
