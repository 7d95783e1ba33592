package fileop_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/stagex/sxmake/engine/fileop"
	ft "github.com/stagex/sxmake/engine/fileop/fileoptest"
)

// BenchmarkCopyTree copies a tree of 10,000 small files (100 directories of
// 100 files of 256 bytes) into a fresh destination root.
func BenchmarkCopyTree(b *testing.B) {
	ft.RequiresRoot(b)
	src := b.TempDir()
	data := make([]byte, 256)
	for d := 0; d < 100; d++ {
		dir := filepath.Join(src, "tree", fmt.Sprintf("d%03d", d))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			b.Fatal(err)
		}
		for f := 0; f < 100; f++ {
			if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("f%03d", f)), data, 0o644); err != nil {
				b.Fatal(err)
			}
		}
	}
	dests := b.TempDir()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		dest := filepath.Join(dests, fmt.Sprint(i))
		if err := os.Mkdir(dest, 0o755); err != nil {
			b.Fatal(err)
		}
		err := fileop.Apply(context.Background(), dest, fileop.Copy{
			SrcRoot: src, Local: true, Sources: fileop.Sources("tree"), Dest: "/usr/share/",
		})
		if err != nil {
			b.Fatal(err)
		}
		b.StopTimer()
		if err := os.RemoveAll(dest); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/10000, "ns/file")
}
