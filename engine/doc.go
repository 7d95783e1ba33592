// Package engine turns a package tree into builds: it plans the action
// graph of every image a target needs, keys each action by the content of
// its inputs, looks results up in the cache and runs what is missing.
//
// Vocabulary:
//
//   - plan: every image of a closure, dependencies first, each with its
//     evaluated Containerfile (rules.Build). Planning runs nothing.
//   - step: one evaluated Containerfile instruction (rules.Step).
//   - action: a step bound to its inputs; the unit that is cached and run.
//   - key: the BLAKE3 hash of an action's labelled inputs (ActionKey).
//   - digest, diffID: content hashes of blobs and uncompressed layers.
//   - snapshot: an unpacked filesystem state, the input of the next action.
//   - published image: an image of the tree as its registry publishes it,
//     pulled by Preseed with the definition it was published for; a build
//     takes it instead of building it while the definition holds
//     (published.go).
//   - exported layer: a layer of an image the build writes. Only those are
//     gzipped, as BuildKit's exporter does; a layer of a stage no image
//     exports stays the tar it was diffed into (its digest is its diffID),
//     gzipped later if an image or a remote cache takes it after all.
//   - log: what a running action prints, streamed to a file of the cache
//     and kept as a blob once the action ends; the build record of each
//     image (record.go) names the log of each of its steps, for sxmake log.
//   - progress: BuildProgress events say how far a build is and estimate
//     the time left from the recorded durations of the actions' last runs
//     (estimate.go); the report holds when each action ran (ActionTiming).
package engine
