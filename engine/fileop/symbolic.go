package fileop

import "io/fs"

// A modeCmd is one primitive step of a symbolic mode, in the order chmod(1)
// applies them:
//
//	'+' set bits, '-' clear bits,
//	'X' set bits if the original mode has any execute bit or is a directory,
//	'u', 'g', 'o' copy that class's current rwx bits into the classes in
//	  targets (masked by bits), setting ('+'), clearing ('-') or
//	  replacing ('=') them as copyOp says.
type modeCmd struct {
	op      byte
	bits    uint32
	copyOp  byte
	targets uint32 // some of bitsUser|bitsGroup|bitsOther, for copies
}

// parseSymbolic parses a symbolic mode with BSD setmode(3) semantics and a
// umask of 0, which is what BuildKit uses:
//
//	mode   = clause {"," clause}
//	clause = {who} action {action}
//	who    = "a" | "u" | "g" | "o"
//	action = op {perm}
//	op     = "+" | "-" | "="
//	perm   = "r" | "w" | "x" | "X" | "s" | "t" | "u" | "g" | "o"
//
// Without a who, an action applies to all classes; "s" is ignored when only
// "o" is named, and so is "t".
func parseSymbolic(s string) ([]modeCmd, error) {
	var cmds []modeCmd
	equalDone := false
	for {
		var who uint32
		for len(s) > 0 && whoBits(s[0]) != 0 {
			who |= whoBits(s[0])
			s = s[1:]
		}
		if s == "" {
			return nil, ErrChmodSyntax
		}
		for {
			op := s[0]
			s = s[1:]
			switch op {
			case '+', '-':
			case '=':
				equalDone = false
			default:
				return nil, ErrChmodSyntax
			}
			who &^= bitSticky
			var perm, permX uint32
		perms:
			for ; ; s = s[1:] {
				var c byte
				if s != "" {
					c = s[0]
				}
				switch c {
				case 'r':
					perm |= 0o444
				case 'w':
					perm |= 0o222
				case 'x':
					perm |= 0o111
				case 'X':
					if op == '-' {
						perm |= 0o111
					} else {
						permX = 0o111
					}
				case 's':
					if who == 0 || who&^bitsOther != 0 {
						perm |= bitSetuid | bitSetgid
					}
				case 't':
					if who == 0 || who&^bitsOther != 0 {
						who |= bitSticky
						perm |= bitSticky
					}
				case 'u', 'g', 'o':
					if perm != 0 {
						cmds = addCmd(cmds, op, who, perm)
						perm = 0
					}
					if op == '=' {
						equalDone = true
					}
					if permX != 0 {
						cmds = addCmd(cmds, 'X', who, permX)
						permX = 0
					}
					cmds = append(cmds, copyCmd(c, who, op))
				default:
					if perm != 0 || op == '=' && !equalDone {
						if op == '=' {
							equalDone = true
						}
						cmds = addCmd(cmds, op, who, perm)
					}
					if permX != 0 {
						cmds = addCmd(cmds, 'X', who, permX)
					}
					break perms
				}
			}
			if s == "" {
				return cmds, nil
			}
			if s[0] == ',' {
				s = s[1:]
				break
			}
		}
	}
}

func whoBits(c byte) uint32 {
	switch c {
	case 'a':
		return bitsStandard
	case 'u':
		return bitSetuid | bitsUser
	case 'g':
		return bitSetgid | bitsGroup
	case 'o':
		return bitsOther
	}
	return 0
}

// addCmd appends the set/clear/X steps of one action. "=" clears what who
// names (everything but sticky when who is empty), then sets.
func addCmd(cmds []modeCmd, op byte, who, perm uint32) []modeCmd {
	if op == '=' {
		clear := who
		if who == 0 {
			clear = bitsStandard
		}
		cmds = append(cmds, modeCmd{op: '-', bits: clear})
		op = '+'
	}
	bits := perm
	if who != 0 {
		bits = who & perm
	}
	return append(cmds, modeCmd{op: op, bits: bits})
}

// copyCmd builds a class copy such as the "u" of "go=u".
func copyCmd(from byte, who uint32, op byte) modeCmd {
	c := modeCmd{op: from, copyOp: op, bits: ^uint32(0)}
	if who == 0 {
		c.targets = bitsUser | bitsGroup | bitsOther
		return c
	}
	if who&0o400 != 0 {
		c.targets |= bitsUser
	}
	if who&0o040 != 0 {
		c.targets |= bitsGroup
	}
	if who&0o004 != 0 {
		c.targets |= bitsOther
	}
	return c
}

// applySymbolic runs cmds over the chmod(2) bits of m.
func applySymbolic(cmds []modeCmd, m fs.FileMode) uint32 {
	orig := unixBits(m)
	cur := orig
	for _, c := range cmds {
		switch c.op {
		case '+':
			cur |= c.bits
		case '-':
			cur &^= c.bits
		case 'X':
			if orig&0o111 != 0 || m.IsDir() {
				cur |= c.bits
			}
		case 'u', 'g', 'o':
			cur = applyCopy(c, cur)
		}
	}
	return cur
}

// applyCopy copies the rwx bits of class c.op into c.targets.
func applyCopy(c modeCmd, cur uint32) uint32 {
	shift := map[byte]uint{'u': 6, 'g': 3, 'o': 0}[c.op]
	value := cur >> shift & 0o7
	clear := value
	if c.copyOp == '=' {
		clear = 0o7
	}
	for _, t := range []struct {
		class uint32
		shift uint
	}{{bitsUser, 6}, {bitsGroup, 3}, {bitsOther, 0}} {
		if c.targets&t.class == 0 {
			continue
		}
		if c.copyOp == '-' || c.copyOp == '=' {
			cur &^= clear << t.shift & c.bits
		}
		if c.copyOp == '+' || c.copyOp == '=' {
			cur |= value << t.shift & c.bits
		}
	}
	return cur
}
