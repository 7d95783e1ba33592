package main

import (
	"bufio"
	"bytes"
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
	"golang.org/x/term"

	"github.com/stagex/sxmake/cache"
)

func newLogCmd(g *globalFlags) *cobra.Command {
	var list, follow bool
	cmd := &cobra.Command{
		Use:   "log IMAGE [STEP]",
		Short: "Print what the steps of the last build of an image printed",
		Long: `log prints the output of the steps of the last build of IMAGE: of a
step that ran in that build, what it printed; of a step found cached, what
the run that made the cached result printed. With STEP it prints that
step's output alone, byte for byte; without, every step's output in build
order, each after a header line naming the step:

    ==> user-hello 3/5 ran 1.20s build 4:1 RUN make <==

Steps are numbered in build order from 1, counting only the steps that
are actions (RUN, COPY, ADD and WORKDIR; not ENV, ARG, LABEL...). STEP is:

    N       the Nth step, as --list numbers them
    TEXT    the one step whose label starts with TEXT ("build 12:1", the
            stage and the Containerfile line and column), or whose
            instruction does ("RUN make")

--list prints one line per step instead: its number, status (pending,
running, ran, cached, failed or interrupted), time and label.

-f follows a build running now, from another terminal: it prints what the
step prints as it prints it and, without STEP, each step's output as it
runs, until the image's build ends. If the build has not reached IMAGE
yet, it waits.

A build killed mid-step leaves what that step had printed: its status is
interrupted. Build records live in the cache directory (--cache-dir),
one per image and platform; with several platforms the latest build is
shown unless --platform names one. They need no lock: log reads them
while a build holds the cache. On a terminal, control characters in the
output are shown escaped; elsewhere the bytes are printed as they are.`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) < 1 || len(args) > 2 {
				return usagef("expected IMAGE [STEP], got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			lr, err := openLogReader(g, args[0])
			if err != nil {
				return err
			}
			w := cmd.OutOrStdout()
			if f, ok := w.(*os.File); ok && term.IsTerminal(int(f.Fd())) {
				tw := &terminalWriter{w: w}
				defer tw.Flush()
				w = tw
			}
			bw := bufio.NewWriterSize(w, 64<<10)
			defer bw.Flush()
			step := ""
			if len(args) == 2 {
				step = args[1]
			}
			switch {
			case list:
				return lr.list(bw)
			case follow:
				return lr.follow(cmd.Context(), bw, step)
			}
			return lr.print(bw, step)
		},
	}
	cmd.Flags().BoolVar(&list, "list", false, "list the steps with their status and time")
	cmd.Flags().BoolVarP(&follow, "follow", "f", false, "follow a running build: print output as it is printed")
	return cmd
}

// logReader reads the build records of one image in a cache directory.
type logReader struct {
	dir      string
	logs     *cache.Logs
	image    string
	platform string // "" for the latest build on any platform
}

// openLogReader opens the logs of the cache named by the flags, for the
// image name (a target name, resolved through the tree when there is one).
func openLogReader(g *globalFlags, name string) (*logReader, error) {
	dir := g.cacheDir()
	if _, err := os.Stat(filepath.Join(dir, "logs")); err != nil {
		return nil, fmt.Errorf("no build recorded in the cache %s", dir)
	}
	store, err := cache.OpenContentStore(filepath.Join(dir, "content"))
	if err != nil {
		return nil, err
	}
	logs, err := cache.OpenLogs(dir, store)
	if err != nil {
		return nil, err
	}
	lr := &logReader{dir: dir, logs: logs, image: name}
	if tree, err := g.load(); err == nil {
		if img, err := tree.Resolve(name); err == nil {
			lr.image = img.Name
		}
	}
	if g.platform != "" {
		ps, err := parsePlatforms(g.platform)
		if err != nil {
			return nil, err
		}
		if len(ps) != 1 {
			return nil, usagef("log: give one --platform")
		}
		lr.platform = ps[0].String()
	}
	return lr, nil
}

