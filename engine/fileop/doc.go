// Package fileop applies Containerfile COPY and ADD steps to a directory,
// byte for byte as BuildKit v0.26.3 does (its Dockerfile frontend's
// dispatchCopy, its file backend, github.com/tonistiigi/fsutil's copy and
// moby/go-archive's Untar). The engine calls Apply on a step's new root
// filesystem and later turns the change into a layer.
//
// # Vocabulary
//
//   - source root: the directory sources are read from: the build context,
//     a named local context (fetch), or a stage's or image's rootfs. A
//     local source root is one BuildKit receives from its client; its
//     files count as owned by 0:0.
//   - source: one path of the instruction, relative to the source root,
//     maybe with wildcards. A match is one path a source resolves to.
//   - heredoc: an inline source, a file made from the instruction's text.
//   - destination root: the root filesystem the step writes into.
//   - dest: the absolute destination path inside the destination root; it
//     is "spelt as a directory" when it ends in "/" or "/.".
//   - archive: for ADD, a regular file whose content is a tar stream, plain
//     or compressed (gzip, bzip2, xz, zstd), detected by content alone.
//
// # Semantics (BuildKit v0.26.3)
//
// Resolution. A source and dest are resolved with symlinks followed but
// bounded to their root, as in a chroot (cyphar/filepath-securejoin does
// the same as continuity's RootPath). A source's top-level symlink is thus
// followed, and the copy is named after the source, not the link target.
// Inside a copied tree, symlinks are copied as symlinks and existing
// symlinks in the destination are never followed: a symlink where a
// directory is to be merged is an error ("cannot copy to non-directory").
//
// Destination. The parent of dest (dest itself when spelt as a directory)
// is created first. A file goes inside dest when dest is an existing
// directory, else to dest itself (replacing a file there). A directory's
// contents are merged into dest, which is created if missing. There is
// no "multiple sources need a directory" check: BuildKit copies each
// source in turn, so `COPY a b /x` with /x missing leaves /x as a copy of b.
//
// Wildcards. A source with *, ? or [ matches names component by component
// (filepath.Match); matches are copied in lexical order, each named after
// its own base name. A wildcard that matches nothing copies nothing and is
// not an error (BuildKit sets AllowEmptyWildcard); a missing directory
// before the wildcard is (`lstat /dir: no such file or directory`). A
// source without wildcards that does not exist is ErrNotFound.
//
// --exclude and --parents. Entries below a match (never the match
// itself, so not the files a wildcard names) are selected as fsutil's
// copier selects them, with moby/patternmatcher: the path relative to the
// match is matched against --parents' include pattern (when there is one)
// and the --exclude patterns; a directory's result carries to what it
// holds unless a later "!" pattern says otherwise. A directory that is
// left out is still read, and created (as its source directory is) once
// something in it is copied. --parents copies "DIR/./PATTERN" as DIR with
// PATTERN included (DIR is the root without "/./"), so the path under DIR
// is kept; a PATTERN without wildcards must be found, or the copy fails
// with ErrNotFound. Walk lists what a copy reads, for action keys.
//
// Metadata. Each copied entry keeps its source's mode (set-id and sticky
// bits included), uid/gid (0:0 for local sources), atime and mtime (to
// the nanosecond; the engine's rewrite-timestamp clamps later) and xattrs
// (failures ignored, as BuildKit only logs them). --chmod replaces the mode
// of files, directories and devices alike (not symlinks); --chown sets
// every copied entry's owner. The top-level directory of a directory
// source is special: when dest already exists its owner and mode are kept
// and only its atime/mtime are set from the source; when dest is created it
// gets 0755 (or the --chmod octal value), root (or --chown) and the
// source's times. Parents created on the way get 0755 (or the --chmod
// octal value's permission bits: buildkitd runs with umask 0), root or
// --chown, and the current time.
// Hard links are preserved within one match, not across matches.
// Devices and fifos are recreated; fsutil masks the file type with
// ^S_IFSOCK, so a socket becomes an empty regular file and a block device
// a character device, and so do we.
//
// Heredocs are written with mode 0644, owner 0:0 and mtime Heredoc.ModTime
// (BuildKit: the build time) before being copied like a file; --chmod and
// --chown apply.
//
// ADD. A match that is an archive is extracted into dest (created 0755,
// owned by root or --chown) instead of copied; see Extract for the entry
// semantics (header modes and owners, --chmod ignored, --chown applied,
// chroot-bounded paths). Anything else is copied as COPY would.
package fileop
