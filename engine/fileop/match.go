package fileop

import (
	"errors"
	"io/fs"
	"path"
	"path/filepath"
	"strings"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// containsWildcards reports whether p has an unescaped *, ? or [.
func containsWildcards(p string) bool {
	for i := 0; i < len(p); i++ {
		switch p[i] {
		case '\\':
			i++
		case '*', '?', '[':
			return true
		}
	}
	return false
}

// splitWildcards splits the absolute clean path p before its first
// component with a wildcard: "/a/b*/c" gives "/a" and "b*/c".
func splitWildcards(p string) (dir, pattern string) {
	parts := strings.Split(p, "/")
	for i, part := range parts {
		if containsWildcards(part) {
			return path.Join("/", path.Join(parts[:i]...)), path.Join(parts[i:]...)
		}
	}
	return p, ""
}

// Match is one file or directory a COPY or ADD source names.
type Match struct {
	// Name is the match as the Containerfile names it: an absolute path
	// inside the source root.
	Name string
	// Path is where it is: Name resolved in the source root, symlinks
	// followed (the last component's too) but bounded to the root.
	Path string
}

// ResolveSource returns what the source pattern p names under srcRoot,
// exactly as Apply copies it: p itself, or each match of its wildcards
// (see resolveWildcards). A path without wildcards is returned whether it
// exists or not (Apply fails on a missing one with ErrNotFound).
func ResolveSource(srcRoot, p string) ([]Match, error) {
	src := path.Join("/", p)
	names := []string{src}
	if containsWildcards(src) {
		rels, err := resolveWildcards(srcRoot, src)
		if err != nil {
			return nil, err
		}
		names = names[:0]
		for _, r := range rels {
			names = append(names, path.Join("/", r))
		}
	}
	matches := make([]Match, 0, len(names))
	for _, n := range names {
		resolved, err := securejoin.SecureJoin(srcRoot, n)
		if err != nil {
			return nil, err
		}
		matches = append(matches, Match{Name: n, Path: resolved})
	}
	return matches, nil
}

// resolveWildcards returns the paths under srcRoot matching the wildcard
// source p, relative to srcRoot and in lexical walk order, as fsutil's
// ResolveWildcards does: the part before the first wildcard is resolved
// (symlinks followed, bounded to srcRoot), then the tree below it is
// walked without following symlinks, each path relative to that directory
// is matched against the rest with filepath.Match, and a matching
// directory is not descended into. A missing directory part is an error
// (`lstat /dir: no such file or directory`); no match is not.
func resolveWildcards(srcRoot, p string) ([]string, error) {
	dir, pattern := splitWildcards(p)
	base, err := securejoin.SecureJoin(srcRoot, dir)
	if err != nil {
		return nil, err
	}
	// A path can only match if it has at most as many separators as the
	// pattern has separators and character classes (a class may match
	// "/"), so the walk stops below that depth.
	maxDepth := strings.Count(pattern, "/") + strings.Count(pattern, "[") + 1
	var out []string
	err = filepath.WalkDir(base, func(walked string, d fs.DirEntry, err error) error {
		if err != nil {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				pe.Path = relTo(srcRoot, pe.Path)
			}
			return err
		}
		rel, err := filepath.Rel(base, walked)
		if err != nil {
			return err
		}
		if rel == "." {
			return nil
		}
		if ok, _ := filepath.Match(pattern, rel); ok {
			r, err := filepath.Rel(srcRoot, walked)
			if err != nil {
				return err
			}
			out = append(out, r)
			if d.IsDir() {
				return filepath.SkipDir
			}
			return nil
		}
		if d.IsDir() && strings.Count(rel, "/")+1 >= maxDepth {
			return filepath.SkipDir
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// relTo names p, a path under root, as an absolute path inside root.
func relTo(root, p string) string {
	r, err := filepath.Rel(root, p)
	if err != nil || strings.HasPrefix(r, "..") {
		return p
	}
	return path.Join("/", r)
}
