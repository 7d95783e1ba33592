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

// handle386 is a static i386 program that calls name_to_handle_at(2) on
// "/", which the profile denies and which needs no privilege otherwise,
// and exits with its errno (EOVERFLOW for the zero-sized handle, or
// EOPNOTSUPP, when allowed). It is hand-assembled: Go's 386 programs may
// crash under qemu-i386, which implements no keyctl(2) to test with.
var handle386 = elf386([]byte{
	0x6a, 0x2f, //                                push 0x2f             ; "/"
	0x89, 0xe1, //                                mov  ecx, esp         ; pathname
	0x83, 0xec, 0x10, //                          sub  esp, 16
	0xc7, 0x04, 0x24, 0x00, 0x00, 0x00, 0x00, //  mov  dword [esp], 0   ; handle->handle_bytes
	0x89, 0xe2, //                                mov  edx, esp         ; handle
	0x8d, 0x74, 0x24, 0x0c, //                    lea  esi, [esp+12]    ; mount_id
	0xbb, 0x9c, 0xff, 0xff, 0xff, //              mov  ebx, -100        ; AT_FDCWD
	0x31, 0xff, //                                xor  edi, edi         ; flags
	0xb8, 0x55, 0x01, 0x00, 0x00, //              mov  eax, 341         ; name_to_handle_at
	0xcd, 0x80, //                                int  0x80
	0x31, 0xdb, //                                xor  ebx, ebx
	0x85, 0xc0, //                                test eax, eax
	0x79, 0x04, //                                jns  exit
	0x89, 0xc3, //                                mov  ebx, eax
	0xf7, 0xdb, //                                neg  ebx              ; errno
	0xb8, 0x01, 0x00, 0x00, 0x00, //              exit: mov eax, 1      ; exit(ebx)
	0xcd, 0x80, //                                int  0x80
})

// TestSeccomp: built with the seccomp tag, a step cannot make a denied
// system call (keyctl(2) for the Go probe, name_to_handle_at(2) for the
// i386 program), whether it is a 64-bit program, an i386 one run natively
// (the 32-bit system call table) or one run through qemu-i386 (which makes
// the 64-bit call); without the tag, nothing filters system calls.
func TestSeccomp(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	restoreNative386(t)
	s, err := New(filepath.Join(t.TempDir(), "state"), WithEmulation("linux/386"))
	if err != nil {
		t.Fatal(err)
	}
	native, err := New(filepath.Join(t.TempDir(), "state"))
	if err != nil {
		t.Fatal(err)
	}
	want := "ok\n"
	if lcseccomp.Enabled {
		want = "operation not permitted\n"
	}
	i386 := t.TempDir()
	if err := os.WriteFile(filepath.Join(i386, "probe"), handle386, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		s        *Sandbox
		root     string
		platform string
	}{
		{"amd64", native, sandboxtest.ProbeRootfs(t, "amd64"), "linux/amd64"},
		{"386", native, i386, "linux/386"},
		{"386 emulated", s, i386, "linux/386"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			upper := filepath.Join(t.TempDir(), "upper")
			if err := os.Mkdir(upper, 0o755); err != nil {
				t.Fatal(err)
			}
			var out bytes.Buffer
			res, err := tc.s.Run(context.Background(), Spec{
				Lower:    []string{tc.root},
				Upper:    upper,
				Args:     []string{"/probe", "keyctl"},
				Platform: tc.platform,
				Stdout:   &out,
			})
			if err != nil {
				t.Fatal(err)
			}
			if tc.platform == "linux/amd64" {
				if out.String() != want {
					t.Errorf("keyctl in a step (seccomp built in: %v): %q, want %q; log:\n%s", lcseccomp.Enabled, out.String(), want, res.Log)
				}
				return
			}
			// The errno: EPERM from the filter; else the call reached
			// the kernel (ENOSYS would mean qemu did not pass it on).
			denied := res.ExitCode == int(unix.EPERM)
			if denied != lcseccomp.Enabled || res.ExitCode == int(unix.ENOSYS) {
				t.Errorf("name_to_handle_at in an i386 step run through %q (seccomp built in: %v): errno %d; log:\n%s", res.Emulator, lcseccomp.Enabled, res.ExitCode, res.Log)
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
