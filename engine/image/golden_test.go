package image

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/stagex/sxmake/cache"
	"golang.org/x/sys/unix"
)

// The golden tests rebuild each oracle fixture (testdata/oracle/fixtures)
// with this package and a minimal stand-in for COPY/ADD, and compare every
// byte with what BuildKit v0.26.3 wrote (testdata/oracle/golden, made by
// testdata/oracle/update-goldens.sh).

const oracleDir = "../../testdata/oracle"

var epoch1 = time.Unix(1, 0).UTC()

// builder assembles one image the way BuildKit's Dockerfile frontend and
// exporter would, one step at a time.
type builder struct {
	t      *testing.T
	fx     string // the prepared fixture (build context)
	store  *cache.ContentStore
	merged string // the file system so far: every layer unpacked
	cfg    Config
	base   *Config // set by from
	layers []Layer
}

// readGolden returns the manifest and config of a golden layout.
func readGolden(t *testing.T, fixture string) (dir string, m Manifest, config []byte) {
	t.Helper()
	dir = filepath.Join(oracleDir, "golden", fixture)
	r := roles(t, dir)
	if err := json.Unmarshal(r["manifest"], &m); err != nil {
		t.Fatal(err)
	}
	return dir, m, r["config"]
}

// from starts the stage FROM the image built from fixture (as offered by
// an oci-layout build context): its config, layers and file system.
func (b *builder) from(fixture string) {
	t := b.t
	t.Helper()
	dir, m, config := readGolden(t, fixture)
	cfg, err := BaseConfig(config)
	if err != nil {
		t.Fatal(err)
	}
	base := cfg
	base.History = append([]History(nil), cfg.History...)
	b.cfg, b.base = cfg, &base
	if b.layers, err = BaseLayers(m, cfg); err != nil {
		t.Fatal(err)
	}
	for _, l := range m.Layers {
		f, err := os.Open(filepath.Join(dir, "blobs/sha256", l.Digest.Hex()))
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := b.store.Ingest(f, l.Digest); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	unpackImage(t, fixture, b.merged)
}

// unpackImage unpacks every layer of the golden image of fixture into dir.
func unpackImage(t *testing.T, fixture, dir string) {
	t.Helper()
	gdir, m, _ := readGolden(t, fixture)
	for _, l := range m.Layers {
		f, err := os.Open(filepath.Join(gdir, "blobs/sha256", l.Digest.Hex()))
		if err != nil {
			t.Fatal(err)
		}
		zr, err := gzip.NewReader(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := Unpack(dir, zr); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
}

func newBuilder(t *testing.T, fixture string) *builder {
	t.Helper()
	store, err := cache.OpenContentStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return &builder{
		t:      t,
		fx:     prepareFixture(t, fixture),
		store:  store,
		merged: t.TempDir(),
		cfg:    NewConfig(Platform{Architecture: "amd64", OS: "linux"}),
	}
}

// prepareFixture copies a fixture to a temp dir and normalizes it as
// run-oracle.sh does: root-owned, 0644/0755, then setup.sh.
func prepareFixture(t *testing.T, name string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	if err := os.CopyFS(dst, os.DirFS(filepath.Join(oracleDir, "fixtures", name))); err != nil {
		t.Fatal(err)
	}
	filepath.WalkDir(dst, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		mode := os.FileMode(0o644)
		if fi, _ := d.Info(); d.IsDir() || fi.Mode()&0o100 != 0 {
			mode = 0o755
		}
		os.Lchown(p, 0, 0)
		return os.Chmod(p, mode)
	})
	if _, err := os.Stat(filepath.Join(dst, "setup.sh")); err == nil {
		cmd := exec.Command("sh", "./setup.sh")
		cmd.Dir = dst
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("setup.sh: %v\n%s", err, out)
		}
	}
	return dst
}

// meta records a step without a layer (ENV, SHELL, USER, ...).
func (b *builder) meta(createdBy string) {
	b.cfg.History = append(b.cfg.History, History{CreatedBy: createdBy, Comment: HistoryComment, EmptyLayer: true, Created: &epoch1})
}

// layer records a step whose diff populate writes into an empty upper dir.
func (b *builder) layer(createdBy string, populate func(upper string)) {
	t := b.t
	t.Helper()
	upper := t.TempDir()
	os.Chmod(upper, 0o755)
	populate(upper)
	lower := b.merged
	if len(b.layers) == 0 {
		lower = ""
	}
	w, err := b.store.Writer()
	if err != nil {
		t.Fatal(err)
	}
	l, err := DiffLayer(context.Background(), w, upper, lower, epoch1, true)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := w.Commit(l.Digest, l.Size); err != nil {
		t.Fatal(err)
	}
	b.layers = append(b.layers, l)
	b.cfg.History = append(b.cfg.History, History{CreatedBy: createdBy, Comment: HistoryComment, Created: &epoch1})
	r, err := b.store.Open(l.Digest)
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	zr, err := gzip.NewReader(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := Unpack(b.merged, zr); err != nil {
		t.Fatal(err)
	}
}

// copyFile copies the context file src to dst in upper, creating missing
// parents with parentMode; mode 0 keeps src's mode.
func (b *builder) copyFile(upper, src, dst string, mode, parentMode os.FileMode) {
	t := b.t
	t.Helper()
	fi, err := os.Stat(filepath.Join(b.fx, src))
	if err != nil {
		t.Fatal(err)
	}
	if mode == 0 {
		mode = fi.Mode()
	}
	data, err := os.ReadFile(filepath.Join(b.fx, src))
	if err != nil {
		t.Fatal(err)
	}
	b.writeFile(upper, dst, string(data), mode, parentMode)
}

// writeFile creates dst in upper with body and mode, creating missing
// parents with parentMode.
func (b *builder) writeFile(upper, dst, body string, mode, parentMode os.FileMode) {
	t := b.t
	t.Helper()
	p := filepath.Join(upper, dst)
	b.mkdirAll(upper, filepath.Dir(dst), parentMode)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

// mkdirAll creates dir and its parents in upper with mode, leaving
// existing ones alone.
func (b *builder) mkdirAll(upper, dir string, mode os.FileMode) {
	t := b.t
	t.Helper()
	p := upper
	for _, c := range splitPath(dir) {
		p = filepath.Join(p, c)
		if _, err := os.Lstat(p); err == nil {
			continue
		}
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, mode); err != nil {
			t.Fatal(err)
		}
	}
}

func splitPath(p string) []string {
	var out []string
	for p != "" && p != "." && p != "/" {
		out = append([]string{filepath.Base(p)}, out...)
		p = filepath.Dir(p)
	}
	return out
}

// copyTree copies the contents of the context dir src into dst in upper,
// keeping modes, symlinks and hardlinks, owned by root.
func (b *builder) copyTree(upper, src, dst string) {
	t := b.t
	t.Helper()
	root := filepath.Join(b.fx, src)
	links := map[uint64]string{}
	b.mkdirAll(upper, dst, 0o755)
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || p == root {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out := filepath.Join(upper, dst, rel)
		st := fi.Sys().(*syscall.Stat_t)
		switch {
		case fi.IsDir():
			if err := os.Mkdir(out, 0o700); err != nil {
				return err
			}
		case fi.Mode()&os.ModeSymlink != 0:
			target, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(target, out)
		case st.Nlink > 1 && links[st.Ino] != "":
			return os.Link(links[st.Ino], out)
		default:
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			if err := os.WriteFile(out, data, 0o600); err != nil {
				return err
			}
			links[st.Ino] = out
		}
		os.Lchown(out, 0, 0)
		return os.Chmod(out, fi.Mode()&(os.ModePerm|os.ModeSetuid|os.ModeSetgid|os.ModeSticky))
	})
	if err != nil {
		t.Fatal(err)
	}
}

// extract unpacks the context tar.gz src into dst in upper (ADD).
func (b *builder) extract(upper, src, dst string) {
	t := b.t
	t.Helper()
	f, err := os.Open(filepath.Join(b.fx, src))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	zr, err := gzip.NewReader(f)
	if err != nil {
		t.Fatal(err)
	}
	b.mkdirAll(upper, dst, 0o755)
	if err := Unpack(filepath.Join(upper, dst), zr); err != nil {
		t.Fatal(err)
	}
}

// goldenCases rebuilds each fixture. Each build function mirrors the
// fixture's Containerfile step by step.
var goldenCases = []struct {
	fixture, name, version string
	build                  func(b *builder)
}{
	{"copy-file", "core-copyfile", "1.0", func(b *builder) {
		b.layer("COPY hello.txt /hello.txt # buildkit", func(u string) {
			b.copyFile(u, "hello.txt", "hello.txt", 0, 0o755)
		})
	}},
	{"copy-nested-dest", "core-nested", "2.1.0", func(b *builder) {
		b.layer("COPY README /usr/share/doc/nested/ # buildkit", func(u string) {
			b.copyFile(u, "README", "usr/share/doc/nested/README", 0, 0o755)
		})
		b.layer("COPY tool.sh /usr/bin/tool # buildkit", func(u string) {
			b.copyFile(u, "tool.sh", "usr/bin/tool", 0, 0o755)
		})
	}},
	{"copy-tree", "core-tree", "3.0", func(b *builder) {
		b.layer("COPY tree/ / # buildkit", func(u string) { b.copyTree(u, "tree", ".") })
	}},
	{"copy-heredoc-quoted", "core-heredocq", "1.2", func(b *builder) {
		b.meta("ARG VERSION=1.2")
		b.layer("COPY <<EOF /etc/profile # buildkit", func(u string) {
			b.writeFile(u, "etc/profile", "export PS1='$USER@stagex:$PWD$ '\nversion=$VERSION\n", 0o644, 0o755)
		})
	}},
	{"copy-heredoc-unquoted", "core-heredocu", "4.5.6", func(b *builder) {
		b.meta("ARG VERSION=4.5.6")
		b.cfg.Config.Env = append(b.cfg.Config.Env, "PREFIX=/usr")
		b.meta("ENV PREFIX=/usr")
		b.layer("COPY <<EOF /etc/os-release # buildkit", func(u string) {
			b.writeFile(u, "etc/os-release", "NAME=StageX\nVERSION=4.5.6\nPREFIX=/usr\n", 0o644, 0o755)
		})
	}},
	{"copy-chmod", "core-chmod", "1.0", func(b *builder) {
		// BuildKit gives --chmod's mode to the parents it creates, too.
		b.layer("COPY --chmod=755 run.sh /usr/bin/run # buildkit", func(u string) {
			b.copyFile(u, "run.sh", "usr/bin/run", 0o755, 0o755)
		})
		b.layer("COPY --chmod=0644 data.txt /usr/share/data.txt # buildkit", func(u string) {
			b.mkdirAll(u, "usr", 0o755)
			b.copyFile(u, "data.txt", "usr/share/data.txt", 0o644, 0o644)
		})
		b.layer("COPY --chmod=775 data.txt /opt/data-775 # buildkit", func(u string) {
			b.copyFile(u, "data.txt", "opt/data-775", 0o775, 0o775)
		})
	}},
	{"config-only", "core-config", "0.1", func(b *builder) {
		c := &b.cfg.Config
		c.Env = []string{"PATH=/opt/bin:" + DefaultPath, "LANG=C.UTF-8", "EMPTY=", "QUOTED=a b  c"}
		b.meta("ENV LANG=C.UTF-8 EMPTY= QUOTED=a b  c PATH=/opt/bin:" + DefaultPath)
		c.Env = append(c.Env, "NOTE=ünïcödé <b>&</b>")
		b.meta("ENV NOTE=ünïcödé <b>&</b>")
		c.WorkingDir = "/home/user"
		b.layer("WORKDIR /home/user", func(u string) { b.mkdirAll(u, "home/user", 0o755) })
		c.Shell = []string{"/bin/sh", "-l", "-c"}
		b.meta("SHELL [/bin/sh -l -c]")
		c.User = "1000:1000"
		b.meta("USER 1000:1000")
		c.Entrypoint = []string{"/usr/bin/tool", "--flag"}
		b.meta(`ENTRYPOINT ["/usr/bin/tool" "--flag"]`)
	}},
	{"add-targz", "core-addtgz", "1.0", func(b *builder) {
		b.layer("ADD fetch/pkg-1.0.tar.gz /src/ # buildkit", func(u string) {
			b.extract(u, "fetch/pkg-1.0.tar.gz", "src")
		})
	}},
	{"multi-stage", "core-multi", "1.0", func(b *builder) {
		b.layer("COPY /rootfs/ / # buildkit", func(u string) {
			b.copyFile(u, "artifact", "usr/bin/artifact", 0, 0o755)
			b.copyFile(u, "other", "usr/share/other", 0, 0o755)
		})
	}},
	{"subpackage", "core-subpkg-dev", "1.0", func(b *builder) {
		b.layer("COPY /rootfs/usr/include/ /usr/include/ # buildkit", func(u string) {
			b.copyFile(u, "sub.h", "usr/include/sub.h", 0, 0o755)
		})
	}},
	{"two-layers", "core-twolayers", "1.0", func(b *builder) {
		b.layer("COPY one /usr/bin/one # buildkit", func(u string) { b.copyFile(u, "one", "usr/bin/one", 0, 0o755) })
		b.layer("COPY two /usr/bin/two # buildkit", func(u string) { b.copyFile(u, "two", "usr/bin/two", 0, 0o755) })
	}},
	{"copy-overwrite", "core-overwrite", "1.0", func(b *builder) {
		b.layer("COPY old /etc/motd # buildkit", func(u string) { b.copyFile(u, "old", "etc/motd", 0, 0o755) })
		b.layer("COPY new /etc/motd # buildkit", func(u string) { b.copyFile(u, "new", "etc/motd", 0, 0o755) })
	}},
	{"profile-like", "core-profilelike", "1.0", func(b *builder) {
		b.layer("COPY <<EOF /etc/profile # buildkit", func(u string) {
			b.writeFile(u, "etc/profile", "export TZ=UTC\nexport LANG=C.UTF-8\numask 022\n", 0o644, 0o755)
		})
		b.cfg.Config.Shell = []string{"/bin/sh", "-l", "-c"}
		b.meta("SHELL [/bin/sh -l -c]")
	}},
	{"workdir-relative", "core-workdir", "1.0", func(b *builder) {
		b.meta("ARG VERSION=1.0")
		b.cfg.Config.WorkingDir = "/opt/app-1.0"
		b.layer("WORKDIR /opt/app-1.0", func(u string) { b.mkdirAll(u, "opt/app-1.0", 0o755) })
		b.layer("COPY rel.txt . # buildkit", func(u string) {
			b.copyFile(u, "rel.txt", "opt/app-1.0/rel.txt", 0, 0o755)
		})
		b.layer("COPY rel.txt sub/renamed.txt # buildkit", func(u string) {
			b.copyFile(u, "rel.txt", "opt/app-1.0/sub/renamed.txt", 0, 0o755)
		})
	}},
	{"copy-glob", "core-glob", "1.0", func(b *builder) {
		b.layer("COPY docs/*.txt /usr/share/doc/glob/ # buildkit", func(u string) {
			for _, f := range []string{"a.txt", "b.txt", "c.txt"} {
				b.copyFile(u, "docs/"+f, "usr/share/doc/glob/"+f, 0, 0o755)
			}
		})
	}},
	{"add-file", "core-addfile", "1.0", func(b *builder) {
		b.layer("ADD fix.patch /patches/ # buildkit", func(u string) {
			b.copyFile(u, "fix.patch", "patches/fix.patch", 0, 0o755)
		})
	}},
	{"copy-whole-stage", "core-whole", "1.0", func(b *builder) {
		b.layer("COPY . / # buildkit", func(u string) { b.copyFile(u, "x", "usr/bin/x", 0, 0o755) })
	}},
	{"from-stage", "core-fromstage", "1.0", func(b *builder) {
		b.layer("COPY x /usr/bin/x # buildkit", func(u string) { b.copyFile(u, "x", "usr/bin/x", 0, 0o755) })
		b.cfg.Config.Env = append(b.cfg.Config.Env, "FOO=bar")
		b.meta("ENV FOO=bar")
		b.cfg.Config.WorkingDir = "/work"
		b.layer("WORKDIR /work", func(u string) { b.mkdirAll(u, "work", 0o755) })
		b.layer("COPY y /usr/bin/y # buildkit", func(u string) { b.copyFile(u, "y", "usr/bin/y", 0, 0o755) })
		b.cfg.Config.Entrypoint = []string{"/usr/bin/y"}
		b.meta(`ENTRYPOINT ["/usr/bin/y"]`)
	}},
	{"empty-scratch", "core-empty", "1.0", func(b *builder) {}},
	{"run-whiteouts", "core-runwh", "1.0", func(b *builder) {
		b.layer("COPY rootfs/ / # buildkit", func(u string) { b.copyTree(u, "rootfs", ".") })
		// The overlay upper dir the kernel leaves after `RUN ["/bin/ops"]`
		// (see the fixture's mkops.go), including the mount points runc made.
		b.layer("RUN /bin/ops # buildkit", func(u string) {
			for _, d := range []string{"dev", "proc", "sys", "etc", "opt/old", "var"} {
				b.mkdirAll(u, d, 0o755)
			}
			b.writeFile(u, "etc/mod", "changed\n", 0o644, 0o755)
			b.writeFile(u, "etc/new", "new\n", 0o644, 0o755)
			b.writeFile(u, "opt/old/c", "c\n", 0o644, 0o755)
			for _, w := range []string{"etc/gone", "var/empty"} {
				if err := unix.Mknod(filepath.Join(u, w), unix.S_IFCHR, 0); err != nil {
					b.t.Fatal(err)
				}
			}
			if err := unix.Setxattr(filepath.Join(u, "opt/old"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
				b.t.Fatal(err)
			}
		})
	}},
	{"platform-386", "core-plat386", "1.0", func(b *builder) {
		b.cfg = NewConfig(Platform{Architecture: "386", OS: "linux"})
		b.layer("COPY f /f # buildkit", func(u string) { b.copyFile(u, "f", "f", 0, 0o755) })
	}},
	{"platform-arm64", "core-platarm64", "1.0", func(b *builder) {
		// linux/arm64 as given: no "v8" variant anywhere.
		b.cfg = NewConfig(Platform{Architecture: "arm64", OS: "linux"})
		b.layer("COPY f /f # buildkit", func(u string) { b.copyFile(u, "f", "f", 0, 0o755) })
	}},
	{"copy-large", "core-large", "1.0", func(b *builder) {
		b.layer("COPY big/ /usr/share/big/ # buildkit", func(u string) {
			b.mkdirAll(u, "usr/share", 0o755)
			b.copyTree(u, "big", "usr/share/big")
		})
	}},
	{"from-image", "core-fromimage", "1.0", func(b *builder) {
		b.from("copy-file")
		b.layer("COPY extra.txt /etc/extra.txt # buildkit", func(u string) {
			b.copyFile(u, "extra.txt", "etc/extra.txt", 0, 0o755)
		})
		b.cfg.Config.Env = append(b.cfg.Config.Env, "X=1")
		b.meta("ENV X=1")
	}},
	{"from-image-shell", "core-fromimageshell", "1.0", func(b *builder) {
		b.from("config-only")
		// Relative to WORKDIR /home/user; USER does not change ownership.
		b.layer("COPY y y.txt # buildkit", func(u string) {
			b.copyFile(u, "y", "home/user/y.txt", 0, 0o755)
		})
	}},
	{"copy-from-image", "core-copyfromimage", "1.0", func(b *builder) {
		b.layer("COPY . / # buildkit", func(u string) { unpackImage(b.t, "copy-nested-dest", u) })
		b.layer("COPY /home /home # buildkit", func(u string) {
			tmp := b.t.TempDir()
			unpackImage(b.t, "config-only", tmp)
			b.fx = tmp
			b.copyTree(u, "home", "home")
		})
		b.fx = prepareFixture(b.t, "copy-from-image")
		b.layer("COPY hello /etc/hello # buildkit", func(u string) { b.copyFile(u, "hello", "etc/hello", 0, 0o755) })
	}},
}

func TestGolden(t *testing.T) {
	requiresRoot(t)
	for _, tc := range goldenCases {
		t.Run(tc.fixture, func(t *testing.T) {
			b := newBuilder(t, tc.fixture)
			tc.build(b)
			img, err := New(tc.name, b.cfg, b.layers, WithEpoch(epoch1), WithStageXAnnotations(tc.name, tc.version, epoch1), WithBase(b.base))
			if err != nil {
				t.Fatal(err)
			}
			if err := ValidateImage(img, b.store); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "out")
			if err := WriteLayout(out, img, b.store); err != nil {
				t.Fatal(err)
			}
			if err := Validate(out); err != nil {
				t.Fatal(err)
			}
			compareLayouts(t, filepath.Join(oracleDir, "golden", tc.fixture), out)
			digest, err := os.ReadFile(filepath.Join(oracleDir, "golden", tc.fixture, "digest"))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(bytes.TrimSpace(digest)), img.DigestsLine()); diff != "" {
				t.Errorf("digests line (-oracle +ours):\n%s", diff)
			}
		})
	}
}

