package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// writeFiles writes files (path -> content) under a new directory.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for p, content := range files {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// seedTree is a tree with the demo's busybox seed and one package whose
// build runs script.
func seedTree(t *testing.T, script string) string {
	t.Helper()
	seed, err := os.ReadFile(filepath.Join(repoTestdata(t), "stagex", "packages", "bootstrap", "busybox", "package.toml"))
	if err != nil {
		t.Fatal(err)
	}
	cf, _ := os.ReadFile(filepath.Join(repoTestdata(t), "stagex", "packages", "bootstrap", "busybox", "Containerfile"))
	return writeFiles(t, map[string]string{
		"packages/bootstrap/busybox/package.toml":  string(seed),
		"packages/bootstrap/busybox/Containerfile": string(cf),
		"packages/user/clock/package.toml":         "[package]\nname = \"clock\"\nversion = \"1\"\n",
		"packages/user/clock/Containerfile": "FROM stagex/bootstrap-busybox AS build\n" +
			"RUN mkdir -p /out && " + script + "\n" +
			"FROM scratch AS package\nCOPY --from=build /out/ /\n",
	})
}

func sxmake(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := run(args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

// verify rebuilds from nothing: a reproducible image passes, and a step
// that writes a random value is caught, naming the file that differs.
func TestVerify(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	for _, tc := range []struct {
		name     string
		script   string
		wantCode int
		want     []string
	}{
		{"reproducible", "echo same > /out/stamp", 0, []string{"reproduced", "user-clock"}},
		// Not the time: busybox's date has no %N, and two builds within
		// one second would agree.
		{"writes a random value", "cat /proc/sys/kernel/random/uuid > /out/stamp", 1, []string{"DIFFERS", "user-clock", "first differing layer: 1 of 1", "stamp: "}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tree := seedTree(t, tc.script)
			cache := filepath.Join(t.TempDir(), "cache")
			if code, _, stderr := sxmake(t, "-C", tree, "--cache-dir", cache, "--progress", "plain", "user-clock"); code != 0 {
				t.Fatalf("build: exit %d\n%s", code, stderr)
			}
			code, stdout, stderr := sxmake(t, "-C", tree, "--cache-dir", cache, "--progress", "plain", "verify", "user-clock")
			if code != tc.wantCode {
				t.Fatalf("verify: exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.wantCode, stdout, stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(stdout, w) {
					t.Errorf("verify output lacks %q:\n%s", w, stdout)
				}
			}
		})
	}
}

// digests writes StageX's digests files from out/.
func TestDigests(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	tree := seedTree(t, "echo same > /out/stamp")
	cache := filepath.Join(t.TempDir(), "cache")
	code, stdout, stderr := sxmake(t, "-C", tree, "--cache-dir", cache, "--progress", "plain", "user-clock")
	if code != 0 {
		t.Fatalf("build: exit %d\n%s", code, stderr)
	}
	if code, _, stderr := sxmake(t, "-C", tree, "digests"); code != 0 {
		t.Fatalf("digests: exit %d\n%s", code, stderr)
	}
	got, err := os.ReadFile(filepath.Join(tree, "digests", "user.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != stdout {
		t.Errorf("digests/user.txt = %q, want the build's output line %q", got, stdout)
	}
	if _, err := os.Stat(filepath.Join(tree, "digests", "bootstrap.txt")); err != nil {
		t.Errorf("no digests/bootstrap.txt: %v", err)
	}
}
