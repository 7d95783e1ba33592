package fileop

import (
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"

	"github.com/moby/patternmatcher"
)

// Source is one source of a COPY or ADD: a path in the source root, maybe
// with wildcards, and what --parents makes of it.
type Source struct {
	// Path is the source path relative to the source root ("/" and ".."
	// cannot leave it). See Copy.Sources.
	Path string
	// Include, set by --parents, are patterns (relative to each match of
	// Path, a directory) naming what is copied of it: a matching entry
	// is copied with the directories above it, each created as its
	// source directory is; the rest is left out.
	Include []string
	// Required, set by --parents, are paths (absolute in the source root)
	// that must be among what is copied: the copy fails with ErrNotFound
	// otherwise. An entry below one counts.
	Required []string
}

// Sources returns sources that are paths alone (no --parents).
func Sources(paths ...string) []Source {
	out := make([]Source, len(paths))
	for i, p := range paths {
		out[i] = Source{Path: p}
	}
	return out
}

// selector decides what of a matched source is copied, as fsutil's copier
// does: an entry below the match (never the match itself) is copied when
// it matches an include pattern (if there are any) and no exclude pattern.
// Patterns are moby/patternmatcher's, matched against the entry's path
// relative to the match; a directory's result carries to what it holds,
// which a later pattern (a "!" exclusion) may reverse. A directory left
// out is still read: an entry in it may be copied, and it is then created
// as its source directory is.
type selector struct {
	include, exclude *patternmatcher.PatternMatcher
}

// matchInfo is what a directory's matching hands down to its entries.
type matchInfo struct{ include, exclude patternmatcher.MatchInfo }

func newSelector(include, exclude []string) (*selector, error) {
	s := &selector{}
	var err error
	if len(include) > 0 {
		if s.include, err = patternmatcher.New(include); err != nil {
			return nil, fmt.Errorf("invalid include patterns %q: %w", include, err)
		}
	}
	if len(exclude) > 0 {
		if s.exclude, err = patternmatcher.New(exclude); err != nil {
			return nil, fmt.Errorf("invalid exclude patterns %q: %w", exclude, err)
		}
	}
	return s, nil
}

// selects reports whether the entry at rel (relative to the match, "" for
// the match itself) is copied, and the info its entries inherit.
func (s *selector) selects(rel string, parent matchInfo) (bool, matchInfo, error) {
	var info matchInfo
	if rel == "" {
		return true, info, nil
	}
	ok := true
	var err error
	if s.include != nil {
		if ok, info.include, err = s.include.MatchesUsingParentResults(rel, parent.include); err != nil {
			return false, info, fmt.Errorf("matching include patterns: %w", err)
		}
	}
	if s.exclude != nil {
		var excluded bool
		if excluded, info.exclude, err = s.exclude.MatchesUsingParentResults(rel, parent.exclude); err != nil {
			return false, info, fmt.Errorf("matching exclude patterns: %w", err)
		}
		ok = ok && !excluded
	}
	return ok, info, nil
}

// required tracks the --parents paths that must be copied.
type required struct {
	paths []string
	found []bool
}

// see notes that the entry name (absolute in the source root) is copied.
func (r *required) see(name string) {
	for i, p := range r.paths {
		// BuildKit compares the strings: a required "/a/b" is found by
		// "/a/bc" too.
		if !r.found[i] && strings.HasPrefix(name, p) {
			r.found[i] = true
		}
	}
}

// check fails with ErrNotFound for the first required path not copied.
func (r *required) check() error {
	for i, p := range r.paths {
		if !r.found[i] {
			return fmt.Errorf("%q: %w", p, ErrNotFound)
		}
	}
	return nil
}

// Entry is one entry a copy reads from a match of a source.
type Entry struct {
	// Name is the entry as the copy names it: the match's name joined
	// with the entry's path below it.
	Name string
	// Path is where it is on disk.
	Path string
	Info fs.FileInfo
	// Copied is false for a directory the copy reads through without
	// copying it (include and exclude patterns leave it out).
	Copied bool
}

// Walk calls fn for what a copy of src (whose matches are resolved in
// srcRoot as ResolveSource does) with the --exclude patterns excludes
// reads, in the order the copy reads it: each match, every directory
// below it, and the other entries the copy copies. It is what an action
// key must hash. A match that does not exist is skipped (the copy
// reports it when that is an error).
func Walk(srcRoot string, src Source, excludes []string, fn func(Entry) error) error {
	sel, err := newSelector(src.Include, excludes)
	if err != nil {
		return err
	}
	matches, err := ResolveSource(srcRoot, src.Path)
	if err != nil {
		return err
	}
	for _, m := range matches {
		fi, err := os.Lstat(m.Path)
		if err != nil {
			continue
		}
		if err := walk(sel, m, m.Path, "", fi, matchInfo{}, fn); err != nil {
			return err
		}
	}
	return nil
}

func walk(sel *selector, m Match, p, rel string, fi fs.FileInfo, parent matchInfo, fn func(Entry) error) error {
	ok, info, err := sel.selects(rel, parent)
	if err != nil {
		return err
	}
	if !ok && !fi.IsDir() {
		return nil
	}
	if err := fn(Entry{Name: path.Join(m.Name, filepath.ToSlash(rel)), Path: p, Info: fi, Copied: ok}); err != nil {
		return err
	}
	if !fi.IsDir() {
		return nil
	}
	ents, err := os.ReadDir(p)
	if err != nil {
		return err
	}
	for _, e := range ents {
		efi, err := e.Info()
		if err != nil {
			return err
		}
		if err := walk(sel, m, filepath.Join(p, e.Name()), filepath.Join(rel, e.Name()), efi, info, fn); err != nil {
			return err
		}
	}
	return nil
}