// record returns the last build of the image, with its running steps
// marked interrupted when no build holds the cache: the build was killed.
func (lr *logReader) record() (*cache.BuildRecord, error) {
	recs, err := lr.logs.Builds(lr.image)
	if errors.Is(err, cache.ErrNotFound) {
		return nil, fmt.Errorf("no build of %s recorded in the cache %s", lr.image, lr.dir)
	}
	if err != nil {
		return nil, err
	}
	var r *cache.BuildRecord
	for _, rec := range recs {
		if lr.platform == "" || rec.Platform == lr.platform {
			r = rec
			break
		}
	}
	if r == nil {
		return nil, fmt.Errorf("no build of %s for %s recorded in the cache %s", lr.image, lr.platform, lr.dir)
	}
	if r.Status == cache.StatusRunning && !cache.Busy(lr.dir) {
		r.Status = cache.StatusInterrupted
		for i := range r.Steps {
			if r.Steps[i].Status == cache.StatusRunning {
				r.Steps[i].Status = cache.StatusInterrupted
			}
		}
	}
	return r, nil
}

// list prints one line per step.
func (lr *logReader) list(w io.Writer) error {
	r, err := lr.record()
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "%s %s %s, started %s\n", safeLine(r.Image), safeLine(r.Platform), r.Status, r.Start.Local().Format(time.DateTime))
	for i, s := range r.Steps {
		fmt.Fprintf(w, "%3d  %-11s %8s  %s\n", i+1, s.Status, stepTime(s), safeLine(s.Label))
	}
	return nil
}

// stepTime is how long a step took, so far for a running one.
func stepTime(s cache.StepRecord) string {
	switch {
	case s.Status == cache.StatusRunning:
		return shortDuration(time.Since(s.Start))
	case s.Start.IsZero():
		return "-"
	}
	return shortDuration(s.Duration)
}

// header is the line before a step's output when several are printed.
func header(r *cache.BuildRecord, i int) string {
	s := r.Steps[i]
	return fmt.Sprintf("==> %s %d/%d %s %s %s <==\n", safeLine(r.Image), i+1, len(r.Steps), s.Status, stepTime(s), safeLine(s.Label))
}

// print prints the output of step (every step's, with headers, if "").
func (lr *logReader) print(w io.Writer, step string) error {
	r, err := lr.record()
	if err != nil {
		return err
	}
	if step != "" {
		i, err := findStep(r, step)
		if err != nil {
			return err
		}
		_, err = lr.copyStep(w, r, i, 0)
		return err
	}
	for i := range r.Steps {
		fmt.Fprint(w, header(r, i))
		if _, err := lr.copyStep(w, r, i, 0); err != nil {
			return err
		}
	}
	return nil
}

// copyStep copies the output of step i of r to w from offset on, as far
// as it is written, and returns the offset reached. A log committed since
// r was read is found by reading the record again.
func (lr *logReader) copyStep(w io.Writer, r *cache.BuildRecord, i int, offset int64) (int64, error) {
	s := r.Steps[i]
	rc, err := lr.logs.Open(s)
	if errors.Is(err, cache.ErrNotFound) && s.Log.IsZero() {
		if r2, err2 := lr.record(); err2 == nil && i < len(r2.Steps) && r2.Start.Equal(r.Start) {
			s = r2.Steps[i]
			rc, err = lr.logs.Open(s)
		}
	}
	if errors.Is(err, cache.ErrNotFound) {
		return offset, fmt.Errorf("the log of step %d of %s is no longer in the cache", i+1, r.Image)
	}
	if err != nil {
		return offset, err
	}
	defer rc.Close()
	if offset > 0 {
		// A running log's file seeks; a blob is read from its start, as
		// its digest is verified.
		if sk, ok := rc.(io.Seeker); ok {
			_, err = sk.Seek(offset, io.SeekStart)
		} else {
			_, err = io.CopyN(io.Discard, rc, offset)
		}
		if err != nil {
			return offset, fmt.Errorf("the log of step %d of %s: %w", i+1, r.Image, err)
		}
	}
	n, err := io.Copy(w, rc)
	return offset + n, err
}

