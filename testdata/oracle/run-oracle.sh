#!/bin/sh
# run-oracle.sh builds fixtures with BuildKit v0.26.3 the way StageX does and
# extracts each resulting OCI layout.
#
# Usage:
#   run-oracle.sh setup                      build the oracle binaries only
#   run-oracle.sh OUTROOT FIXTURE_DIR...     build each fixture into
#                                            OUTROOT/<fixture>/ (an OCI layout,
#                                            plus "digest": the manifest line)
#
# The oracle (a throwaway Go module, its binaries and buildkitd's state) lives
# in $SXMAKE_ORACLE_DIR, default $XDG_CACHE_HOME/sxmake-oracle or
# ~/.cache/sxmake-oracle; nothing is written into the repository. Re-running
# reuses the binaries when they carry BuildKit's module hash (see
# BUILDKIT_SUM), so CI may keep them in a directory of its own. buildkitd needs root and runc on PATH (apt: runc);
# each run starts one with an empty state and stops it on exit. A fixture
# is built once a run, dependencies first.
#
# Each fixture directory holds a Containerfile and oracle.conf, which sets
#   NAME=<stage>-<name>   image name (also the distribution.source annotation)
#   VERSION=<version>     build arg and org.opencontainers.image.version
#   TARGET=<stage>        --target (default: package)
#   PLATFORM=<os/arch>    --platform (default: linux/amd64)
#   DEPS="<fixture>..."   fixtures built first and offered as the build
#                         context stagex/<their NAME> (oci-layout://)
# and optionally setup.sh, run in a scratch copy of the fixture before the
# build to create what git cannot store (modes, hardlinks, empty dirs).
set -eu

BUILDKIT_VERSION=v0.26.3
# The module's hash (go.sum's h1:, from the Go checksum database), which Go
# records in the binaries it builds from it: binaries kept from an earlier
# run are used only when they carry it.
BUILDKIT_SUM=h1:D+ruZVAk/3ipRq5XRxBH9/DIFpRjSlTtMbghT5gQP9g=
ORACLE_DIR=${SXMAKE_ORACLE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/sxmake-oracle}
BIN=$ORACLE_DIR/bin
SOCK=$ORACLE_DIR/bk.sock

log() { echo "run-oracle: $*" >&2; }

# built_ok NAME: $BIN/NAME was built from BuildKit's cmd/NAME at
# BUILDKIT_VERSION with the module hash BUILDKIT_SUM.
built_ok() {
	go version -m "$BIN/$1" 2>/dev/null | awk -v p="github.com/moby/buildkit/cmd/$1" -v v="$BUILDKIT_VERSION" -v s="$BUILDKIT_SUM" '
		$1 == "path" && $2 == p { path = 1 }
		$1 == "mod" && $2 == "github.com/moby/buildkit" && $3 == v && $4 == s { mod = 1 }
		END { exit !(path && mod) }'
}

setup() {
	mkdir -p "$ORACLE_DIR/mod" "$BIN"
	if built_ok buildkitd && built_ok buildctl; then
		return
	fi
	log "building BuildKit $BUILDKIT_VERSION in $ORACLE_DIR (takes minutes)"
	(
		cd "$ORACLE_DIR/mod"
		printf 'module oracle\n\ngo 1.26\n' >go.mod
		GOFLAGS=-mod=mod go get \
			github.com/moby/buildkit/cmd/buildkitd@$BUILDKIT_VERSION \
			github.com/moby/buildkit/cmd/buildctl@$BUILDKIT_VERSION
		GOFLAGS=-mod=mod go build -o "$BIN/buildkitd" github.com/moby/buildkit/cmd/buildkitd
		GOFLAGS=-mod=mod go build -o "$BIN/buildctl" github.com/moby/buildkit/cmd/buildctl
	)
	echo "$BUILDKIT_VERSION" >"$BIN/version"
}

# Each run starts a daemon with an empty state: BuildKit's output depends on
# its content store's history (containerd's exporter copies the
# distribution.source labels that an earlier oci-layout build context left
# on a blob into index.json), so a reused daemon would not be reproducible.
DAEMON_PID=
BUILT=
start_daemon() {
	if "$BIN/buildctl" --addr "unix://$SOCK" debug workers >/dev/null 2>&1; then
		log "a buildkitd already answers on $SOCK: stop it first"
		exit 1
	fi
	command -v runc >/dev/null || { log "runc not on PATH (apt-get install runc)"; exit 1; }
	rm -f "$SOCK"
	rm -rf "$ORACLE_DIR/root"
	setsid "$BIN/buildkitd" --root "$ORACLE_DIR/root" --addr "unix://$SOCK" \
		--oci-worker-snapshotter overlayfs >"$ORACLE_DIR/buildkitd.log" 2>&1 &
	DAEMON_PID=$!
	trap stop_daemon EXIT INT TERM
	i=0
	until "$BIN/buildctl" --addr "unix://$SOCK" debug workers >/dev/null 2>&1; do
		i=$((i + 1))
		if [ $i -gt 100 ] || ! kill -0 "$DAEMON_PID" 2>/dev/null; then
			log "buildkitd did not start; see $ORACLE_DIR/buildkitd.log"
			exit 1
		fi
		sleep 0.2
	done
}

