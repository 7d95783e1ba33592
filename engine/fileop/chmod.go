package fileop

import (
	"errors"
	"fmt"
	"io/fs"
	"strconv"
)

// Mode bits in the Unix layout (st_mode), which is what chmod(1) speaks.
const (
	bitSetuid = 0o4000
	bitSetgid = 0o2000
	bitSticky = 0o1000
	bitsUser  = 0o700
	bitsGroup = 0o070
	bitsOther = 0o007
	// bitsStandard is every bit "a" and "=" touch: set-id and rwx for all
	// classes, but not the sticky bit.
	bitsStandard = bitSetuid | bitSetgid | bitsUser | bitsGroup | bitsOther
)

// ErrChmodSyntax reports a --chmod value that is neither octal nor a valid
// symbolic mode.
var ErrChmodSyntax = errors.New("invalid syntax")

// Chmod is a parsed --chmod value: either an octal mode ("644", "0755",
// "4755") or a symbolic one as chmod(1) accepts it ("u+x", "go-w",
// "u=rwx,go=rx", "+X"). A Chmod is immutable.
//
// As in BuildKit, an octal Chmod replaces the permission and special bits
// of every copied file, directory and device; a symbolic Chmod is applied
// to each entry's source mode with a umask of 0 (BSD setmode semantics).
// Directories that Apply creates as parents get the octal value's
// permission bits (buildkitd runs with umask 0), or 0755 for a symbolic
// Chmod.
type Chmod struct {
	text  string
	octal bool
	bits  uint32 // the octal value
	cmds  []modeCmd
}

// ParseChmod parses a --chmod value the way BuildKit's Dockerfile frontend
// does: an octal number up to 07777, or else a symbolic mode. Values that
// look numeric but are not valid octal (or exceed 07777) get BuildKit's
// message "invalid chmod parameter: ...".
func ParseChmod(s string) (*Chmod, error) {
	if v, err := strconv.ParseUint(s, 8, 32); err == nil {
		if v > 0o7777 {
			return nil, nonOctalError(s)
		}
		return &Chmod{text: s, octal: true, bits: uint32(v)}, nil
	}
	if s != "" && s[0] >= '0' && s[0] <= '9' {
		// BuildKit's symbolic parser rejects these with a strconv error,
		// which the frontend turns into the octal message.
		return nil, nonOctalError(s)
	}
	cmds, err := parseSymbolic(s)
	if err != nil {
		return nil, fmt.Errorf("chmod %q: %w", s, err)
	}
	return &Chmod{text: s, cmds: cmds}, nil
}

func nonOctalError(s string) error {
	return fmt.Errorf("invalid chmod parameter: '%v'. it should be octal string and between 0 and 07777", s)
}

// String returns the value as written.
func (c *Chmod) String() string { return c.text }

// Apply returns m with the change applied; the type bits of m are kept.
func (c *Chmod) Apply(m fs.FileMode) fs.FileMode {
	if c.octal {
		return withUnixBits(m, c.bits)
	}
	return withUnixBits(m, applySymbolic(c.cmds, m))
}

// dirPerm is the permission that directories created as parents of the
// destination get.
func (c *Chmod) dirPerm() fs.FileMode {
	if c == nil || !c.octal {
		return 0o755
	}
	return fs.FileMode(c.bits) & fs.ModePerm
}

// unixBits returns the chmod(2) bits of m.
func unixBits(m fs.FileMode) uint32 {
	b := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		b |= bitSetuid
	}
	if m&fs.ModeSetgid != 0 {
		b |= bitSetgid
	}
	if m&fs.ModeSticky != 0 {
		b |= bitSticky
	}
	return b
}

// withUnixBits replaces the permission and special bits of m with b.
func withUnixBits(m fs.FileMode, b uint32) fs.FileMode {
	m &^= fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky
	m |= fs.FileMode(b) & fs.ModePerm
	if b&bitSetuid != 0 {
		m |= fs.ModeSetuid
	}
	if b&bitSetgid != 0 {
		m |= fs.ModeSetgid
	}
	if b&bitSticky != 0 {
		m |= fs.ModeSticky
	}
	return m
}
