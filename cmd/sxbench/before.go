package main

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

var logsBeforeRev = flag.String("logs-before-rev", "", "demo-cold, demo-cached: the git revision of the sxmake to compare with (the code before logs went to disk)")

// demoCold times a cold build of the demo target (make demo's) with the
// sxmake binary against sxmake built from -logs-before-rev, alternating
// run by run, each on a new cache.
func demoCold(work string) (row, error) {
	return beforeAfter(work, false)
}

// demoCached times a fully cached build of the demo target, as demoCold.
func demoCached(work string) (row, error) {
	return beforeAfter(work, true)
}

func beforeAfter(work string, cached bool) (row, error) {
	const target = "user-hello"
	if *logsBeforeRev == "" {
		return row{}, errors.New("needs -logs-before-rev REV")
	}
	before, err := buildRevision(*logsBeforeRev, filepath.Join(work, "before"))
	if err != nil {
		return row{}, err
	}
	n := max(3, *runs/2)
	bins := []string{before, *sxmake}
	times := map[string][]time.Duration{}
	build := func(bin, cache string) (time.Duration, error) {
		args := []string{"-C", *demo, "--cache-dir", cache, "-o", filepath.Join(work, "out"), "--progress", "plain", target}
		start := time.Now()
		if out, err := exec.Command(bin, args...).CombinedOutput(); err != nil {
			return 0, fmt.Errorf("%s: %w\n%s", bin, err, out)
		}
		return time.Since(start), nil
	}
	cacheOf := func(bin string, i int) string {
		if cached { // one cache per binary, filled by the first round
			i = 0
		}
		side := "after"
		if bin == before {
			side = "before"
		}
		return filepath.Join(work, fmt.Sprint("cache-", side, "-", i))
	}
	for i := 0; i <= n; i++ {
		bins[0], bins[1] = bins[1], bins[0] // alternate which goes first
		for _, bin := range bins {
			d, err := build(bin, cacheOf(bin, i))
			if err != nil {
				return row{}, err
			}
			if i > 0 { // the first round warms up (and fills the caches)
				times[bin] = append(times[bin], d)
			}
			if !cached {
				os.RemoveAll(cacheOf(bin, i))
			}
		}
	}
	after, was := median(times[*sxmake]), median(times[before])
	what := "cold"
	if cached {
		what = "fully cached"
	}
	return row{fmt.Sprintf("%s build of `%s` (demo tree): this sxmake vs sxmake at %s, alternating", what, target, *logsBeforeRev),
		ms(after), ms(was), fmt.Sprintf("%.3f", float64(after)/float64(was)), "within noise (issue 16)"}, nil
}
