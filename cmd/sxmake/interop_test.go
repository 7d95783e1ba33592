package main

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stagex/sxmake/cache/cachetest"
	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// Other OCI tools read what sxmake writes. After `make demo`'s build
// (user-hello and the images it needs), Debian's umoci (0.4.7, another
// implementation than the library sxmake uses) lists, stats and unpacks
// every layout of out/, and the root file system it unpacks is the one
// image.Unpack makes of the same layers. skopeo then copies one layout
// to a docker-registry and back: every digest stays.
func TestInterop(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	for _, tool := range []string{"umoci", "skopeo"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is needed (.ci/install-deps installs it): %v", tool, err)
		}
	}
	work := t.TempDir()
	tree := filepath.Join(work, "stagex")
	copyTree(t, filepath.Join(repoTestdata(t), "stagex"), tree, false, time.Time{})
	out := filepath.Join(work, "out")
	if code, _, stderr := sxmake(t, "-C", tree, "-o", out, "--cache-dir", filepath.Join(work, "cache"), "--progress", "plain", "user-hello"); code != 0 {
		t.Fatalf("build: exit %d\n%s", code, stderr)
	}
	layouts, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(layouts) != 6 {
		t.Fatalf("out/ holds %d layouts, want user-hello's 6", len(layouts))
	}
	for _, e := range layouts {
		t.Run("umoci/"+e.Name(), func(t *testing.T) {
			layout := filepath.Join(out, e.Name())
			tags := strings.Fields(runTool(t, "umoci", "ls", "--layout", layout))
			if !slices.Equal(tags, []string{"latest"}) {
				t.Fatalf("umoci ls: tags %q, want [latest]", tags)
			}
			ref := layout + ":latest"
			src, err := image.ReadLayout(layout)
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			var stat struct {
				History []json.RawMessage `json:"history"`
			}
			if err := json.Unmarshal([]byte(runTool(t, "umoci", "stat", "--json", "--image", ref)), &stat); err != nil {
				t.Fatalf("umoci stat --json: %v", err)
			}
			var config image.Config
			if err := json.Unmarshal(src.Config.Bytes, &config); err != nil {
				t.Fatal(err)
			}
			if len(stat.History) != len(config.History) {
				t.Errorf("umoci stat: %d history entries, the config has %d", len(stat.History), len(config.History))
			}
			bundle := filepath.Join(t.TempDir(), "bundle")
			runTool(t, "umoci", "unpack", "--image", ref, bundle)
			ours := filepath.Join(t.TempDir(), "rootfs")
			if err := os.Mkdir(ours, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range src.Manifest.Layers {
				r, err := src.OpenLayer(i)
				if err != nil {
					t.Fatal(err)
				}
				err = image.Unpack(ours, r)
				r.Close()
				if err != nil {
					t.Fatal(err)
				}
			}
			if diff := cmp.Diff(rootfsListing(t, ours), rootfsListing(t, filepath.Join(bundle, "rootfs"))); diff != "" {
				t.Errorf("umoci unpack's rootfs differs from image.Unpack's (-Unpack +umoci):\n%s", diff)
			}
		})
	}

	t.Run("skopeo", func(t *testing.T) {
		host, _ := cachetest.Registry(t)
		layout := filepath.Join(out, "user-hello")
		ref := "docker://" + host + "/stagex/user-hello:1"
		runTool(t, "skopeo", "copy", "--all", "--preserve-digests", "--dest-tls-verify=false", "oci:"+layout+":latest", ref)
		back := filepath.Join(t.TempDir(), "back")
		runTool(t, "skopeo", "copy", "--all", "--preserve-digests", "--src-tls-verify=false", ref, "oci:"+back+":latest")
		var idx [2]image.Index
		for i, l := range []string{layout, back} {
			b, err := os.ReadFile(filepath.Join(l, "index.json"))
			if err == nil {
				err = json.Unmarshal(b, &idx[i])
			}
			if err != nil || len(idx[i].Manifests) != 1 {
				t.Fatalf("%s/index.json: %v, %d entries", l, err, len(idx[i].Manifests))
			}
		}
		if got, want := idx[1].Manifests[0].Digest, idx[0].Manifests[0].Digest; got != want {
			t.Errorf("index copied back: %s, want %s", got, want)
		}
		want, err := image.LayoutManifests(layout)
		if err != nil {
			t.Fatal(err)
		}
		got, err := image.LayoutManifests(back)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("manifest digests after the round trip (-sxmake +copied back):\n%s", diff)
		}
		if diff := cmp.Diff(blobNames(t, layout), blobNames(t, back)); diff != "" {
			t.Errorf("blobs after the round trip (-sxmake +copied back):\n%s", diff)
		}
	})
}

// runTool runs a command, failing the test if it fails, and returns its
// standard output.
func runTool(t *testing.T, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

// rootfsListing describes every node under dir: path, type and mode,
// owner, mtime, and a regular file's content, a symlink's target or a
// device's number.
func rootfsListing(t *testing.T, dir string) []string {
	t.Helper()
	var out []string
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		line := fmt.Sprintf("%s %v %d:%d %d", strings.TrimPrefix(p, dir), fi.Mode(), st.Uid, st.Gid, fi.ModTime().Unix())
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(b))
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			line += " -> " + l
		case fi.Mode()&fs.ModeDevice != 0:
			line += fmt.Sprintf(" dev %d", st.Rdev)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// blobNames lists the files of a layout's blobs/sha256.
func blobNames(t *testing.T, layout string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(layout, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}
