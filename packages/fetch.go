package packages

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// FetchOptions controls Fetch.
type FetchOptions struct {
	// Client makes the requests; nil means http.DefaultClient.
	Client *http.Client
	// TryTimeout bounds one download attempt from one mirror; 0 means no
	// bound other than ctx.
	TryTimeout time.Duration
	// Offline forbids downloads: every source must already be present with
	// the right hash.
	Offline bool
	// Hashes gives the sha256 of a file present; nil reads the file. A
	// cache of hashes (the engine's) spares reading sources that did not
	// change since they were last verified.
	Hashes Hasher
}

// Hasher returns the sha256, in hex, of the content of the file at path,
// or an error wrapping os.ErrNotExist if there is none.
type Hasher interface {
	SHA256(path string) (string, error)
}

// ErrHashMismatch is wrapped by errors about a file whose sha256 is not the
// one package.toml declares.
var ErrHashMismatch = errors.New("sha256 mismatch")

// Fetch makes sure each source of p is in dir/<file> with the declared
// sha256, downloading missing ones from their mirrors in order. A file
// already present is hashed and kept when it matches; otherwise it is
// fetched again. A download goes to dir/.<file>.part and is renamed into
// place only once verified, so dir/<file> is never partial or wrong; a
// .part left by an interrupted attempt is resumed with an HTTP Range
// request. A file failing verification is deleted. The error for a source
// lists what went wrong with each mirror. Fetch must not run twice at once
// on the same dir.
func (p *Package) Fetch(ctx context.Context, dir string, opts FetchOptions) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("fetching %s: %w", p.ID(), err)
	}
	for _, s := range p.Sources {
		if err := s.fetch(ctx, dir, opts); err != nil {
			return fmt.Errorf("fetching %s source %s: %w", p.ID(), s.Key, err)
		}
	}
	return nil
}

func (s Source) fetch(ctx context.Context, dir string, opts FetchOptions) error {
	dest := filepath.Join(dir, s.File)
	ok, err := hasHash(dest, s.Hash, opts.Hashes)
	if err != nil || ok {
		return err
	}
	if opts.Offline {
		return fmt.Errorf("%s is missing or has the wrong sha256, and downloads are off", dest)
	}
	part := filepath.Join(dir, "."+s.File+".part")
	var errs mirrorErrors
	for _, mirror := range s.Mirrors {
		err := s.try(ctx, mirror, part, opts)
		if err == nil {
			return os.Rename(part, dest)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		errs = append(errs, fmt.Errorf("%s: %w", mirror, err))
	}
	if fi, err := os.Stat(part); err == nil && fi.Size() == 0 {
		os.Remove(part) // nothing to resume
	}
	return errs
}

// mirrorErrors lists why each mirror failed, one a line.
type mirrorErrors []error

func (e mirrorErrors) Error() string {
	var b strings.Builder
	b.WriteString("every mirror failed:")
	for _, err := range e {
		b.WriteString("\n\t")
		b.WriteString(err.Error())
	}
	return b.String()
}

func (e mirrorErrors) Unwrap() []error { return e }

// hasHash reports whether the file at path exists with sha256 want,
// asking hashes when it is set.
func hasHash(path, want string, hashes Hasher) (bool, error) {
	if hashes != nil {
		got, err := hashes.SHA256(path)
		if errors.Is(err, os.ErrNotExist) {
			return false, nil
		}
		return got == want, err
	}
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		return false, fmt.Errorf("hashing %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)) == want, nil
}

// try downloads from one mirror into part, resuming what part holds, and
// verifies the whole. If a resumed file fails verification the part is
// discarded and the mirror tried once more from the start.
func (s Source) try(ctx context.Context, mirror, part string, opts FetchOptions) error {
	resumed, err := s.download(ctx, mirror, part, opts)
	if resumed && (errors.Is(err, ErrHashMismatch) || errors.Is(err, errBadRange)) {
		os.Remove(part)
		_, err = s.download(ctx, mirror, part, opts)
	}
	return err
}

// download appends the rest of the file to part and checks the hash of the
// result; on a mismatch part is removed. resumed reports whether bytes
// already in part were kept.
func (s Source) download(ctx context.Context, mirror, part string, opts FetchOptions) (resumed bool, err error) {
	if opts.TryTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, opts.TryTimeout)
		defer cancel()
	}
	f, h, offset, err := openPart(part)
	if err != nil {
		return false, err
	}
	defer f.Close()
	if offset > 0 && hex.EncodeToString(h.Sum(nil)) == s.Hash {
		return true, f.Close() // a previous attempt got it all
	}
	resp, err := get(ctx, opts.Client, mirror, offset)
	if err != nil {
		return offset > 0, err
	}
	defer resp.Body.Close()
	if offset > 0 && resp.StatusCode == http.StatusOK {
		// The server ignored the Range request: start over.
		if h, offset, err = restartPart(f); err != nil {
			return false, err
		}
	}
	if _, err := io.Copy(io.MultiWriter(f, h), resp.Body); err != nil {
		return offset > 0, fmt.Errorf("downloading: %w", err)
	}
	if err := f.Close(); err != nil {
		return offset > 0, err
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != s.Hash {
		os.Remove(part)
		return offset > 0, fmt.Errorf("%w: have %s, want %s", ErrHashMismatch, got, s.Hash)
	}
	return offset > 0, nil
}

// openPart opens part for appending and hashes what it already holds.
func openPart(part string) (*os.File, hash.Hash, int64, error) {
	f, err := os.OpenFile(part, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, nil, 0, err
	}
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		f.Close()
		return nil, nil, 0, fmt.Errorf("hashing %s: %w", part, err)
	}
	return f, h, n, nil
}

// restartPart empties the part file f and returns a fresh hash for it.
func restartPart(f *os.File) (hash.Hash, int64, error) {
	if err := f.Truncate(0); err != nil {
		return nil, 0, err
	}
	if _, err := f.Seek(0, io.SeekStart); err != nil {
		return nil, 0, err
	}
	return sha256.New(), 0, nil
}

// get requests url from byte offset on and checks the status.
func get(ctx context.Context, client *http.Client, url string, offset int64) (*http.Response, error) {
	if client == nil {
		client = http.DefaultClient
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, err
	}
	if offset > 0 {
		req.Header.Set("Range", "bytes="+strconv.FormatInt(offset, 10)+"-")
	}
	resp, err := client.Do(req)
	if err != nil {
		return nil, err
	}
	switch {
	case resp.StatusCode == http.StatusOK:
		return resp, nil
	case resp.StatusCode == http.StatusPartialContent && offset > 0:
		if want := "bytes " + strconv.FormatInt(offset, 10) + "-"; !strings.HasPrefix(resp.Header.Get("Content-Range"), want) {
			resp.Body.Close()
			return nil, fmt.Errorf("%w: asked for %s, got Content-Range %q", errBadRange, want, resp.Header.Get("Content-Range"))
		}
		return resp, nil
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable:
		resp.Body.Close()
		return nil, fmt.Errorf("%w: %s", errBadRange, resp.Status)
	}
	resp.Body.Close()
	return nil, errors.New(resp.Status)
}

// errBadRange means a resumed download cannot continue where it stopped.
var errBadRange = errors.New("cannot resume")
