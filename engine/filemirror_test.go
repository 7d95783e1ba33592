package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stagex/sxmake/packages"
)

// TestFileMirrors: a file:// mirror reads a regular file under a directory
// the user named, and nothing else of the host: not a file elsewhere, not
// through "..", not through a symbolic link leading out, not a FIFO (which
// would block), and not by an http mirror's redirect. A refused read
// says nothing of the file (no hash, no "no such file").
func TestFileMirrors(t *testing.T) {
	work := t.TempDir()
	mirror := filepath.Join(work, "mirror")
	secret := filepath.Join(work, "secret")
	write(t, filepath.Join(mirror, "seed"), "seed\n")
	write(t, filepath.Join(mirror, "sub", "seed2"), "seed2\n")
	write(t, secret, "secret\n")
	must(t, os.Symlink(secret, filepath.Join(mirror, "abs-link")))
	must(t, os.Symlink("../secret", filepath.Join(mirror, "rel-link")))
	must(t, os.Symlink("sub/seed2", filepath.Join(mirror, "inner-link")))
	must(t, syscall.Mkfifo(filepath.Join(mirror, "fifo"), 0o644))
	// Even to a file the user allows: an http mirror is not a file mirror.
	redirect := httptest.NewServer(http.RedirectHandler("file://"+mirror+"/seed", http.StatusFound))
	defer redirect.Close()

	client := fetchClient([]string{mirror})
	tests := []struct {
		url  string
		want string // the body, or "" for a refusal
	}{
		{"file://" + mirror + "/seed", "seed\n"},
		{"file://" + mirror + "/sub/seed2", "seed2\n"},
		{"file://" + mirror + "/inner-link", "seed2\n"},
		{"file://" + secret, ""},
		{"file://" + mirror + "/../secret", ""},
		{"file://" + mirror + "/sub/../../secret", ""},
		{"file://" + mirror + "/abs-link", ""},
		{"file://" + mirror + "/rel-link", ""},
		{"file://" + mirror + "/fifo", ""},
		{"file://" + mirror, ""},
		{"file://" + mirror + "/sub", ""},
		{"file://otherhost" + mirror + "/seed", ""},
		{"file:///etc/shadow", ""},
		{redirect.URL, ""},
	}
	for _, tc := range tests {
		t.Run(tc.url, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, tc.url, nil)
			must(t, err)
			resp, err := client.Do(req)
			if tc.want == "" {
				if err == nil {
					body, _ := io.ReadAll(resp.Body)
					resp.Body.Close()
					t.Fatalf("read %q, want a refusal", body)
				}
				if ctx.Err() != nil {
					t.Fatalf("blocked: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(resp.Body)
			must(t, err)
			if string(body) != tc.want {
				t.Errorf("read %q, want %q", body, tc.want)
			}
		})
	}
	if _, err := fetchClient(nil).Get("file://" + mirror + "/seed"); err == nil {
		t.Error("with no directory named, a file mirror was read")
	}
}

// TestFileMirrorNoOracle: a package whose file:// mirror names a host
// file outside the named directories fetches nothing, and the error
// holds neither the file's sha256 nor a hint of whether it exists.
func TestFileMirrorNoOracle(t *testing.T) {
	work := t.TempDir()
	secret := filepath.Join(work, "secret")
	write(t, secret, "secret\n")
	sum := sha256.Sum256([]byte("secret\n"))
	tree := filepath.Join(work, "tree")
	for _, hash := range []string{hex.EncodeToString(sum[:]), strings.Repeat("0", 64)} {
		write(t, filepath.Join(tree, "packages/core/x/package.toml"),
			"[package]\nname = \"x\"\nversion = \"1\"\n\n[sources.x]\nhash = \""+hash+"\"\nfile = \"x\"\nmirrors = [\"file://"+secret+"\", \"file://"+work+"/missing\"]\n")
		write(t, filepath.Join(tree, "packages/core/x/Containerfile"), "FROM scratch AS package\n")
		pt, err := packages.Load(tree)
		must(t, err)
		err = Fetch(context.Background(), pt, pt.Packages, WithFileMirrors(filepath.Join(work, "mirror")))
		if err == nil {
			t.Fatal("fetched a file outside the file mirror directories")
		}
		if msg := err.Error(); strings.Contains(msg, hex.EncodeToString(sum[:])) && hash != hex.EncodeToString(sum[:]) ||
			strings.Count(msg, errNotMirrored.Error()) != 2 || strings.Contains(msg, "no such file") {
			t.Errorf("error says too much or too little:\n%s", msg)
		}
		if !errors.Is(err, errNotMirrored) {
			t.Errorf("error %v is not errNotMirrored", err)
		}
		if entries, _ := os.ReadDir(pt.FetchDir(pt.Packages[0])); len(entries) > 0 {
			t.Errorf("fetch/ holds %v", entries)
		}
	}
}

func write(t *testing.T, p, data string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(data), 0o644))
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
