package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"

	"github.com/schollz/progressbar/v3"
	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/engine"
	"github.com/stagex/sxmake/packages"
)

func newFetchCmd(g *globalFlags, bf *buildFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "fetch TARGET...",
		Short: "Download the sources of the targets and everything they need",
		Long: `Download every declared source of the targets' closure into
fetch/<stage>/<name>/, trying each source's mirrors in order. A file is
kept only when its sha256 matches package.toml; an interrupted download is
resumed. Files already present and right are not downloaded again.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) == 0 {
				return usagef("fetch needs at least one target")
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := openCache(cmd.Context(), cmd.ErrOrStderr(), g.cacheDir())
			if err != nil {
				return err
			}
			defer c.Close()
			plan, tree, err := makePlan(g, c, args)
			if err != nil {
				return err
			}
			return fetchSources(cmd.Context(), cmd.ErrOrStderr(), c, tree, bf, engine.Packages(plan))
		},
	}
}

// fetchSources fetches the sources of pkgs, with a progress bar on a
// terminal and one line per package otherwise. A source present is
// verified with the file hashes of the cache c: one unchanged since it was
// last verified is not read.
func fetchSources(ctx context.Context, stderr io.Writer, c *cache.Cache, tree *packages.Tree, bf *buildFlags, pkgs []*packages.Package) error {
	offline := bf.offline
	total := len(pkgs)
	var mu sync.Mutex
	var report func(pkg *packages.Package, err error)
	if f, ok := stderr.(*os.File); ok && term.IsTerminal(int(f.Fd())) && !offline {
		bar := progressbar.NewOptions(total, progressbar.OptionSetWriter(stderr),
			progressbar.OptionSetDescription("fetching sources"), progressbar.OptionShowCount(),
			progressbar.OptionClearOnFinish())
		report = func(*packages.Package, error) { mu.Lock(); bar.Add(1); mu.Unlock() }
	} else {
		report = func(pkg *packages.Package, err error) {
			if len(pkg.Sources) == 0 || offline && err == nil {
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if err == nil {
				fmt.Fprintf(stderr, "[%s] sources ok\n", safeLine(pkg.ID()))
			}
		}
	}
	dirs, err := bf.fileMirrorDirs()
	if err != nil {
		return err
	}
	opts := []engine.FetchOption{engine.WithFetchDone(report), engine.WithHashes(c.Files), engine.WithFileMirrors(dirs...)}
	if offline {
		opts = append(opts, engine.Offline())
	}
	return engine.Fetch(ctx, tree, pkgs, opts...)
}

// fileMirrorDirs are the directories file:// mirrors may read from:
// --file-mirrors, else $SXMAKE_FILE_MIRRORS (a list like PATH), else
// none. Each must be an absolute path.
func (bf *buildFlags) fileMirrorDirs() ([]string, error) {
	dirs := bf.fileMirrors
	if dirs == nil {
		dirs = filepath.SplitList(os.Getenv("SXMAKE_FILE_MIRRORS"))
	}
	var out []string
	for _, d := range dirs {
		if d == "" {
			continue
		}
		if !filepath.IsAbs(d) {
			return nil, usagef("file mirror directory %q is not an absolute path", d)
		}
		out = append(out, filepath.Clean(d))
	}
	return out, nil
}
