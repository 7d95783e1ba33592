package engine

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/stagex/sxmake/packages"
)

// FetchOption configures Fetch.
type FetchOption func(*fetchConfig)

type fetchConfig struct {
	offline     bool
	jobs        int
	done        func(pkg *packages.Package, err error)
	hashes      packages.Hasher
	fileMirrors []string
}

// Offline makes Fetch only check that every source is present and right.
func Offline() FetchOption { return func(c *fetchConfig) { c.offline = true } }

// WithFetchJobs downloads for at most n packages at once (default 4).
func WithFetchJobs(n int) FetchOption { return func(c *fetchConfig) { c.jobs = n } }

// WithHashes verifies sources present with the file hashes of an opened
// cache (cache.Cache.Files): a source unchanged since it was last
// verified is not read again.
func WithHashes(h packages.Hasher) FetchOption { return func(c *fetchConfig) { c.hashes = h } }

// WithFileMirrors lets file:// mirrors read regular files under the
// directories dirs (absolute paths), and nowhere else: without it every
// file:// mirror fails. A mirror path is matched against dirs as written,
// never through symbolic links, and a link inside a directory is followed
// only while it stays inside (see fileMirrors).
func WithFileMirrors(dirs ...string) FetchOption {
	return func(c *fetchConfig) { c.fileMirrors = append(c.fileMirrors, dirs...) }
}

// WithFetchDone calls fn as each package's sources are fetched (or fail).
func WithFetchDone(fn func(pkg *packages.Package, err error)) FetchOption {
	return func(c *fetchConfig) { c.done = fn }
}

// Packages returns the packages of the plans' images, each once, in plan
// order (plans of one tree, for several platforms, share their packages).
func Packages(plans ...*Plan) []*packages.Package {
	seen := map[*packages.Package]bool{}
	var out []*packages.Package
	for _, p := range plans {
		for _, ip := range p.Images {
			if pkg := ip.Image.Package; !seen[pkg] {
				seen[pkg] = true
				out = append(out, pkg)
			}
		}
	}
	return out
}

// PackagesToBuild is Packages without the packages all of whose images in
// the plans pub settles (Published.Settled): a build takes those images
// as published and never reads their sources. pub may be nil.
func PackagesToBuild(pub *Published, plans ...*Plan) []*packages.Package {
	if pub == nil {
		return Packages(plans...)
	}
	built := map[*packages.Package]bool{}
	for _, p := range plans {
		settled := pub.Settled(p)
		for _, ip := range p.Images {
			if !settled[ip.Image] {
				built[ip.Image.Package] = true
			}
		}
	}
	var out []*packages.Package
	for _, pkg := range Packages(plans...) {
		if built[pkg] {
			out = append(out, pkg)
		}
	}
	return out
}

// Fetch makes sure the sources of every package of pkgs are in the tree's
// fetch directory with the declared sha256, downloading what is missing
// (http, https and file mirrors). All packages are tried; the error joins
// every failure.
func Fetch(ctx context.Context, tree *packages.Tree, pkgs []*packages.Package, opts ...FetchOption) error {
	cfg := fetchConfig{jobs: 4, done: func(*packages.Package, error) {}}
	for _, o := range opts {
		o(&cfg)
	}
	fo := packages.FetchOptions{Client: fetchClient(cfg.fileMirrors), TryTimeout: 10 * time.Minute, Offline: cfg.offline, Hashes: cfg.hashes}
	errs := make([]error, len(pkgs))
	sem := make(chan struct{}, max(cfg.jobs, 1))
	var wg sync.WaitGroup
	for i, pkg := range pkgs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			errs[i] = pkg.Fetch(ctx, tree.FetchDir(pkg), fo)
			cfg.done(pkg, errs[i])
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// fetchClient is an HTTP client that also reads file:// mirrors from the
// directories dirs (local seeds such as a distribution's static busybox).
// A redirect is followed only to http or https: a mirror cannot send the
// client to a file.
func fetchClient(dirs []string) *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.RegisterProtocol("file", fileMirrors(dirs))
	return &http.Client{Transport: t, CheckRedirect: func(req *http.Request, via []*http.Request) error {
		if req.URL.Scheme != "http" && req.URL.Scheme != "https" {
			return fmt.Errorf("redirect to %s refused", req.URL.Scheme)
		}
		if len(via) >= 10 {
			return errors.New("stopped after 10 redirects")
		}
		return nil
	}}
}
