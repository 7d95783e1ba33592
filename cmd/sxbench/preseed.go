package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"github.com/stagex/sxmake/cache/cachetest"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/packages/packagestest"
)

// The preseed scenarios time the maintainer's case of sxmake preseed: on
// a generated buildable tree, the image whose closure is largest (at
// least 20 images) is built after its closure was pushed to
// docker-registry on 127.0.0.1 and preseeded on an empty cache. The build
// must run the top image's actions only. Its time is compared with a cold
// build of the whole closure (preseed) and with a fully cached build
// (preseed-cached), measured once for both.

var (
	preseedCold   = preseedRow(0)
	preseedCached = preseedRow(1)
	preseedRows   []row
)

// preseedRow returns the scenario of row i of preseedScenario, which runs
// once for both.
func preseedRow(i int) func(string) (row, error) {
	return func(work string) (row, error) {
		if preseedRows == nil {
			rows, err := preseedScenario(work)
			if err != nil {
				return row{}, err
			}
			preseedRows = rows
		}
		return preseedRows[i], nil
	}
}

func preseedScenario(work string) ([]row, error) {
	tree := filepath.Join(work, "tree")
	if err := packagestest.GenerateBuildable(tree, 100, 1); err != nil {
		return nil, err
	}
	top, closure, err := largestClosure(tree)
	if err != nil {
		return nil, err
	}
	if len(closure) < 20 {
		return nil, fmt.Errorf("the largest closure has %d images, want at least 20", len(closure))
	}
	host, _, stop, err := cachetest.StartRegistry(filepath.Join(work, "registry"))
	if err != nil {
		return nil, err
	}
	defer stop()
	n := max(3, *runs/3)
	built := filepath.Join(work, "built")
	var colds []time.Duration
	for range n {
		os.RemoveAll(built)
		d, _, err := timedBuild(tree, filepath.Join(built, "cache"), filepath.Join(built, "out"), top)
		if err != nil {
			return nil, fmt.Errorf("cold build: %w", err)
		}
		colds = append(colds, d)
	}
	reg := host + "/stagex"
	if out, err := exec.Command(*sxmake, append(append([]string{"-C", tree, "-o", filepath.Join(built, "out"), "push"}, closure...), reg)...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("push: %w\n%s", err, out)
	}
	if out, err := exec.Command(*sxmake, "-C", tree, "-o", filepath.Join(built, "out"), "digests").CombinedOutput(); err != nil {
		return nil, fmt.Errorf("digests: %w\n%s", err, out)
	}
	seed := filepath.Join(work, "seed")
	start := time.Now()
	if out, err := exec.Command(*sxmake, "-C", tree, "--cache-dir", filepath.Join(seed, "cache"), "-o", filepath.Join(seed, "out"), "preseed", "--registry", reg, top).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("preseed: %w\n%s", err, out)
	}
	preseedTime := time.Since(start)
	var afters []time.Duration
	var ran map[string]int
	for range n {
		run := filepath.Join(work, "run")
		os.RemoveAll(run)
		if out, err := exec.Command("cp", "-a", seed, run).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("copying the preseeded cache: %w\n%s", err, out)
		}
		var d time.Duration
		d, ran, err = timedBuild(tree, filepath.Join(run, "cache"), filepath.Join(run, "out"), top, "--offline")
		if err != nil {
			return nil, fmt.Errorf("build after preseed: %w", err)
		}
		if len(ran) != 1 || ran[top] == 0 {
			return nil, fmt.Errorf("the build of %s after preseed ran actions of %v, want %s's only", top, ran, top)
		}
		afters = append(afters, d)
	}
	cached, err := timeRuns(*runs, *sxmake, "-C", tree, "--cache-dir", filepath.Join(built, "cache"), "-o", filepath.Join(built, "out"), "--progress", "plain", top)
	if err != nil {
		return nil, err
	}
	after, cold := median(afters), median(colds)
	what := fmt.Sprintf("`%s` of a generated tree (closure of %d images) after `sxmake preseed` (%s): only its %d actions run", top, len(closure), ms(preseedTime), ran[top])
	return []row{
		{what + ", vs a cold build of the closure", ms(after), ms(cold), fmt.Sprintf("%.3f", float64(after)/float64(cold)), "—"},
		{what + ", vs a fully cached build", ms(after), ms(cached), fmt.Sprintf("%.2f", float64(after)/float64(cached)), "—"},
	}, nil
}

// largestClosure returns the image of the tree in dir whose closure has
// the most images, and that closure.
func largestClosure(dir string) (string, []string, error) {
	tree, err := packages.Load(dir)
	if err != nil {
		return "", nil, err
	}
	var top string
	var best []*packages.Image
	for _, img := range tree.Images() {
		c, err := tree.Closure(img)
		if err != nil {
			return "", nil, err
		}
		if len(c) > len(best) {
			top, best = img.Name, c
		}
	}
	names := make([]string, len(best))
	for i, img := range best {
		names[i] = img.Name
	}
	return top, names, nil
}

// timedBuild builds target in tree with the cache and output given, and
// returns its wall time and how many actions ran per image.
func timedBuild(tree, cacheDir, out, target string, extra ...string) (time.Duration, map[string]int, error) {
	args := append([]string{"-C", tree, "--cache-dir", cacheDir, "-o", out, "--json"}, extra...)
	cmd := exec.Command(*sxmake, append(args, target)...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	start := time.Now()
	if err := cmd.Run(); err != nil {
		return 0, nil, fmt.Errorf("%w\n%s", err, stderr.Bytes())
	}
	d := time.Since(start)
	ran := map[string]int{}
	sc := bufio.NewScanner(&stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<26)
	for sc.Scan() {
		var ev struct{ Kind, Image string }
		if json.Unmarshal(sc.Bytes(), &ev) == nil && ev.Kind == "done" {
			ran[ev.Image]++
		}
	}
	return d, ran, nil
}
