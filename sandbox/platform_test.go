package sandbox

import (
	"errors"
	"os"
	"strings"
	"testing"

	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// TestEnsurePlatform: native platforms need nothing; for linux/arm64 a
// missing or disabled qemu binfmt_misc entry is (re)registered with the F
// flag and enabled.
func TestEnsurePlatform(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	for _, p := range []string{"", "linux/amd64", "linux/386", "linux/arm64", "linux/arm64/v8"} {
		if err := EnsurePlatform(p); err != nil {
			t.Errorf("EnsurePlatform(%q): %v", p, err)
		}
	}
	if err := EnsurePlatform("linux/riscv64"); !errors.Is(err, ErrPlatform) {
		t.Errorf("EnsurePlatform(linux/riscv64) = %v, want ErrPlatform", err)
	}
	entry := binfmtDir + "/qemu-aarch64"
	for _, tc := range []struct{ name, write string }{
		{"disabled", "0"},
		{"missing", "-1"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.WriteFile(entry, []byte(tc.write), 0); err != nil {
				t.Fatal(err)
			}
			if err := EnsurePlatform("linux/arm64"); err != nil {
				t.Fatal(err)
			}
			b, err := os.ReadFile(entry)
			if err != nil {
				t.Fatal(err)
			}
			flags := ""
			for _, line := range strings.Split(string(b), "\n") {
				if f, ok := strings.CutPrefix(line, "flags: "); ok {
					flags = f
				}
			}
			if !strings.HasPrefix(string(b), "enabled\n") || !strings.Contains(flags, "F") {
				t.Errorf("entry after EnsurePlatform:\n%s", b)
			}
		})
	}
}
