package sandbox

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"runtime"
	"strings"
	"sync"

	"golang.org/x/sys/unix"
)

// ErrPlatform is returned (wrapped) when a step's platform cannot run here.
var ErrPlatform = errors.New("platform not runnable")

// binfmtDir is where binfmt_misc is mounted.
const binfmtDir = "/proc/sys/fs/binfmt_misc"

// emulated maps a platform needing qemu to its binfmt_misc entry name and
// the registration line used when the system has none: Debian's
// qemu-user-static line, with the F (fix binary) flag that lets the
// interpreter, opened at registration, run inside any rootfs.
var emulated = map[string]struct{ entry, register string }{
	"linux/arm64": {
		entry: "qemu-aarch64",
		register: `:qemu-aarch64:M::\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00:` +
			`\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff:` +
			`/usr/bin/qemu-aarch64-static:OPF`,
	},
}

// normalizePlatform returns p as "os/arch", "" being the host's platform.
func normalizePlatform(p string) string {
	switch p {
	case "":
		return "linux/" + runtime.GOARCH
	case "linux/arm64/v8":
		return "linux/arm64"
	}
	return p
}

// native reports whether binaries of platform p run on this host without
// emulation.
func native(p string) bool {
	host := "linux/" + runtime.GOARCH
	return p == host || (host == "linux/amd64" && p == "linux/386")
}

var binfmtMu sync.Mutex

// EnsurePlatform makes sure binaries of platform (see Spec.Platform) can
// run in a step. Native platforms need nothing. For an emulated one it
// mounts binfmt_misc when needed and registers qemu-user-static with the F
// flag when no entry exists; it fails, wrapping ErrPlatform, with a
// message naming what to install or fix when that is not possible.
// Registration changes the host's binfmt_misc (it is not namespaced).
func EnsurePlatform(platform string) error {
	p := normalizePlatform(platform)
	if native(p) {
		return nil
	}
	e, ok := emulated[p]
	if !ok {
		return fmt.Errorf("%s on linux/%s: %w", platform, runtime.GOARCH, ErrPlatform)
	}
	binfmtMu.Lock()
	defer binfmtMu.Unlock()
	if err := mountBinfmt(); err != nil {
		return fmt.Errorf("%s: %w: %v", platform, ErrPlatform, err)
	}
	entry := binfmtDir + "/" + e.entry
	b, err := os.ReadFile(entry)
	if errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat("/usr/bin/qemu-aarch64-static"); err != nil {
			return fmt.Errorf("%s needs qemu: install the qemu-user-static package (apt-get install qemu-user-static): %w", platform, ErrPlatform)
		}
		if err := os.WriteFile(binfmtDir+"/register", []byte(e.register), 0); err != nil {
			return fmt.Errorf("%s: registering %s in binfmt_misc: %w: %v", platform, e.entry, ErrPlatform, err)
		}
		b, err = os.ReadFile(entry)
	}
	if err != nil {
		return fmt.Errorf("%s: %w: %v", platform, ErrPlatform, err)
	}
	return checkEntry(platform, entry, b)
}

// checkEntry enables a disabled binfmt_misc entry and fails for one
// without the F flag, whose interpreter path would be looked up inside the
// step's rootfs.
func checkEntry(platform, entry string, b []byte) error {
	var flags string
	for _, line := range strings.Split(string(b), "\n") {
		if f, ok := strings.CutPrefix(line, "flags: "); ok {
			flags = f
		}
	}
	if !strings.Contains(flags, "F") {
		return fmt.Errorf("%s: binfmt_misc entry %s lacks the F flag; re-register it with F (update-binfmts --disable then --enable with fix_binary yes, or remove it so sxmake registers one): %w", platform, entry, ErrPlatform)
	}
	if !bytes.HasPrefix(b, []byte("enabled")) {
		if err := os.WriteFile(entry, []byte("1"), 0); err != nil {
			return fmt.Errorf("%s: enabling %s: %w: %v", platform, entry, ErrPlatform, err)
		}
	}
	return nil
}

// mountBinfmt mounts binfmt_misc unless it is mounted.
func mountBinfmt() error {
	if _, err := os.Stat(binfmtDir + "/register"); err == nil {
		return nil
	}
	if err := unix.Mount("binfmt_misc", binfmtDir, "binfmt_misc", 0, ""); err != nil {
		return fmt.Errorf("mounting binfmt_misc at %s: %w", binfmtDir, err)
	}
	return nil
}
