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
	"io/fs"
	"os"
	"path"
	"strings"
	"time"

	"github.com/stagex/sxmake/cache"
)

// ReadArchive reads the image in the tarball at file: an OCI archive (an
// OCI layout as a tar, as `docker buildx --output type=oci` writes) or a
// docker-archive (`docker save`: manifest.json and layer tars). A tarball
// holding both (Docker 25 and later) is read as OCI. The tarball may be
// gzipped. The Source reads blobs from the file until Close.
func ReadArchive(file string, opts ...ReadOption) (*Source, error) {
	o := readOpts(opts)
	t, err := openTarFS(file)
	if err != nil {
		return nil, fmt.Errorf("reading archive %s: %w", file, err)
	}
	var s *Source
	switch {
	case t.has("index.json"):
		s, err = readOCI(fsLayout{t}, o)
	case t.has("manifest.json"):
		s, err = readDocker(t, o)
	default:
		err = errors.New("neither index.json (OCI) nor manifest.json (docker-archive) found")
	}
	if err != nil {
		t.Close()
		return nil, fmt.Errorf("reading archive %s: %w", file, err)
	}
	s.close = t.Close
	return s, nil
}

// Close releases what the Source holds open (an archive, a temp file).
func (s *Source) Close() error {
	if s.close == nil {
		return nil
	}
	err := s.close()
	s.close = nil
	return err
}

// dockerManifest is one entry of a docker-archive's manifest.json.
type dockerManifest struct {
	Config   string
	RepoTags []string
	Layers   []string
}

// readDocker reads a docker-archive held in fsys: the entry of
// manifest.json whose config is for the platform asked for. Its layers are
// the tars as stored; their descriptors say so (uncompressed, digest equal
// to the diffID), unless a layer file is gzipped, whose digest is then
// computed by reading it.
func readDocker(fsys fs.FS, o readOptions) (*Source, error) {
	b, err := fs.ReadFile(fsys, "manifest.json")
	if err != nil {
		return nil, err
	}
	var entries []dockerManifest
	if err := json.Unmarshal(b, &entries); err != nil {
		return nil, fmt.Errorf("manifest.json: %w", err)
	}
	var seen []string
	for _, e := range entries {
		cb, err := fs.ReadFile(fsys, cleanArchiveName(e.Config))
		if err != nil {
			return nil, fmt.Errorf("config %s: %w", e.Config, err)
		}
		// A docker-archive names the config by digest: check it when so.
		if hx := strings.TrimSuffix(path.Base(e.Config), ".json"); len(hx) == 64 {
			if got := DigestOf(cb).Hex(); got != hx {
				return nil, fmt.Errorf("config %s: content has digest sha256:%s: %w", e.Config, got, cache.ErrDigestMismatch)
			}
		}
		s := &Source{}
		s.Manifest.Layers = make([]Descriptor, len(e.Layers))
		if err := s.setConfig(cb, MediaTypeConfig); err != nil {
			return nil, fmt.Errorf("config %s: %w", e.Config, err)
		}
		if !platformMatches(s.Platform, o.platform) {
			seen = append(seen, platformString(s.Platform))
			continue
		}
		names := map[Digest]string{}
		for i, l := range e.Layers {
			d, err := dockerLayer(fsys, cleanArchiveName(l), s.DiffIDs[i])
			if err != nil {
				return nil, fmt.Errorf("layer %s: %w", l, err)
			}
			s.Manifest.Layers[i] = d
			names[d.Digest] = cleanArchiveName(l)
		}
		s.Manifest.SchemaVersion = 2
		s.Manifest.MediaType = MediaTypeManifest
		s.Manifest.Config = s.Config.Descriptor
		s.open = func(d Descriptor) (io.ReadCloser, error) {
			r, err := fsys.Open(names[d.Digest])
			if err != nil {
				return nil, err
			}
			return newCheckedReader(r, d), nil
		}
		return s, nil
	}
	have := ""
	if len(seen) > 0 {
		have = " (have " + strings.Join(seen, ", ") + ")"
	}
	return nil, fmt.Errorf("%w: %s%s", ErrNoPlatform, platformString(o.platform), have)
}

// dockerLayer describes the layer tar name of a docker-archive.
func dockerLayer(fsys fs.FS, name string, diffID DiffID) (Descriptor, error) {
	f, err := fsys.Open(name)
	if err != nil {
		return Descriptor{}, err
	}
	defer f.Close()
	br := bufio.NewReader(f)
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		h := &countingHash{h: sha256.New()}
		if _, err := io.Copy(h, br); err != nil {
			return Descriptor{}, err
		}
		return Descriptor{MediaType: MediaTypeLayerGzip, Digest: Digest(h.sum()), Size: h.n}, nil
	}
	fi, err := f.Stat()
	if err != nil {
		return Descriptor{}, err
	}
	return Descriptor{MediaType: MediaTypeLayer, Digest: Digest(diffID), Size: fi.Size()}, nil
}

