package cache

import (
	"bytes"
	"errors"
	"io"
	"os"
	"strings"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestParseDigest(t *testing.T) {
	const hx = "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
	for _, tc := range []struct {
		name, in string
		ok       bool
	}{
		{"valid", "sha256:" + hx, true},
		{"no algorithm", hx, false},
		{"other algorithm", "sha512:" + hx, false},
		{"upper case", "sha256:" + strings.ToUpper(hx), false},
		{"short", "sha256:" + hx[:63], false},
		{"not hex", "sha256:" + hx[:63] + "g", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := ParseDigest(tc.in)
			if tc.ok != (err == nil) {
				t.Fatalf("ParseDigest(%q) error = %v, want ok=%v", tc.in, err, tc.ok)
			}
			if tc.ok {
				if diff := cmp.Diff(tc.in, d.String()); diff != "" {
					t.Errorf("round trip (-want +got):\n%s", diff)
				}
			} else if !errors.Is(err, ErrBadDigest) {
				t.Errorf("error %v does not wrap ErrBadDigest", err)
			}
		})
	}
	if got := DigestOf([]byte("hello world")).Hex(); got != hx {
		t.Errorf("DigestOf(hello world) = %s, want %s", got, hx)
	}
}

func openStore(t *testing.T) *ContentStore {
	t.Helper()
	s, err := OpenContentStore(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func readAll(t *testing.T, s *ContentStore, d Digest) ([]byte, error) {
	t.Helper()
	r, err := s.Open(d)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

func TestContentStoreRoundTrip(t *testing.T) {
	s := openStore(t)
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"small", []byte("hello\n")},
		{"large", bytes.Repeat([]byte("0123456789abcdef"), 1<<16)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, n, err := s.Ingest(bytes.NewReader(tc.data), Digest{})
			if err != nil {
				t.Fatal(err)
			}
			if d != DigestOf(tc.data) || n != int64(len(tc.data)) {
				t.Errorf("Ingest = %s, %d; want %s, %d", d, n, DigestOf(tc.data), len(tc.data))
			}
			got, err := readAll(t, s, d)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, tc.data) {
				t.Errorf("read back %d bytes, want %d", len(got), len(tc.data))
			}
			if size, err := s.Size(d); err != nil || size != n {
				t.Errorf("Size = %d, %v; want %d", size, err, n)
			}
		})
	}
}

func TestContentStoreDeduplicates(t *testing.T) {
	s := openStore(t)
	data := []byte("same bytes")
	var wg sync.WaitGroup
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, _, err := s.Ingest(bytes.NewReader(data), DigestOf(data)); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	var blobs []Digest
	if err := s.Walk(func(d Digest, _ int64) error { blobs = append(blobs, d); return nil }); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Digest{DigestOf(data)}, blobs); diff != "" {
		t.Errorf("blobs (-want +got):\n%s", diff)
	}
	ingest, err := os.ReadDir(s.ingestDir())
	if err != nil {
		t.Fatal(err)
	}
	if len(ingest) != 0 {
		t.Errorf("ingest dir keeps %d temp files", len(ingest))
	}
}

func TestContentStoreRejectsMismatch(t *testing.T) {
	s := openStore(t)
	_, _, err := s.Ingest(strings.NewReader("actual"), DigestOf([]byte("expected")))
	if !errors.Is(err, ErrDigestMismatch) {
		t.Fatalf("Ingest with wrong digest: error %v, want ErrDigestMismatch", err)
	}
	if _, err := s.Size(DigestOf([]byte("actual"))); !errors.Is(err, ErrNotFound) {
		t.Errorf("mismatched content was stored: Size error %v", err)
	}

	w, err := s.Writer()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("abc"))
	if _, _, err := w.Commit(Digest{}, 4); !errors.Is(err, ErrDigestMismatch) {
		t.Errorf("Commit with wrong size: error %v, want ErrDigestMismatch", err)
	}
}

func TestContentStoreDetectsCorruption(t *testing.T) {
	s := openStore(t)
	data := []byte("precious layer bytes")
	d, _, err := s.Ingest(bytes.NewReader(data), Digest{})
	if err != nil {
		t.Fatal(err)
	}
	// Flip one byte on disk, as a bad disk or a stray write would.
	p := s.path(d)
	os.Chmod(p, 0o644)
	if err := os.WriteFile(p, []byte("precious layer bytez"), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := readAll(t, s, d); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("reading corrupt blob: error %v, want ErrCorrupt", err)
	}
	// The corrupt blob is gone, so it can never be used again ...
	if _, err := s.Open(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open after corruption: error %v, want ErrNotFound", err)
	}
	// ... and the good content can be stored again.
	if _, _, err := s.Ingest(bytes.NewReader(data), d); err != nil {
		t.Fatal(err)
	}
	if err := s.Verify(d); err != nil {
		t.Errorf("Verify of re-ingested blob: %v", err)
	}
}

func TestContentStoreMissing(t *testing.T) {
	s := openStore(t)
	d := DigestOf([]byte("nothing"))
	if _, err := s.Open(d); !errors.Is(err, ErrNotFound) {
		t.Errorf("Open: error %v, want ErrNotFound", err)
	}
	if err := s.Delete(d); err != nil {
		t.Errorf("Delete of missing blob: %v", err)
	}
}

func TestContentWriterAbort(t *testing.T) {
	s := openStore(t)
	w, err := s.Writer()
	if err != nil {
		t.Fatal(err)
	}
	w.Write([]byte("half a blob"))
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	n := 0
	s.Walk(func(Digest, int64) error { n++; return nil })
	ingest, _ := os.ReadDir(s.ingestDir())
	if n != 0 || len(ingest) != 0 {
		t.Errorf("after abort: %d blobs, %d temp files; want none", n, len(ingest))
	}
}

func FuzzContentStoreWriter(f *testing.F) {
	f.Add([]byte(""), 1)
	f.Add([]byte("hello"), 2)
	s, err := OpenContentStore(f.TempDir())
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, data []byte, chunk int) {
		if chunk <= 0 {
			chunk = 1
		}
		w, err := s.Writer()
		if err != nil {
			t.Fatal(err)
		}
		for b := data; len(b) > 0; {
			n := min(chunk, len(b))
			w.Write(b[:n])
			b = b[n:]
		}
		d, _, err := w.Commit(DigestOf(data), int64(len(data)))
		if err != nil {
			t.Fatal(err)
		}
		got, err := readAll(t, s, d)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read back %q, %v; want %q", got, err, data)
		}
	})
}

// FuzzParseDigest checks that whatever ParseDigest accepts prints back
// unchanged.
func FuzzParseDigest(f *testing.F) {
	f.Add("sha256:b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9")
	f.Add("sha256:")
	f.Add("md5:00")
	f.Fuzz(func(t *testing.T, s string) {
		d, err := ParseDigest(s)
		if err != nil {
			return
		}
		if d.String() != s {
			t.Errorf("ParseDigest(%q).String() = %q", s, d.String())
		}
	})
}
