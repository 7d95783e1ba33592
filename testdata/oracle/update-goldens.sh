#!/bin/sh
# update-goldens.sh rebuilds every fixture with the BuildKit oracle and
# rewrites golden/<fixture>/ from the result: the whole OCI layout BuildKit
# wrote (oci-layout, index.json, blobs/sha256/*: nested index, manifest,
# config, layers), "digest" (the digests-file line of the per-platform
# manifest) and "layers.txt" (tar -tv of each layer, for reading diffs).
#
# Usage: update-goldens.sh [FIXTURE...]   (default: all of fixtures/)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
cd "$here"
if [ $# -eq 0 ]; then
	set -- $(ls fixtures)
fi
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
dirs=
for f in "$@"; do
	dirs="$dirs fixtures/$f"
done
# shellcheck disable=SC2086
./run-oracle.sh "$out" $dirs
for f in "$@"; do
	g=golden/$f
	rm -rf "$g"
	mkdir -p "$g"
	cp -r "$out/$f/." "$g/"
	# Layers in manifest order: the manifest's digests after the config's.
	mfst=$g/blobs/sha256/$(cut -d' ' -f1 "$g/digest")
	: >"$g/layers.txt"
	for d in $(grep -o '"sha256:[0-9a-f]*"' "$mfst" | tr -d '"' | sed 1d); do
		echo "# $d" >>"$g/layers.txt"
		TZ=UTC tar --numeric-owner --full-time -tvzf "$g/blobs/sha256/${d#sha256:}" >>"$g/layers.txt"
	done
	echo "update-goldens: $g: $(cat "$g/digest")"
done
