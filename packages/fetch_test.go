package packages

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// fileServer serves content at every path through http.ServeContent (which
// honours Range), or fails or stalls as told, and records each request's
// Range header.
type fileServer struct {
	*httptest.Server
	mu     sync.Mutex
	ranges []string
}

type serveMode int

const (
	serveOK       serveMode = iota
	serveNotFound           // 404
	serveNoRange            // 200 with the whole content, ignoring Range
	serveStall              // half the content, then nothing until the client gives up
)

func newFileServer(t *testing.T, content []byte, mode serveMode) *fileServer {
	fs := &fileServer{}
	fs.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		fs.mu.Lock()
		fs.ranges = append(fs.ranges, r.Header.Get("Range"))
		fs.mu.Unlock()
		switch mode {
		case serveNotFound:
			http.NotFound(w, r)
		case serveNoRange:
			w.Write(content)
		case serveStall:
			w.Write(content[:len(content)/2])
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		default:
			http.ServeContent(w, r, "f", time.Time{}, bytes.NewReader(content))
		}
	}))
	t.Cleanup(fs.Close)
	return fs
}

func (fs *fileServer) requests() []string {
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return append([]string(nil), fs.ranges...)
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}

func fetchPackage(hash string, mirrors ...string) *Package {
	return &Package{Stage: "core", Name: "foo", Sources: []Source{{Key: "foo", Hash: hash, File: "foo-1.0.tar.gz", Mirrors: mirrors}}}
}

