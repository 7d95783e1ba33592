package packages

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestErrors loads each testdata/errors/*.txtar tree and compares the error
// with the archive's "want" file. With a "closure" file (image names, one a
// line) Load must succeed and Closure of those images must fail instead.
func TestErrors(t *testing.T) {
	files, err := filepath.Glob("testdata/errors/*.txtar")
	if err != nil || len(files) == 0 {
		t.Fatalf("no test archives: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".txtar"), func(t *testing.T) {
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			dir := t.TempDir()
			var want, wantDetail, closure string
			for _, f := range parseArchive(data) {
				switch f.name {
				case "want":
					want = f.data
				case "want-detail":
					wantDetail = f.data
				case "closure":
					closure = f.data
				default:
					writeFile(t, filepath.Join(dir, f.name), []byte(f.data))
				}
			}
			err = loadError(t, dir, closure)
			if diff := cmp.Diff(strings.TrimSuffix(want, "\n"), err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
			if wantDetail == "" {
				return
			}
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				err = j.Unwrap()[0]
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("first error is a %T, want *Error", err)
			}
			if diff := cmp.Diff(strings.TrimSuffix(wantDetail, "\n"), e.Detail()); diff != "" {
				t.Errorf("Detail (-want +got):\n%s", diff)
			}
		})
	}
}

func loadError(t *testing.T, dir, closure string) error {
	tree, err := Load(dir)
	if closure == "" {
		if err == nil {
			t.Fatal("Load succeeded, want an error")
		}
		return err
	}
	if err != nil {
		t.Fatalf("Load: %v", err)
	}
	var targets []*Image
	for _, name := range strings.Fields(closure) {
		img, err := tree.Resolve(name)
		if err != nil {
			t.Fatal(err)
		}
		targets = append(targets, img)
	}
	if _, err := tree.Closure(targets...); err != nil {
		return err
	}
	t.Fatal("Closure succeeded, want an error")
	return nil
}

func writeFile(t testing.TB, path string, data []byte) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
}

type archiveFile struct{ name, data string }

// parseArchive reads the txtar format: a comment, then files each
// introduced by a line "-- name --".
func parseArchive(data []byte) []archiveFile {
	var files []archiveFile
	for _, line := range strings.SplitAfter(string(data), "\n") {
		trimmed := strings.TrimSuffix(line, "\n")
		if name, ok := strings.CutPrefix(trimmed, "-- "); ok && strings.HasSuffix(name, " --") {
			files = append(files, archiveFile{name: strings.TrimSuffix(name, " --")})
			continue
		}
		if len(files) > 0 {
			files[len(files)-1].data += line
		}
	}
	return files
}

func sprintf(format string, args ...any) string { return fmt.Sprintf(format, args...) }
