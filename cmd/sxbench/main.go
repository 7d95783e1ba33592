// Command sxbench times sxmake as a whole process against its peers, in
// the same run, and prints a Markdown table of medians and ratios for
// BENCHMARKS.md. `make bench` runs it after the Go benchmarks.
//
// Usage: sxbench [-runs N] [-only NAME,...] [-sxmake BIN] [-before-rev REV] [-logs-before-rev REV]
//
// Scenarios (names for -only):
//
//	plan600    sxmake -n of every image of a generated 600-package tree
//	cached600  a fully cached build of a generated, buildable 600-package tree
//	cached     a fully cached build of the demo tree's largest target,
//	           against BuildKit v0.26.3 rebuilding the same images cached
//	cold       a cold build of that target: wall time minus the time its
//	           RUN programs ran, against BuildKit's cold build, alternating
//	layer500   the layer of a 500 MB Debian tree: sxmake --no-cache of
//	           FROM scratch + COPY against BuildKit's (see layer.go)
//	unpack500  image.Unpack of that layer against tar -x
//	unpack500gz  the same, gzipped, against tar -xz
//	arm64      a cold arm64 build under qemu against the same build native
//	platforms  a cold build for amd64 and arm64 in one run against one run
//	           per platform, one after the other
//	stagex-plan
//	           sxmake -n core-llvm from a fresh checkout of StageX's release
//	           against StageX's generator plus make -n core-llvm (stagex.go)
//	stagex-cached
//	           a fully cached sxmake core-profile bootstrap-stage0 of the
//	           release (after a cold build: 13 minutes under qemu-i386)
//	stagex-check
//	           sxmake check of the release against BuildKit's lint
//	           request per image (about 12 minutes), findings compared
//	remote-dir, remote-http, remote-registry
//	           a CI build of the target on an empty cache from a remote
//	           cache a build filled (--cache-to ...,mode=max), against a
//	           cold build, with the bytes moved (see remote.go)
//	sources1g  a fully cached build of a tree with 1 GiB of fetched
//	           sources: wall time and bytes read, against sxmake built
//	           from -before-rev (see sources.go)
//	demo-cold, demo-cached
//	           make demo's build, cold and fully cached, against the same
//	           build by sxmake built from -logs-before-rev (see before.go)
//	preseed, preseed-cached
//	           the build of a generated tree's top image (a closure of 30
//	           images) after sxmake preseed from docker-registry, which
//	           must run only its actions, against a cold build of the
//	           closure and a fully cached build (see preseed.go)
//
// cached and cold need root, runc and the BuildKit oracle
// (testdata/oracle/run-oracle.sh, which sxbench sets up).
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/stagex/sxmake/cmd/internal/oracle"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/packages/packagestest"
)

var (
	runs   = flag.Int("runs", 10, "timed runs of each command (after one warm-up)")
	only   = flag.String("only", "", "comma-separated scenarios to run (default: all)")
	sxmake = flag.String("sxmake", "bin/sxmake", "the sxmake binary")
	demo   = flag.String("demo", "testdata/stagex", "the demo tree")
	target = flag.String("target", "pallet-clang", "the demo target (its largest)")
)

type row struct {
	scenario, ours, peer, ratio, bar string
}

