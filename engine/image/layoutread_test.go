package image

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	ispec "github.com/opencontainers/image-spec/specs-go/v1"
	casdir "github.com/opencontainers/umoci/oci/cas/dir"
	"github.com/opencontainers/umoci/oci/casext"
)

// Writing layouts stays ours because umoci writes other JSON bytes than
// BuildKit (which New's output equals, golden_test.go): index.json,
// manifest, config and nested index of an image, each written by umoci's
// CAS engine from the same document, all differ. The differences are
// logged; layoutread.go's comment quotes them.
func TestUmociJSONIsNotBuildKits(t *testing.T) {
	img, _ := testImage(t)
	dir := filepath.Join(t.TempDir(), "layout")
	if err := casdir.Create(dir); err != nil {
		t.Fatal(err)
	}
	eng, err := casdir.Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	ctx := context.Background()

	var top ispec.Index
	if err := json.Unmarshal(img.TopIndex, &top); err != nil {
		t.Fatal(err)
	}
	if err := eng.PutIndex(ctx, top); err != nil {
		t.Fatal(err)
	}
	umociIndex, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	checkDiffers(t, "index.json", img.TopIndex, umociIndex)

	for _, tc := range []struct {
		name string
		blob Blob
		doc  any
	}{
		{"manifest", img.Manifest, &ispec.Manifest{}},
		{"config", img.Config, &ispec.Image{}},
		{"nested index", img.Index, &ispec.Index{}},
	} {
		if err := json.Unmarshal(tc.blob.Bytes, tc.doc); err != nil {
			t.Fatal(err)
		}
		d, _, err := casext.NewEngine(eng).PutBlobJSON(ctx, tc.doc)
		if err != nil {
			t.Fatal(err)
		}
		r, err := eng.GetBlob(ctx, d)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		buf.ReadFrom(r)
		r.Close()
		checkDiffers(t, tc.name, tc.blob.Bytes, buf.Bytes())
	}
}

// checkDiffers fails unless umoci's bytes differ from BuildKit's, and logs
// both.
func checkDiffers(t *testing.T, name string, buildkit, umoci []byte) {
	t.Helper()
	if bytes.Equal(buildkit, umoci) {
		t.Errorf("%s: umoci writes BuildKit's bytes: layouts could be written by umoci", name)
		return
	}
	t.Logf("%s: BuildKit %d bytes %q\n\tumoci %d bytes %q", name, len(buildkit), buildkit, len(umoci), umoci)
}
