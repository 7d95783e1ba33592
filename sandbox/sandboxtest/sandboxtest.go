// Package sandboxtest holds helpers for tests that run steps: the root
// check every such test starts with, and root file systems built at test
// time from Debian's busybox-static (the host's, and the arm64 and i386
// ones .ci/install-deps extracts) and from a small Go program (the probe)
// compiled statically for amd64 or arm64. No binary is committed. Go's 386
// programs may crash under qemu-i386 ("morestack on gsignal"), so 32-bit
// x86 steps run busybox or hand-assembled programs instead.
package sandboxtest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// RequiresRoot skips t unless it runs as root. With SXMAKE_TEST_ROOT=1 in
// the environment (CI always sets it) a missing root fails t instead.
func RequiresRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() == 0 {
		return
	}
	if os.Getenv("SXMAKE_TEST_ROOT") == "1" {
		t.Fatal("this test needs root, and SXMAKE_TEST_ROOT=1 forbids skipping it")
	}
	t.Skip("this test needs root (set SXMAKE_TEST_ROOT=1 to make that a failure)")
}

// RestoreBinfmt puts binfmt_misc entry (such as "qemu-i386") back, when t
// ends, in the state it has now: absent or disabled. It is for tests that
// make sxmake emulate a platform the host runs natively
// (sandbox.WithEmulation registers and enables the entry, which then takes
// every program of the platform on the host), so that the host runs them
// natively again. Call it only where the host runs the platform natively
// (sandbox.EnsurePlatform returns ""): elsewhere sxmake needs the entry.
func RestoreBinfmt(t testing.TB, entry string) {
	t.Helper()
	path := "/proc/sys/fs/binfmt_misc/" + entry
	b, err := os.ReadFile(path)
	restore := "0" // disable
	switch {
	case errors.Is(err, os.ErrNotExist):
		restore = "-1" // remove
	case err != nil:
		t.Fatal(err)
	case !bytes.HasPrefix(b, []byte("disabled")):
		return
	}
	t.Cleanup(func() {
		if err := os.WriteFile(path, []byte(restore), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Errorf("restoring %s: %v", path, err)
		}
	})
}

// BusyboxPath is where Debian's busybox-static package puts busybox.
const BusyboxPath = "/bin/busybox"

// busyboxApplets are linked in a busybox rootfs.
var busyboxApplets = []string{
	"sh", "cat", "echo", "env", "ls", "id", "hostname", "umask", "date",
	"sleep", "true", "false", "mkdir", "touch", "rm", "ln", "test", "stat",
	"ip", "wc", "sort", "tr", "uname", "ps", "cp", "mv",
}

// BusyboxRootfs returns a new directory holding a minimal root file
// system: /bin/busybox (copied from the host's busybox-static) with its
// applets as symlinks in /bin, /etc/passwd and /etc/group naming root and
// nobody, and empty /dev, /proc, /sys and /tmp. It fails t, saying what to install, without busybox-static.
func BusyboxRootfs(t testing.TB) string {
	t.Helper()
	if _, err := os.Stat(BusyboxPath); err != nil {
		t.Fatalf("%s missing: install Debian's busybox-static package (apt-get install busybox-static): %v", BusyboxPath, err)
	}
	return busyboxRootfs(t, BusyboxPath)
}

// ForeignBusybox is where .ci/install-deps puts Debian's static busybox
// for another architecture (Debian's name: arm64, i386).
func ForeignBusybox(debArch string) string {
	return "/usr/local/share/sxmake/busybox-" + debArch
}

