package sandbox

import (
	"bytes"
	"debug/elf"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// TestEnsurePlatform: the host's platform needs nothing; linux/386 runs
// natively exactly when no enabled binfmt_misc entry takes it over, else
// through qemu-i386 with the F flag; for linux/arm64 a missing or
// disabled qemu binfmt_misc entry is (re)registered with the F flag and
// enabled.
func TestEnsurePlatform(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	for _, tc := range []struct{ platform, emulator string }{
		{"", ""},
		{"linux/amd64", ""},
		{"linux/arm64", "qemu-aarch64"},
		{"linux/arm64/v8", "qemu-aarch64"},
	} {
		if got, err := EnsurePlatform(tc.platform); err != nil || got != tc.emulator {
			t.Errorf("EnsurePlatform(%q) = %q, %v; want %q", tc.platform, got, err, tc.emulator)
		}
	}
	for _, p := range []string{"linux/riscv64", "linux/s390x"} {
		if _, err := EnsurePlatform(p); !errors.Is(err, ErrPlatform) {
			t.Errorf("EnsurePlatform(%s) = %v, want ErrPlatform", p, err)
		}
	}
	if _, err := ensurePlatform("linux/amd64", true); !errors.Is(err, ErrPlatform) {
		t.Errorf("emulating the host's own platform: %v, want ErrPlatform", err)
	}

	t.Run("linux/386", func(t *testing.T) {
		got, err := EnsurePlatform("linux/386")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := os.ReadFile(binfmtDir + "/qemu-i386")
		switch {
		case got == "" && bytes.HasPrefix(b, []byte("enabled")):
			t.Errorf("linux/386 said native, but binfmt_misc sends i386 programs to qemu:\n%s", b)
		case got != "" && (got != "qemu-i386" || !enabledWithF(b)):
			t.Errorf("linux/386 through %q; entry:\n%s", got, b)
		}
		t.Logf("linux/386 on this host: through %q", got)
	})

	entry := binfmtDir + "/qemu-aarch64"
	for _, tc := range []struct{ name, write string }{
		{"disabled", "0"},
		{"missing", "-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(entry, []byte(tc.write), 0); err != nil {
				t.Fatal(err)
			}
			if _, err := EnsurePlatform("linux/arm64"); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(entry)
			if err != nil {
				t.Fatal(err)
			}
			if !enabledWithF(b) {
				t.Errorf("entry after EnsurePlatform:\n%s", b)
			}
		})
	}
}

// restoreNative386 makes sure that a host whose kernel runs i386 programs
// does so again after t, which emulates linux/386 on any host.
func restoreNative386(t *testing.T) {
	t.Helper()
	emulator, err := EnsurePlatform("linux/386")
	if err != nil {
		t.Fatal(err)
	}
	if emulator == "" {
		sandboxtest.RestoreBinfmt(t, "qemu-i386")
	}
}

// enabledWithF reports whether a binfmt_misc entry's text says enabled,
// with the F flag.
func enabledWithF(entry []byte) bool {
	flags := ""
	for _, line := range strings.Split(string(entry), "\n") {
		if f, ok := strings.CutPrefix(line, "flags: "); ok {
			flags = f
		}
	}
	return bytes.HasPrefix(entry, []byte("enabled\n")) && strings.Contains(flags, "F")
}

// TestEmulationForced: with emulate, linux/386 runs through qemu-i386 on
// any host, and the probe then runs emulated.
func TestEmulationForced(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	restoreNative386(t)
	got, err := ensurePlatform("linux/386", true)
	if err != nil || got != "qemu-i386" {
		t.Fatalf("emulated linux/386: %q, %v; want qemu-i386", got, err)
	}
	if r, err := runProbe(i386Probe); err != nil || r != probeEmulated {
		t.Errorf("the probe %v (%v), want it to run emulated", r, err)
	}
}

// TestI386Probe runs the probe program through qemu-i386 directly: it
// says emulated, and the same program comparing with qemu's machine name
// instead of x86_64 says native, which checks both branches on any host.
func TestI386Probe(t *testing.T) {
	qemu := emulators["linux/386"].interpreter
	f, err := elf.NewFile(bytes.NewReader(i386Probe))
	if err != nil {
		t.Fatal(err)
	}
	if f.Class != elf.ELFCLASS32 || f.Machine != elf.EM_386 || f.Type != elf.ET_EXEC || f.Entry != 0x08048054 {
		t.Errorf("probe ELF: class %v machine %v type %v entry %#x", f.Class, f.Machine, f.Type, f.Entry)
	}
	asI686 := bytes.Replace(i386Probe, []byte("x86_"), []byte("i686"), 1)
	for _, tc := range []struct {
		name string
		prog []byte
		exit int
	}{
		{"machine i686 is emulated", i386Probe, 1},
		{"machine as compared is native", asI686, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "probe")
			if err := os.WriteFile(path, tc.prog, 0o755); err != nil {
				t.Fatal(err)
			}
			err := exec.Command(qemu, path).Run()
			var ee *exec.ExitError
			switch {
			case err == nil && tc.exit == 0:
			case errors.As(err, &ee) && ee.ExitCode() == tc.exit:
			default:
				t.Errorf("%s %s: %v, want exit status %d", qemu, path, err, tc.exit)
			}
		})
	}
}

// TestRegisterRace: an entry another process registered between
// ensureEntry's look and its registration (binfmt_misc answers EEXIST) is
// used, not an error. The entry is the test's own, matching no program.
func TestRegisterRace(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	if err := mountBinfmt(); err != nil {
		t.Skip(err)
	}
	e := emulator{
		entry:       "sxmake-test-" + strconv.Itoa(os.Getpid()),
		interpreter: "/bin/true",
		magic:       `\x00sxmake-test-never`,
		mask:        `\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff`,
	}
	if err := os.WriteFile(binfmtDir+"/register", []byte(e.registration()), 0); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.WriteFile(binfmtDir+"/"+e.entry, []byte("-1"), 0) })
	if err := e.register(); err != nil {
		t.Errorf("registering an entry that exists: %v", err)
	}
}
