package packagestest

import (
	"archive/tar"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The StageX release the fixture holds (see the README next to it).
const (
	FixtureTarball = "stagex-2026.03.0.tar.gz" // `git archive --prefix=stagex/` of the release
	FixtureTargets = "targets.mk.gz"           // what src/targets.py writes for it
	FixtureImages  = 513                       // images of the release, subpackages counted
)

// FixtureDir returns the directory holding StageX's release as test data
// ($SXMAKE_STAGEX_FIXTURE, else ../shared/stagex next to the repository,
// else /work/shared/stagex), or "" when there is none.
func FixtureDir() string {
	candidates := []string{os.Getenv("SXMAKE_STAGEX_FIXTURE")}
	if root, err := repoRoot(); err == nil {
		candidates = append(candidates, filepath.Join(root, "..", "shared", "stagex"))
	}
	candidates = append(candidates, "/work/shared/stagex")
	for _, d := range candidates {
		if d == "" {
			continue
		}
		if _, err := os.Stat(filepath.Join(d, FixtureTarball)); err == nil {
			return d
		}
	}
	return ""
}

// requireFixture returns FixtureDir, or skips t when there is none; with
// SXMAKE_TEST_ROOT=1 (as CI sets) a missing fixture fails t instead.
func requireFixture(t testing.TB) string {
	t.Helper()
	dir := FixtureDir()
	if dir != "" {
		return dir
	}
	msg := "StageX fixture not found: set SXMAKE_STAGEX_FIXTURE to the directory holding " + FixtureTarball
	if os.Getenv("SXMAKE_TEST_ROOT") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Fixture unpacks StageX's release into a temporary directory of t and
// returns its root (the directory holding packages/). Files get the modes
// a git checkout under umask 022 gives them. Without the fixture it skips
// t, or fails it under SXMAKE_TEST_ROOT=1.
func Fixture(t testing.TB) string {
	t.Helper()
	dir := requireFixture(t)
	dest := t.TempDir()
	if err := Unpack(filepath.Join(dir, FixtureTarball), dest); err != nil {
		t.Fatal(err)
	}
	return filepath.Join(dest, "stagex")
}

// FixtureRules returns the rules of the fixture's targets.mk. Without the
// fixture it skips t, or fails it under SXMAKE_TEST_ROOT=1.
func FixtureRules(t testing.TB) []Rule {
	t.Helper()
	rules, err := ReadTargets(filepath.Join(requireFixture(t), FixtureTargets))
	if err != nil {
		t.Fatal(err)
	}
	return rules
}

// ReadTargets parses the targets.mk at path, gzipped when its name ends
// in ".gz".
func ReadTargets(path string) ([]Rule, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	var r io.Reader = f
	if strings.HasSuffix(path, ".gz") {
		zr, err := gzip.NewReader(f)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r = zr
	}
	rules, err := ParseTargets(r)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return rules, nil
}

// Unpack extracts the gzipped tarball at path into dest: directories,
// regular files (mode 0755 when executable, else 0644, as a checkout
// under umask 022 makes them) and symbolic links. Entries may not leave
// dest.
func Unpack(path, dest string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	tr := tar.NewReader(zr)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("%s: %w", path, err)
		}
		if err := unpackEntry(tr, h, dest); err != nil {
			return fmt.Errorf("%s: %s: %w", path, h.Name, err)
		}
	}
}

func unpackEntry(tr *tar.Reader, h *tar.Header, dest string) error {
	name := filepath.Clean(h.Name)
	if !filepath.IsLocal(name) {
		return errors.New("path leaves the destination")
	}
	target := filepath.Join(dest, name)
	switch h.Typeflag {
	case tar.TypeDir:
		return os.MkdirAll(target, 0o755)
	case tar.TypeSymlink:
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		return os.Symlink(h.Linkname, target)
	case tar.TypeReg:
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if h.Mode&0o111 != 0 {
			mode = 0o755
		}
		out, err := os.OpenFile(target, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
		if err != nil {
			return err
		}
		_, err = io.Copy(out, tr)
		return errors.Join(err, out.Close(), os.Chmod(target, mode))
	case tar.TypeXGlobalHeader:
		return nil // git archive's commit id
	}
	return fmt.Errorf("unsupported entry type %q", h.Typeflag)
}

// repoRoot returns the directory holding the sxmake module's go.mod, found
// from the working directory up.
func repoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if data, err := os.ReadFile(filepath.Join(dir, "go.mod")); err == nil && strings.HasPrefix(string(data), "module github.com/stagex/sxmake\n") {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("not inside the sxmake repository")
		}
		dir = parent
	}
}
