package main

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/sandbox"
	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// TestEmulatedBuild builds a linux/386 image whose RUN step records
// uname -m, with SXMAKE_EMULATE=linux/386 so that its steps run through
// qemu-i386 on any host. The build says once, as the first of them
// starts, that steps run emulated; its summary and verify name the image; and the image
// holds i686, qemu's machine, where a native build would hold x86_64:
// emulation changed the bytes. A cached rebuild runs nothing and says
// nothing about emulation.
func TestEmulatedBuild(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	if emulator, err := sandbox.EnsurePlatform("linux/386"); err != nil {
		t.Fatal(err)
	} else if emulator == "" {
		sandboxtest.RestoreBinfmt(t, "qemu-i386") // the host runs i386 itself
	}
	t.Setenv("SXMAKE_EMULATE", "linux/386")
	busybox := sandboxtest.ForeignBusybox("i386")
	b, err := os.ReadFile(busybox)
	if err != nil {
		t.Fatalf("%v (.ci/install-deps extracts it)", err)
	}
	sum := sha256.Sum256(b)
	tree := writeFiles(t, map[string]string{
		"packages/user/machine/package.toml": fmt.Sprintf("[package]\nname = \"machine\"\nversion = \"1\"\nplatforms = [\"linux/386\"]\n\n"+
			"[sources.busybox]\nhash = %q\nmirrors = [\"file://%s\"]\n", hex.EncodeToString(sum[:]), busybox),
		"packages/user/machine/Containerfile": "FROM scratch AS build\n" +
			"COPY --from=fetch --chmod=0755 busybox-i386 /bin/busybox\n" +
			"RUN [\"/bin/busybox\", \"sh\", \"-c\", \"/bin/busybox uname -m > /machine\"]\n" +
			"RUN [\"/bin/busybox\", \"true\"]\n" +
			"FROM scratch AS package\nCOPY --from=build /machine /machine\n",
	})
	cache := filepath.Join(t.TempDir(), "cache")
	build := func() string {
		t.Helper()
		code, _, stderr := sxmake(t, "-C", tree, "--cache-dir", cache, "--progress", "plain", "user-machine")
		if code != 0 {
			t.Fatalf("build: exit %d\n%s", code, stderr)
		}
		return stderr
	}

	stderr := build()
	const notice = "sxmake: RUN steps run emulated on this host, through qemu-i386 (qemu-user-static in binfmt_misc)"
	const summary = "sxmake: user-machine: RUN steps ran emulated, through qemu-i386\n"
	if n := strings.Count(stderr, notice); n != 1 || !strings.Contains(stderr, summary) {
		t.Errorf("build stderr has the notice %d times (want 1), and the summary line %v:\n%s", n, strings.Contains(stderr, summary), stderr)
	}
	// The notice comes as the first emulated step starts, not when it ends.
	if i, j := strings.Index(stderr, notice), strings.Index(stderr, "done   build 3:1 RUN"); i < 0 || j < 0 || i > j {
		t.Errorf("the notice does not come before the first RUN ends:\n%s", stderr)
	}
	root := unpackLayout(t, filepath.Join(tree, "out", "user-machine"), image.ForPlatform(image.Platform{OS: "linux", Architecture: "386"}))
	if got, err := os.ReadFile(filepath.Join(root, "machine")); err != nil || string(got) != "i686\n" {
		t.Errorf("the image's /machine: %q, %v; want qemu-i386's i686", got, err)
	}

	if stderr := build(); strings.Contains(stderr, "emulated") {
		t.Errorf("a cached rebuild talks about emulation:\n%s", stderr)
	}

	code, stdout, stderr := sxmake(t, "-C", tree, "--cache-dir", cache, "--progress", "plain", "verify", "user-machine")
	if code != 0 {
		t.Fatalf("verify: exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "reproduced") || !strings.Contains(stdout, "its RUN steps ran emulated, through qemu-i386\n") {
		t.Errorf("verify does not say the steps ran emulated:\n%s", stdout)
	}
}
