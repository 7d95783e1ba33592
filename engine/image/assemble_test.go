package image

import (
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// dirBlobs reads the blobs of an OCI layout.
type dirBlobs string

func (d dirBlobs) Open(dg Digest) (io.ReadCloser, error) { return os.Open(blobPath(string(d), dg)) }

// Assemble rebuilds, from the manifest and config alone (what a registry
// serves for a pinned manifest digest), the whole layout BuildKit v0.26.3
// wrote for every oracle fixture: index.json, the nested index and every
// blob, byte for byte. Regenerate the goldens with
// testdata/oracle/update-goldens.sh.
func TestAssembleGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.fixture, func(t *testing.T) {
			dir := filepath.Join(oracleDir, "golden", tc.fixture)
			md, _, err := LayoutManifest(dir)
			if err != nil {
				t.Fatal(err)
			}
			manifest, err := os.ReadFile(blobPath(dir, md))
			if err != nil {
				t.Fatal(err)
			}
			config := roles(t, dir)["config"]
			img, err := Assemble(tc.name, manifest, config, WithEpoch(epoch1))
			if err != nil {
				t.Fatal(err)
			}
			if img.Manifest.Digest != md {
				t.Errorf("assembled manifest %s, want %s", img.Manifest.Digest, md)
			}
			out := filepath.Join(t.TempDir(), "out")
			if err := WriteLayout(out, img, dirBlobs(dir)); err != nil {
				t.Fatal(err)
			}
			compareLayouts(t, dir, out)
		})
	}
}

// Assemble of what New wrote gives New's image.
func TestAssembleNew(t *testing.T) {
	img, _ := testImage(t)
	got, err := Assemble(img.Name, img.Manifest.Bytes, img.Config.Bytes, WithEpoch(epoch1))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(img, got); diff != "" {
		t.Errorf("Assemble (-New +Assemble):\n%s", diff)
	}
	if _, err := Assemble(img.Name, img.Manifest.Bytes, []byte(`{"architecture":"amd64","os":"linux"}`)); err == nil {
		t.Error("Assemble accepted a config the manifest does not name")
	}
}
