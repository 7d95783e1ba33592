package main

import (
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// variationTargets are built twice by TestVariation; with what they need
// they cover every stage of the demo tree, a login-shell pallet, ADD of
// every archive kind it has, subpackages and local patches.
var variationTargets = []string{"user-hello", "core-llvm"}

// buildEnv is one way of running a build: where the tree and the cache
// are, and everything of the host the build must not depend on.
type buildEnv struct {
	name      string
	tree      string   // a copy of the demo tree
	cacheDir  string   // --cache-dir
	env       []string // replaces these keys of the test's environment
	umask     string
	hostname  string // "" keeps the host's; else a new UTS namespace
	oneCPU    bool   // taskset -c 0
	ulimits   string // soft limits sxmake runs with: "-s 4096 -n 1000" sets ulimit -S -s 4096, ulimit -S -n 1000
	extraArgs []string
}

// TestVariation builds the same targets of the demo tree twice from cold,
// changing what must not matter between the two builds: the tree's
// location and the order and times its files were created in, the cache
// directory, TZ, umask, hostname, LANG/LC_ALL, HOME, TMPDIR, an unrelated
// environment variable, the number of CPUs and of jobs, and sxmake's own
// resource limits (user-hello records its steps' limits). Every image
// built (targets and their dependencies) must have the same manifest
// digest.
func TestVariation(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	for _, tool := range []string{"taskset", "hostname"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s (util-linux, hostname) is needed: %v", tool, err)
		}
	}
	bin := buildSxmake(t)
	demo := filepath.Join(repoTestdata(t), "stagex")
	base := t.TempDir()

	a := buildEnv{
		name:     "a",
		tree:     filepath.Join(base, "a", "stagex"),
		cacheDir: filepath.Join(base, "a", "cache"),
		env: []string{"TZ=UTC", "LANG=C.UTF-8", "LC_ALL=C", "HOME=" + filepath.Join(base, "a", "home"),
			"TMPDIR=" + filepath.Join(base, "a", "tmp")},
		umask: "022",
	}
	b := buildEnv{
		name:     "b",
		tree:     filepath.Join(base, "b", "some other", "deeper", "place", "tree"),
		cacheDir: filepath.Join(base, "b", "elsewhere", "sxmake-cache"),
		env: []string{"TZ=Asia/Tokyo", "LANG=de_DE.UTF-8", "LC_ALL=de_DE.UTF-8",
			"HOME=" + filepath.Join(base, "b", "home-b"), "TMPDIR=" + filepath.Join(base, "b", "tmp-b"),
			"SXMAKE_VARIATION_NOISE=unrelated"},
		umask:     "077",
		hostname:  "sxmake-variation-b",
		oneCPU:    true,
		ulimits:   "-s 4096 -c 1024 -n 1000 -f 10000000",
		extraArgs: []string{"-j", "1"},
	}
	copyTree(t, demo, a.tree, false, time.Time{})
	copyTree(t, demo, b.tree, true, time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC))
	for _, e := range []buildEnv{a, b} {
		for _, kv := range e.env {
			if k, v, _ := strings.Cut(kv, "="); k == "HOME" || k == "TMPDIR" {
				if err := os.MkdirAll(v, 0o755); err != nil {
					t.Fatal(err)
				}
			}
		}
	}

	got := map[string]map[string]string{}
	for _, e := range []buildEnv{a, b} {
		runBuild(t, bin, e)
		got[e.name] = layoutDigests(t, filepath.Join(e.tree, "out"))
	}
	for _, target := range variationTargets {
		if _, ok := got["a"][target]; !ok {
			t.Errorf("build a wrote no layout for %s", target)
		}
	}
	if len(got["a"]) < len(variationTargets)+4 {
		t.Errorf("build a wrote %d layouts; want the targets and their dependencies", len(got["a"]))
	}
	if diff := cmp.Diff(got["a"], got["b"]); diff != "" {
		t.Errorf("image digests differ between the two builds (-a +b):\n%s", diff)
	}
}

