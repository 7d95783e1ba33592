// Command sxcompat builds package tree images with both sxmake and the
// BuildKit v0.26.3 oracle, using StageX's flags, and compares their
// per-platform manifest digests.
//
// Usage:
//
//	sxcompat [-C TREE] [-sxmake BIN] [-keep DIR] [TARGET...]
//	sxcompat -diff BUILDKIT_LAYOUT SXMAKE_LAYOUT
//	sxcompat -check [-C TREE] [-sxmake BIN] [-variant V]... [-j N] [TARGET...]
//
// Without targets it compares every image of the tree. For each image that
// differs it prints a structured diff: the manifest fields, the config JSON
// diff, and for the first layer whose blob differs, the paths only one side
// has and the first tar entry whose header or content differs, field by
// field. -diff prints the same for two OCI layouts already on disk (those
// -keep leaves in DIR/oracle/<image> and DIR/sxmake/<image>).
//
// -check compares Dockerfile check findings instead of images, building
// nothing (see runCheck): for each -variant of BUILDKIT_DOCKERFILE_CHECK
// ("tree", the default, keeps StageX's; "none" leaves the build arg out;
// anything else is its value), with N BuildKit requests at a time;
// -golden FILE also writes BuildKit's findings to FILE.
//
// It needs root, runc, and the oracle built by testdata/oracle/run-oracle.sh
// (sxcompat runs its setup). Exit status 1 when any image differs.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/stagex/sxmake/cmd/internal/oracle"
	"github.com/stagex/sxmake/packages"
)

func main() {
	dir := flag.String("C", "testdata/stagex", "the package tree")
	keep := flag.String("keep", "", "keep both outputs in this directory")
	sxmake := flag.String("sxmake", "bin/sxmake", "the sxmake binary")
	platforms := flag.String("platform", "", "build for these platforms (comma-separated) and compare the images' indexes")
	diff := flag.Bool("diff", false, "describe how two OCI layouts (BuildKit's, then sxmake's) differ")
	checks := flag.Bool("check", false, "compare Dockerfile check findings instead of images")
	var variants []checkVariant
	flag.Func("variant", "with -check: a BUILDKIT_DOCKERFILE_CHECK setting to compare under: tree, none or a value (repeatable; default tree)", func(s string) error {
		variants = append(variants, checkVariant(s))
		return nil
	})
	jobs := flag.Int("j", 4, "with -check: BuildKit requests at a time")
	golden := flag.String("golden", "", "with -check: also write BuildKit's findings to this file")
	flag.Parse()
	oracle.AllowSeeds()
	if *checks {
		if len(variants) == 0 {
			variants = []checkVariant{"tree"}
		}
		if err := runCheck(*dir, *sxmake, *golden, variants, *jobs, flag.Args()); err != nil {
			fmt.Fprintln(os.Stderr, "sxcompat:", err)
			os.Exit(1)
		}
		return
	}
	if *diff {
		if flag.NArg() != 2 {
			fmt.Fprintln(os.Stderr, "usage: sxcompat -diff BUILDKIT_LAYOUT SXMAKE_LAYOUT")
			os.Exit(2)
		}
		d, err := describeDiff(flag.Arg(0), flag.Arg(1))
		if err != nil {
			fmt.Fprintln(os.Stderr, "sxcompat:", err)
			os.Exit(1)
		}
		if d == "" {
			fmt.Println("same manifest")
			return
		}
		fmt.Print(d)
		os.Exit(1)
	}
	if err := run(*dir, *sxmake, *keep, *platforms, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "sxcompat:", err)
		os.Exit(1)
	}
}

// indexHex is the hex digest of the nested index of a layout.
func indexHex(dir string) (string, error) {
	d, err := oracle.IndexDigest(dir)
	return strings.TrimPrefix(d, "sha256:"), err
}

func run(dir, sxmake, keep, platforms string, names []string) error {
	repo, _ := os.Getwd()
	if err := oracle.Setup(repo); err != nil {
		return err
	}
	tree, err := packages.Load(dir)
	if err != nil {
		return err
	}
	var targets []*packages.Image
	for _, n := range names {
		img, err := tree.Resolve(n)
		if err != nil {
			return err
		}
		targets = append(targets, img)
	}
	if len(targets) == 0 {
		targets = tree.Images()
	}
	order, err := tree.Closure(targets...)
	if err != nil {
		return err
	}
	work := keep
	if work == "" {
		if work, err = os.MkdirTemp("", "sxcompat-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	}
	// -k: an image sxmake fails to build is reported, and the others
	// still compared.
	args := []string{"-C", dir, "--cache-dir", filepath.Join(work, "cache"), "-o", filepath.Join(work, "sxmake"), "--progress", "plain", "-k"}
	if platforms != "" {
		args = append(args, "--platform", platforms)
	}
	for _, img := range order {
		args = append(args, img.Name)
	}
	cmd := exec.Command(sxmake, args...)
	cmd.Stderr = os.Stderr
	sxStart := time.Now()
	out, err := cmd.Output()
	sxTime := time.Since(sxStart)
	var sxErr error
	if err != nil {
		sxErr = fmt.Errorf("sxmake: %w", err)
		fmt.Fprintf(os.Stderr, "sxcompat: %v; comparing the images it built\n", sxErr)
	}
	ours := map[string]string{}
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if hex, name, ok := strings.Cut(line, " "); ok {
			ours[name] = hex
		}
	}
	d, err := oracle.Start()
	if err != nil {
		return err
	}
	defer d.Stop()
	d.Platforms = platforms
	same := 0
	start := time.Now()
	var diffs []string
	for _, img := range order {
		theirs, err := d.Build(context.Background(), tree, img, filepath.Join(work, "oracle"), true)
		if platforms != "" && err == nil {
			// Several platforms: compare the nested indexes, which list
			// every platform's manifest.
			theirs, err = indexHex(filepath.Join(work, "oracle", img.Name))
			ours[img.Name], _ = indexHex(filepath.Join(work, "sxmake", img.Name))
		}
		mark := "DIFFERS"
		switch {
		case err != nil:
			mark = "BK-FAIL"
			diffs = append(diffs, "== "+img.Name+"\nBuildKit failed: "+err.Error()+"\n")
		case ours[img.Name] == "":
			mark = "FAILED"
			diffs = append(diffs, "== "+img.Name+"\nsxmake did not build it; BuildKit did\n")
		case theirs == ours[img.Name]:
			mark, same = "same", same+1
		}
		fmt.Printf("%-8s %-22s sxmake %.12s  buildkit %.12s\n", mark, img.Name, ours[img.Name], theirs)
		if mark == "DIFFERS" {
			d, err := describeDiff(filepath.Join(work, "oracle", img.Name), filepath.Join(work, "sxmake", img.Name))
			if err != nil {
				d = "cannot compare: " + err.Error() + "\n"
			}
			diffs = append(diffs, "== "+img.Name+"\n"+d)
		}
	}
	for _, d := range diffs {
		fmt.Print(d)
	}
	fmt.Printf("%d of %d images identical to BuildKit (sxmake %.1fs for all, BuildKit %.1fs one by one)\n",
		same, len(order), sxTime.Seconds(), time.Since(start).Seconds())
	if same != len(order) {
		return errors.Join(sxErr, fmt.Errorf("%d images differ", len(order)-same))
	}
	return nil
}
