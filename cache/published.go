package cache

import (
	"fmt"
	"io/fs"
	"path/filepath"
	"regexp"
	"strings"
)

// PublishedImage records an image of a package tree that `sxmake preseed`
// pulled from a registry for one platform: its manifest, whose config and
// layers are in the content store, and the definition it was published
// for. The definition is the engine's labelled lines naming what the
// image is made of (its package files, build args and platform, and the
// digests of the images it needs); a build takes the published image
// instead of building it while the lines it derives are the same.
type PublishedImage struct {
	Name       string   `json:"name"`     // "core-busybox"
	Platform   string   `json:"platform"` // "linux/amd64"
	MediaType  string   `json:"mediaType"`
	Manifest   Digest   `json:"digest"`
	Size       int64    `json:"size"`
	Source     string   `json:"source"` // the reference pulled, for people
	Definition []string `json:"definition"`
}

// Published is the registry of published images, one JSON file per image
// and platform,
//
//	<cache>/published/<os>-<arch>[-<variant>]/<name>.json
//
// each written to a temp file and renamed into place, so a reader sees a
// record whole or not at all. Recording an image again replaces it.
type Published struct {
	dir string
}

// OpenPublished returns the registry of the cache in cacheDir. Nothing is
// created until Put.
func OpenPublished(cacheDir string) *Published {
	return &Published{dir: filepath.Join(cacheDir, "published")}
}

var validPlatform = regexp.MustCompile(`^[a-z0-9]+/[a-z0-9_]+(/[a-z0-9._-]+)?$`)

// platformDir is the directory of the records of platform.
func (p *Published) platformDir(platform string) (string, error) {
	if !validPlatform.MatchString(platform) {
		return "", fmt.Errorf("platform %q: want os/arch[/variant]", platform)
	}
	return filepath.Join(p.dir, strings.ReplaceAll(platform, "/", "-")), nil
}

// Put records img, replacing any record of its name and platform.
func (p *Published) Put(img PublishedImage) error {
	if err := CheckImageName(img.Name); err != nil {
		return err
	}
	dir, err := p.platformDir(img.Platform)
	if err == nil {
		err = writeRecord(dir, img.Name, img)
	}
	if err != nil {
		return fmt.Errorf("recording published image %s: %w", img.Name, err)
	}
	return nil
}

// Get returns the record of name for platform, or an error wrapping
// ErrNotFound.
func (p *Published) Get(name, platform string) (PublishedImage, error) {
	var img PublishedImage
	dir, err := p.platformDir(platform)
	if err != nil || CheckImageName(name) != nil {
		return img, fmt.Errorf("published image %s (%s): %w", name, platform, ErrNotFound)
	}
	if err := readRecord(dir, name, &img); err != nil {
		return img, fmt.Errorf("published image %s (%s): %w", name, platform, err)
	}
	if img.Name != name || img.Platform != platform {
		return img, fmt.Errorf("published image %s (%s): record names %s (%s)", name, platform, img.Name, img.Platform)
	}
	return img, nil
}

// Manifests returns the manifest digest of every record.
func (p *Published) Manifests() ([]Digest, error) {
	platforms, err := recordDirs(p.dir)
	if err != nil {
		return nil, fmt.Errorf("listing published images: %w", err)
	}
	var out []Digest
	for _, dir := range platforms {
		names, err := recordNames(dir)
		if err != nil {
			return nil, fmt.Errorf("listing published images: %w", err)
		}
		for _, n := range names {
			var img PublishedImage
			if err := readRecord(dir, n, &img); err != nil {
				return nil, fmt.Errorf("published image %s: %w", filepath.Join(dir, n), err)
			}
			out = append(out, img.Manifest)
		}
	}
	return out, nil
}

// recordDirs returns the subdirectories of dir, sorted; a missing dir has
// none.
func recordDirs(dir string) ([]string, error) {
	return listDir(dir, func(e fs.DirEntry) (string, bool) {
		return filepath.Join(dir, e.Name()), e.IsDir()
	})
}