// TestGoldenLayoutsValid checks that every golden layout passes Validate,
// which keeps Validate honest about what BuildKit writes.
func TestGoldenLayoutsValid(t *testing.T) {
	dirs, err := os.ReadDir(filepath.Join(oracleDir, "golden"))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range dirs {
		t.Run(d.Name(), func(t *testing.T) {
			if err := Validate(filepath.Join(oracleDir, "golden", d.Name())); err != nil {
				t.Error(err)
			}
		})
	}
}

// compareLayouts reports every file of the golden layout whose bytes differ
// in ours, with a tar listing diff for layers, and blobs only ours has.
func compareLayouts(t *testing.T, golden, ours string) {
	t.Helper()
	for _, f := range []string{"index.json", "oci-layout"} {
		compareFile(t, filepath.Join(golden, f), filepath.Join(ours, f))
	}
	want, got := blobNames(t, golden), blobNames(t, ours)
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("blobs (-oracle +ours):\n%s", diff)
	}
	for _, n := range want {
		compareFile(t, filepath.Join(golden, "blobs/sha256", n), filepath.Join(ours, "blobs/sha256", n))
	}
	// Name the differing files when digests differ: compare by role.
	if t.Failed() {
		describeDiff(t, golden, ours)
	}
}

func compareFile(t *testing.T, want, got string) {
	t.Helper()
	w, err := os.ReadFile(want)
	if err != nil {
		t.Fatal(err)
	}
	g, err := os.ReadFile(got)
	if err != nil {
		t.Errorf("%s: %v", filepath.Base(want), err)
		return
	}
	if !bytes.Equal(w, g) {
		t.Errorf("%s differs", filepath.Base(want))
	}
}

func blobNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(dir, "blobs/sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	sort.Strings(out)
	return out
}

// describeDiff prints, for JSON blobs, a text diff and, for layers, a diff
// of their tar listings, pairing the two layouts' blobs by role.
func describeDiff(t *testing.T, golden, ours string) {
	t.Helper()
	gr, or := roles(t, golden), roles(t, ours)
	for role, g := range gr {
		o, ok := or[role]
		if !ok {
			t.Logf("%s: missing in ours", role)
			continue
		}
		if bytes.Equal(g, o) {
			continue
		}
		if len(g) > 2 && g[0] == 0x1f && g[1] == 0x8b {
			lw := tarListing(t, gunzip(t, g))
			lo := tarListing(t, gunzip(t, o))
			t.Logf("%s differs; tar listing (-oracle +ours):\n%s", role, cmp.Diff(lw, lo))
			continue
		}
		t.Logf("%s differs (-oracle +ours):\n%s", role, cmp.Diff(string(g), string(o)))
	}
}

func gunzip(t *testing.T, b []byte) io.Reader {
	zr, err := gzip.NewReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return zr
}

// roles maps "index", "manifest", "config", "layer N" to blob bytes.
func roles(t *testing.T, dir string) map[string][]byte {
	t.Helper()
	read := func(d Digest) []byte {
		b, _ := os.ReadFile(filepath.Join(dir, "blobs/sha256", d.Hex()))
		return b
	}
	out := map[string][]byte{}
	top, _ := os.ReadFile(filepath.Join(dir, "index.json"))
	var idx Index
	if err := jsonUnmarshal(top, &idx); err != nil || len(idx.Manifests) == 0 {
		return out
	}
	out["index"] = read(idx.Manifests[0].Digest)
	var nested Index
	if err := jsonUnmarshal(out["index"], &nested); err != nil || len(nested.Manifests) == 0 {
		return out
	}
	out["manifest"] = read(nested.Manifests[0].Digest)
	var m Manifest
	if err := jsonUnmarshal(out["manifest"], &m); err != nil {
		return out
	}
	out["config"] = read(m.Config.Digest)
	for i, l := range m.Layers {
		out["layer "+string(rune('0'+i))] = read(l.Digest)
	}
	return out
}

func jsonUnmarshal(b []byte, v any) error { return json.Unmarshal(b, v) }