func main() {
	flag.Parse()
	oracle.AllowSeeds()
	scenarios := []struct {
		name string
		fn   func(work string) (row, error)
	}{
		{"plan600", plan600}, {"cached600", cached600}, {"cached", cachedDemo}, {"cold", coldDemo},
		{"layer500", layer500}, {"unpack500", unpack500}, {"unpack500gz", unpack500gz}, // layer.go
		{"arm64", arm64}, {"platforms", twoPlatforms}, // arm64.go
		// remote.go
		{"remote-dir", remoteDir}, {"remote-http", remoteHTTP}, {"remote-registry", remoteRegistry},
		{"sources1g", sources1g},                                                                    // sources.go
		{"stagex-plan", stagexPlan}, {"stagex-cached", stagexCached}, {"stagex-check", stagexCheck}, // stagex.go
		{"demo-cold", demoCold}, {"demo-cached", demoCached}, // before.go
		{"preseed", preseedCold}, {"preseed-cached", preseedCached}, // preseed.go
	}
	work, err := os.MkdirTemp("", "sxbench-")
	if err != nil {
		fail(err)
	}
	defer os.RemoveAll(work)
	var rows []row
	for _, s := range scenarios {
		if *only != "" && !strings.Contains(","+*only+",", ","+s.name+",") {
			continue
		}
		fmt.Fprintf(os.Stderr, "sxbench: %s\n", s.name)
		r, err := s.fn(filepath.Join(work, s.name))
		if err != nil {
			fail(fmt.Errorf("%s: %w", s.name, err))
		}
		rows = append(rows, r)
	}
	fmt.Printf("| scenario | sxmake (median) | peer (median) | ratio | bar |\n| --- | --- | --- | --- | --- |\n")
	for _, r := range rows {
		fmt.Printf("| %s | %s | %s | %s | %s |\n", r.scenario, r.ours, r.peer, r.ratio, r.bar)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "sxbench:", err)
	os.Exit(1)
}

// timeRuns runs cmd once to warm up, then n times, and returns the median
// wall time.
func timeRuns(n int, name string, args ...string) (time.Duration, error) {
	var ds []time.Duration
	for i := 0; i <= n; i++ {
		start := time.Now()
		cmd := exec.Command(name, args...)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Run(); err != nil {
			return 0, fmt.Errorf("%s %s: %w\n%s", name, strings.Join(args, " "), err, stderr.String())
		}
		if i > 0 {
			ds = append(ds, time.Since(start))
		}
	}
	return median(ds), nil
}

func median(ds []time.Duration) time.Duration {
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }

// allImages lists every image of the tree in dir.
func allImages(dir string) ([]string, error) {
	tree, err := packages.Load(dir)
	if err != nil {
		return nil, err
	}
	var names []string
	for _, img := range tree.Images() {
		names = append(names, img.Name)
	}
	return names, nil
}

func plan600(work string) (row, error) {
	tree := filepath.Join(work, "tree")
	if err := packagestest.Generate(tree, 600, 1); err != nil {
		return row{}, err
	}
	names, err := allImages(tree)
	if err != nil {
		return row{}, err
	}
	args := append([]string{"-C", tree, "--cache-dir", filepath.Join(work, "cache"), "-n"}, names...)
	d, err := timeRuns(*runs, *sxmake, args...)
	if err != nil {
		return row{}, err
	}
	return row{"plan: `sxmake -n` of all 626 images of a generated 600-package tree", ms(d), "-", "-", "≤ 300 ms"}, nil
}

func cached600(work string) (row, error) {
	tree := filepath.Join(work, "tree")
	if err := packagestest.GenerateBuildable(tree, 600, 1); err != nil {
		return row{}, err
	}
	names, err := allImages(tree)
	if err != nil {
		return row{}, err
	}
	args := append([]string{"-C", tree, "--cache-dir", filepath.Join(work, "cache"), "--progress", "plain"}, names...)
	start := time.Now()
	if out, err := exec.Command(*sxmake, args...).CombinedOutput(); err != nil {
		return row{}, fmt.Errorf("cold build: %w\n%s", err, out)
	}
	cold := time.Since(start)
	d, err := timeRuns(*runs, *sxmake, args...)
	if err != nil {
		return row{}, err
	}
	return row{fmt.Sprintf("fully cached `sxmake` of a generated 600-package tree (626 images; its cold build: %.0f s)", cold.Seconds()),
		ms(d), "-", "-", "≤ 500 ms"}, nil
}

// closure lists target and every image it needs, dependencies first.
func closure(dir, target string) (*packages.Tree, []*packages.Image, error) {
	tree, err := packages.Load(dir)
	if err != nil {
		return nil, nil, err
	}
	img, err := tree.Resolve(target)
	if err != nil {
		return nil, nil, err
	}
	order, err := tree.Closure(img)
	return tree, order, err
}

