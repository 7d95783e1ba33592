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

// hostPlatform is the platform of sxmake itself, which always runs natively.
var hostPlatform = "linux/" + runtime.GOARCH

// emulator is how programs of a platform run where the kernel cannot run
// them: qemu-user-static, registered in binfmt_misc as entry for the ELF
// headers that magic and mask select (qemu's own patterns, from its
// scripts/qemu-binfmt-conf.sh).
type emulator struct {
	entry       string
	interpreter string
	magic, mask string
	// hint says what else makes the platform run, for the error when
	// qemu is missing.
	hint string
}

// registration is the line written to binfmt_misc's register file. The F
// (fix binary) flag opens the interpreter at registration, so that it runs
// inside any rootfs; O hands it the program as an open file, P keeps
// argv[0], as Debian's qemu-user-static entries do.
func (e emulator) registration() string {
	return ":" + e.entry + ":M::" + e.magic + ":" + e.mask + ":" + e.interpreter + ":OPF"
}

// emulators are the platforms sxmake can emulate. Debian registers arm64
// with qemu-user-static, but no i386 entry on amd64 (where most kernels
// run i386 programs themselves): sxmake registers what is missing.
var emulators = map[string]emulator{
	"linux/arm64": {
		entry:       "qemu-aarch64",
		interpreter: "/usr/bin/qemu-aarch64-static",
		magic:       `\x7f\x45\x4c\x46\x02\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\xb7\x00`,
		mask:        `\xff\xff\xff\xff\xff\xff\xff\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff`,
	},
	"linux/386": {
		entry:       "qemu-i386",
		interpreter: "/usr/bin/qemu-i386-static",
		magic:       `\x7f\x45\x4c\x46\x01\x01\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x02\x00\x03\x00`,
		mask:        `\xff\xff\xff\xff\xff\xfe\xfe\x00\xff\xff\xff\xff\xff\xff\xff\xff\xfe\xff\xff\xff`,
		hint:        ", or run a kernel with IA32 emulation (CONFIG_IA32_EMULATION, and ia32_emulation=on where it is off by default)",
	},
}

// probes are the platforms whose native support is tried, with a program
// that runs on the host rather than decided by name: whether an amd64
// kernel runs i386 programs is a build and boot option.
var probes = map[string][]byte{
	"linux/386": i386Probe,
}

// normalizePlatform returns p as "os/arch", "" being the host's platform.
func normalizePlatform(p string) string {
	switch p {
	case "":
		return hostPlatform
	case "linux/arm64/v8":
		return "linux/arm64"
	}
	return p
}

// platforms holds what this process found out about the platforms it ran,
// guarded by mu, which also serializes changes to binfmt_misc.
var platforms = struct {
	mu     sync.Mutex
	probed map[string]probed
}{probed: map[string]probed{}}

// probed is how a platform's probe ran, with the state of the platform's
// binfmt_misc entry then: once its entry is registered or enabled, by
// sxmake or anyone, binfmt_misc takes the platform's programs over, and
// once it is removed or disabled the kernel runs them again.
type probed struct {
	binfmt string // entryState
	result probeResult
}

// EnsurePlatform makes sure programs of platform (see Spec.Platform) can
// run in a step and returns the binfmt_misc entry that emulates them, ""
// when they run natively. The host's own platform runs natively; linux/386
// runs natively when a probe program says the kernel runs it (tried once
// per process, and again when its binfmt_misc entry changed). Otherwise EnsurePlatform mounts binfmt_misc when needed,
// registers qemu-user-static with the F flag when the entry is missing,
// and enables it when disabled; it fails, wrapping ErrPlatform, with a
// message naming what to install or enable when none of that is possible.
// Registration changes the host's binfmt_misc (it is not namespaced), and
// an entry then serves every program of its platform on the host.
func EnsurePlatform(platform string) (string, error) {
	return ensurePlatform(platform, false)
}

