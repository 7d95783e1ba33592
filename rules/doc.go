// Package rules turns a Containerfile into typed build steps with the
// semantics of BuildKit v0.26.3's Dockerfile frontend. It is pure: bytes
// in, steps out; it never touches the file system, hashes or runs anything.
//
// Vocabulary:
//
//   - file: a parsed Containerfile (File), the result of Parse. Parse
//     checks syntax only: line continuations, comments, parser directives
//     (# syntax=, # escape=), heredocs, flags and argument counts.
//   - instruction: one logical line as written (Instruction), with its
//     unexpanded arguments, flags and heredoc bodies.
//   - global arg: an ARG before the first FROM; usable only in FROM lines
//     and as the value of a re-declared ARG inside a stage.
//   - build arg: a value given from outside (EvalOptions.BuildArgs); it
//     overrides an ARG default, but only for declared ARGs.
//   - stage: the instructions from one FROM to the next. A stage's base is
//     scratch, an earlier stage, or an external image (or named context).
//   - target: the stage being built ("" is the last one); only the stages
//     it needs through FROM and COPY --from are evaluated.
//   - image ref: an external image a file uses (ImageRefs), the way one
//     package depends on another.
//   - named context: a build context given by name (StageX's "fetch"),
//     usable with COPY --from and FROM instead of an image.
//   - expansion: BuildKit's shell-like word processing ($V, ${V:-w},
//     ${V#p}, quotes, escapes) applied to the instructions BuildKit
//     expands: ADD, COPY, ENV, EXPOSE, FROM, LABEL, STOPSIGNAL, USER,
//     VOLUME, WORKDIR and ARG defaults. RUN, CMD, ENTRYPOINT, SHELL and
//     HEALTHCHECK text is never expanded by the frontend.
//   - step: one evaluated instruction (Step): expanded values, resolved
//     paths, the environment and working directory it sees, the image
//     configuration after it, and the history text (CreatedBy) BuildKit
//     writes for it. Evaluate turns a file into steps (a Build).
//
// Positions are 1-based lines and byte columns; every error returned by
// this package is an *Error whose text reads "file:line:col: message".
package rules
