package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/google/go-cmp/cmp"
	"github.com/stagex/sxmake/engine/image"
)

// describeDiff says how the image in layout got (sxmake's) differs from
// the one in want (BuildKit's): the manifest fields that differ, the config
// JSON diff, and for the first layer whose blob differs, the first tar
// entry (in stream order) whose header or content differs and the paths
// only one side has. It returns "" when the manifests are the same.
func describeDiff(want, got string) (string, error) {
	wd, wm, err := image.LayoutManifest(want)
	if err != nil {
		return "", err
	}
	gd, gm, err := image.LayoutManifest(got)
	if err != nil {
		return "", err
	}
	if wd == gd {
		return "", nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "manifest: buildkit %s, sxmake %s\n", wd, gd)
	if d := jsonDiff(wm, gm, "manifest"); d != "" && wm.Config.Digest == gm.Config.Digest && sameLayers(wm, gm) {
		// Only the manifest itself (annotations, media types) differs.
		b.WriteString(d)
	}
	if wm.Config.Digest != gm.Config.Digest {
		fmt.Fprintf(&b, "config blob differs: buildkit %s, sxmake %s\n", wm.Config.Digest, gm.Config.Digest)
		wc, err1 := readJSON(blob(want, wm.Config.Digest))
		gc, err2 := readJSON(blob(got, gm.Config.Digest))
		if err := errors.Join(err1, err2); err != nil {
			return "", err
		}
		b.WriteString(indent(cmp.Diff(wc, gc), "  "))
	}
	if len(wm.Layers) != len(gm.Layers) {
		fmt.Fprintf(&b, "layers: buildkit %d, sxmake %d\n", len(wm.Layers), len(gm.Layers))
	}
	for i := 0; i < min(len(wm.Layers), len(gm.Layers)); i++ {
		wl, gl := wm.Layers[i], gm.Layers[i]
		if wl.Digest == gl.Digest {
			if wl.MediaType != gl.MediaType || wl.Size != gl.Size || !cmp.Equal(wl.Annotations, gl.Annotations) {
				fmt.Fprintf(&b, "layer %d: same blob, descriptor differs:\n%s", i, indent(cmp.Diff(wl, gl), "  "))
			}
			continue
		}
		fmt.Fprintf(&b, "layer %d blob differs: buildkit %s (%d bytes), sxmake %s (%d bytes)\n", i, wl.Digest, wl.Size, gl.Digest, gl.Size)
		d, err := tarDiff(blob(want, wl.Digest), blob(got, gl.Digest))
		if err != nil {
			return "", fmt.Errorf("layer %d: %w", i, err)
		}
		b.WriteString(indent(d, "  "))
		break // later layers usually differ because of this one
	}
	return b.String(), nil
}

func sameLayers(a, b image.Manifest) bool {
	if len(a.Layers) != len(b.Layers) {
		return false
	}
	for i := range a.Layers {
		if a.Layers[i].Digest != b.Layers[i].Digest {
			return false
		}
	}
	return true
}

func blob(layout string, d image.Digest) string {
	return filepath.Join(layout, "blobs", "sha256", d.Hex())
}

func readJSON(path string) (any, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var v any
	if err := json.Unmarshal(data, &v); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return v, nil
}

func jsonDiff(a, b any, what string) string {
	d := cmp.Diff(a, b)
	if d == "" {
		return ""
	}
	return what + " (-buildkit +sxmake):\n" + indent(d, "  ")
}

func indent(s, pre string) string {
	if s == "" {
		return ""
	}
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return pre + strings.Join(lines, "\n"+pre) + "\n"
}

// tarDiff describes how two layer blobs differ: the paths only one side
// has, and the first entry, in stream order, whose header or content
// differs, naming each differing field.
func tarDiff(want, got string) (string, error) {
	we, err := image.ReadLayerEntries(want)
	if err != nil {
		return "", err
	}
	ge, err := image.ReadLayerEntries(got)
	if err != nil {
		return "", err
	}
	var b strings.Builder
	names := func(es []image.LayerEntry) map[string]bool {
		m := map[string]bool{}
		for _, e := range es {
			m[e.Header.Name] = true
		}
		return m
	}
	wn, gn := names(we), names(ge)
	var only []string
	for n := range wn {
		if !gn[n] {
			only = append(only, "only buildkit: "+n)
		}
	}
	for n := range gn {
		if !wn[n] {
			only = append(only, "only sxmake:   "+n)
		}
	}
	sort.Strings(only)
	if len(only) > 20 {
		only = append(only[:20], fmt.Sprintf("... and %d more", len(only)-20))
	}
	for _, o := range only {
		b.WriteString(o + "\n")
	}
	for i := 0; i < max(len(we), len(ge)); i++ {
		if i >= len(we) || i >= len(ge) {
			fmt.Fprintf(&b, "entry %d: buildkit has %d entries, sxmake %d\n", i, len(we), len(ge))
			break
		}
		if fields := headerDiff(we[i], ge[i]); len(fields) > 0 {
			fmt.Fprintf(&b, "first differing entry #%d: %q\n", i, we[i].Header.Name)
			for _, f := range fields {
				b.WriteString("  " + f + "\n")
			}
			break
		}
	}
	if b.Len() == 0 {
		b.WriteString("same tar entries: the compression differs\n")
	}
	return b.String(), nil
}

// headerDiff lists the fields of two entries that differ, as
// "field: buildkit <value>, sxmake <value>".
func headerDiff(w, g image.LayerEntry) []string {
	type field struct {
		name string
		a, b any
	}
	wh, gh := w.Header, g.Header
	fields := []field{
		{"name", wh.Name, gh.Name},
		{"type", string(wh.Typeflag), string(gh.Typeflag)},
		{"linkname", wh.Linkname, gh.Linkname},
		{"mode", fmt.Sprintf("%#o", wh.Mode), fmt.Sprintf("%#o", gh.Mode)},
		{"uid", wh.Uid, gh.Uid},
		{"gid", wh.Gid, gh.Gid},
		{"uname", wh.Uname, gh.Uname},
		{"gname", wh.Gname, gh.Gname},
		{"size", wh.Size, gh.Size},
		{"mtime", wh.ModTime.Unix(), gh.ModTime.Unix()},
		{"atime", wh.AccessTime.Unix(), gh.AccessTime.Unix()},
		{"ctime", wh.ChangeTime.Unix(), gh.ChangeTime.Unix()},
		{"devmajor", wh.Devmajor, gh.Devmajor},
		{"devminor", wh.Devminor, gh.Devminor},
		{"format", wh.Format.String(), gh.Format.String()},
		{"pax", fmt.Sprint(sortedPAX(wh.PAXRecords)), fmt.Sprint(sortedPAX(gh.PAXRecords))},
		{"content", fmt.Sprintf("sha256:%x", w.Sum), fmt.Sprintf("sha256:%x", g.Sum)},
	}
	var out []string
	for _, f := range fields {
		if f.a != f.b {
			out = append(out, fmt.Sprintf("%s: buildkit %v, sxmake %v", f.name, f.a, f.b))
		}
	}
	return out
}

func sortedPAX(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}
