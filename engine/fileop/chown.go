package fileop

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"strconv"
	"strings"
	"syscall"

	"github.com/moby/sys/user"

	"github.com/stagex/sxmake/sandbox/rootfs"
)

// Owner is a numeric uid and gid.
type Owner struct {
	UID, GID int
}

// ownerID is one half of a --chown value: a number, or a name to look up.
type ownerID struct {
	name string
	id   int
}

// parseOwnerID reads "root", a decimal number that fits in 32 bits, or a
// name. An empty string means id 0, as in BuildKit (an empty name is sent
// as the numeric id 0).
func parseOwnerID(s string) ownerID {
	if s == "root" || s == "" {
		return ownerID{}
	}
	if v, err := strconv.ParseInt(s, 10, 32); err == nil {
		// BuildKit sends ids as uint32; "-1" becomes 4294967295.
		return ownerID{id: int(uint32(v))}
	}
	return ownerID{name: s}
}

// ResolveChown turns a --chown value ("uid", "uid:gid", "user",
// "user:group", mixed) into numbers the way BuildKit v0.26.3 does:
//
//   - a numeric user alone gives uid = gid = that number;
//   - a user name is looked up in destRoot's /etc/passwd and gives that
//     entry's uid and primary gid;
//   - a group (after ':') overrides the gid, by number or by name from
//     destRoot's /etc/group;
//   - a name that is not found, or a missing passwd/group file, is not an
//     error: the id stays 0 (BuildKit's behaviour, surprising as it is).
//
// The files are read inside destRoot with symlinks resolved within it.
func ResolveChown(destRoot, spec string) (Owner, error) {
	userPart, groupPart, hasGroup := strings.Cut(spec, ":")
	var o Owner
	u := parseOwnerID(userPart)
	if u.name == "" {
		o = Owner{UID: u.id, GID: u.id}
	} else {
		pw, err := lookupFile(destRoot, "/etc/passwd", func(f *os.File) ([]Owner, error) {
			users, err := user.ParsePasswdFilter(f, func(e user.User) bool { return e.Name == u.name })
			owners := make([]Owner, len(users))
			for i, e := range users {
				owners[i] = Owner{UID: e.Uid, GID: e.Gid}
			}
			return owners, err
		})
		if err != nil {
			return Owner{}, err
		}
		if len(pw) > 0 {
			o = pw[0]
		}
	}
	if !hasGroup {
		return o, nil
	}
	g := parseOwnerID(groupPart)
	if g.name == "" {
		o.GID = g.id
		return o, nil
	}
	gr, err := lookupFile(destRoot, "/etc/group", func(f *os.File) ([]Owner, error) {
		groups, err := user.ParseGroupFilter(f, func(e user.Group) bool { return e.Name == g.name })
		owners := make([]Owner, len(groups))
		for i, e := range groups {
			owners[i] = Owner{GID: e.Gid}
		}
		return owners, err
	})
	if err != nil {
		return Owner{}, err
	}
	if len(gr) > 0 {
		o.GID = gr[0].GID
	}
	return o, nil
}

// lookupFile opens name inside root and parses it; a missing file gives no
// entries. Anything but a regular file is an error, and never opened (a
// FIFO would hang sxmake; see package rootfs).
func lookupFile(root, name string, parse func(*os.File) ([]Owner, error)) ([]Owner, error) {
	f, err := rootfs.Open(root, name)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("opening %s: %w", name, err)
	}
	defer f.Close()
	owners, err := parse(f)
	if err != nil {
		return nil, fmt.Errorf("parsing %s: %w", name, err)
	}
	return owners, nil
}
