// Package cache is what sxmake keeps between builds, all under one cache
// directory (--cache-dir, default $XDG_CACHE_HOME/sxmake):
//
//	content/     the content store: blobs (layers, logs) by SHA-256
//	actions.db   the action cache (bbolt): results by action key, and the
//	             hashes of files outside the cache (FileHashes)
//	snapshots/   unpacked layers, one directory per chain ID
//	images/      imported images (sxmake import): <name>.json each (Images)
//	logs/        the output of running actions and the record of the last
//	             build of each image, read without the lock (Logs)
//	published/   images pulled by sxmake preseed, with the definition each
//	             was published for: <platform>/<name>.json (Published)
//
// Vocabulary:
//
//   - digest: the SHA-256 of a blob's bytes (Digest), its name in the
//     content store and in OCI layouts. Every read verifies it: a blob that
//     no longer matches is reported (ErrCorrupt), removed and never used.
//   - action key: the BLAKE3 hash of an action's labelled inputs
//     (ActionKey), computed by the engine.
//   - result: what an action produced (Result): its layer blob and diffID,
//     its log blob, how long it took, when it was made and last used.
//   - record: the key and labelled inputs of the last run of a named
//     action (Record), kept so that --explain can say what changed.
//   - build record: the steps of the last build of an image on a
//     platform, their status, times and logs (BuildRecord), for sxmake
//     log.
//   - chain ID: the identity of a stack of layers by content (ChainID).
//   - snapshot: the unpacked form of a stack's top layer, in overlayfs
//     upper-dir form (the bottom layer's as a plain directory), usable as
//     an overlay lower dir.
//   - file hash: the SHA-256 of a file of a tree (a fetched source, a
//     context file), kept with the file's identity on disk (FileHashes), so
//     that a build reads only the files that changed since.
//   - remote: a cache shared between machines (Source, Sink; remote.go):
//     a directory, a Bazel HTTP cache or an OCI registry. Nothing read
//     from one is used before it verifies (Pull).
//
// A hit in the action cache does not promise that the blobs it names are
// still stored: callers check (ContentStore.Size) and treat a missing blob
// as a miss.
package cache
