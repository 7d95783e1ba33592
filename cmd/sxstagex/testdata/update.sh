#!/bin/sh
# Regenerates the golden rules of cmd/sxstagex's tests: runs StageX's own
# generator (src/targets.py of the release in the StageX fixture) on each
# of our package trees and keeps the rules it writes, as JSON. Needs
# python3 (3.11 or later) and git. From the repository root:
#
#	sh cmd/sxstagex/testdata/update.sh
set -eu
fixture=${SXMAKE_STAGEX_FIXTURE:-}
for d in "$fixture" ../shared/stagex /work/shared/stagex; do
	if [ -n "$d" ] && [ -f "$d/stagex-2026.03.0.tar.gz" ]; then fixture=$d; break; fi
done
[ -f "$fixture/stagex-2026.03.0.tar.gz" ] || { echo "update.sh: StageX fixture not found (set SXMAKE_STAGEX_FIXTURE)" >&2; exit 1; }
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir "$work/gen" && tar -xzf "$fixture/stagex-2026.03.0.tar.gz" -C "$work/gen" stagex/src/targets.py stagex/src/common.py
for pair in tree:packages/testdata/tree stagex:testdata/stagex compat:testdata/compat multiarch:testdata/multiarch; do
	name=${pair%%:*} tree=${pair#*:}
	mkdir "$work/$name"
	cp -r "$tree/packages" "$work/gen/stagex/src" "$work/$name/"
	(cd "$work/$name" && git init -q && git add -A &&
		git -c user.name=x -c user.email=x@x commit -qm x &&
		python3 src/targets.py > targets.mk)
	go run ./cmd/sxstagex -dump "$work/$name/targets.mk" > "cmd/sxstagex/testdata/$name.json"
	echo "cmd/sxstagex/testdata/$name.json: $(grep -c '"Image"' "cmd/sxstagex/testdata/$name.json") rules"
done
