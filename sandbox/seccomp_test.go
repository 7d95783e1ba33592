package sandbox

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	lcseccomp "github.com/opencontainers/runc/libcontainer/seccomp"
	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// TestSeccomp: built with the seccomp tag, a step cannot use keyctl(2);
// without it, nothing filters system calls.
func TestSeccomp(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	s, err := New(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	want := "ok\n"
	if lcseccomp.Enabled {
		want = "operation not permitted\n"
	}
	for _, goarch := range []string{"amd64", "386"} {
		t.Run(goarch, func(t *testing.T) {
			upper := filepath.Join(t.TempDir(), "upper")
			if err := os.Mkdir(upper, 0o755); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			res, err := s.Run(context.Background(), Spec{
				Lower:    []string{sandboxtest.ProbeRootfs(t, goarch)},
				Upper:    upper,
				Args:     []string{"/probe", "keyctl"},
				Platform: "linux/" + goarch,
				Stdout:   &out,
			})
			if err != nil {
				t.Fatal(err)
			}
			if out.String() != want {
				t.Errorf("keyctl in a step (seccomp built in: %v): %q, want %q; log:\n%s", lcseccomp.Enabled, out.String(), want, res.Log)
			}
		})
	}
}
