package engine

import (
	"context"
	"path/filepath"
	"testing"
)

// A stage 300 steps deep (WORKDIRs and COPYs, testdata/compat's core/deep)
// with a COPY at its top builds, and gives BuildKit v0.26.3's digest, as
// make compat checks. Every COPY mounts the layers below it: more than a
// page of overlay mount options holds by path, past about 85 layers at a
// cache path like the tests'.
func TestDeepStage(t *testing.T) {
	const buildkit = "sha256:c221400baee2172d5ab3cf76f41727f8938411491ee9f207449450de244ce408"
	tree := filepath.Join("..", "testdata", "compat")
	r := build(t, context.Background(), tree, t.TempDir(), []string{"core-deep"}, nil, WithOutDir(t.TempDir()))
	if r.err != nil {
		t.Fatal(r.err)
	}
	if got := r.digests["core-deep"]; got != buildkit {
		t.Errorf("core-deep: digest %s, BuildKit's is %s", got, buildkit)
	}
}
