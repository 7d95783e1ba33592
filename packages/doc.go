// Package packages models a StageX package tree: the directories under
// packages/<stage>/<name>/, their package.toml files, the build arguments
// derived from them, the images they produce and how those images depend on
// each other.
//
// Vocabulary:
//
//   - stage: the group a package belongs to (bootstrap, core, pallet, user).
//     It is unrelated to a Containerfile build stage, which this package
//     calls a "Containerfile stage".
//   - package: one directory packages/<stage>/<name>/ holding a Containerfile
//     and a package.toml. Its ID is "<stage>-<name>" (core-llvm).
//   - source: one [sources.<key>] table: a file fetched from mirrors before
//     the build and verified against its sha256 hash.
//   - template: a {name} placeholder in a source's file or mirrors, expanded
//     from the version ({version}, {version_under}, ...), the format or the
//     file name.
//   - build args: the ARG values sxmake passes to every build of a package
//     (VERSION, per-source <KEY>_VERSION, SOURCE_DATE_EPOCH, ...).
//   - image: what a build produces. A package without subpackages is one
//     image, named like the package and built from the last Containerfile
//     stage. A package with subpackages is exactly one image per subpackage
//     x, named "<stage>-x" and built from the Containerfile stage
//     "package-x"; the list usually names the package itself (core-llvm is
//     the stage package-llvm of packages/core/llvm). Users refer to images
//     as "core-llvm", "stagex/core-llvm" or, when unique, the bare "llvm".
//   - dependency: an image another image needs, found as a stagex/<image>
//     reference (FROM or COPY --from) reachable from the image's
//     Containerfile stage.
//   - closure: an image set closed under dependencies, in topological order.
//
// StageX's generator (src/targets.py and src/common.py of a StageX
// checkout) is the reference for how package.toml is read: what it accepts,
// Load accepts with the same meaning (a package may have no version; a
// directory without a Containerfile or a package.toml is skipped), and
// build args are derived as it derives them, quirks included.
//
// Load reads and validates a whole tree. Errors in the input name the file
// and, when known, the line and column: "file:line:col: message", with file
// paths relative to the tree root.
package packages
