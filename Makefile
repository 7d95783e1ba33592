# sxmake: a content-addressed, Make-style build engine for StageX trees.
# `make demo` and `make test` install their own system dependencies.

GO        ?= go
export PATH := /usr/local/go/bin:$(PATH)
BIN       := bin/sxmake
DEMO_TREE := testdata/stagex
DEMO      := user-hello
FUZZTIME  ?= 60s
# sxbench's sources1g compares with sxmake as it was before it kept file
# hashes (issue 18): the main commit that work started from.
BENCH_BEFORE ?= 019bb59
# demo-cold and demo-cached compare with sxmake before logs went to disk
# (issue 16): the main commit that work started from.
BENCH_LOGS_BEFORE ?= cfec968
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
# The sandbox's seccomp profile needs libseccomp (installed by deps).
export GOFLAGS := -tags=seccomp
# file:// mirrors are read only from the directories named here: the seeds
# of the test trees (Debian's static busybox, and the arm64 one deps
# extracts).
export SXMAKE_FILE_MIRRORS := /bin:/usr/local/share/sxmake

.PHONY: all deps build test lint fuzz bench compat demo stagex stagex-stage0 clean

all: build

deps:
	@.ci/install-deps

build: deps
	$(GO) build -o $(BIN) ./cmd/sxmake

# The whole suite. Root-only tests fail (not skip) when SXMAKE_TEST_ROOT=1.
test: deps build lint
	$(GO) test -count=1 -timeout 40m ./...

lint:
	$(GO) vet ./...
	$(GO) run $(STATICCHECK) ./...

# Every fuzz target for FUZZTIME each (go test runs one target at a time).
fuzz: deps
	@set -e; for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
	    echo "== $$pkg $$f"; \
	    $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
	  done; \
	done

# Benchmarks: Go micro-benchmarks, then whole commands against their peers
# (runc, BuildKit, and sxmake as it was at a git revision) in the same
# run. Results go in BENCHMARKS.md.
bench: deps build
	$(GO) test -run '^$$' -bench . -benchtime 10x -count 5 ./... | tee bench.out
	$(GO) run ./cmd/sxbench -sxmake $(BIN) -before-rev $(BENCH_BEFORE) -logs-before-rev $(BENCH_LOGS_BEFORE) | tee -a bench.out
	$(GO) run ./cmd/sandbox-bench -n 50 | tee -a bench.out

# Every image of the demo tree and of the compat corpus, built by sxmake and
# by BuildKit v0.26.3 with StageX's flags: the manifest digests must be
# identical; then the multi-platform tree for amd64 and arm64 (RUN steps
# under qemu), comparing the indexes that list both; then the Dockerfile
# checks of every image of the check corpus, with StageX's setting and
# without it: the findings must be identical.
compat: deps build
	for t in $(DEMO_TREE) testdata/compat; do $(GO) run ./cmd/sxcompat -C $$t -sxmake $(BIN) || exit 1; done
	$(GO) run ./cmd/sxcompat -C testdata/multiarch -platform linux/amd64,linux/arm64 -sxmake $(BIN)
	$(GO) run ./cmd/sxcompat -check -C testdata/checks -variant tree -variant none -sxmake $(BIN)

# StageX's own tree (STAGEX=DIR, a checkout whose sources `sxmake fetch`
# fetched; default: the StageX fixture unpacked into a temporary
# directory): sxmake ls, every image's rule against StageX's targets.mk,
# -n of every image, then core-profile built offline, rebuilt from the
# cache running nothing, and verified against digests/core.txt.
# stagex-stage0 does the same for bootstrap-stage0 (linux/386: about 13
# minutes a build under qemu-i386). See .ci/stagex.
stagex: build
	.ci/stagex

stagex-stage0: build
	.ci/stagex --stage0

# Builds sxmake and runs its main job on the demo tree: builds the demo
# target and everything it needs, printing each image's digest (the
# target's last).
demo: build
	$(BIN) -C $(DEMO_TREE) $(DEMO)

clean:
	rm -rf bin bench.out $(DEMO_TREE)/out
