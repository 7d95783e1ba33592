package main

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"

	"github.com/stagex/sxmake/packages/packagestest"
)

// stagexCheckout unpacks StageX's release (the fixture) into dir as a git
// checkout, as StageX's generator needs (it lists files with git
// ls-files), and returns the tree's root.
func stagexCheckout(dir string) (string, error) {
	fixture := packagestest.FixtureDir()
	if fixture == "" {
		return "", errors.New("StageX fixture not found (set SXMAKE_STAGEX_FIXTURE)")
	}
	if err := packagestest.Unpack(filepath.Join(fixture, packagestest.FixtureTarball), dir); err != nil {
		return "", err
	}
	root := filepath.Join(dir, "stagex")
	for _, args := range [][]string{{"init", "-q"}, {"add", "-A"}, {"-c", "user.name=x", "-c", "user.email=x@x", "commit", "-qm", "x"}} {
		cmd := exec.Command("git", args...)
		cmd.Dir = root
		if out, err := cmd.CombinedOutput(); err != nil {
			return "", fmt.Errorf("git %v: %w\n%s", args, err, out)
		}
	}
	return root, nil
}

// stagexPlan times planning core-llvm from a fresh checkout of StageX's
// release: `sxmake -n core-llvm` (with an empty cache) against StageX's own
// way, `python3 src/targets.py > out/targets.mk` then `make -n core-llvm`.
// The two alternate, each run on a checkout of its own.
func stagexPlan(work string) (row, error) {
	const target = "core-llvm"
	n := max(3, *runs)
	var ours, theirs []time.Duration
	for i := 0; i <= n; i++ { // run 0 warms up
		tree, err := stagexCheckout(filepath.Join(work, fmt.Sprint("sx", i)))
		if err != nil {
			return row{}, err
		}
		start := time.Now()
		if out, err := exec.Command(*sxmake, "-C", tree, "--cache-dir", filepath.Join(work, fmt.Sprint("cache", i)), "-n", target).CombinedOutput(); err != nil {
			return row{}, fmt.Errorf("sxmake -n: %w\n%s", err, tail(out))
		}
		d := time.Since(start)

		theirTree, err := stagexCheckout(filepath.Join(work, fmt.Sprint("mk", i)))
		if err != nil {
			return row{}, err
		}
		start = time.Now()
		gen := exec.Command("sh", "-c", "mkdir -p out && python3 src/targets.py > out/targets.mk && make -n "+target)
		gen.Dir = theirTree
		if out, err := gen.CombinedOutput(); err != nil {
			return row{}, fmt.Errorf("StageX's generator and make -n: %w\n%s", err, tail(out))
		}
		if i > 0 {
			ours, theirs = append(ours, d), append(theirs, time.Since(start))
		}
		os.RemoveAll(filepath.Join(work, fmt.Sprint("sx", i)))
		os.RemoveAll(filepath.Join(work, fmt.Sprint("mk", i)))
	}
	o, t := median(ours), median(theirs)
	return row{"plan `core-llvm` from a fresh checkout of StageX's release: `sxmake -n core-llvm` vs `python3 src/targets.py` + `make -n core-llvm`",
		ms(o), ms(t), fmt.Sprintf("%.3f", float64(o)/float64(t)), "≤ 0.167"}, nil
}

// stagexCached times a fully cached `sxmake core-profile bootstrap-stage0`
// on StageX's release, offline, after one cold build (bootstrap-stage0 runs
// under qemu-i386 where the kernel does not run i386 binaries).
func stagexCached(work string) (row, error) {
	tree, err := stagexCheckout(filepath.Join(work, "tree"))
	if err != nil {
		return row{}, err
	}
	if out, err := exec.Command("cp", "-r", filepath.Join(packagestest.FixtureDir(), "fetch"), filepath.Join(tree, "fetch")).CombinedOutput(); err != nil {
		return row{}, fmt.Errorf("copying the stage0 sources: %w\n%s", err, out)
	}
	args := []string{"-C", tree, "--cache-dir", filepath.Join(work, "cache"), "--offline", "--progress", "plain", "core-profile", "bootstrap-stage0"}
	start := time.Now()
	if out, err := exec.Command(*sxmake, args...).CombinedOutput(); err != nil {
		return row{}, fmt.Errorf("cold build: %w\n%s", err, tail(out))
	}
	cold := time.Since(start)
	d, err := timeRuns(*runs, *sxmake, args...)
	if err != nil {
		return row{}, err
	}
	return row{fmt.Sprintf("fully cached `sxmake core-profile bootstrap-stage0` of StageX's release (its cold build: %.0f s)", cold.Seconds()),
		ms(d), "-", "-", "-"}, nil
}

// tail is the last 2000 bytes of out.
func tail(out []byte) []byte {
	return out[max(0, len(out)-2000):]
}

// stagexCheck times `sxmake check` of every image of StageX's release
// (median of the runs) against BuildKit linting each image one request at
// a time, 4 at once, as StageX's `make check` does: sxcompat -check runs
// those requests once, compares the findings with sxmake's and prints
// BuildKit's total, which is taken from its last line.
func stagexCheck(work string) (row, error) {
	tree, err := stagexCheckout(filepath.Join(work, "tree"))
	if err != nil {
		return row{}, err
	}
	d, err := timeRuns(*runs, *sxmake, "-C", tree, "--cache-dir", filepath.Join(work, "cache"), "check")
	if err != nil {
		return row{}, err
	}
	out, err := exec.Command("go", "run", "./cmd/sxcompat", "-check", "-C", tree, "-sxmake", *sxmake).CombinedOutput()
	if err != nil {
		return row{}, fmt.Errorf("sxcompat -check: %w\n%s", err, tail(out))
	}
	m := regexp.MustCompile(`(\d+) of (\d+) images with findings identical.*BuildKit ([0-9.]+)s one by one`).FindSubmatch(out)
	if m == nil {
		return row{}, fmt.Errorf("sxcompat -check printed no summary:\n%s", tail(out))
	}
	bk, err := time.ParseDuration(string(m[3]) + "s")
	if err != nil {
		return row{}, err
	}
	return row{fmt.Sprintf("`sxmake check` of StageX's release vs BuildKit's lint request per image, 4 at a time (%s of %s images with identical findings)", m[1], m[2]),
		ms(d), ms(bk), fmt.Sprintf("%.4f", float64(d)/float64(bk)), "< 1 s"}, nil
}
