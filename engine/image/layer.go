package image

import (
	"archive/tar"
	"bufio"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash"
	"io"
	"strconv"
	"time"
)

// Media types and annotation keys BuildKit writes.
const (
	MediaTypeLayerGzip = "application/vnd.oci.image.layer.v1.tar+gzip"
	MediaTypeLayerTar  = "application/vnd.oci.image.layer.v1.tar"
	MediaTypeConfig    = "application/vnd.oci.image.config.v1+json"
	MediaTypeManifest  = "application/vnd.oci.image.manifest.v1+json"
	MediaTypeIndex     = "application/vnd.oci.image.index.v1+json"

	// AnnotationRewrittenTimestamp marks a layer whose tar header times
	// BuildKit clamped to the epoch; its value is the epoch in seconds.
	// BuildKit keeps it in the manifest's layer descriptors.
	AnnotationRewrittenTimestamp = "buildkit/rewritten-timestamp"
)

// Layer is a compressed layer blob as the manifest lists it, with the
// diffID the config lists for it; or, before it is exported, the
// uncompressed blob Rewrite wrote (see Compressed).
type Layer struct {
	Descriptor
	DiffID DiffID
}

// Compressed reports whether l is a gzip blob rather than the tar itself,
// whose digest is its diffID.
func (l Layer) Compressed() bool { return l.Digest != Digest(l.DiffID) }

// Rewrite writes the layer tar tr to w with its header times clamped to
// epoch, exactly the tar that Compress with that epoch gzips, and returns
// it as an uncompressed layer blob (its digest is its diffID). A build
// keeps the layers of its intermediate steps so: only those an image
// exports need BuildKit's gzip (see CompressRewritten), the rest is CPU
// time for nothing, a lot of it for a compiler's build tree.
func Rewrite(w io.Writer, tr io.Reader, epoch time.Time) (Layer, error) {
	blob := &countingHash{h: sha256.New()}
	bw := bufio.NewWriterSize(io.MultiWriter(w, blob), 128<<10)
	if err := rewriteTimestamps(bw, tr, epoch); err != nil {
		return Layer{}, fmt.Errorf("rewriting layer: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return Layer{}, fmt.Errorf("writing layer: %w", err)
	}
	sum := blob.sum()
	return Layer{
		Descriptor: Descriptor{MediaType: MediaTypeLayerTar, Digest: Digest(sum), Size: blob.n},
		DiffID:     DiffID(sum),
	}, nil
}

// CompressRewritten gzips tr, a layer tar that Rewrite wrote with epoch,
// into the blob Compress with that epoch writes for the original tar.
func CompressRewritten(w io.Writer, tr io.Reader, epoch time.Time) (Layer, error) {
	l, err := Compress(w, tr, nil)
	if err != nil {
		return Layer{}, err
	}
	l.Annotations = map[string]string{
		AnnotationRewrittenTimestamp: strconv.FormatInt(epoch.Unix(), 10),
	}
	return l, nil
}

// Compress reads an uncompressed layer tar from tr and writes the layer
// blob BuildKit exports for it to w, returning its descriptor and diffID.
//
// With a non-nil epoch it first does what rewrite-timestamp does: every
// header is read with archive/tar, its ModTime, AccessTime and ChangeTime
// clamped to the epoch when later, and written again with archive/tar (so
// the tar bytes are those of Go's writer, whatever wrote tr), and the
// descriptor gets the buildkit/rewritten-timestamp annotation. Then the
// stream is gzipped with compress/gzip at DefaultCompression, as BuildKit's
// force-compression does. The diffID is that of the tar as compressed.
//
// Nothing is buffered beyond a few hundred KiB, whatever the layer size.
func Compress(w io.Writer, tr io.Reader, epoch *time.Time) (Layer, error) {
	blob := &countingHash{h: sha256.New()}
	bw := bufio.NewWriterSize(io.MultiWriter(w, blob), 128<<10)
	zw, err := gzip.NewWriterLevel(bw, gzip.DefaultCompression)
	if err != nil {
		return Layer{}, err
	}
	diff := &countingHash{h: sha256.New()}
	out := io.MultiWriter(zw, diff)
	if epoch != nil {
		err = rewriteTimestamps(out, tr, *epoch)
	} else {
		_, err = io.Copy(out, tr)
	}
	if err != nil {
		return Layer{}, fmt.Errorf("compressing layer: %w", err)
	}
	if err := zw.Close(); err != nil {
		return Layer{}, fmt.Errorf("compressing layer: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return Layer{}, fmt.Errorf("writing layer: %w", err)
	}
	l := Layer{
		Descriptor: Descriptor{
			MediaType: MediaTypeLayerGzip,
			Digest:    Digest(blob.sum()),
			Size:      blob.n,
		},
		DiffID: DiffID(diff.sum()),
	}
	if epoch != nil {
		l.Annotations = map[string]string{
			AnnotationRewrittenTimestamp: strconv.FormatInt(epoch.Unix(), 10),
		}
	}
	return l, nil
}

// rewriteTimestamps copies the tar stream r to w with header times clamped
// to epoch. Like BuildKit it reads r to its end, past the end-of-archive
// marker, and writes a fresh end-of-archive marker.
func rewriteTimestamps(w io.Writer, r io.Reader, epoch time.Time) error {
	tr := tar.NewReader(r)
	tw := tar.NewWriter(w)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
		}
		clampTimes(hdr, epoch)
		if err := tw.WriteHeader(hdr); err != nil {
			return fmt.Errorf("writing tar header %s: %w", hdr.Name, err)
		}
		if _, err := io.Copy(tw, tr); err != nil {
			return fmt.Errorf("writing tar entry %s: %w", hdr.Name, err)
		}
	}
	if err := tw.Close(); err != nil {
		return fmt.Errorf("writing tar: %w", err)
	}
	if _, err := io.Copy(io.Discard, r); err != nil {
		return fmt.Errorf("reading tar: %w", err)
	}
	return nil
}

// clampTimes sets each of hdr's times that is after epoch to epoch.
func clampTimes(hdr *tar.Header, epoch time.Time) {
	if hdr.ModTime.After(epoch) {
		hdr.ModTime = epoch
	}
	if hdr.AccessTime.After(epoch) {
		hdr.AccessTime = epoch
	}
	if hdr.ChangeTime.After(epoch) {
		hdr.ChangeTime = epoch
	}
}

// countingHash is an io.Writer that hashes and counts what it is given.
type countingHash struct {
	h hash.Hash
	n int64
}

func (c *countingHash) Write(p []byte) (int, error) {
	c.h.Write(p)
	c.n += int64(len(p))
	return len(p), nil
}

func (c *countingHash) sum() (s [sha256.Size]byte) {
	c.h.Sum(s[:0])
	return s
}
