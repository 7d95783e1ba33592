package main

import (
	"bufio"
	"bytes"
	"compress/gzip"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/stagex/sxmake/cmd/internal/oracle"
	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/packages"
)

// The layer500 and unpack500 scenarios work on a Debian bookworm root file
// system of about 500 MB in about 13,000 files, made once with mmdebstrap
// (from the Debian mirror apt uses) and kept outside the repository in
// ~/.cache/sxmake-bench:
//
//	rootfs.tar                        mmdebstrap's output
//	tree/packages/bench/rootfs500/    a package: FROM scratch, COPY rootfs/ /
//	tree/packages/bench/rootfs500/rootfs/   the tree, extracted (without dev/)
var (
	benchDebianPackages = "build-essential,python3,libpython3-dev"
	benchEpoch          = "1700000000" // SOURCE_DATE_EPOCH for mmdebstrap
)

// benchRootfs makes (once) the bench tree and returns the package tree's
// root and the package directory.
func benchRootfs() (tree, pkg string, err error) {
	home, err := os.UserHomeDir()
	if err != nil {
		return "", "", err
	}
	dir := filepath.Join(home, ".cache", "sxmake-bench")
	tree = filepath.Join(dir, "tree")
	pkg = filepath.Join(tree, "packages", "bench", "rootfs500")
	done := filepath.Join(pkg, ".complete")
	if _, err := os.Stat(done); err == nil {
		return tree, pkg, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", "", err
	}
	tarball := filepath.Join(dir, "rootfs.tar")
	if _, err := os.Stat(tarball); err != nil {
		if _, err := exec.LookPath("mmdebstrap"); err != nil {
			return "", "", fmt.Errorf("mmdebstrap is needed (apt-get install mmdebstrap): %w", err)
		}
		fmt.Fprintf(os.Stderr, "sxbench: making %s with mmdebstrap (once)\n", tarball)
		// mmdebstrap picks its output's format from the name: a .tar.
		tmp := filepath.Join(dir, "making-rootfs.tar")
		cmd := exec.Command("mmdebstrap", "--variant=minbase", "--include="+benchDebianPackages, "bookworm", tmp)
		cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH="+benchEpoch)
		cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
		if err := cmd.Run(); err != nil {
			return "", "", fmt.Errorf("mmdebstrap: %w", err)
		}
		if err := os.Rename(tmp, tarball); err != nil {
			return "", "", err
		}
	}
	os.RemoveAll(pkg)
	rootfs := filepath.Join(pkg, "rootfs")
	if err := os.MkdirAll(rootfs, 0o755); err != nil {
		return "", "", err
	}
	// dev/ holds device nodes, which neither side's COPY is about.
	if out, err := exec.Command("tar", "-x", "--numeric-owner", "--xattrs", "--exclude=./dev/*", "-C", rootfs, "-f", tarball).CombinedOutput(); err != nil {
		return "", "", fmt.Errorf("extracting %s: %w\n%s", tarball, err, out)
	}
	files := map[string]string{
		"package.toml":  "[package]\nname = \"rootfs500\"\nversion = \"1\"\n",
		"Containerfile": "FROM scratch\nCOPY rootfs/ /\n",
	}
	for name, body := range files {
		if err := os.WriteFile(filepath.Join(pkg, name), []byte(body), 0o644); err != nil {
			return "", "", err
		}
	}
	return tree, pkg, os.WriteFile(done, nil, 0o644)
}

// treeSize counts the regular files of dir and their bytes.
func treeSize(dir string) (files int, bytes int64) {
	filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && fi.Mode().IsRegular() {
			files++
			bytes += fi.Size()
		}
		return nil
	})
	return files, bytes
}

// diffCompress is sxmake's layer generation alone: image.WriteDiff of the
// tree (as an overlay upper dir over an empty lower) piped through
// image.Compress (rewrite-timestamp, gzip) into the file blob.
func diffCompress(rootfs, empty, blob string) (image.Layer, error) {
	f, err := os.Create(blob)
	if err != nil {
		return image.Layer{}, err
	}
	defer f.Close()
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(image.WriteDiff(context.Background(), pw, rootfs, empty)) }()
	epoch := time.Unix(packages.SourceDateEpoch, 0)
	bw := bufio.NewWriterSize(f, 1<<20)
	l, err := image.Compress(bw, pr, &epoch)
	pr.CloseWithError(err)
	if err != nil {
		return image.Layer{}, err
	}
	return l, bw.Flush()
}

