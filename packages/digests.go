package packages

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/stagex/sxmake/rules"
)

// Digests are StageX's published digests: for each image name, the
// manifest digests published for it (64 hex digits each; one per
// platform), in file order.
type Digests map[string][]string

// ReadDigests reads the tree's digests files, digests/<stage>.txt, in name
// order. A tree without digests/ has none.
func (t *Tree) ReadDigests() (Digests, error) {
	dir := t.Dir("digests") // a link committed as digests/ stays in the tree
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return Digests{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading digests: %w", err)
	}
	out := Digests{}
	var names []string
	for _, e := range ents {
		if strings.HasSuffix(e.Name(), ".txt") && e.Type().IsRegular() {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for _, n := range names {
		data, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			return nil, fmt.Errorf("reading digests: %w", err)
		}
		ds, err := ParseDigests(filepath.Join("digests", n), data)
		if err != nil {
			return nil, err
		}
		for name, list := range ds {
			out[name] = append(out[name], list...)
		}
	}
	return out, nil
}

var digestLine = regexp.MustCompile(`^([0-9a-f]{64}) +([a-z0-9][a-z0-9._-]*)$`)

// ParseDigests parses one digests file: a line "<sha256 hex> <stage>-<name>"
// per image and platform; blank lines are skipped. file names it in
// errors, which are *Error with the position of the bad line.
func ParseDigests(file string, data []byte) (Digests, error) {
	out := Digests{}
	for i, line := range strings.Split(string(data), "\n") {
		line = strings.TrimRight(line, "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		m := digestLine.FindStringSubmatch(line)
		if m == nil {
			pos := rules.Pos{File: file, Line: i + 1, Col: 1}
			return nil, newError(pos, data, `want "<sha256 hex> <stage>-<name>"`)
		}
		out[m[2]] = append(out[m[2]], m[1])
	}
	return out, nil
}
