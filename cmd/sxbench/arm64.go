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