var bkManifestRE = regexp.MustCompile(`exporting manifest sha256:([0-9a-f]{64})`)

// layer500 times making the layer of the 500 MB tree: `sxmake --no-cache`
// building FROM scratch + COPY rootfs/ / (hashing the context, copying it
// into a snapshot, diffing, rewrite-timestamp, gzip, writing the OCI
// layout) against BuildKit building the same Containerfile with
// --no-cache and StageX's OCI output options (its context already synced
// by the warm-up run; copying, diffing, rewrite-timestamp, gzip and
// writing the OCI tarball). The scenario text also gives the time of
// image.WriteDiff + image.Compress alone, in process, and whether both
// builds gave the same manifest digest.
func layer500(work string) (row, error) {
	repo, _ := os.Getwd()
	if err := oracle.Setup(repo); err != nil {
		return row{}, err
	}
	tree, pkg, err := benchRootfs()
	if err != nil {
		return row{}, err
	}
	files, size := treeSize(filepath.Join(pkg, "rootfs"))
	n := max(3, *runs/3)
	if err := os.MkdirAll(work, 0o755); err != nil {
		return row{}, err
	}

	empty := filepath.Join(work, "empty")
	os.MkdirAll(empty, 0o755)
	blob := filepath.Join(work, "layer.tar.gz")
	var core []time.Duration
	var layer image.Layer
	for i := 0; i <= n; i++ {
		start := time.Now()
		if layer, err = diffCompress(filepath.Join(pkg, "rootfs"), empty, blob); err != nil {
			return row{}, err
		}
		if i > 0 {
			core = append(core, time.Since(start))
		}
	}

	args := []string{"-C", tree, "--cache-dir", filepath.Join(work, "cache"), "-o", filepath.Join(work, "out"),
		"--no-cache", "--progress", "plain", "bench-rootfs500"}
	ours, err := timeRuns(n, *sxmake, args...)
	if err != nil {
		return row{}, err
	}
	out, err := exec.Command(*sxmake, args...).Output()
	if err != nil {
		return row{}, fmt.Errorf("sxmake: %w", err)
	}
	ourDigest, _, _ := strings.Cut(string(out), " ")

	fmt.Fprintf(os.Stderr, "sxbench: layer500: WriteDiff+Compress %s, sxmake --no-cache %s (%s)\n", ms(median(core)), ms(ours), strings.TrimSpace(string(out)))
	d, err := oracle.StartIn(filepath.Join(work, "buildkit")) // a daemon of its own
	if err != nil {
		return row{}, err
	}
	defer d.Stop()
	bkArgs := []string{"build", "--progress=plain", "--frontend", "dockerfile.v0",
		"--local", "context=" + pkg, "--local", "dockerfile=" + pkg,
		"--opt", "filename=Containerfile", "--opt", "platform=linux/amd64",
		"--opt", "build-arg:BUILDKIT_MULTI_PLATFORM=1", "--no-cache",
		"--output", oracle.Output("bench-rootfs500", "1", filepath.Join(work, "buildkit.tar"))}
	var theirs []time.Duration
	var bkDigest string
	for i := 0; i <= n; i++ {
		cmd := d.Command(context.Background(), bkArgs...)
		var buf bytes.Buffer
		cmd.Stdout, cmd.Stderr = &buf, &buf
		start := time.Now()
		if err := cmd.Run(); err != nil {
			return row{}, fmt.Errorf("buildctl: %w\n%s", err, buf.String())
		}
		if i > 0 {
			theirs = append(theirs, time.Since(start))
		}
		if m := bkManifestRE.FindStringSubmatch(buf.String()); m != nil {
			bkDigest = m[1]
		}
	}
	same := "different manifest digests"
	if bkDigest == ourDigest {
		same = "same manifest digest"
	}
	bk := median(theirs)
	return row{fmt.Sprintf("layer of a %d MB, %d-file Debian tree (layer %d MB gzipped): `sxmake --no-cache` of FROM scratch + COPY vs BuildKit --no-cache (%s); WriteDiff+Compress alone: %s",
		size>>20, files, layer.Size>>20, same, ms(median(core))),
		ms(ours), ms(bk), fmt.Sprintf("%.3f", float64(ours)/float64(bk)), "≤ 1"}, nil
}

