package sandbox

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	lcseccomp "github.com/opencontainers/runc/libcontainer/seccomp"
	"golang.org/x/sys/unix"

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

// TestSocketFamilies: built with the seccomp tag, a step cannot open
// AF_VSOCK (host and virtual machines, whatever the network namespace) or
// AF_ALG (the kernel's cryptography API) sockets, nor any family Linux
// does not have yet; AF_UNIX and AF_INET work.
func TestSocketFamilies(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	if !lcseccomp.Enabled {
		t.Skip("built without the seccomp tag")
	}
	s, err := New(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		family int
		want   string
	}{
		{unix.AF_UNIX, "ok"},
		{unix.AF_INET, "ok"},
		{unix.AF_VSOCK, "operation not permitted"},
		{unix.AF_ALG, "operation not permitted"},
		{firstUnknownFamily, "operation not permitted"},
		{firstUnknownFamily + 10, "operation not permitted"},
	} {
		t.Run(strconv.Itoa(tc.family), func(t *testing.T) {
			upper := filepath.Join(t.TempDir(), "upper")
			if err := os.Mkdir(upper, 0o755); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			res, err := s.Run(context.Background(), Spec{
				Lower:  []string{sandboxtest.ProbeRootfs(t, "amd64")},
				Upper:  upper,
				Args:   []string{"/probe", "socket", strconv.Itoa(tc.family)},
				Stdout: &out,
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.TrimSpace(out.String()); got != tc.want {
				t.Errorf("socket(%d): %q, want %q; log:\n%s", tc.family, got, tc.want, res.Log)
			}
		})
	}
}
