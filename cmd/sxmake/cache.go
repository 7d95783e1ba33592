package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/engine"
)

// remoteOptions turns --cache-from and --cache-to into engine options.
// A --cache-from remote is handed to the engine as a cache.Source only, so
// nothing can write to it.
func (bf *buildFlags) remoteOptions() ([]engine.Option, error) {
	var opts []engine.Option
	for _, ref := range bf.cacheFrom {
		r, mode, err := cache.ParseRemote(ref)
		if err != nil {
			return nil, usageError{err}
		}
		if mode != cache.ModeMin || strings.Contains(ref, ",mode=") {
			return nil, usagef("--cache-from %s: mode applies to --cache-to only", ref)
		}
		opts = append(opts, engine.WithCacheFrom(cache.Source(r)))
	}
	for _, ref := range bf.cacheTo {
		r, mode, err := cache.ParseRemote(ref)
		if err != nil {
			return nil, usageError{err}
		}
		opts = append(opts, engine.WithCacheTo(cache.Sink(r), mode))
	}
	return opts, nil
}

// printRemoteSummary says what came from and went to remote caches.
func printRemoteSummary(w io.Writer, bf *buildFlags, r *engine.Report) {
	if len(bf.cacheFrom)+len(bf.cacheTo) == 0 {
		return
	}
	fmt.Fprintf(w, "sxmake: %d results from remote caches, %s received, %s sent\n",
		r.Remote, humanBytes(r.Transfer.In), humanBytes(r.Transfer.Out))
}

func humanBytes(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", float64(n)/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", float64(n)/(1<<10))
	}
	return fmt.Sprintf("%d B", n)
}

// parseBytes parses a size: 500M, 2G, 1024 (bytes); K, M, G, T are
// powers of 1024.
func parseBytes(s string) (int64, error) {
	mult := int64(1)
	t := strings.TrimSuffix(strings.ToUpper(s), "B")
	if t != "" {
		switch t[len(t)-1] {
		case 'K':
			mult = 1 << 10
		case 'M':
			mult = 1 << 20
		case 'G':
			mult = 1 << 30
		case 'T':
			mult = 1 << 40
		}
		if mult > 1 {
			t = t[:len(t)-1]
		}
	}
	n, err := strconv.ParseFloat(t, 64)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("size %q: want a number of bytes, like 500M or 2G", s)
	}
	return int64(n * float64(mult)), nil
}

// parseAge parses a duration, also in days: 30d, 12h.
func parseAge(s string) (time.Duration, error) {
	if d, ok := strings.CutSuffix(s, "d"); ok {
		n, err := strconv.ParseFloat(d, 64)
		if err == nil && n >= 0 {
			return time.Duration(n * 24 * float64(time.Hour)), nil
		}
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("age %q: want a duration, like 30d or 12h", s)
	}
	return d, nil
}

// openCache opens the cache directory dir for a command, waiting while
// another sxmake holds it (and saying so on stderr) until ctx is done.
func openCache(ctx context.Context, stderr io.Writer, dir string) (*cache.Cache, error) {
	return cache.Open(dir, cache.WithWait(ctx.Done(), func() {
		fmt.Fprintf(stderr, "sxmake: waiting for another sxmake using the cache %s\n", dir)
	}))
}

// outBlobs returns the digests of the blobs of the layouts in outDir.
func outBlobs(outDir string) map[cache.Digest]bool {
	keep := map[cache.Digest]bool{}
	dirs, _ := filepath.Glob(filepath.Join(outDir, "*", "blobs", "sha256"))
	for _, dir := range dirs {
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if d, err := cache.ParseDigest("sha256:" + e.Name()); err == nil {
				keep[d] = true
			}
		}
	}
	return keep
}