// unpack500 times image.Unpack (umoci's extraction under containerd's
// rules) of the uncompressed layer tar of the 500 MB tree against GNU
// `tar -x --numeric-owner --xattrs` of the same file; unpack500gz the
// gzipped blob against `tar -xz`. See unpackRuns.
func unpack500(work string) (row, error) {
	blob, err := benchLayer(work)
	if err != nil {
		return row{}, err
	}
	layerTar := filepath.Join(work, "layer.tar")
	if err := gunzipFile(blob, layerTar); err != nil {
		return row{}, err
	}
	return unpackRuns(work, layerTar, "unpack the 500 MB layer tar (uncompressed, 12,323 files): `image.Unpack` (umoci) vs `tar -x --numeric-owner --xattrs`")
}

func unpack500gz(work string) (row, error) {
	blob, err := benchLayer(work)
	if err != nil {
		return row{}, err
	}
	return unpackRuns(work, blob, "unpack the same layer gzipped (175 MB): `image.Unpack` (umoci, gunzipping alongside) vs `tar -xz --numeric-owner --xattrs`")
}

// benchLayer writes the gzipped layer of the 500 MB tree to work.
func benchLayer(work string) (string, error) {
	_, pkg, err := benchRootfs()
	if err != nil {
		return "", err
	}
	if err := os.MkdirAll(work, 0o755); err != nil {
		return "", err
	}
	empty := filepath.Join(work, "empty")
	os.MkdirAll(empty, 0o755)
	blob := filepath.Join(work, "layer.tar.gz")
	_, err = diffCompress(filepath.Join(pkg, "rootfs"), empty, blob)
	return blob, err
}

// unpackRuns unpacks file (a layer tar, or its gzip) with image.Unpack and
// with tar, alternating, each into a fresh directory on the same file
// system. Trees are removed only at the end, after a sync: ext4 makes an
// inode slow to allocate while many were freed in the last seconds to
// minutes (perf: ext4_create spends its time in recently_deleted), which
// made the time of whichever side ran after the other's removal depend on
// that removal rather than on its own work.
func unpackRuns(work, file, scenario string) (row, error) {
	n := max(3, *runs/3)
	var ours, theirs []time.Duration
	var dirs []string
	defer func() {
		for _, d := range dirs {
			os.RemoveAll(d)
		}
	}()
	tarArgs := []string{"-x", "--numeric-owner", "--xattrs"}
	if strings.HasSuffix(file, ".gz") {
		tarArgs = append(tarArgs, "-z")
	}
	for i := 0; i <= n; i++ {
		dir := filepath.Join(work, fmt.Sprint("ours", i))
		tdir := filepath.Join(work, fmt.Sprint("tar", i))
		dirs = append(dirs, dir, tdir)
		os.MkdirAll(dir, 0o755)
		os.MkdirAll(tdir, 0o755)
		exec.Command("sync").Run()
		f, err := os.Open(file)
		if err != nil {
			return row{}, err
		}
		start := time.Now()
		err = image.Unpack(dir, f)
		d := time.Since(start)
		f.Close()
		if err != nil {
			return row{}, fmt.Errorf("unpacking: %w", err)
		}
		exec.Command("sync").Run()
		start = time.Now()
		if out, err := exec.Command("tar", append(tarArgs, "-C", tdir, "-f", file)...).CombinedOutput(); err != nil {
			return row{}, fmt.Errorf("tar -x: %w\n%s", err, out)
		}
		td := time.Since(start)
		if i > 0 {
			ours, theirs = append(ours, d), append(theirs, td)
		}
	}
	o, t := median(ours), median(theirs)
	return row{scenario, ms(o), ms(t), fmt.Sprintf("%.3f", float64(o)/float64(t)), "≤ 1.1 (issue 17)"}, nil
}

func gunzipFile(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	zr, err := gzip.NewReader(bufio.NewReaderSize(in, 1<<20))
	if err != nil {
		return err
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, zr); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}