// cleanArchiveName turns a name in an archive into the form tarFS keys.
func cleanArchiveName(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// ReadRootfs makes a one-layer image of the root file system tarball at
// file (plain or gzipped): the layer is the tarball rewritten as Compress
// does with epoch (the image's SOURCE_DATE_EPOCH, its creation time too),
// so the same tarball always gives the same image; the config is that of
// a FROM scratch stage for the platform asked for, with one history entry.
// The layer is staged in a temp file removed by Close.
func ReadRootfs(file string, epoch time.Time, opts ...ReadOption) (*Source, error) {
	o := readOpts(opts)
	s, err := readRootfs(file, epoch.UTC(), o)
	if err != nil {
		return nil, fmt.Errorf("reading rootfs %s: %w", file, err)
	}
	return s, nil
}

func readRootfs(file string, epoch time.Time, o readOptions) (*Source, error) {
	in, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer in.Close()
	r, err := maybeGunzip(bufio.NewReaderSize(in, 64<<10))
	if err != nil {
		return nil, err
	}
	tmp, err := os.CreateTemp("", "sxmake-rootfs-*")
	if err != nil {
		return nil, err
	}
	cleanup := func() error { tmp.Close(); return os.Remove(tmp.Name()) }
	bw := bufio.NewWriterSize(tmp, 1<<20)
	l, err := Compress(bw, r, &epoch)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		cleanup()
		return nil, err
	}
	c := NewConfig(o.platform)
	c.History = []History{{CreatedBy: "sxmake import --rootfs", Comment: "rootfs tarball"}}
	img, err := New("", c, []Layer{l}, WithEpoch(epoch))
	if err != nil {
		cleanup()
		return nil, err
	}
	s := &Source{
		Platform:     o.platform,
		Config:       img.Config,
		ManifestBlob: img.Manifest,
		DiffIDs:      []DiffID{l.DiffID},
		close:        cleanup,
	}
	if err := json.Unmarshal(img.Manifest.Bytes, &s.Manifest); err != nil {
		cleanup()
		return nil, err
	}
	s.open = func(d Descriptor) (io.ReadCloser, error) {
		return newCheckedReader(io.NopCloser(io.NewSectionReader(tmp, 0, l.Size)), d), nil
	}
	return s, nil
}

// maybeGunzip returns a reader of the content of br, gunzipped if it is
// gzip.
func maybeGunzip(br *bufio.Reader) (io.Reader, error) {
	magic, _ := br.Peek(2)
	if len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, err
		}
		zr.Multistream(false)
		return zr, nil
	}
	return br, nil
}

// tarFS is a read-only fs.FS of the regular files (and symlinks to them)
// of a tar file, read in place: entries are found by one scan, then read
// as sections of the file. A gzipped tar is first gunzipped to a temp file.
type tarFS struct {
	f       *os.File
	tmp     string // the temp file to remove, if any
	entries map[string]tarEntry
}

type tarEntry struct {
	off, size int64
	link      string // symlink or hardlink target, cleaned
}

func openTarFS(file string) (*tarFS, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	t := &tarFS{f: f, entries: map[string]tarEntry{}}
	br := bufio.NewReader(f)
	if magic, _ := br.Peek(2); len(magic) == 2 && magic[0] == 0x1f && magic[1] == 0x8b {
		if err := t.gunzip(br); err != nil {
			t.Close()
			return nil, err
		}
	}
	if _, err := t.f.Seek(0, io.SeekStart); err != nil {
		t.Close()
		return nil, err
	}
	if err := t.scan(); err != nil {
		t.Close()
		return nil, err
	}
	return t, nil
}

// gunzip replaces t.f with a temp file holding the gunzipped content of r.
func (t *tarFS) gunzip(r io.Reader) error {
	zr, err := gzip.NewReader(r)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp("", "sxmake-archive-*")
	if err != nil {
		return err
	}
	orig := t.f
	t.f, t.tmp = tmp, tmp.Name()
	_, err = io.Copy(tmp, zr)
	orig.Close()
	if err != nil {
		return fmt.Errorf("gunzipping: %w", err)
	}
	return nil
}

// scan records where each entry's data lies. archive/tar reads headers
// block by block and seeks over data, so the file offset after Next is
// where the entry's data starts.
func (t *tarFS) scan() error {
	tr := tar.NewReader(t.f)
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("reading tar: %w", err)
		}
		off, err := t.f.Seek(0, io.SeekCurrent)
		if err != nil {
			return err
		}
		name := cleanArchiveName(hdr.Name)
		switch hdr.Typeflag {
		case tar.TypeReg:
			t.entries[name] = tarEntry{off: off, size: hdr.Size}
		case tar.TypeSymlink:
			target := hdr.Linkname
			if !strings.HasPrefix(target, "/") {
				target = path.Join(path.Dir(name), target)
			}
			t.entries[name] = tarEntry{link: cleanArchiveName(target)}
		case tar.TypeLink:
			t.entries[name] = tarEntry{link: cleanArchiveName(hdr.Linkname)}
		}
	}
}

func (t *tarFS) has(name string) bool { _, ok := t.entries[name]; return ok }

// Open implements fs.FS.
func (t *tarFS) Open(name string) (fs.File, error) {
	e, ok := t.entries[name]
	for i := 0; ok && e.link != "" && i < 16; i++ {
		e, ok = t.entries[e.link]
	}
	if !ok || e.link != "" {
		return nil, &fs.PathError{Op: "open", Path: name, Err: fs.ErrNotExist}
	}
	return &tarFile{SectionReader: io.NewSectionReader(t.f, e.off, e.size), name: path.Base(name), size: e.size}, nil
}

// Close closes the tar file and removes its temp copy.
func (t *tarFS) Close() error {
	err := t.f.Close()
	if t.tmp != "" {
		os.Remove(t.tmp)
	}
	return err
}

// tarFile is an open regular file of a tarFS.
type tarFile struct {
	*io.SectionReader
	name string
	size int64
}

func (f *tarFile) Stat() (fs.FileInfo, error) { return tarInfo{f.name, f.size}, nil }
func (f *tarFile) Close() error               { return nil }

type tarInfo struct {
	name string
	size int64
}

func (i tarInfo) Name() string       { return i.name }
func (i tarInfo) Size() int64        { return i.size }
func (i tarInfo) Mode() fs.FileMode  { return 0o444 }
func (i tarInfo) ModTime() time.Time { return time.Time{} }
func (i tarInfo) IsDir() bool        { return false }
func (i tarInfo) Sys() any           { return nil }
