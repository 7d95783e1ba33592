package image

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/archive"
	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// BuildKit's overlayfs snapshotter applies a layer with containerd's
// archive.Apply: the bottom one into a plain directory, the others into an
// overlay upper dir (whiteouts converted, missing parents copied from the
// lower dirs). Unpack must give the same file systems: random stacks of
// layers, each as a layer writer would write it, are applied both ways and
// the trees compared. Where containerd is not deterministic (the time of a
// parent directory the layer does not list is when it was made) that time
// is left out.
func TestUnpackMatchesContainerd(t *testing.T) {
	requiresRoot(t)
	for seed := int64(1); seed <= 30; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			layers := randomLayers(rand.New(rand.NewSource(seed)), 4)
			base := t.TempDir()
			var ours, theirs []string // snapshot dirs, bottom first
			for i, l := range layers {
				o, c := filepath.Join(base, fmt.Sprint("ours", i)), filepath.Join(base, fmt.Sprint("containerd", i))
				for _, d := range []string{o, c} {
					if err := os.Mkdir(d, 0o755); err != nil {
						t.Fatal(err)
					}
				}
				var opts []UnpackOption
				capply := []archive.ApplyOpt{}
				if i > 0 {
					opts = append(opts, OverLowers(reversed(ours)...))
					capply = append(capply, archive.WithConvertWhiteout(archive.OverlayConvertWhiteout), archive.WithParents(reversed(theirs)))
				}
				oerr := Unpack(o, bytes.NewReader(l.tar), opts...)
				_, cerr := archive.Apply(context.Background(), c, bytes.NewReader(l.tar), capply...)
				if oerr != nil || cerr != nil {
					// An invalid layer (a file under a name whited out
					// in the same layer, say): both must refuse it.
					if oerr == nil || cerr == nil {
						t.Fatalf("layer %d: Unpack: %v, archive.Apply: %v\nlayer:\n%s", i, oerr, cerr, strings.Join(tarListing(t, bytes.NewReader(l.tar)), "\n"))
					}
					return
				}
				if diff := cmp.Diff(describeTree(t, c, l.listed), describeTree(t, o, l.listed)); diff != "" {
					t.Fatalf("layer %d (-containerd +Unpack):\n%s\nlayer:\n%s", i, diff, strings.Join(tarListing(t, bytes.NewReader(l.tar)), "\n"))
				}
				ours, theirs = append(ours, o), append(theirs, c)
			}
		})
	}
}

func reversed(s []string) []string {
	r := make([]string, len(s))
	for i, v := range s {
		r[len(s)-1-i] = v
	}
	return r
}

