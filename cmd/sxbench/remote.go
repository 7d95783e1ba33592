package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"time"

	"github.com/stagex/sxmake/cache/cachetest"
)

// The remote scenarios time the CI case of --cache-from: a build of the
// demo target on an empty local cache, its remote filled by an earlier
// build with --cache-to ...,mode=max, against a cold build without any
// cache. Each row also gives the bytes the CI build received and the
// export sent. The servers run on 127.0.0.1 (nginx-core, docker-registry).

// remoteScenario returns the scenario of one backend; start returns the
// remote reference and a function stopping its server.
func remoteScenario(name string, start func(dir string) (string, func(), error)) func(string) (row, error) {
	return func(work string) (row, error) {
		if err := os.MkdirAll(work, 0o755); err != nil {
			return row{}, err
		}
		ref, stop, err := start(filepath.Join(work, "server"))
		if err != nil {
			return row{}, err
		}
		defer stop()
		n := max(3, *runs/3)
		cold, err := coldBuildTime(work, n)
		if err != nil {
			return row{}, err
		}
		out, err := sxmakeRun(work, "export", "--cache-to", ref+",mode=max")
		if err != nil {
			return row{}, err
		}
		_, sent := transferred(out)
		var ds []time.Duration
		var received string
		for i := range n {
			start := time.Now()
			out, err := sxmakeRun(work, fmt.Sprint("ci", i), "--cache-from", ref)
			if err != nil {
				return row{}, err
			}
			ds = append(ds, time.Since(start))
			if !bytes.Contains(out, []byte("sxmake: 0 actions run")) {
				return row{}, fmt.Errorf("the CI build from %s ran actions:\n%s", ref, out)
			}
			received, _ = transferred(out)
		}
		ci := median(ds)
		return row{fmt.Sprintf("CI build of `%s` on an empty cache from a warm %s remote (received %s; the export sent %s) vs a cold build", *target, name, received, sent),
			ms(ci), ms(cold), fmt.Sprintf("%.3f", float64(ci)/float64(cold)), "—"}, nil
	}
}

var coldTime time.Duration

// coldBuildTime is the median wall time of n cold builds of the target,
// measured once for all backends.
func coldBuildTime(work string, n int) (time.Duration, error) {
	if coldTime != 0 {
		return coldTime, nil
	}
	var ds []time.Duration
	for i := range n {
		start := time.Now()
		if _, err := sxmakeRun(work, fmt.Sprint("cold", i)); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(start))
	}
	coldTime = median(ds)
	return coldTime, nil
}

// sxmakeRun builds the target with a cache and output of its own, named
// name under work, and returns what sxmake printed on stderr.
func sxmakeRun(work, name string, extra ...string) ([]byte, error) {
	dir := filepath.Join(work, name)
	args := append([]string{"-C", *demo, "--cache-dir", filepath.Join(dir, "cache"), "-o", filepath.Join(dir, "out"), "--progress", "plain"}, extra...)
	args = append(args, *target)
	cmd := exec.Command(*sxmake, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	os.RemoveAll(dir)
	if err != nil {
		return nil, fmt.Errorf("sxmake %v: %w\n%s", args, err, stderr.Bytes())
	}
	return stderr.Bytes(), nil
}

var transferLine = regexp.MustCompile(`results from remote caches, (.+) received, (.+) sent`)

func transferred(stderr []byte) (received, sent string) {
	m := transferLine.FindSubmatch(stderr)
	if m == nil {
		return "?", "?"
	}
	return string(m[1]), string(m[2])
}

var (
	remoteDir = remoteScenario("dir:", func(dir string) (string, func(), error) {
		return "dir:" + filepath.Join(dir, "remote"), func() {}, nil
	})
	remoteHTTP = remoteScenario("HTTP (nginx WebDAV)", func(dir string) (string, func(), error) {
		url, _, stop, err := cachetest.StartNginx(dir)
		return url, stop, err
	})
	remoteRegistry = remoteScenario("registry (docker-registry)", func(dir string) (string, func(), error) {
		host, _, stop, err := cachetest.StartRegistry(dir)
		return "registry:" + host + "/sxmake/cache", stop, err
	})
)
