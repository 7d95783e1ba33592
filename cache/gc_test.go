package cache

import (
	"bytes"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// Collect removes least recently used results first, with the blobs no
// remaining result names, and never what Keep holds.
func TestCollect(t *testing.T) {
	now := time.Unix(1_000_000, 0).UTC()
	tests := []struct {
		name        string
		opts        GCOptions
		wantResults []int // indexes of the results left
	}{
		{"nothing to do", GCOptions{MaxBytes: 1 << 30}, []int{0, 1, 2, 3}},
		{"by age", GCOptions{MaxAge: 60 * time.Hour}, []int{2, 3}},
		{"by size, oldest first", GCOptions{MaxBytes: 250}, []int{2, 3}},
		{"by size, kept layer stays", GCOptions{MaxBytes: 1, Keep: map[Digest]bool{blobOf(0): true}}, []int{0}},
		{"everything", GCOptions{MaxBytes: 1}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			a, err := OpenActions(dir)
			if err != nil {
				t.Fatal(err)
			}
			defer a.Close()
			s, err := OpenContentStore(dir + "/content")
			if err != nil {
				t.Fatal(err)
			}
			// Result i is 100 bytes of layer, last used 4-i days ago.
			for i := range 4 {
				d, n, err := s.Ingest(bytes.NewReader(blobBytes(i)), Digest{})
				if err != nil {
					t.Fatal(err)
				}
				used := now.Add(-time.Duration(4-i) * 24 * time.Hour)
				if err := a.Put(ActionKey{byte(i)}, Result{Layer: d, LayerSize: n, Created: used, LastUsed: used}); err != nil {
					t.Fatal(err)
				}
			}
			tc.opts.Now = now
			if _, err := Collect(a, s, nil, nil, dir+"/snapshots", tc.opts); err != nil {
				t.Fatal(err)
			}
			var left []int
			a.Walk(func(k ActionKey, r Result) error {
				left = append(left, int(k[0]))
				if _, err := s.Size(r.Layer); err != nil {
					t.Errorf("result %d left without its layer: %v", k[0], err)
				}
				return nil
			})
			var blobs int
			s.Walk(func(Digest, int64) error { blobs++; return nil })
			sort.Ints(left)
			if diff := cmp.Diff(tc.wantResults, left); diff != "" {
				t.Errorf("results left (-want +got):\n%s", diff)
			}
			if blobs != len(left) {
				t.Errorf("%d blobs left for %d results", blobs, len(left))
			}
		})
	}
}

func blobBytes(i int) []byte { return []byte(fmt.Sprintf("%-100d", i)) }

func blobOf(i int) Digest { return DigestOf(blobBytes(i)) }

// Fsck finds a blob changed on disk and a result whose layer is gone.
func TestFsck(t *testing.T) {
	dir := t.TempDir()
	a, err := OpenActions(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	s, err := OpenContentStore(dir + "/content")
	if err != nil {
		t.Fatal(err)
	}
	d, n, _ := s.Ingest(bytes.NewReader(blobBytes(1)), Digest{})
	a.Put(ActionKey{1}, Result{Layer: d, LayerSize: n})
	rep, err := Fsck(a, s, nil)
	if err != nil || len(rep.Problems) != 0 || rep.Results != 1 || rep.Blobs != 1 {
		t.Fatalf("sound cache: %+v, %v", rep, err)
	}
	a.Put(ActionKey{2}, Result{Layer: blobOf(2), LayerSize: 100})
	rep, _ = Fsck(a, s, nil)
	if len(rep.Problems) != 1 {
		t.Errorf("a result without its layer: problems %q", rep.Problems)
	}
}
