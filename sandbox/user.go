package sandbox

import (
	"io"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/sys/user"

	"github.com/stagex/sxmake/sandbox/rootfs"
)

// identity is the resolved user of a step.
type identity struct {
	uid, gid int
	groups   []int // supplementary groups, the primary group first
}

// lookupUser resolves spec (see Spec.User) the way BuildKit does: "uid:gid"
// with numbers (or "root") directly, anything else through the rootfs's
// /etc/passwd and /etc/group; "" is uid 0, and root even without a
// passwd entry. The primary group is always among the groups.
func lookupUser(rootfs, spec string) (identity, error) {
	id, err := resolveUser(rootfs, spec)
	if err != nil {
		return identity{}, err
	}
	if !slices.Contains(id.groups, id.gid) {
		id.groups = append([]int{id.gid}, id.groups...)
	}
	return id, nil
}

func resolveUser(rootfs, spec string) (identity, error) {
	isDefault := spec == ""
	if isDefault {
		spec = "0"
	}
	if u, g, ok := strings.Cut(spec, ":"); ok {
		uid, err1 := parseID(u)
		gid, err2 := parseID(g)
		if err1 == nil && err2 == nil {
			return identity{uid: uid, gid: gid}, nil
		}
	}
	passwd := openInRoot(rootfs, "/etc/passwd")
	group := openInRoot(rootfs, "/etc/group")
	defer closeReader(passwd)
	defer closeReader(group)
	u, err := user.GetExecUser(spec, nil, passwd, group)
	if err != nil {
		if isDefault {
			return identity{}, nil
		}
		return identity{}, err
	}
	return identity{uid: u.Uid, gid: u.Gid, groups: u.Sgids}, nil
}

func parseID(s string) (int, error) {
	if s == "root" {
		return 0, nil
	}
	n, err := strconv.ParseUint(s, 10, 32)
	return int(n), err
}

// openInRoot opens name resolved inside root; nil if it cannot (or if it
// is not a regular file: a FIFO planted there must not hang sxmake).
func openInRoot(root, name string) io.Reader {
	f, err := rootfs.Open(root, name)
	if err != nil {
		return nil
	}
	return f
}

func closeReader(r io.Reader) {
	if c, ok := r.(io.Closer); ok {
		c.Close()
	}
}