stop_daemon() {
	if [ -n "$DAEMON_PID" ]; then
		kill "$DAEMON_PID" 2>/dev/null || true
		wait "$DAEMON_PID" 2>/dev/null || true
		DAEMON_PID=
	fi
}

# build_fixture OUTROOT FIXTURE_DIR
build_fixture() {
	local out src fx work dest deps dep dargs n idx
	out=$1
	src=$2
	fx=$(basename "$src")
	case " $BUILT " in *" $fx "*) return ;; esac # each fixture once a run
	NAME= VERSION= TARGET=package DEPS=
	# oracle.conf is plain KEY=VALUE lines written by us.
	. "$src/oracle.conf"
	# Dependencies (sibling fixtures) are built first, into OUTROOT too,
	# and offered as stagex/<name> the way StageX offers built packages.
	deps=$DEPS
	dargs=
	n=0
	for dep in $deps; do
		build_fixture "$out" "$(dirname "$src")/$dep"
		# oracle.conf of the dependency gives its image name.
		NAME=
		. "$(dirname "$src")/$dep/oracle.conf"
		idx=$(grep -o '"digest":"sha256:[0-9a-f]*"' "$out/$dep/index.json" | head -n 1 | cut -d'"' -f4)
		n=$((n + 1))
		dargs="$dargs --oci-layout dep$n=$out/$dep --opt context:stagex/$NAME=oci-layout://dep$n@$idx"
	done
	NAME= VERSION= TARGET=package DEPS= PLATFORM=linux/amd64
	. "$src/oracle.conf"
	work=$(mktemp -d)
	cp -a "$src/." "$work/"
	# A git checkout's modes depend on the umask and its owner on the user:
	# make both deterministic (0644/0755, root) as the Go tests do.
	chmod -R u+rwX,go+rX,go-w "$work"
	chown -R 0:0 "$work"
	if [ -f "$work/setup.sh" ]; then
		(cd "$work" && sh ./setup.sh)
	fi
	dest=$out/$fx
	rm -rf "$dest"
	mkdir -p "$dest"
	log "building $fx ($NAME, target $TARGET)"
	# shellcheck disable=SC2086 # dargs is a list of words
	env SOURCE_DATE_EPOCH=1 TZ=UTC LANG=C.UTF-8 LC_ALL=C \
		"$BIN/buildctl" --addr "unix://$SOCK" build --frontend dockerfile.v0 \
		--local context="$work" --local dockerfile="$work" \
		--opt filename=Containerfile \
		--opt platform="$PLATFORM" --opt target="$TARGET" \
		--opt build-arg:SOURCE_DATE_EPOCH=1 \
		--opt build-arg:BUILDKIT_MULTI_PLATFORM=1 \
		--opt build-arg:BUILDKIT_DOCKERFILE_CHECK="skip=FromPlatformFlagConstDisallowed;error=true" \
		--opt build-arg:VERSION="$VERSION" \
		$dargs \
		--no-cache \
		--output "type=oci,name=$NAME,rewrite-timestamp=true,force-compression=true,annotation.org.opencontainers.image.version=$VERSION,annotation.org.opencontainers.image.created=1970-01-01T00:00:01Z,annotation.containerd.io/distribution.source.docker.io=stagex/$NAME,tar=true,dest=$work/out.tar" \
		>"$work/build.log" 2>&1 || {
		cat "$work/build.log" >&2
		rm -rf "$work"
		exit 1
	}
	tar -C "$dest" -xf "$work/out.tar"
	sed -n 's/.*exporting manifest sha256:\([0-9a-f]\{64\}\).*/\1/p' "$work/build.log" |
		head -n 1 | sed "s/\$/ $NAME/" >"$dest/digest"
	rm -rf "$work"
	BUILT="$BUILT $fx"
}

if [ $# -eq 0 ]; then
	sed -n '2,/^set -eu/{/^set -eu/d;s/^# \{0,1\}//p;}' "$0" >&2
	exit 2
fi
setup
[ "$1" = setup ] && exit 0
outroot=$1
shift
mkdir -p "$outroot"
start_daemon
for f in "$@"; do
	build_fixture "$outroot" "${f%/}"
done
