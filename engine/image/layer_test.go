package image

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sys/unix"
)

// requiresRoot skips a test that needs root, or fails it when
// SXMAKE_TEST_ROOT=1 (as CI sets) says root is expected.
func requiresRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("SXMAKE_TEST_ROOT") == "1" {
		t.Fatal("test needs root")
	}
	t.Skip("test needs root")
}

// tarListing returns one line per entry of an uncompressed tar: type,
// mode, uid:gid, size, mtime, name, link target and PAX records.
func tarListing(t *testing.T, r io.Reader) []string {
	t.Helper()
	tr := tar.NewReader(r)
	var out []string
	for {
		h, err := tr.Next()
		if err == io.EOF {
			return out
		}
		if err != nil {
			t.Fatalf("reading tar: %v", err)
		}
		line := fmt.Sprintf("%c %o %d:%d %d %d %s", h.Typeflag, h.Mode, h.Uid, h.Gid, h.Size, h.ModTime.Unix(), h.Name)
		if h.Linkname != "" {
			line += " -> " + h.Linkname
		}
		if h.Uname != "" || h.Gname != "" {
			line += " names=" + h.Uname + ":" + h.Gname
		}
		if len(h.PAXRecords) > 0 {
			line += fmt.Sprintf(" pax=%v", h.PAXRecords)
		}
		out = append(out, line)
	}
}

func writeFile(t *testing.T, p, body string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
}

func TestWriteDiffOverlay(t *testing.T) {
	requiresRoot(t)
	lower, upper := t.TempDir(), t.TempDir()
	for _, f := range []string{"etc/keep", "etc/gone", "etc/mod", "opt/old1", "opt/old2", "usr/bin/tool"} {
		writeFile(t, filepath.Join(lower, f), "a", 0o644)
	}
	os.Chmod(upper, 0o755)
	os.Chmod(lower, 0o755)
	writeFile(t, filepath.Join(upper, "etc/mod"), "bb", 0o644)
	writeFile(t, filepath.Join(upper, "etc/new"), "new", 0o600)
	writeFile(t, filepath.Join(upper, "opt/new1"), "n", 0o755)
	for _, w := range []string{"etc/gone", "etc/ghost"} {
		if err := unix.Mknod(filepath.Join(upper, w), unix.S_IFCHR, 0); err != nil {
			t.Fatal(err)
		}
	}
	if err := unix.Setxattr(filepath.Join(upper, "opt"), "trusted.overlay.opaque", []byte("y"), 0); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(upper, "var/empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteDiff(context.Background(), &buf, upper, lower); err != nil {
		t.Fatal(err)
	}
	got := tarListing(t, &buf)
	for i := range got { // mtimes of fresh files vary: keep only the whiteouts'
		if !strings.Contains(got[i], ".wh.") {
			f := strings.Fields(got[i])
			f[4] = "T"
			got[i] = strings.Join(f, " ")
		}
	}
	want := []string{
		"5 755 0:0 0 T etc/",
		"0 0 0:0 0 0 etc/.wh.gone",
		"0 644 0:0 2 T etc/mod",
		"0 600 0:0 3 T etc/new",
		"5 755 0:0 0 T opt/",
		"0 755 0:0 1 T opt/new1",
		"0 0 0:0 0 0 opt/.wh.old1",
		"0 0 0:0 0 0 opt/.wh.old2",
		"5 755 0:0 0 T var/",
		"5 755 0:0 0 T var/empty/",
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("diff tar (-want +got):\n%s", diff)
	}
}

