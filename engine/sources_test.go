package engine

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand/v2"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// readChars is this process's rchar: the bytes its read calls returned.
func readChars(t *testing.T) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/self/io")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "rchar: "); ok {
			n, _ := strconv.ParseInt(v, 10, 64)
			return n
		}
	}
	t.Fatal("no rchar in /proc/self/io")
	return 0
}

// A fully cached build reads none of the fetched sources: their fetch is
// verified, and the COPY of them keyed, from the hashes the cache
// remembers of them. It read them twice (sha256 to verify, BLAKE3 for the
// key) on every build.
func TestCachedBuildReadsNoSources(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	const size = 32 << 20
	src := make([]byte, size)
	rng := rand.NewChaCha8([32]byte{18})
	rng.Read(src)
	sum := sha256.Sum256(src)
	tree := writeTree(t, map[string]string{
		"packages/core/big/package.toml": "[package]\nname = \"big\"\nversion = \"1\"\n\n[sources.big]\nfile = \"big.bin\"\n" +
			"hash = \"" + hex.EncodeToString(sum[:]) + "\"\nmirrors = [\"https://mirror.invalid/big.bin\"]\n",
		"packages/core/big/Containerfile": "FROM scratch AS build\nCOPY --from=fetch big.bin /src/\nCOPY note.txt /src/\n\n" +
			"FROM scratch AS package\nCOPY --from=build /src/note.txt /\n",
		"packages/core/big/note.txt": "note",
		"fetch/core/big/big.bin":     string(src),
	})
	// Entries of files changed less than this before they were hashed are
	// not trusted by a later build (cache.FileHashes).
	time.Sleep(1100 * time.Millisecond)
	cacheDir := t.TempDir()
	build := func() (read int64, ran int) {
		pt, err := packages.Load(tree)
		if err != nil {
			t.Fatal(err)
		}
		plan := planOf(t, pt, "core-big")
		c, err := cache.Open(cacheDir)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		before := readChars(t)
		if err := Fetch(context.Background(), pt, Packages(plan), Offline(), WithHashes(c.Files)); err != nil {
			t.Fatal(err)
		}
		r, err := NewBuilder(pt, c, nil).Build(context.Background(), plan, WithOutDir(t.TempDir()))
		if err != nil {
			t.Fatal(err)
		}
		return readChars(t) - before, r.Ran
	}
	if read, ran := build(); ran == 0 || read < size {
		t.Fatalf("cold build: %d actions run, %d bytes read; want some, and the source read", ran, read)
	}
	read, ran := build()
	t.Logf("cached build read %d bytes", read)
	if ran != 0 || read >= size/8 {
		t.Errorf("fully cached build: %d actions run, %d bytes read; want none, and the %d-byte source not read", ran, read, size)
	}
}