// dirFiles lists dir's files with their content.
func dirFiles(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{}
	for _, e := range entries {
		b, err := os.ReadFile(filepath.Join(dir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		files[e.Name()] = string(b)
	}
	return files
}

func TestFetch(t *testing.T) {
	content := bytes.Repeat([]byte("stagex source\n"), 1000)
	hash := sha256Hex(content)
	half := string(content[:len(content)/2])
	tests := []struct {
		name      string
		modes     []serveMode       // one server per mirror
		before    map[string]string // files in dir before Fetch
		opts      FetchOptions
		wantErr   string // with %[1]s, %[2]s for the mirrors' URLs
		wantRange [][]string
	}{
		{
			name:      "first mirror",
			modes:     []serveMode{serveOK, serveOK},
			wantRange: [][]string{{""}, nil},
		},
		{
			name:      "failover after 404",
			modes:     []serveMode{serveNotFound, serveOK},
			wantRange: [][]string{{""}, {""}},
		},
		{
			name:    "every mirror 404",
			modes:   []serveMode{serveNotFound, serveNotFound},
			wantErr: "fetching core-foo source foo: every mirror failed:\n\t%[1]s/foo-1.0.tar.gz: 404 Not Found\n\t%[2]s/foo-1.0.tar.gz: 404 Not Found",
		},
		{
			name:      "stalled mirror times out, next one resumes",
			modes:     []serveMode{serveStall, serveOK},
			opts:      FetchOptions{TryTimeout: 300 * time.Millisecond},
			wantRange: [][]string{{""}, {"bytes=7000-"}},
		},
		{
			name:      "resume a part left by an earlier run",
			modes:     []serveMode{serveOK},
			before:    map[string]string{".foo-1.0.tar.gz.part": half},
			wantRange: [][]string{{"bytes=7000-"}},
		},
		{
			name:      "server ignores Range",
			modes:     []serveMode{serveNoRange},
			before:    map[string]string{".foo-1.0.tar.gz.part": half},
			wantRange: [][]string{{"bytes=7000-"}},
		},
		{
			name:      "corrupt part is discarded",
			modes:     []serveMode{serveOK},
			before:    map[string]string{".foo-1.0.tar.gz.part": "garbage"},
			wantRange: [][]string{{"bytes=7-", ""}},
		},
		{
			name:      "part longer than the file",
			modes:     []serveMode{serveOK},
			before:    map[string]string{".foo-1.0.tar.gz.part": string(content) + "extra"},
			wantRange: [][]string{{"bytes=14005-", ""}},
		},
		{
			name:      "complete part is renamed",
			modes:     []serveMode{serveOK},
			before:    map[string]string{".foo-1.0.tar.gz.part": string(content)},
			wantRange: [][]string{nil},
		},
		{
			name:      "file present",
			modes:     []serveMode{serveOK},
			before:    map[string]string{"foo-1.0.tar.gz": string(content)},
			wantRange: [][]string{nil},
		},
		{
			name:      "wrong file present is replaced",
			modes:     []serveMode{serveOK},
			before:    map[string]string{"foo-1.0.tar.gz": "old"},
			wantRange: [][]string{{""}},
		},
		{
			name:      "offline with the file present",
			modes:     []serveMode{serveOK},
			before:    map[string]string{"foo-1.0.tar.gz": string(content)},
			opts:      FetchOptions{Offline: true},
			wantRange: [][]string{nil},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, data := range tc.before {
				writeFile(t, filepath.Join(dir, name), []byte(data))
			}
			var servers []*fileServer
			var mirrors []string
			var urls []any
			for _, m := range tc.modes {
				s := newFileServer(t, content, m)
				servers = append(servers, s)
				mirrors = append(mirrors, s.URL+"/foo-1.0.tar.gz")
				urls = append(urls, s.URL)
			}
			err := fetchPackage(hash, mirrors...).Fetch(context.Background(), dir, tc.opts)
			if tc.wantErr != "" {
				if diff := cmp.Diff(sprintf(tc.wantErr, urls...), errText(err)); diff != "" {
					t.Fatalf("error (-want +got):\n%s", diff)
				}
				if diff := cmp.Diff(map[string]string{}, dirFiles(t, dir)); diff != "" {
					t.Errorf("files after a failed Fetch (-want +got):\n%s", diff)
				}
				return
			}
			if err != nil {
				t.Fatalf("Fetch: %v", err)
			}
			var got [][]string
			for _, s := range servers {
				got = append(got, s.requests())
			}
			if diff := cmp.Diff(tc.wantRange, got); diff != "" {
				t.Errorf("Range headers per mirror (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(map[string]string{"foo-1.0.tar.gz": string(content)}, dirFiles(t, dir)); diff != "" {
				t.Errorf("files (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFetchHashMismatch(t *testing.T) {
	content := []byte("what the mirror has")
	want := sha256Hex([]byte("what package.toml says"))
	dir := t.TempDir()
	s := newFileServer(t, content, serveOK)
	err := fetchPackage(want, s.URL+"/f").Fetch(context.Background(), dir, FetchOptions{})
	wantErr := "fetching core-foo source foo: every mirror failed:\n\t" + s.URL + "/f: sha256 mismatch: have " + sha256Hex(content) + ", want " + want
	if diff := cmp.Diff(wantErr, errText(err)); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
	if !errors.Is(err, ErrHashMismatch) {
		t.Errorf("errors.Is(err, ErrHashMismatch) = false")
	}
	if diff := cmp.Diff(map[string]string{}, dirFiles(t, dir)); diff != "" {
		t.Errorf("files kept after a mismatch (-want +got):\n%s", diff)
	}
}

func TestFetchOfflineMissing(t *testing.T) {
	dir := t.TempDir()
	err := fetchPackage(sha256Hex(nil), "http://127.0.0.1:1/f").Fetch(context.Background(), dir, FetchOptions{Offline: true})
	want := "fetching core-foo source foo: " + filepath.Join(dir, "foo-1.0.tar.gz") + " is missing or has the wrong sha256, and downloads are off"
	if diff := cmp.Diff(want, errText(err)); diff != "" {
		t.Errorf("error (-want +got):\n%s", diff)
	}
}

func TestFetchCanceled(t *testing.T) {
	content := bytes.Repeat([]byte("x"), 100)
	s := newFileServer(t, content, serveStall)
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		for len(s.requests()) == 0 {
			time.Sleep(time.Millisecond)
		}
		cancel()
	}()
	dir := t.TempDir()
	err := fetchPackage(sha256Hex(content), s.URL+"/f", s.URL+"/g").Fetch(ctx, dir, FetchOptions{})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Fetch = %v, want context.Canceled", err)
	}
	if got := len(s.requests()); got != 1 {
		t.Errorf("%d requests after cancel, want 1 (no failover once canceled)", got)
	}
}