func newCacheCmd(g *globalFlags, bf *buildFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cache",
		Short: "Inspect and maintain the local cache",
	}
	outDir := func() string {
		if bf.outDir != "" {
			return bf.outDir
		}
		return filepath.Join(g.dir, "out")
	}
	stats := &cobra.Command{
		Use:   "stats",
		Short: "Summarise the local cache",
		Args:  exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := openCache(cmd.Context(), cmd.ErrOrStderr(), g.cacheDir())
			if err != nil {
				return err
			}
			defer c.Close()
			pinned, err := c.Pinned()
			if err != nil {
				return err
			}
			st, err := cache.ComputeStats(c.Actions, c.Store, pinned, c.Logs, c.SnapshotDir(), outBlobs(outDir()))
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			fmt.Fprintf(w, "cache:        %s\n", c.Dir)
			fmt.Fprintf(w, "results:      %d\n", st.Results)
			fmt.Fprintf(w, "blobs:        %d (%s)\n", st.Blobs, humanBytes(st.BlobBytes))
			fmt.Fprintf(w, "unreferenced: %d (%s)\n", st.Unreferenced, humanBytes(st.UnrefBytes))
			fmt.Fprintf(w, "snapshots:    %d\n", st.Snapshots)
			if st.Results > 0 {
				fmt.Fprintf(w, "last used:    %s to %s\n", st.OldestUse.Format(time.RFC3339), st.NewestUse.Format(time.RFC3339))
			}
			return nil
		},
	}
	var maxSize, maxAge, remote string
	var includeOut, snapshots bool
	gc := &cobra.Command{
		Use:   "gc",
		Short: "Remove least recently used results and their blobs",
		Long: `gc removes action results, least recently used first, and the blobs
that no remaining result names, until the content store is under
--max-size and nothing is older than --max-age. Results whose layers are
in the layouts of out/ are kept unless --include-out is given; blobs of
imported images and of published images (sxmake preseed) are always
kept, and so are the logs of the last build of each image (what sxmake
log shows) until that build is older than --max-age or, oldest first,
while the store is still over --max-size once nothing else is left to
remove.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var opts cache.GCOptions
			var err error
			if maxSize == "" && maxAge == "" && !snapshots {
				return usagef("cache gc: give --max-size, --max-age or --snapshots")
			}
			if maxSize != "" {
				if opts.MaxBytes, err = parseBytes(maxSize); err != nil {
					return usageError{err}
				}
				if opts.MaxBytes == 0 {
					opts.MaxBytes = 1 // under any size: remove everything not kept
				}
			}
			if maxAge != "" {
				if opts.MaxAge, err = parseAge(maxAge); err != nil {
					return usageError{err}
				}
				if opts.MaxAge == 0 {
					opts.MaxAge = time.Nanosecond
				}
			}
			if !includeOut {
				opts.Keep = outBlobs(outDir())
			}
			opts.Snapshots = snapshots
			c, err := openCache(cmd.Context(), cmd.ErrOrStderr(), g.cacheDir())
			if err != nil {
				return err
			}
			defer c.Close()
			pinned, err := c.Pinned()
			if err != nil {
				return err
			}
			rep, err := cache.Collect(c.Actions, c.Store, pinned, c.Logs, c.SnapshotDir(), opts)
			fmt.Fprintf(cmd.OutOrStdout(), "removed %d results, %d blobs (%s), %d snapshots, %d build records\n", rep.Results, rep.Blobs, humanBytes(rep.Bytes), rep.Snapshots, rep.Builds)
			return err
		},
	}
	gc.Flags().StringVar(&maxSize, "max-size", "", "bring the content store under this size (500M, 2G)")
	gc.Flags().StringVar(&maxAge, "max-age", "", "remove results not used for this long (30d, 12h)")
	gc.Flags().BoolVar(&includeOut, "include-out", false, "also remove what the layouts in out/ (or -o) hold")
	gc.Flags().BoolVar(&snapshots, "snapshots", false, "remove every unpacked snapshot (they are rebuilt from blobs when needed)")
	fsck := &cobra.Command{
		Use:   "fsck",
		Short: "Verify every result and blob of the local cache",
		Long: `fsck reads every blob of the content store and checks it against its
digest (a corrupt blob is removed: its actions run again), and checks
that every action result names stored blobs of the size it says, and
every build record (sxmake log) stored logs. With
--remote dir:PATH it verifies that remote cache directory instead,
changing nothing. It exits 1 when it finds a problem.`,
		Args: exactArgs(0, "no arguments"),
		RunE: func(cmd *cobra.Command, _ []string) error {
			var rep cache.FsckReport
			if remote != "" {
				dir, ok := strings.CutPrefix(remote, "dir:")
				if !ok {
					return usagef("cache fsck --remote %s: only dir: remotes can be listed", remote)
				}
				var err error
				if rep, err = cache.FsckDir(dir); err != nil {
					return err
				}
			} else {
				c, err := openCache(cmd.Context(), cmd.ErrOrStderr(), g.cacheDir())
				if err != nil {
					return err
				}
				defer c.Close()
				if rep, err = cache.Fsck(c.Actions, c.Store, c.Logs); err != nil {
					return err
				}
			}
			w := cmd.OutOrStdout()
			for _, p := range rep.Problems {
				fmt.Fprintln(w, p)
			}
			fmt.Fprintf(w, "%d results, %d blobs checked, %d problems\n", rep.Results, rep.Blobs, len(rep.Problems))
			if len(rep.Problems) > 0 {
				return errors.New("cache fsck: problems found")
			}
			return nil
		},
	}
	fsck.Flags().StringVar(&remote, "remote", "", "verify this dir:PATH remote cache instead of the local cache")
	cmd.AddCommand(stats, gc, fsck)
	return cmd
}
