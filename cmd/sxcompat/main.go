// Command sxcompat builds package tree images with both sxmake and the
// BuildKit v0.26.3 oracle, using StageX's flags, and compares their
// per-platform manifest digests.
//
// Usage: sxcompat [-C TREE] [-sxmake BIN] TARGET...
//
// It needs root, runc, and the oracle built by testdata/oracle/run-oracle.sh
// (sxcompat runs its setup). Exit status 1 when any image differs.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/stagex/sxmake/cmd/internal/oracle"
	"github.com/stagex/sxmake/packages"
)

func main() {
	dir := flag.String("C", "testdata/stagex", "the package tree")
	keep := flag.String("keep", "", "keep both outputs in this directory")
	sxmake := flag.String("sxmake", "bin/sxmake", "the sxmake binary")
	flag.Parse()
	if err := run(*dir, *sxmake, *keep, flag.Args()); err != nil {
		fmt.Fprintln(os.Stderr, "sxcompat:", err)
		os.Exit(1)
	}
}

func run(dir, sxmake, keep string, names []string) error {
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
	args := []string{"-C", dir, "--cache-dir", filepath.Join(work, "cache"), "-o", filepath.Join(work, "sxmake"), "--progress", "plain"}
	for _, img := range order {
		args = append(args, img.Name)
	}
	cmd := exec.Command(sxmake, args...)
	cmd.Stderr = os.Stderr
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("sxmake: %w", err)
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
	same := 0
	for _, img := range order {
		theirs, err := d.Build(context.Background(), tree, img, filepath.Join(work, "oracle"), true)
		if err != nil {
			return err
		}
		mark := "DIFFERS"
		if theirs == ours[img.Name] {
			mark, same = "same", same+1
		}
		fmt.Printf("%-8s %-22s sxmake %.12s  buildkit %.12s\n", mark, img.Name, ours[img.Name], theirs)
	}
	fmt.Printf("%d of %d images identical to BuildKit\n", same, len(order))
	if same != len(order) {
		return fmt.Errorf("%d images differ", len(order)-same)
	}
	return nil
}