// ensurePlatform is EnsurePlatform; with emulate, platform is emulated
// even where the host runs it natively.
func ensurePlatform(platform string, emulate bool) (string, error) {
	p := normalizePlatform(platform)
	if p == hostPlatform && !emulate {
		return "", nil
	}
	e, ok := emulators[p]
	if !ok || p == hostPlatform {
		return "", fmt.Errorf("%s on %s: %w", platform, hostPlatform, ErrPlatform)
	}
	platforms.mu.Lock()
	defer platforms.mu.Unlock()
	if !emulate {
		native, err := runsNatively(p, e)
		if err != nil {
			return "", fmt.Errorf("%s: %w: %v", platform, ErrPlatform, err)
		}
		if native {
			return "", nil
		}
	}
	if err := ensureEntry(p, e); err != nil {
		return "", fmt.Errorf("%s: %w", platform, err)
	}
	return e.entry, nil
}

// runsNatively reports whether the host's kernel runs programs of p
// itself (not through e). Called with platforms.mu held.
func runsNatively(p string, e emulator) (bool, error) {
	r, err := probe(p, e)
	return r == probeNative, err
}

// probe says how p's probe program runs, trying it once per process and
// again when e's binfmt_misc entry changed; without a probe, p's programs
// do not run natively. Called with platforms.mu held.
func probe(p string, e emulator) (probeResult, error) {
	prog, ok := probes[p]
	if !ok {
		return probeNoExec, nil
	}
	state := e.state()
	if m, ok := platforms.probed[p]; ok && m.binfmt == state {
		return m.result, nil
	}
	r, err := runProbe(prog)
	if err != nil {
		return 0, err
	}
	platforms.probed[p] = probed{state, r}
	return r, nil
}

// state is the first line of e's binfmt_misc entry, "enabled" or
// "disabled", or "" when there is none.
func (e emulator) state() string {
	b, _ := os.ReadFile(binfmtDir + "/" + e.entry)
	first, _, _ := bytes.Cut(b, []byte("\n"))
	return string(first)
}

// ensureEntry makes e's binfmt_misc entry exist, with the F flag, and be
// enabled; p's probe, if any, must then run emulated. Called with
// platforms.mu held.
func ensureEntry(p string, e emulator) error {
	if err := mountBinfmt(); err != nil {
		return fmt.Errorf("%w: %v", ErrPlatform, err)
	}
	entry := binfmtDir + "/" + e.entry
	b, err := os.ReadFile(entry)
	if errors.Is(err, os.ErrNotExist) {
		if _, err := os.Stat(e.interpreter); err != nil {
			return fmt.Errorf("the kernel does not run its programs and %s is missing: install the qemu-user-static package (apt-get install qemu-user-static)%s: %w", e.interpreter, e.hint, ErrPlatform)
		}
		if err := e.register(); err != nil {
			return err
		}
		b, err = os.ReadFile(entry)
	}
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPlatform, err)
	}
	if err := checkEntry(entry, b); err != nil {
		return err
	}
	if _, ok := probes[p]; !ok {
		return nil
	}
	r, err := probe(p, e)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrPlatform, err)
	}
	if r != probeEmulated {
		return fmt.Errorf("binfmt_misc entry %s is enabled but the probe program %s: %w", entry, r, ErrPlatform)
	}
	return nil
}

// register registers e in binfmt_misc. An entry of that name registered
// meanwhile (by another sxmake, or by update-binfmts) is no error: the
// caller reads and checks the entry that is there, as if it had found it.
func (e emulator) register() error {
	err := os.WriteFile(binfmtDir+"/register", []byte(e.registration()), 0)
	if err != nil && !errors.Is(err, unix.EEXIST) {
		return fmt.Errorf("registering %s in binfmt_misc: %w: %v", e.entry, ErrPlatform, err)
	}
	return nil
}

// checkEntry enables a disabled binfmt_misc entry and fails for one
// without the F flag, whose interpreter path would be looked up inside the
// step's rootfs.
func checkEntry(entry string, b []byte) error {
	var flags string
	for _, line := range strings.Split(string(b), "\n") {
		if f, ok := strings.CutPrefix(line, "flags: "); ok {
			flags = f
		}
	}
	if !strings.Contains(flags, "F") {
		return fmt.Errorf("binfmt_misc entry %s lacks the F flag; re-register it with F (update-binfmts --disable then --enable with fix_binary yes, or remove it so sxmake registers one): %w", entry, ErrPlatform)
	}
	if bytes.HasPrefix(b, []byte("enabled")) {
		return nil
	}
	if err := os.WriteFile(entry, []byte("1"), 0); err != nil {
		return fmt.Errorf("enabling %s: %w: %v", entry, ErrPlatform, err)
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