// buildkitClosure builds every image of order with the oracle, one buildctl
// call each as StageX does, and returns the total wall time.
func buildkitClosure(d *oracle.Daemon, tree *packages.Tree, order []*packages.Image, out string, noCache bool) (time.Duration, error) {
	start := time.Now()
	for _, img := range order {
		if _, err := d.Build(context.Background(), tree, img, out, noCache); err != nil {
			return 0, err
		}
	}
	return time.Since(start), nil
}

func cachedDemo(work string) (row, error) {
	repo, _ := os.Getwd()
	if err := oracle.Setup(repo); err != nil {
		return row{}, err
	}
	tree, order, err := closure(*demo, *target)
	if err != nil {
		return row{}, err
	}
	args := []string{"-C", *demo, "--cache-dir", filepath.Join(work, "cache"), "-o", filepath.Join(work, "out"), "--progress", "plain", *target}
	if out, err := exec.Command(*sxmake, args...).CombinedOutput(); err != nil {
		return row{}, fmt.Errorf("cold build: %w\n%s", err, out)
	}
	ours, err := timeRuns(*runs, *sxmake, args...)
	if err != nil {
		return row{}, err
	}
	d, err := oracle.Start()
	if err != nil {
		return row{}, err
	}
	defer d.Stop()
	bkOut := filepath.Join(work, "buildkit")
	if _, err := buildkitClosure(d, tree, order, bkOut, false); err != nil {
		return row{}, err
	}
	var theirs []time.Duration
	for i := 0; i < max(3, *runs/2); i++ {
		t, err := buildkitClosure(d, tree, order, bkOut, false)
		if err != nil {
			return row{}, err
		}
		theirs = append(theirs, t)
	}
	bk := median(theirs)
	return row{fmt.Sprintf("fully cached rebuild of `%s` (%d images) vs BuildKit, one cached buildctl build per image", *target, len(order)),
		ms(ours), ms(bk), fmt.Sprintf("%.3f", float64(ours)/float64(bk)), "≤ 0.1"}, nil
}

func coldDemo(work string) (row, error) {
	tree, order, err := closure(*demo, *target)
	if err != nil {
		return row{}, err
	}
	d, err := oracle.Start()
	if err != nil {
		return row{}, err
	}
	defer d.Stop()
	// sxmake and BuildKit alternate, so that both see the same machine:
	// the file system's latency, which these builds are bound by, drifts
	// by several times on these machines.
	n := max(3, *runs/3)
	var walls, procs, bkWalls []time.Duration
	for i := 0; i < n; i++ {
		cache := filepath.Join(work, fmt.Sprint("cache", i))
		args := []string{"-C", *demo, "--cache-dir", cache, "-o", filepath.Join(work, "out"), "--json", *target}
		start := time.Now()
		out, err := exec.Command(*sxmake, args...).Output()
		if err != nil {
			return row{}, fmt.Errorf("cold build: %w", err)
		}
		walls = append(walls, time.Since(start))
		procs = append(procs, processTime(out))
		os.RemoveAll(cache)

		t, err := buildkitClosure(d, tree, order, filepath.Join(work, "buildkit"), true)
		if err != nil {
			return row{}, err
		}
		bkWalls = append(bkWalls, t)
	}
	proc := median(procs)
	ours, theirs := median(walls)-proc, median(bkWalls)-proc
	return row{fmt.Sprintf("cold build of `%s`: wall time minus %s in RUN processes vs BuildKit's", *target, ms(proc)),
		ms(ours), ms(theirs), fmt.Sprintf("%.3f", float64(ours)/float64(theirs)), "≤ 0.333"}, nil
}

// processTime sums the RUN process times in sxmake's --json events.
func processTime(out []byte) time.Duration {
	var total float64
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var ev struct {
			Kind    string  `json:"kind"`
			Process float64 `json:"process_seconds"`
		}
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Kind == "done" {
			total += ev.Process
		}
	}
	return time.Duration(total * float64(time.Second))
}
