package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// arm64 times a cold build of the multi-platform tree's core-hello (RUN
// steps on busybox) for linux/arm64, under qemu-user emulation, against
// the same build for linux/amd64, native, run after run.
func arm64(work string) (row, error) {
	const tree, target = "testdata/multiarch", "core-hello"
	n := max(3, *runs/3)
	if out, err := exec.Command(*sxmake, "-C", tree, "fetch", target).CombinedOutput(); err != nil {
		return row{}, fmt.Errorf("fetch: %w\n%s", err, out)
	}
	times := map[string][]time.Duration{}
	order := []string{"linux/amd64", "linux/arm64"}
	for i := 0; i < n; i++ {
		order[0], order[1] = order[1], order[0] // alternate which goes first
		for _, p := range order {
			cache := filepath.Join(work, fmt.Sprint("cache", i, filepath.Base(p)))
			args := []string{"-C", tree, "--cache-dir", cache, "-o", filepath.Join(work, "out"), "--progress", "plain", "--platform", p, target}
			start := time.Now()
			if out, err := exec.Command(*sxmake, args...).CombinedOutput(); err != nil {
				return row{}, fmt.Errorf("%s build: %w\n%s", p, err, out)
			}
			times[p] = append(times[p], time.Since(start))
			os.RemoveAll(cache)
		}
	}
	native, emulated := median(times["linux/amd64"]), median(times["linux/arm64"])
	return row{fmt.Sprintf("cold build of `%s` (%s) for linux/arm64 under qemu vs linux/amd64 native", target, tree),
		ms(emulated), ms(native), fmt.Sprintf("%.2f", float64(emulated)/float64(native)), "-"}, nil
}

// twoPlatforms times a cold build of the multi-platform tree's
// pallet-tools for linux/amd64 and linux/arm64 in one sxmake (the
// platforms built at once), against the same two platforms built one
// after the other by two sxmake runs, run after run.
func twoPlatforms(work string) (row, error) {
	const tree, target = "testdata/multiarch", "pallet-tools"
	n := max(3, *runs/3)
	if out, err := exec.Command(*sxmake, "-C", tree, "fetch", target).CombinedOutput(); err != nil {
		return row{}, fmt.Errorf("fetch: %w\n%s", err, out)
	}
	build := func(cache string, platforms string) error {
		args := []string{"-C", tree, "--cache-dir", cache, "-o", filepath.Join(work, "out"), "--progress", "plain", "--platform", platforms, target}
		if out, err := exec.Command(*sxmake, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s build: %w\n%s", platforms, err, out)
		}
		return nil
	}
	var together, apart []time.Duration
	for i := 0; i < n; i++ {
		cache := filepath.Join(work, fmt.Sprint("cache-together", i))
		start := time.Now()
		if err := build(cache, "linux/amd64,linux/arm64"); err != nil {
			return row{}, err
		}
		together = append(together, time.Since(start))
		os.RemoveAll(cache)

		cache = filepath.Join(work, fmt.Sprint("cache-apart", i))
		start = time.Now()
		for _, p := range []string{"linux/amd64", "linux/arm64"} {
			if err := build(cache, p); err != nil {
				return row{}, err
			}
		}
		apart = append(apart, time.Since(start))
		os.RemoveAll(cache)
	}
	ours, theirs := median(together), median(apart)
	return row{fmt.Sprintf("cold build of `%s` (%s) for linux/amd64,linux/arm64 in one run vs one run per platform", target, tree),
		ms(ours), ms(theirs), fmt.Sprintf("%.2f", float64(ours)/float64(theirs)), "-"}, nil
}