// describeTree describes every node under dir, one line per path: type,
// mode, owner, times, content, link target, device, xattrs, and the first
// path sharing its inode. A directory's mtime is given only when listed
// (its name, "/"-rooted, is in listed). Whiteouts (char 0:0) are described
// by type alone, their mode and owner meaning nothing to overlayfs, and
// not at all below an opaque directory, which hides the lower dirs anyway.
func describeTree(t *testing.T, dir string, listed map[string]bool) []string {
	t.Helper()
	var out []string
	inodes := map[uint64]string{}
	opaque := map[string]bool{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || p == dir {
			return err
		}
		rel := "/" + strings.TrimPrefix(p, dir+"/")
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		st := fi.Sys().(*syscall.Stat_t)
		if fi.Mode()&fs.ModeCharDevice != 0 && st.Rdev == 0 {
			for d := path.Dir(rel); !opaque[d]; d = path.Dir(d) {
				if d == "/" {
					out = append(out, rel+" whiteout")
					break
				}
			}
			return nil
		}
		line := fmt.Sprintf("%s %v %d:%d", rel, fi.Mode(), st.Uid, st.Gid)
		if !fi.IsDir() || listed[rel] {
			line += " mtime=" + time.Unix(st.Mtim.Unix()).UTC().Format(time.RFC3339Nano)
		}
		switch {
		case fi.Mode().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" sha256=%x", sha256.Sum256(b))[:20]
			if first, ok := inodes[st.Ino]; ok {
				line += " link-of=" + first
			}
			inodes[st.Ino] = rel
		case fi.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			line += " -> " + l
		case fi.Mode()&fs.ModeDevice != 0:
			line += fmt.Sprintf(" dev=%d:%d", unix.Major(st.Rdev), unix.Minor(st.Rdev))
		}
		xs, err := copyUpXattrs(p)
		if err != nil {
			return err
		}
		if v, err := lgetxattr(p, "trusted.overlay.opaque"); err != nil {
			return err
		} else if v != nil {
			if xs == nil {
				xs = map[string]string{}
			}
			xs["trusted.overlay.opaque"] = string(v)
			opaque[rel] = true
		}
		if len(xs) > 0 {
			line += fmt.Sprintf(" xattrs=%q", xs)
		}
		out = append(out, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(out)
	return out
}

// randomLayer is a layer tar and the names (cleaned, "/"-rooted) of the
// directories it lists.
type randomLayer struct {
	tar    []byte
	listed map[string]bool
}

// randomLayers returns n layers as a layer writer makes them from a
// changing file system: entries in name order, a directory before what it
// holds, hard links to a file written earlier in the layer, whiteouts of
// what lower layers hold. Some parents are left out, as hand-made layers
// do; times include some before 1970; xattrs include a capability.
func randomLayers(r *rand.Rand, n int) []randomLayer {
	tree := map[string]byte{} // what the layers so far hold: name -> type
	var out []randomLayer
	for i := 0; i < n; i++ {
		ents := map[string]*tar.Header{} // by cleaned, "/"-rooted name
		add := func(h *tar.Header) {
			h.Name = path.Clean("/" + h.Name)
			ents[h.Name] = h
		}
		listed := map[string]bool{}
		var files []string
		names := []string{"a", "b", "c", "lib", "usr", "x"}
		randDir := func() string {
			d := "/" + names[r.Intn(len(names))]
			if r.Intn(2) == 0 {
				d += "/" + names[r.Intn(len(names))]
			}
			return d
		}
		existing := func(kind byte) string {
			var c []string
			for p, k := range tree {
				if kind == 0 || k == kind {
					c = append(c, p)
				}
			}
			if len(c) == 0 {
				return ""
			}
			sort.Strings(c)
			return c[r.Intn(len(c))]
		}
		for op := 0; op < 12; op++ {
			hdr := &tar.Header{Mode: int64([]int{0o644, 0o755, 0o600, 0o4755, 0o1777}[r.Intn(5)]),
				Uid: r.Intn(3) * 1000, Gid: r.Intn(3) * 100,
				ModTime: time.Unix(int64(r.Intn(3)-1)*int64(r.Intn(100000)), 0), Format: tar.FormatPAX}
			name := path.Join(randDir(), fmt.Sprintf("n%d", r.Intn(6)))
			switch k := r.Intn(10); {
			case k < 3:
				hdr.Typeflag, hdr.Name = tar.TypeReg, name
				hdr.Size = int64(r.Intn(40))
				if r.Intn(4) == 0 {
					hdr.PAXRecords = map[string]string{"SCHILY.xattr.user.note": "n", "SCHILY.xattr.security.capability": "\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"}
				}
			case k < 4:
				hdr.Typeflag, hdr.Name, hdr.Mode = tar.TypeDir, randDir(), int64([]int{0o755, 0o700, 0o1777}[r.Intn(3)])
			case k < 5:
				hdr.Typeflag, hdr.Name = tar.TypeSymlink, name
				hdr.Linkname = []string{"n1", "../a", "/usr/lib", "/etc/passwd", "."}[r.Intn(5)]
			case k < 6 && len(files) > 0:
				target := files[r.Intn(len(files))]
				hdr.Typeflag, hdr.Name, hdr.Linkname = tar.TypeLink, target+"z", strings.TrimPrefix(target, "/")
				if t, ok := ents[target]; ok {
					hdr.Mode, hdr.Uid, hdr.Gid, hdr.ModTime = t.Mode, t.Uid, t.Gid, t.ModTime
				}
			case k < 7:
				hdr.Typeflag, hdr.Name = []byte{tar.TypeChar, tar.TypeBlock, tar.TypeFifo}[r.Intn(3)], name
				hdr.Devmajor, hdr.Devminor = int64(r.Intn(10)), int64(r.Intn(10))
			case k < 9:
				victim := existing(0)
				if victim == "" {
					continue
				}
				hdr.Typeflag, hdr.Name, hdr.Size = tar.TypeReg, path.Join(path.Dir(victim), ".wh."+path.Base(victim)), 0
			default:
				d := existing(tar.TypeDir)
				if d == "" {
					continue
				}
				hdr.Typeflag, hdr.Name, hdr.Size = tar.TypeReg, path.Join(d, ".wh..wh..opq"), 0
			}
			if _, dup := ents[path.Clean(hdr.Name)]; dup {
				continue
			}
			add(hdr)
			if hdr.Typeflag == tar.TypeReg && !strings.Contains(hdr.Name, ".wh.") {
				files = append(files, hdr.Name)
			}
			// The parents, most of the time.
			for d := path.Dir(hdr.Name); d != "/"; d = path.Dir(d) {
				if _, ok := ents[d]; ok || r.Intn(5) == 0 {
					break
				}
				add(&tar.Header{Typeflag: tar.TypeDir, Name: d, Mode: 0o755, ModTime: time.Unix(7, 0), Format: tar.FormatPAX})
			}
		}
		keys := make([]string, 0, len(ents))
		for k := range ents {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		var buf bytes.Buffer
		tw := tar.NewWriter(&buf)
		for _, name := range keys {
			h := ents[name]
			h.Name = strings.TrimPrefix(name, "/")
			if h.Typeflag == tar.TypeDir {
				h.Name += "/"
			}
			if err := tw.WriteHeader(h); err != nil {
				panic(err)
			}
			if h.Typeflag == tar.TypeReg {
				tw.Write(bytes.Repeat([]byte{byte(len(name))}, int(h.Size)))
			}
			if h.Typeflag == tar.TypeDir {
				listed[name] = true
			}
			switch base := path.Base(name); {
			case base == ".wh..wh..opq":
				for p := range tree {
					if strings.HasPrefix(p, path.Dir(name)+"/") {
						delete(tree, p)
					}
				}
			case strings.HasPrefix(base, ".wh."):
				victim := path.Join(path.Dir(name), strings.TrimPrefix(base, ".wh."))
				for p := range tree {
					if p == victim || strings.HasPrefix(p, victim+"/") {
						delete(tree, p)
					}
				}
			default:
				tree[name] = h.Typeflag
			}
		}
		if err := tw.Close(); err != nil {
			panic(err)
		}
		out = append(out, randomLayer{buf.Bytes(), listed})
	}
	return out
}