// BusyboxRootfsFor is BusyboxRootfs with the busybox of goarch: the
// host's for the host's architecture, else Debian's for goarch (arm64,
// 386) as .ci/install-deps extracts it. It fails t, saying what to run,
// when that busybox is missing.
func BusyboxRootfsFor(t testing.TB, goarch string) string {
	t.Helper()
	if goarch == runtime.GOARCH {
		return BusyboxRootfs(t)
	}
	debArch := map[string]string{"386": "i386"}[goarch]
	if debArch == "" {
		debArch = goarch
	}
	bin := ForeignBusybox(debArch)
	if _, err := os.Stat(bin); err != nil {
		t.Fatalf("%s missing: run .ci/install-deps, which extracts it from Debian's busybox-static:%s: %v", bin, debArch, err)
	}
	return busyboxRootfs(t, bin)
}

func busyboxRootfs(t testing.TB, busybox string) string {
	t.Helper()
	dir := t.TempDir()
	for _, d := range []string{"bin", "etc", "dev", "proc", "sys", "tmp"} {
		mustMkdir(t, filepath.Join(dir, d))
	}
	copyFile(t, busybox, filepath.Join(dir, "bin", "busybox"), 0o755)
	for _, a := range busyboxApplets {
		if err := os.Symlink("busybox", filepath.Join(dir, "bin", a)); err != nil {
			t.Fatal(err)
		}
	}
	WriteFile(t, filepath.Join(dir, "etc", "passwd"), "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/sh\n")
	WriteFile(t, filepath.Join(dir, "etc", "group"), "root:x:0:\nnogroup:x:65534:\n")
	return dir
}

// ProbeRootfs returns a new directory holding only /probe, the probe
// compiled for goarch (amd64 or arm64): no shell, no /etc.
func ProbeRootfs(t testing.TB, goarch string) string {
	t.Helper()
	dir := t.TempDir()
	copyFile(t, Probe(t, goarch), filepath.Join(dir, "probe"), 0o755)
	return dir
}

var (
	probeMu    sync.Mutex
	probeBuilt = map[string]string{}
)

// Probe returns the path of the probe program (see probeSource for its
// commands) built statically for linux/goarch. Builds are kept in the
// user's cache directory under a name derived from the source, so they
// are made once.
func Probe(t testing.TB, goarch string) string {
	t.Helper()
	probeMu.Lock()
	defer probeMu.Unlock()
	if p, ok := probeBuilt[goarch]; ok {
		return p
	}
	sum := sha256.Sum256([]byte(probeSource))
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	dir := filepath.Join(cache, "sxmake-test", "probe-"+hex.EncodeToString(sum[:8]))
	bin := filepath.Join(dir, "probe-"+goarch)
	if _, err := os.Stat(bin); err != nil {
		buildProbe(t, dir, bin, goarch)
	}
	probeBuilt[goarch] = bin
	return bin
}

func buildProbe(t testing.TB, dir, bin, goarch string) {
	t.Helper()
	mustMkdir(t, dir)
	// Sources and output are private until the rename: other test
	// binaries may build the same probe at the same time.
	src, err := os.MkdirTemp(dir, "src")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(src)
	WriteFile(t, filepath.Join(src, "go.mod"), "module probe\n\ngo 1.21\n")
	WriteFile(t, filepath.Join(src, "main.go"), probeSource)
	tmp := filepath.Join(src, "probe")
	cmd := exec.Command("go", "build", "-trimpath", "-o", tmp, ".")
	cmd.Dir = src
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOARCH="+goarch, "GOFLAGS=", "GOTOOLCHAIN=local", "GOWORK=off")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building probe for %s: %v\n%s", goarch, err, out)
	}
	if err := os.Rename(tmp, bin); err != nil {
		t.Fatal(err)
	}
}

// WriteFile writes content to p (mode 0644), failing t on error.
func WriteFile(t testing.TB, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
}

func mustMkdir(t testing.TB, p string) {
	t.Helper()
	if err := os.MkdirAll(p, 0o755); err != nil {
		t.Fatal(err)
	}
}

func copyFile(t testing.TB, src, dst string, mode os.FileMode) {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, b, mode); err != nil {
		t.Fatal(err)
	}
}