func TestCompress(t *testing.T) {
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	for _, h := range []*tar.Header{
		{Name: "old", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: time.Unix(0, 0)},
		{Name: "new", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: time.Unix(1e9, 0), Format: tar.FormatPAX},
		{Name: "atime", Typeflag: tar.TypeReg, Mode: 0o644, ModTime: time.Unix(1e9, 0), AccessTime: time.Unix(2e9, 0), Format: tar.FormatPAX},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
	}
	tw.Close()
	in.Write(make([]byte, 4096)) // trailing padding is drained, not copied

	epoch := time.Unix(1, 0)
	var blob bytes.Buffer
	l, err := Compress(&blob, bytes.NewReader(in.Bytes()), &epoch)
	if err != nil {
		t.Fatal(err)
	}
	// gzip header of compress/gzip at DefaultCompression: no name, mtime 0,
	// XFL 0, OS 255.
	if diff := cmp.Diff([]byte{0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff}, blob.Bytes()[:10]); diff != "" {
		t.Errorf("gzip header (-want +got):\n%s", diff)
	}
	if l.Digest != DigestOf(blob.Bytes()) || l.Size != int64(blob.Len()) {
		t.Errorf("descriptor %s/%d does not match blob %s/%d", l.Digest, l.Size, DigestOf(blob.Bytes()), blob.Len())
	}
	zr, err := gzip.NewReader(bytes.NewReader(blob.Bytes()))
	if err != nil {
		t.Fatal(err)
	}
	tarBytes, _ := io.ReadAll(zr)
	if l.DiffID != DiffID(sha256.Sum256(tarBytes)) {
		t.Errorf("diffID %s is not the digest of the tar", l.DiffID)
	}
	want := []string{
		"0 644 0:0 0 0 old",
		"0 644 0:0 0 1 new",
		"0 644 0:0 0 1 atime pax=map[atime:1]",
	}
	if diff := cmp.Diff(want, tarListing(t, bytes.NewReader(tarBytes))); diff != "" {
		t.Errorf("rewritten tar (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff(map[string]string{AnnotationRewrittenTimestamp: "1"}, l.Annotations); diff != "" {
		t.Errorf("annotations (-want +got):\n%s", diff)
	}
}

// TestRewriteThenCompress: an intermediate layer kept uncompressed
// (Rewrite) and gzipped when an image exports it (CompressRewritten) is
// byte for byte the blob Compress writes in one pass.
func TestRewriteThenCompress(t *testing.T) {
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	for _, h := range []*tar.Header{
		{Name: "dir/", Typeflag: tar.TypeDir, Mode: 0o755, ModTime: time.Unix(1e9, 5)},
		{Name: "dir/file", Typeflag: tar.TypeReg, Mode: 0o644, Size: 5, ModTime: time.Unix(1e9, 0), AccessTime: time.Unix(2e9, 0), Format: tar.FormatPAX},
		{Name: "dir/link", Typeflag: tar.TypeSymlink, Linkname: "file", ModTime: time.Unix(0, 0)},
	} {
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if h.Size > 0 {
			tw.Write([]byte("hello"))
		}
	}
	tw.Close()
	epoch := time.Unix(1, 0)

	var once bytes.Buffer
	want, err := Compress(&once, bytes.NewReader(in.Bytes()), &epoch)
	if err != nil {
		t.Fatal(err)
	}
	var tarBlob bytes.Buffer
	kept, err := Rewrite(&tarBlob, bytes.NewReader(in.Bytes()), epoch)
	if err != nil {
		t.Fatal(err)
	}
	if kept.Compressed() || kept.MediaType != MediaTypeLayerTar || kept.DiffID != want.DiffID || kept.Size != int64(tarBlob.Len()) {
		t.Errorf("kept layer %+v, want an uncompressed tar blob of diffID %s", kept, want.DiffID)
	}
	var twice bytes.Buffer
	got, err := CompressRewritten(&twice, bytes.NewReader(tarBlob.Bytes()), epoch)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" || !bytes.Equal(once.Bytes(), twice.Bytes()) {
		t.Errorf("two-pass layer differs from the one-pass layer (descriptor -want +got):\n%s", diff)
	}
	if !got.Compressed() {
		t.Error("a gzip layer reports itself uncompressed")
	}
}

// BenchmarkCompress measures tar rewrite + gzip throughput on a 64 MiB
// layer of semi-compressible data (an exported layer), against the
// rewrite alone (an intermediate layer) and gzip alone.
func BenchmarkCompress(b *testing.B) {
	var in bytes.Buffer
	tw := tar.NewWriter(&in)
	chunk := make([]byte, 1<<20)
	for i := range chunk {
		chunk[i] = byte(i*7) ^ byte(i>>9)
	}
	for i := range 64 {
		tw.WriteHeader(&tar.Header{Name: fmt.Sprintf("f%02d", i), Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(chunk)), ModTime: time.Unix(1e9, 0)})
		tw.Write(chunk)
	}
	tw.Close()
	epoch := time.Unix(1, 0)
	b.Run("rewrite+gzip", func(b *testing.B) {
		b.SetBytes(int64(in.Len()))
		for b.Loop() {
			if _, err := Compress(io.Discard, bytes.NewReader(in.Bytes()), &epoch); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("rewrite-only", func(b *testing.B) {
		b.SetBytes(int64(in.Len()))
		for b.Loop() {
			if _, err := Rewrite(io.Discard, bytes.NewReader(in.Bytes()), epoch); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("gzip-only-baseline", func(b *testing.B) {
		b.SetBytes(int64(in.Len()))
		for b.Loop() {
			zw, _ := gzip.NewWriterLevel(io.Discard, gzip.DefaultCompression)
			zw.Write(in.Bytes())
			zw.Close()
		}
	})
}

// BenchmarkDiffLayer measures the whole path from an upper dir (512 files
// of 128 KiB in 16 dirs) to a gzip layer blob.
func BenchmarkDiffLayer(b *testing.B) {
	upper := b.TempDir()
	data := make([]byte, 128<<10)
	for i := range data {
		data[i] = byte(i*7) ^ byte(i>>9)
	}
	for i := range 512 {
		p := filepath.Join(upper, fmt.Sprintf("d%02d/f%03d", i%16, i))
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			b.Fatal(err)
		}
	}
	epoch := time.Unix(1, 0)
	b.SetBytes(512 * int64(len(data)))
	for b.Loop() {
		if _, err := DiffLayer(context.Background(), io.Discard, upper, "", epoch, true); err != nil {
			b.Fatal(err)
		}
	}
}

// TestWriteDiffKeepsCapability checks that a file capability survives from
// the upper dir into the layer and back out through Unpack.
func TestWriteDiffKeepsCapability(t *testing.T) {
	requiresRoot(t)
	upper := t.TempDir()
	capab := []byte("\x01\x00\x00\x02\x00\x20\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00")
	writeFile(t, filepath.Join(upper, "usr/bin/ping"), "x", 0o755)
	if err := unix.Setxattr(filepath.Join(upper, "usr/bin/ping"), "security.capability", capab, 0); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if err := WriteDiff(context.Background(), &buf, upper, ""); err != nil {
		t.Fatal(err)
	}
	root := t.TempDir()
	if err := Unpack(root, &buf); err != nil {
		t.Fatal(err)
	}
	got, err := lgetxattr(filepath.Join(root, "usr/bin/ping"), "security.capability")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, capab) {
		t.Errorf("capability after diff and unpack = %q, want %q", got, capab)
	}
}
