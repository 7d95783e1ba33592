package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// ImportedImage records an image imported into the content store from
// outside any package tree (`sxmake import`): the name builds refer to it
// by (stagex/<Name>), and its manifest, whose blobs, config and layers,
// are in the content store.
type ImportedImage struct {
	Name      string `json:"name"`      // "core-busybox": referenced as stagex/core-busybox
	MediaType string `json:"mediaType"` // of the manifest
	Manifest  Digest `json:"digest"`
	Size      int64  `json:"size"`
	Platform  string `json:"platform"`         // "linux/amd64"
	Source    string `json:"source,omitempty"` // what was imported, for people
}

// Images is the registry of imported images: one JSON file per image,
//
//	<cache>/images/<name>.json
//
// each written to a temp file and renamed into place, so a reader sees a
// record whole or not at all. Importing a name again replaces its record.
// It is not kept in the bbolt action database, which a build holds open.
type Images struct {
	dir string
}

// OpenImages returns the registry of the cache in cacheDir. Nothing is
// created until Put.
func OpenImages(cacheDir string) *Images {
	return &Images{dir: filepath.Join(cacheDir, "images")}
}

// validImageName is what an imported image may be called: a StageX image
// name, lower case, without the stagex/ prefix.
var validImageName = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*$`)

// CheckImageName reports whether name can name an imported image.
func CheckImageName(name string) error {
	if !validImageName.MatchString(name) || len(name) > 128 {
		return fmt.Errorf("image name %q: want lower-case letters, digits, '.', '_' and '-' (like core-busybox)", name)
	}
	return nil
}

// Put records img, replacing any record of the same name.
func (s *Images) Put(img ImportedImage) error {
	if err := CheckImageName(img.Name); err != nil {
		return err
	}
	if err := writeRecord(s.dir, img.Name, img); err != nil {
		return fmt.Errorf("recording image %s: %w", img.Name, err)
	}
	return nil
}

// writeRecord writes v as indented JSON to dir/<name>.json through a temp
// file renamed into place, so a reader sees a record whole or not at all.
func writeRecord(dir, name string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	if err := MkdirPrivate(dir); err != nil {
		return err
	}
	f, err := os.CreateTemp(dir, ".tmp-")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	_, err = f.Write(append(b, '\n'))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return err
	}
	return os.Rename(f.Name(), filepath.Join(dir, name+".json"))
}

// readRecord reads dir/<name>.json into v; a missing file is ErrNotFound.
func readRecord(dir, name string, v any) error {
	b, err := os.ReadFile(filepath.Join(dir, name+".json"))
	if errors.Is(err, fs.ErrNotExist) {
		return ErrNotFound
	}
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// Get returns the record of name, or an error wrapping ErrNotFound.
func (s *Images) Get(name string) (ImportedImage, error) {
	var img ImportedImage
	if CheckImageName(name) != nil {
		return img, fmt.Errorf("imported image %s: %w", name, ErrNotFound)
	}
	if err := readRecord(s.dir, name, &img); err != nil {
		return img, fmt.Errorf("imported image %s: %w", name, err)
	}
	if img.Name != name {
		return img, fmt.Errorf("imported image %s: record names %q", name, img.Name)
	}
	return img, nil
}

// Names returns the names of every imported image, sorted. A cache
// without imports has none.
func (s *Images) Names() ([]string, error) {
	names, err := recordNames(s.dir)
	if err != nil {
		return nil, fmt.Errorf("listing imported images: %w", err)
	}
	return names, nil
}

// Manifests returns the manifest digest of every imported image.
func (s *Images) Manifests() ([]Digest, error) {
	names, err := s.Names()
	if err != nil {
		return nil, err
	}
	out := make([]Digest, 0, len(names))
	for _, n := range names {
		img, err := s.Get(n)
		if err != nil {
			return nil, err
		}
		out = append(out, img.Manifest)
	}
	return out, nil
}

// recordNames returns the names of the records in dir, sorted; a missing
// dir has none.
func recordNames(dir string) ([]string, error) {
	names, err := listDir(dir, func(e fs.DirEntry) (string, bool) {
		n, ok := strings.CutSuffix(e.Name(), ".json")
		return n, ok && e.Type().IsRegular() && CheckImageName(n) == nil
	})
	sort.Strings(names) // "a-b.json" sorts before "a.json"
	return names, err
}

// listDir returns what pick makes of the entries of dir it keeps, in name
// order; a missing dir has none.
func listDir(dir string, pick func(fs.DirEntry) (string, bool)) ([]string, error) {
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if v, ok := pick(e); ok {
			out = append(out, v)
		}
	}
	return out, nil
}
