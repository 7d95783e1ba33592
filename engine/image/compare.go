package image

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
)

// LayoutManifest returns the digest and the manifest of the first image
// (following nested indexes) of the OCI layout in dir, read through umoci
// (layoutread.go).
func LayoutManifest(dir string) (Digest, Manifest, error) {
	l, err := openLayout(dir)
	if err != nil {
		return Digest{}, Manifest{}, err
	}
	defer l.Close()
	d, err := firstManifest(l)
	if err != nil {
		return Digest{}, Manifest{}, fmt.Errorf("%s: %w", dir, err)
	}
	b, err := readJSON(l, d)
	if err != nil {
		return Digest{}, Manifest{}, fmt.Errorf("%s: %w", dir, err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		return Digest{}, Manifest{}, fmt.Errorf("%s: manifest %s: %w", dir, d.Digest, err)
	}
	return d.Digest, m, nil
}

func blobPath(dir string, d Digest) string {
	return filepath.Join(dir, "blobs", "sha256", d.Hex())
}

// LayerDiff says how two images differ: at the first layer whose blobs
// differ, the files whose header or content differ.
type LayerDiff struct {
	Index      int    // 0-based index of the first differing layer; -1 when only the config differs
	Layers     [2]int // the number of layers of each image
	Want, Got  Digest // the two layer blobs
	Files      []FileDiff
	WantPath   string // the blobs' paths, for diffoscope
	GotPath    string
	ConfigDiff bool // the configs differ
}

// FileDiff is one entry of a layer that differs.
type FileDiff struct {
	Path string
	What string // "added", "removed", or the first differing field
}

// CompareLayouts compares the first image of the layouts want and got, and
// describes the first difference; nil means the manifests are identical.
func CompareLayouts(want, got string) (*LayerDiff, error) {
	wd, wm, err := LayoutManifest(want)
	if err != nil {
		return nil, err
	}
	gd, gm, err := LayoutManifest(got)
	if err != nil {
		return nil, err
	}
	if wd == gd {
		return nil, nil
	}
	diff := &LayerDiff{Index: -1, Layers: [2]int{len(wm.Layers), len(gm.Layers)}, ConfigDiff: wm.Config.Digest != gm.Config.Digest}
	for i := 0; i < max(len(wm.Layers), len(gm.Layers)); i++ {
		if i < len(wm.Layers) && i < len(gm.Layers) && wm.Layers[i].Digest == gm.Layers[i].Digest {
			continue
		}
		diff.Index = i
		var a, b map[string]string
		if i < len(wm.Layers) {
			diff.Want, diff.WantPath = wm.Layers[i].Digest, blobPath(want, wm.Layers[i].Digest)
			if a, err = layerEntries(diff.WantPath); err != nil {
				return nil, err
			}
		}
		if i < len(gm.Layers) {
			diff.Got, diff.GotPath = gm.Layers[i].Digest, blobPath(got, gm.Layers[i].Digest)
			if b, err = layerEntries(diff.GotPath); err != nil {
				return nil, err
			}
		}
		diff.Files = diffEntries(a, b)
		break
	}
	return diff, nil
}

// LayerEntry is one entry of a layer tar: its header and the SHA-256 of
// its content.
type LayerEntry struct {
	Header *tar.Header
	Sum    [sha256.Size]byte
}

// ReadLayerEntries reads every entry of the layer tar at path, gzipped or
// plain, in stream order.
func ReadLayerEntries(path string) ([]LayerEntry, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	var r io.Reader = br
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		r = zr
	}
	var out []LayerEntry
	tr := tar.NewReader(r)
	for {
		h, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return out, nil
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		sum := sha256.New()
		if _, err := io.Copy(sum, tr); err != nil {
			return nil, fmt.Errorf("%s: %w", path, err)
		}
		e := LayerEntry{Header: h}
		sum.Sum(e.Sum[:0])
		out = append(out, e)
	}
}

// layerEntries maps each path of a layer to a description of its header
// and content.
func layerEntries(path string) (map[string]string, error) {
	es, err := ReadLayerEntries(path)
	if err != nil {
		return nil, err
	}
	entries := make(map[string]string, len(es))
	for _, e := range es {
		h := e.Header
		entries[h.Name] = fmt.Sprintf("mode %o\x00uid %d\x00gid %d\x00type %c\x00link %s\x00mtime %d\x00size %d\x00content %x\x00xattrs %v",
			h.Mode, h.Uid, h.Gid, h.Typeflag, h.Linkname, h.ModTime.Unix(), h.Size, e.Sum, h.PAXRecords)
	}
	return entries, nil
}

// diffEntries lists the paths whose entries differ, sorted, naming the
// first differing field.
func diffEntries(want, got map[string]string) []FileDiff {
	var out []FileDiff
	for p, w := range want {
		g, ok := got[p]
		switch {
		case !ok:
			out = append(out, FileDiff{p, "removed"})
		case g != w:
			out = append(out, FileDiff{p, firstField(w, g)})
		}
	}
	for p := range got {
		if _, ok := want[p]; !ok {
			out = append(out, FileDiff{p, "added"})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out
}

// firstField names the first field that differs in two descriptions.
func firstField(a, b string) string {
	fa, fb := splitFields(a), splitFields(b)
	for i := range fa {
		if fa[i] != fb[i] {
			return fmt.Sprintf("%s -> %s", fa[i], fb[i])
		}
	}
	return "differs"
}

func splitFields(s string) []string {
	var out []string
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			out = append(out, s[start:i])
			start = i + 1
		}
	}
	return append(out, s[start:])
}

// LayoutManifests returns the digests of every per-platform manifest the
// layout in dir lists (following nested indexes), in index order: one for
// a single-platform build, one per platform for a multi-platform one.
func LayoutManifests(dir string) ([]Digest, error) {
	l, err := openLayout(dir)
	if err != nil {
		return nil, err
	}
	defer l.Close()
	idx, err := l.index()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	ds, err := allManifests(l, idx.Manifests, 0)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", dir, err)
	}
	out := make([]Digest, len(ds))
	for i, d := range ds {
		out[i] = d.Digest
	}
	return out, nil
}
