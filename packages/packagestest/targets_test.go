package packagestest

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// A rule in the shape src/targets.py writes (tabs, continuations, "$$",
// quotes, Make variables), trimmed.
const targetsSample = `
.PHONY: llvm core-llvm
llvm: out/core-llvm/index.json
out/core-llvm/index.json: \
	packages/core/llvm/Containerfile\
	packages/core/llvm/package.toml  \
	out/core-musl/index.json \
	out/core-musl/index.json
	rm -rf out/core-llvm && \
	 ( [ -z "$$(ls -A fetch/core/llvm)" ] || \
	   cp -lR fetch/core/llvm/* packages/core/llvm/fetch ) && \
	$(BUILDER) \
	  build \
	  --ulimit nofile=2048:16384 \
	  --provenance=false \
	  --build-arg "BUILDKIT_DOCKERFILE_CHECK=skip=A;error=true" \
	  --build-context stagex/core-musl=oci-layout://./out/core-musl \
	  --target package-llvm \
	  --build-arg 'QUOTED=a b' \
	  $(EXTRA_ARGS) \
	  $(NOCACHE_FLAG) \
	  --platform=$(PLATFORM) \
	  -f packages/core/llvm/Containerfile \
	  packages/core/llvm \
	| tar -C out/core-llvm -mx
	
	$(if $(filter $(IMPORT),1),$(call import,core,llvm,21.1.8),)

out/core-musl/index.json: \
	packages/core/musl/Containerfile
	$(BUILDER) build --platform=linux/386 packages/core/musl | tar -x
`

func TestParseTargets(t *testing.T) {
	rules, err := ParseTargets(strings.NewReader(targetsSample))
	if err != nil {
		t.Fatal(err)
	}
	want := []Rule{
		{
			Image: "core-llvm", Line: 4,
			Deps:  []string{"core-musl", "core-musl"},
			Files: []string{"packages/core/llvm/Containerfile", "packages/core/llvm/package.toml"},
			Flags: []Flag{
				{"--ulimit", "nofile=2048:16384"},
				{"--provenance", "false"},
				{"--build-arg", "BUILDKIT_DOCKERFILE_CHECK=skip=A;error=true"},
				{"--build-context", "stagex/core-musl=oci-layout://./out/core-musl"},
				{"--target", "package-llvm"},
				{"--build-arg", "QUOTED=a b"},
				{"--platform", "linux/amd64"},
				{"-f", "packages/core/llvm/Containerfile"},
			},
			Args: []string{"packages/core/llvm"},
		},
		{
			Image: "core-musl", Line: 29,
			Files: []string{"packages/core/musl/Containerfile"},
			Flags: []Flag{{"--platform", "linux/386"}},
			Args:  []string{"packages/core/musl"},
		},
	}
	if diff := cmp.Diff(want, rules); diff != "" {
		t.Errorf("rules (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]string{"core-musl"}, rules[0].UniqueDeps()); diff != "" {
		t.Errorf("UniqueDeps (-want +got):\n%s", diff)
	}
	if _, err := ParseTargets(strings.NewReader("out/x/index.json:\n\t$(BUILDER) build $(UNKNOWN) .\n")); err == nil {
		t.Errorf("an unknown Make variable was accepted")
	}
}
