package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

var beforeRev = flag.String("before-rev", "", "sources1g: also time sxmake built from this git revision (the code before file hashes) on the same tree")

// The sources1g scenario: a fully cached build of a tree whose packages
// fetch 1 GiB of sources, each copied by its package's build stage. A
// fully cached build must read none of them: fetch verifies them, and the
// COPY's key hashes them, from the hashes the cache keeps (issue 18). The
// bytes read are the build process's and its children's: rchar (what
// read calls returned, page cache or not) and read_bytes (from the disk)
// of sxbench's own /proc/self/io around each run, children's counters
// being added to the parent's when it waits for them.
const (
	sourcePackages = 8
	sourceSize     = 128 << 20
)

func sources1g(work string) (row, error) {
	tree := filepath.Join(work, "tree")
	if err := sourcesTree(tree); err != nil {
		return row{}, err
	}
	names := make([]string, sourcePackages)
	for i := range names {
		names[i] = fmt.Sprintf("core-src%d", i)
	}
	ours, err := cachedRuns(*sxmake, tree, filepath.Join(work, "cache"), names)
	if err != nil {
		return row{}, err
	}
	peer, ratio := "-", "-"
	if *beforeRev != "" {
		bin, err := buildRevision(*beforeRev, filepath.Join(work, "before"))
		if err != nil {
			return row{}, err
		}
		theirs, err := cachedRuns(bin, tree, filepath.Join(work, "cache-before"), names)
		if err != nil {
			return row{}, err
		}
		peer = theirs.String()
		ratio = fmt.Sprintf("%.3f", float64(ours.wall)/float64(theirs.wall))
	}
	what := fmt.Sprintf("fully cached build of %d packages fetching 1 GiB of sources, each copied by its build stage", sourcePackages)
	if *beforeRev != "" {
		what += fmt.Sprintf(", vs sxmake at %s", *beforeRev)
	}
	return row{what, ours.String(), peer, ratio, "reads none of the sources (issue 18)"}, nil
}

// sourcesTree writes the scenario's tree: packages core/src0..7, each with
// a 128 MiB source of random bytes in fetch/, pinned in package.toml.
func sourcesTree(tree string) error {
	rng := rand.NewChaCha8([32]byte{'s', 'x'})
	for i := range sourcePackages {
		name := fmt.Sprintf("src%d", i)
		data := make([]byte, sourceSize)
		rng.Read(data)
		sum := sha256.Sum256(data)
		pkg := filepath.Join(tree, "packages", "core", name)
		files := map[string]string{
			filepath.Join(pkg, "package.toml"): fmt.Sprintf("[package]\nname = %q\nversion = \"1\"\n\n[sources.src]\nfile = \"src.bin\"\nhash = %q\nmirrors = [\"https://mirror.invalid/src.bin\"]\n", name, hex.EncodeToString(sum[:])),
			filepath.Join(pkg, "Containerfile"): "FROM scratch AS build\nCOPY --from=fetch src.bin /src/\nCOPY note.txt /src/\n\n" +
				"FROM scratch AS package\nCOPY --from=build /src/note.txt /\n",
			filepath.Join(pkg, "note.txt"):                        name + "\n",
			filepath.Join(tree, "fetch", "core", name, "src.bin"): string(data),
		}
		for p, content := range files {
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				return err
			}
			if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
				return err
			}
		}
	}
	// A file changed less than a second before it is hashed is hashed
	// again by the next build (cache.FileHashes): let the sources age.
	time.Sleep(1100 * time.Millisecond)
	return nil
}

// ioRun is the median of fully cached builds.
type ioRun struct {
	wall            time.Duration
	rchar, readDisk int64
}

func (r ioRun) String() string {
	return fmt.Sprintf("%s, %s read (%s from disk)", ms(r.wall), mib(r.rchar), mib(r.readDisk))
}

func mib(n int64) string {
	if n < 1<<20 {
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
}

// cachedRuns builds names in tree with bin once (cold), then *runs times
// fully cached, and returns the medians.
func cachedRuns(bin, tree, cacheDir string, names []string) (ioRun, error) {
	args := append([]string{"-C", tree, "--cache-dir", cacheDir, "-o", filepath.Join(cacheDir, "out"), "--offline", "--progress", "plain"}, names...)
	if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
		return ioRun{}, fmt.Errorf("cold build: %w\n%s", err, out)
	}
	var walls []time.Duration
	var rchars, disks []int64
	for i := 0; i < *runs; i++ {
		before, err := selfIO()
		if err != nil {
			return ioRun{}, err
		}
		start := time.Now()
		cmd := exec.Command(bin, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return ioRun{}, fmt.Errorf("cached build: %w\n%s", err, stderr.String())
		}
		walls = append(walls, time.Since(start))
		after, err := selfIO()
		if err != nil {
			return ioRun{}, err
		}
		if !strings.Contains(stderr.String(), " 0 actions run,") {
			return ioRun{}, fmt.Errorf("the build was not fully cached:\n%s", stderr.String())
		}
		rchars = append(rchars, after["rchar"]-before["rchar"])
		disks = append(disks, after["read_bytes"]-before["read_bytes"])
	}
	return ioRun{median(walls), medianInt(rchars), medianInt(disks)}, nil
}

func medianInt(ns []int64) int64 {
	ds := make([]time.Duration, len(ns))
	for i, n := range ns {
		ds[i] = time.Duration(n)
	}
	return int64(median(ds))
}

// selfIO reads this process's /proc/self/io counters.
func selfIO() (map[string]int64, error) {
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		return nil, err
	}
	out := map[string]int64{}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ": "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			out[k] = n
		}
	}
	return out, nil
}

// buildRevision builds cmd/sxmake as it was at git revision rev, from a
// copy of that revision's tree under dir, and returns the binary.
func buildRevision(rev, dir string) (string, error) {
	src := filepath.Join(dir, "src")
	if err := os.MkdirAll(src, 0o755); err != nil {
		return "", err
	}
	archive := exec.Command("git", "archive", rev)
	extract := exec.Command("tar", "-x", "-C", src)
	pipe, err := archive.StdoutPipe()
	if err != nil {
		return "", err
	}
	extract.Stdin = pipe
	if err := extract.Start(); err != nil {
		return "", err
	}
	var errOut bytes.Buffer
	archive.Stderr = &errOut
	if err := archive.Run(); err != nil {
		extract.Wait()
		return "", fmt.Errorf("git archive %s (a shallow clone lacks it): %w\n%s", rev, err, errOut.String())
	}
	if err := extract.Wait(); err != nil {
		return "", fmt.Errorf("extracting %s: %w", rev, err)
	}
	bin := filepath.Join(dir, "sxmake")
	build := exec.Command("go", "build", "-o", bin, "./cmd/sxmake")
	build.Dir = src
	if out, err := build.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building sxmake at %s: %w\n%s", rev, err, out)
	}
	return bin, nil
}
