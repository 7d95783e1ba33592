package fileop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	securejoin "github.com/cyphar/filepath-securejoin"
)

// ErrNotFound reports a source path without wildcards that does not exist
// in its source root. The message reads like BuildKit's: `"/x": not found`.
var ErrNotFound = errors.New("not found")

// Copy is one COPY or ADD step: where the sources are, where they go and
// how their metadata changes. The zero value of each option means "as
// BuildKit does without the flag".
type Copy struct {
	// SrcRoot is the directory that holds the sources: the build context,
	// a named local context such as `fetch`, or a stage's or image's
	// rootfs. Sources never resolve outside it.
	SrcRoot string
	// Local says SrcRoot is a local context sent by the client. BuildKit's
	// client resets the uid and gid of such files to 0:0, so with Local
	// every source entry counts as owned by 0:0 whatever it is on disk.
	// Leave it false for stage and image roots, whose ownership is kept.
	Local bool
	// Sources are source paths relative to SrcRoot ("/" and ".." cannot
	// leave it). They may hold wildcards (*, ?, [...], \ escapes), which
	// match names with filepath.Match, component by component. A wildcard
	// matching nothing copies nothing and is not an error; a path without
	// wildcards that does not exist is ErrNotFound. With --parents a
	// source says what of its matches is copied (Source.Include).
	Sources []Source
	// Excludes are the --exclude patterns: an entry below a match (not
	// the match itself) that matches one is not copied (see selector).
	Excludes []string
	// Heredocs are inline sources, copied after Sources.
	Heredocs []Heredoc
	// Dest is the absolute destination path inside the destination root,
	// already joined to WORKDIR. A trailing "/" or "/." means a directory,
	// as does DestIsDir.
	Dest      string
	DestIsDir bool
	// Chmod is the --chmod value as written ("" for none), see ParseChmod.
	Chmod string
	// Chown is the --chown value as written ("" for none), see
	// ResolveChown. Names are looked up in the destination root.
	Chown string
	// Add makes this an ADD: a regular file whose content is a tar archive,
	// plain or compressed with gzip, bzip2, xz or zstd, is extracted into
	// Dest instead of copied. Other files (zip, text, ...) are copied.
	// Heredocs are never extracted.
	Add bool
}

// Heredoc is an inline source (`COPY <<EOF /dest`). BuildKit writes it as a
// file named Name, mode 0644, owner 0:0, then copies it like any file.
type Heredoc struct {
	Name string
	Data []byte
	// ModTime is the file's mtime. BuildKit uses the time of the build
	// (later clamped by rewrite-timestamp); the zero value means time.Now.
	ModTime time.Time
}

// Apply performs op onto the directory destRoot, the root filesystem of the
// step being built, with the semantics of BuildKit v0.26.3's Dockerfile
// frontend and file backend (github.com/tonistiigi/fsutil's copy and
// moby/go-archive's Untar). Sources are copied one after the other, in
// order, then heredocs.
//
// Paths inside destRoot are resolved with its symlinks followed but bounded
// to destRoot, as in a chroot; nothing is ever written outside destRoot.
// Apply is not atomic: on error, destRoot may hold part of the result.
// destRoot must not change under Apply's feet.
//
// Apply needs root privileges to set ownership and create devices, as
// BuildKit does.
func Apply(ctx context.Context, destRoot string, op Copy) error {
	destRoot, err := filepath.Abs(destRoot)
	if err != nil {
		return err
	}
	var chmod *Chmod
	if op.Chmod != "" {
		if chmod, err = ParseChmod(op.Chmod); err != nil {
			return err
		}
	}
	var chown *Owner
	if op.Chown != "" {
		o, err := ResolveChown(destRoot, op.Chown)
		if err != nil {
			return fmt.Errorf("resolving --chown=%s: %w", op.Chown, err)
		}
		chown = &o
	}
	srcRoot, err := filepath.Abs(op.SrcRoot)
	if err != nil {
		return err
	}
	a := &applier{destRoot: destRoot, srcRoot: srcRoot, op: op, chmod: chmod, chown: chown}
	if err := a.checkSources(); err != nil {
		return err
	}
	for _, src := range op.Sources {
		if err := a.copySource(ctx, src); err != nil {
			return err
		}
	}
	for _, h := range op.Heredocs {
		if err := a.copyHeredoc(ctx, h); err != nil {
			return err
		}
	}
	return nil
}

// applier carries one Apply's resolved options.
type applier struct {
	destRoot string
	srcRoot  string
	op       Copy
	chmod    *Chmod
	chown    *Owner
}

// destDirForm reports whether Dest names a directory by its spelling.
func (a *applier) destDirForm() bool {
	d := a.op.Dest
	return a.op.DestIsDir || strings.HasSuffix(d, "/") || strings.HasSuffix(d, "/.")
}

// cleanDest is Dest as an absolute clean path.
func (a *applier) cleanDest() string {
	return path.Join("/", a.op.Dest)
}

// checkSources fails with ErrNotFound if a source without wildcards does
// not exist. BuildKit finds this while computing the step's cache key,
// before copying anything.
func (a *applier) checkSources() error {
	for _, s := range a.op.Sources {
		src := path.Join("/", s.Path)
		if containsWildcards(src) {
			continue
		}
		p, err := securejoin.SecureJoin(a.srcRoot, src)
		if err != nil {
			return err
		}
		if _, err := os.Lstat(p); err != nil {
			if errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
				return fmt.Errorf("%q: %w", src, ErrNotFound)
			}
			return err
		}
	}
	return nil
}

// copySource copies (or, for ADD, maybe extracts) one source, then checks
// that what --parents requires was copied.
func (a *applier) copySource(ctx context.Context, src Source) error {
	sel, err := newSelector(src.Include, a.op.Excludes)
	if err != nil {
		return err
	}
	matches, err := ResolveSource(a.srcRoot, src.Path)
	if err != nil {
		return err
	}
	req := &required{paths: src.Required, found: make([]bool, len(src.Required))}
	for _, m := range matches {
		if a.op.Add {
			ok, err := a.unpack(ctx, m.Path)
			if err != nil {
				return fmt.Errorf("extracting %s: %w", m.Name, err)
			}
			if ok {
				continue
			}
		}
		c := a.newCopier(a.op.Local, sel, m.Name, req)
		if err := c.copyTop(ctx, m.Path, path.Base(m.Name)); err != nil {
			return err
		}
	}
	return req.check()
}

// copyHeredoc writes h to a scratch directory, as BuildKit's Mkfile does,
// and copies it from there.
func (a *applier) copyHeredoc(ctx context.Context, h Heredoc) error {
	if h.Name == "" || strings.Contains(h.Name, "/") || h.Name == "." || h.Name == ".." {
		return fmt.Errorf("heredoc name %q: must be a plain file name", h.Name)
	}
	dir, err := os.MkdirTemp("", "sxmake-heredoc-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	p := filepath.Join(dir, h.Name)
	if err := os.WriteFile(p, h.Data, 0o644); err != nil {
		return err
	}
	if err := os.Chmod(p, 0o644); err != nil {
		return err
	}
	mt := h.ModTime
	if mt.IsZero() {
		mt = time.Now()
	}
	if err := os.Chtimes(p, mt, mt); err != nil {
		return err
	}
	// The scratch file belongs to BuildKit's root: treat it as 0:0. The
	// --exclude patterns apply to it too, but never to a source itself.
	c := a.newCopier(true, &selector{}, "/"+h.Name, &required{})
	return c.copyTop(ctx, p, h.Name)
}