// follow prints the output of step (every step, with headers, if "") as
// the running build writes it, until the image's build ends or, when no
// build holds the cache, at once. Before the build reaches the image it
// waits.
func (lr *logReader) follow(ctx context.Context, w io.Writer, step string) error {
	flush := func() {
		if f, ok := w.(interface{ Flush() error }); ok {
			f.Flush()
		}
	}
	wait := func() error {
		flush()
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(200 * time.Millisecond):
			return nil
		}
	}
	// A build that holds the cache but has not started the image leaves
	// an older record: wait for a newer one while a build runs.
	started := time.Now()
	r, err := lr.record()
	for ; (err != nil || r.Status != cache.StatusRunning && r.End.Before(started)) && cache.Busy(lr.dir); r, err = lr.record() {
		if err := wait(); err != nil {
			return err
		}
	}
	if err != nil {
		return err
	}
	first, last := 0, len(r.Steps)-1
	if step != "" {
		if first, err = findStep(r, step); err != nil {
			return err
		}
		last = first
	}
	for i := first; i <= last; i++ {
		if step == "" {
			fmt.Fprint(w, header(r, i))
		}
		var offset int64
		for {
			s := r.Steps[i]
			if s.Status != cache.StatusPending {
				if offset, err = lr.copyStep(w, r, i, offset); err != nil {
					return err
				}
			}
			if s.Status != cache.StatusPending && s.Status != cache.StatusRunning || r.Status != cache.StatusRunning {
				break
			}
			if err := wait(); err != nil {
				return err
			}
			r2, err := lr.record()
			if err != nil {
				return err
			}
			if !r2.Start.Equal(r.Start) {
				return nil // a newer build of the image began
			}
			r = r2
		}
	}
	return nil
}

// findStep returns the index of the step of r that spec names (see the
// help of log).
func findStep(r *cache.BuildRecord, spec string) (int, error) {
	if n, err := strconv.Atoi(spec); err == nil {
		if n < 1 || n > len(r.Steps) {
			return 0, fmt.Errorf("%s has steps 1 to %d, not %d (sxmake log --list %s)", r.Image, len(r.Steps), n, r.Image)
		}
		return n - 1, nil
	}
	var found []int
	for i, s := range r.Steps {
		_, text, _ := strings.Cut(s.Label, ":")
		_, instr, _ := strings.Cut(text, " ")
		if strings.HasPrefix(s.Label, spec) || strings.HasPrefix(instr, spec) {
			found = append(found, i)
		}
	}
	switch len(found) {
	case 1:
		return found[0], nil
	case 0:
		return 0, fmt.Errorf("no step of %s starts with %q (sxmake log --list %s)", r.Image, spec, r.Image)
	}
	var lines []string
	for _, i := range found {
		lines = append(lines, fmt.Sprintf("  %d  %s", i+1, safeLine(r.Steps[i].Label)))
	}
	return 0, fmt.Errorf("%d steps of %s start with %q; give one's number:\n%s", len(found), r.Image, spec, strings.Join(lines, "\n"))
}

// terminalWriter writes a step's output to a terminal line by line, made
// safe (terminal.go). A line longer than 64 KiB is written in pieces.
type terminalWriter struct {
	w   io.Writer
	buf []byte
}

func (t *terminalWriter) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		i := bytes.IndexByte(p, '\n')
		if i < 0 {
			t.buf = append(t.buf, p...)
			if len(t.buf) >= 64<<10 {
				return n, t.Flush()
			}
			return n, nil
		}
		t.buf = append(t.buf, p[:i+1]...)
		p = p[i+1:]
		if err := t.Flush(); err != nil {
			return n, err
		}
	}
	return n, nil
}

// Flush writes what is buffered.
func (t *terminalWriter) Flush() error {
	if len(t.buf) == 0 {
		return nil
	}
	_, err := io.WriteString(t.w, safe(string(t.buf)))
	t.buf = t.buf[:0]
	return err
}
