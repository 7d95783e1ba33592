// Package image writes OCI images byte-identical to those BuildKit v0.26.3
// exports with StageX's flags (type=oci, rewrite-timestamp=true,
// force-compression=true, BUILDKIT_MULTI_PLATFORM=1 and three manifest
// annotations).
//
// Vocabulary:
//
//   - diff: the change set of one step, as an overlay upper dir (with
//     whiteouts: char 0/0 devices and trusted.overlay.opaque) over a lower
//     dir holding the parent file system.
//   - layer: the tar stream of a diff (uncompressed), or its gzip blob.
//   - diffID: the SHA-256 of a layer's uncompressed tar (type DiffID).
//   - digest: the SHA-256 of a blob's bytes (type Digest), its content
//     address in the content store and in the OCI layout.
//   - epoch: SOURCE_DATE_EPOCH; with rewrite-timestamp every tar header
//     time later than the epoch is clamped to it.
//   - config, manifest, index: the OCI JSON documents; the "nested index" is
//     the one-platform index BuildKit writes for BUILDKIT_MULTI_PLATFORM=1,
//     and index.json the layout's top index pointing at it.
//
// The path of a build step's output:
//
//	WriteDiff(upper, lower) -> uncompressed tar   (BuildKit's overlay differ)
//	Compress(tar, epoch)    -> gzip blob, Layer   (rewrite-timestamp, force-compression)
//	DiffLayer               =  both, streamed through a pipe (or the rewritten tar alone)
//	New(name, config, layers, opts...) -> *Image  (config, manifest, nested index, index.json)
//	WriteLayout(dir, img, store)                  (out/<stage>-<name>/)
//	img.DigestsLine()                             ("<hex> <stage>-<name>")
//
// Validate checks a written layout, ValidateImage an Image; Unpack applies
// a layer to a directory (plain, or an overlay upper dir: OverLowers) as
// BuildKit's snapshotter does, without ever writing outside it. umoci's
// oci/layer extracts (unpack.go says what sxmake adds on top), and umoci's
// CAS engine reads OCI layouts (layoutread.go); writing them stays ours.
// BaseLayers and BaseConfig turn a base image (FROM stagex/...) into what
// New expects.
//
// Layer data always moves as an io.Reader or io.Writer: a diff is streamed
// through tar, the timestamp rewrite and gzip, hashing on the way.
//
// The bytes are checked against BuildKit v0.26.3 itself: see
// testdata/oracle/README.md and golden_test.go.
package image
