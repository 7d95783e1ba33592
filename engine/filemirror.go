package engine

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// fileMirrors serves file:// mirror URLs from the directories it holds
// (absolute paths), as an http.RoundTripper: a package definition is
// hostile input, and a file:// mirror must not read the host's files
// (/etc/shadow into fetch/ and an image, or its sha256 into a hash
// mismatch message). A URL's path is cleaned and matched against the
// directories as written; the file is then opened through an os.Root of
// that directory, which refuses ".." and symbolic links leading out of
// it, and served only if it is a regular file. A path outside every
// directory is refused without being looked at, so the error says
// nothing about the host's files.
type fileMirrors []string

var errNotMirrored = errors.New("not under a directory named by --file-mirrors or SXMAKE_FILE_MIRRORS")

// RoundTrip answers a GET of a file:// URL with the whole file, 200 OK.
func (m fileMirrors) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Body != nil {
		req.Body.Close()
	}
	if req.URL.Host != "" && req.URL.Host != "localhost" {
		return nil, fmt.Errorf("file mirror on host %q: only local files are read", req.URL.Host)
	}
	f, size, err := m.open(req.URL.Path)
	if err != nil {
		return nil, err
	}
	return &http.Response{
		Status: "200 OK", StatusCode: http.StatusOK,
		Proto: "HTTP/1.0", ProtoMajor: 1,
		Header: http.Header{}, Body: f, ContentLength: size, Request: req,
	}, nil
}

// open opens the regular file at name if it lies under one of m.
func (m fileMirrors) open(name string) (*os.File, int64, error) {
	name = path.Clean("/" + name)
	for _, dir := range m {
		rel, ok := under(name, filepath.Clean(dir))
		if !ok {
			continue
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			return nil, 0, err
		}
		defer root.Close()
		// Stat first: opening a device node can have effects of its own.
		if fi, err := root.Stat(rel); err != nil {
			return nil, 0, err
		} else if !fi.Mode().IsRegular() {
			return nil, 0, fmt.Errorf("%s is not a regular file", name)
		}
		// O_NONBLOCK: should it have become a FIFO since, open returns.
		f, err := root.OpenFile(rel, os.O_RDONLY|unix.O_NONBLOCK, 0)
		if err != nil {
			return nil, 0, err
		}
		fi, err := f.Stat()
		if err != nil || !fi.Mode().IsRegular() {
			f.Close()
			return nil, 0, fmt.Errorf("%s is not a regular file", name)
		}
		return f, fi.Size(), nil
	}
	return nil, 0, fmt.Errorf("%s: %w", name, errNotMirrored)
}

// under returns name relative to dir when name lies strictly below dir
// (both clean and absolute).
func under(name, dir string) (string, bool) {
	if dir == "/" {
		return strings.TrimPrefix(name, "/"), name != "/"
	}
	rel, ok := strings.CutPrefix(name, dir+"/")
	return rel, ok && rel != ""
}
