package rules

import (
	"fmt"
	"regexp"
	"runtime"
	"strings"
)

// Platform is an OS/architecture pair with an optional variant.
type Platform struct{ OS, Arch, Variant string }

// String returns "os/arch" or "os/arch/variant".
func (p Platform) String() string {
	s := p.OS + "/" + p.Arch
	if p.Variant != "" {
		s += "/" + p.Variant
	}
	return s
}

// IsZero reports whether p is unset.
func (p Platform) IsZero() bool { return p == Platform{} }

// DefaultPlatform returns linux/runtime.GOARCH.
func DefaultPlatform() Platform {
	return normalizePlatform(Platform{OS: "linux", Arch: runtime.GOARCH})
}

// ParsePlatform parses "os[/arch[/variant]]" or a bare OS or
// architecture the way containerd's platforms.Parse (v1.0.0-rc.2, used by
// BuildKit v0.26.3) does, normalising the architecture ("x86_64" is
// "amd64", "aarch64" is "arm64"). OS versions ("windows(10.0)") are not
// supported.
func ParsePlatform(s string) (Platform, error) {
	if strings.Contains(s, "*") {
		return Platform{}, fmt.Errorf("%q: wildcards not yet supported: invalid argument", s)
	}
	parts := strings.SplitN(s, "/", 4)
	for i, part := range parts {
		if i == 0 && !osPartRe.MatchString(part) {
			return Platform{}, fmt.Errorf("%q is an invalid OS component of %q: OSAndVersion specifier component must match %q: invalid argument", part, s, osPartRe.String())
		}
		if i > 0 && !specifierRe.MatchString(part) {
			return Platform{}, fmt.Errorf("%q is an invalid component of %q: platform specifier component must match %q: invalid argument", part, s, specifierRe.String())
		}
	}
	os := strings.ToLower(parts[0])
	if os == "macos" {
		os = "darwin"
	}
	var p Platform
	switch len(parts) {
	case 1:
		if isKnownOS(os) {
			return Platform{OS: os, Arch: DefaultPlatform().Arch}, nil
		}
		arch, variant := normalizeArch(parts[0], "")
		if arch == "arm" && variant == "v7" {
			variant = ""
		}
		if isKnownArch(arch) {
			return Platform{OS: "linux", Arch: arch, Variant: variant}, nil
		}
		return Platform{}, fmt.Errorf("%q: unknown operating system or architecture: invalid argument", s)
	case 2:
		p.OS = os
		p.Arch, p.Variant = normalizeArch(parts[1], "")
		if p.Arch == "arm" && p.Variant == "v7" {
			p.Variant = ""
		}
		return p, nil
	case 3:
		p.OS = os
		p.Arch, p.Variant = normalizeArch(parts[1], parts[2])
		if p.Arch == "arm64" && p.Variant == "" {
			p.Variant = "v8"
		}
		return p, nil
	}
	return Platform{}, fmt.Errorf("%q: cannot parse platform specifier: invalid argument", s)
}

var (
	specifierRe = regexp.MustCompile(`^[A-Za-z0-9_.-]+$`)
	osPartRe    = regexp.MustCompile(`^([A-Za-z0-9_-]+)$`)
)

func isKnownOS(os string) bool {
	switch os {
	case "aix", "android", "darwin", "dragonfly", "freebsd", "hurd", "illumos", "ios", "js",
		"linux", "nacl", "netbsd", "openbsd", "plan9", "solaris", "windows", "zos":
		return true
	}
	return false
}

func isKnownArch(arch string) bool {
	switch arch {
	case "386", "amd64", "amd64p32", "arm", "armbe", "arm64", "arm64be", "ppc64", "ppc64le",
		"loong64", "mips", "mipsle", "mips64", "mips64le", "mips64p32", "mips64p32le",
		"ppc", "riscv", "riscv64", "s390", "s390x", "sparc", "sparc64", "wasm":
		return true
	}
	return false
}

// normalizePlatform applies containerd's platforms.Normalize.
func normalizePlatform(p Platform) Platform {
	p.OS = strings.ToLower(p.OS)
	if p.OS == "macos" {
		p.OS = "darwin"
	}
	p.Arch, p.Variant = normalizeArch(p.Arch, p.Variant)
	return p
}

// normalizeArch is containerd's architecture and variant normalisation.
func normalizeArch(arch, variant string) (string, string) {
	arch, variant = strings.ToLower(arch), strings.ToLower(variant)
	switch arch {
	case "i386":
		arch, variant = "386", ""
	case "x86_64", "x86-64", "amd64":
		arch = "amd64"
		if variant == "v1" {
			variant = ""
		}
	case "aarch64", "arm64":
		arch = "arm64"
		switch variant {
		case "8", "v8", "v8.0":
			variant = ""
		case "9", "9.0", "v9.0":
			variant = "v9"
		}
	case "armhf":
		arch, variant = "arm", "v7"
	case "armel":
		arch, variant = "arm", "v6"
	case "arm":
		switch variant {
		case "", "7":
			variant = "v7"
		case "5", "6", "8":
			variant = "v" + variant
		}
	}
	return arch, variant
}
