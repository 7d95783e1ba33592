package main

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

type file struct {
	name, body string
	mode       int64
}

// writeLayer writes files as a gzipped tar at level and returns its path.
func writeLayer(t *testing.T, files []file, level int) string {
	t.Helper()
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, level)
	if err != nil {
		t.Fatal(err)
	}
	tw := tar.NewWriter(zw)
	for _, f := range files {
		h := &tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.body)), Typeflag: tar.TypeReg, ModTime: time.Unix(1, 0)}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if _, err := tw.Write([]byte(f.body)); err != nil {
			t.Fatal(err)
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "layer")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestTarDiff(t *testing.T) {
	base := []file{{"etc/motd", "hi\n", 0o644}, {"etc/passwd", "root\n", 0o644}, {"etc/group", "root\n", 0o644}}
	tests := []struct {
		name  string
		got   []file
		level int
		want  string
	}{
		{"compression only", base, gzip.BestSpeed, "same tar entries: the compression differs\n"},
		{"mode", []file{base[0], {"etc/passwd", "root\n", 0o600}, base[2]}, gzip.DefaultCompression,
			"first differing entry #1: \"etc/passwd\"\n  mode: buildkit 0644, sxmake 0600\n"},
		{"content", []file{base[0], {"etc/passwd", "user\n", 0o644}, base[2]}, gzip.DefaultCompression,
			fmt.Sprintf("first differing entry #1: \"etc/passwd\"\n  content: buildkit sha256:%x, sxmake sha256:%x\n",
				sha256.Sum256([]byte("root\n")), sha256.Sum256([]byte("user\n")))},
		{"order", []file{base[0], base[2], base[1]}, gzip.DefaultCompression,
			"first differing entry #1: \"etc/passwd\"\n  name: buildkit etc/passwd, sxmake etc/group\n"},
		{"extra file", append(append([]file{}, base...), file{"etc/shadow", "", 0o600}), gzip.DefaultCompression,
			"only sxmake:   etc/shadow\nentry 3: buildkit has 3 entries, sxmake 4\n"},
	}
	want := writeLayer(t, base, gzip.DefaultCompression)
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tarDiff(want, writeLayer(t, tc.got, tc.level))
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("tarDiff (-want +got):\n%s", diff)
			}
		})
	}
}