// buildSxmake compiles this command, with the seccomp profile, into a
// temporary directory.
func buildSxmake(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sxmake")
	cmd := exec.Command("go", "build", "-tags", "seccomp", "-o", bin, ".")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// runBuild builds the variation targets as e says, from a cold cache.
func runBuild(t *testing.T, bin string, e buildEnv) {
	t.Helper()
	args := append([]string{"-C", e.tree, "--cache-dir", e.cacheDir, "--progress", "plain"}, e.extraArgs...)
	args = append(args, variationTargets...)
	// sh sets what a process inherits but exec.Cmd cannot: the umask, the
	// hostname of the new UTS namespace, the CPU affinity.
	script := "umask " + e.umask + " && "
	for f := strings.Fields(e.ulimits); len(f) >= 2; f = f[2:] {
		script += "ulimit -S " + f[0] + " " + f[1] + " && "
	}
	if e.hostname != "" {
		script += "hostname " + e.hostname + " && "
	}
	if e.oneCPU {
		script += "exec taskset -c 0 \"$@\""
	} else {
		script += "exec \"$@\""
	}
	cmd := exec.Command("/bin/sh", append([]string{"-c", script, "sh", bin}, args...)...)
	cmd.Env = withEnv(os.Environ(), e.env)
	if e.hostname != "" {
		cmd.SysProcAttr = &syscall.SysProcAttr{Cloneflags: syscall.CLONE_NEWUTS}
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("build %s: %v\n%s", e.name, err, tail(stderr.String(), 40))
	}
	if n := len(strings.Fields(string(out))); n != 2*len(variationTargets) {
		t.Errorf("build %s printed %q; want one digest line per target", e.name, out)
	}
}

// withEnv returns environ with the keys of set replaced by set's values.
func withEnv(environ, set []string) []string {
	keys := map[string]bool{}
	for _, kv := range set {
		k, _, _ := strings.Cut(kv, "=")
		keys[k] = true
	}
	var out []string
	for _, kv := range environ {
		if k, _, _ := strings.Cut(kv, "="); !keys[k] {
			out = append(out, kv)
		}
	}
	return append(out, set...)
}

// layoutDigests maps each image layout under out to its manifest digest.
func layoutDigests(t *testing.T, out string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	for _, e := range entries {
		if !e.IsDir() {
			continue
		}
		d, _, err := image.LayoutManifest(filepath.Join(out, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		m[e.Name()] = d.String()
	}
	return m
}

// copyTree copies the package tree src (without out/) to dst. With
// reverse, files and directories are created in reverse lexical order;
// a non-zero mtime is then given to every copied file and directory.
func copyTree(t *testing.T, src, dst string, reverse bool, mtime time.Time) {
	t.Helper()
	var paths []string
	err := filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if rel == "out" || strings.HasSuffix(rel, ".part") {
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		paths = append(paths, rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if reverse {
		slices.Reverse(paths)
	}
	for _, rel := range paths {
		from, to := filepath.Join(src, rel), filepath.Join(dst, rel)
		fi, err := os.Lstat(from)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case fi.IsDir():
			err = os.MkdirAll(to, fi.Mode().Perm())
		case fi.Mode()&fs.ModeSymlink != 0:
			var target string
			if target, err = os.Readlink(from); err == nil {
				if err = os.MkdirAll(filepath.Dir(to), 0o755); err == nil {
					err = os.Symlink(target, to)
				}
			}
		default:
			var data []byte
			if data, err = os.ReadFile(from); err == nil {
				if err = os.MkdirAll(filepath.Dir(to), 0o755); err == nil {
					err = os.WriteFile(to, data, fi.Mode().Perm())
				}
			}
			if err == nil {
				err = os.Chmod(to, fi.Mode().Perm()) // whatever the umask
			}
		}
		if err != nil {
			t.Fatal(err)
		}
	}
	if mtime.IsZero() {
		return
	}
	for _, rel := range paths {
		p := filepath.Join(dst, rel)
		if fi, err := os.Lstat(p); err == nil && fi.Mode()&fs.ModeSymlink == 0 {
			if err := os.Chtimes(p, mtime, mtime); err != nil {
				t.Fatal(err)
			}
		}
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
