package engine

import (
	"context"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/rules"
	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// writeTree writes files (paths relative to the tree) into a new tree.
func writeTree(t *testing.T, files map[string]string) string {
	t.Helper()
	root := t.TempDir()
	for name, content := range files {
		p := filepath.Join(root, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return root
}

// platformsTree has a package built for every platform (core-mp) that
// needs a package built for amd64 only (core-one), so that builds for
// amd64 and arm64 share core-one's actions. Its steps are COPYs: no
// program runs, so arm64 needs no emulator.
func platformsTree(t *testing.T) string {
	files := map[string]string{
		"packages/core/one/package.toml": "[package]\nname = \"one\"\nversion = \"1\"\nplatforms = [\"linux/amd64\"]\n",
		"packages/core/one/Containerfile": "FROM scratch AS build\nCOPY a.txt /a.txt\n\n" +
			"FROM build AS package\nCOPY b.txt /b.txt\n",
		"packages/core/one/a.txt":       "a",
		"packages/core/one/b.txt":       "b",
		"packages/core/mp/package.toml": "[package]\nname = \"mp\"\nversion = \"1\"\n",
		"packages/core/mp/Containerfile": "FROM stagex/core-one AS package\nARG TARGETARCH\n" +
			"COPY <<EOF /arch\n${TARGETARCH}\nEOF\n",
	}
	for i := range 8 {
		name := string(rune('c' + i))
		files["packages/core/mp/Containerfile"] += "COPY <<EOF /" + name + "\n" + name + "\nEOF\n"
	}
	return writeTree(t, files)
}

// buildPlatformsAtOnce builds core-mp for amd64 and arm64 at once on one
// Builder made with opts, both reporting to events.
func buildPlatformsAtOnce(t *testing.T, tree, cacheDir string, events func(Event), opts ...Option) {
	t.Helper()
	sandboxtest.RequiresRoot(t)
	pt, err := packages.Load(tree)
	if err != nil {
		t.Fatal(err)
	}
	img, err := pt.Resolve("core-mp")
	if err != nil {
		t.Fatal(err)
	}
	c, err := cache.Open(cacheDir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	b := NewBuilder(pt, c, nil, opts...)
	var wg sync.WaitGroup
	for _, arch := range []string{"amd64", "arm64"} {
		plan, err := NewPlan(pt, []*packages.Image{img}, WithPlatform(rules.Platform{OS: "linux", Arch: arch}))
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			out := WithOutDir(filepath.Join(t.TempDir(), arch))
			if _, err := b.Build(context.Background(), plan, out, WithEvents(events)); err != nil {
				t.Errorf("%s: %v", arch, err)
			}
		})
	}
	wg.Wait()
}

// Builds on one Builder share its jobs: with WithJobs(1), two builds at
// once never run two actions at once.
func TestBuildsShareJobs(t *testing.T) {
	var mu sync.Mutex
	running, most := 0, 0
	jobs := func(ev Event) {
		mu.Lock()
		defer mu.Unlock()
		switch ev.Kind {
		case ActionStarted:
			running++
			most = max(most, running)
		case ActionDone, ActionFailed:
			running--
		}
	}
	buildPlatformsAtOnce(t, platformsTree(t), t.TempDir(), jobs, WithJobs(1))
	if most != 1 {
		t.Errorf("%d actions ran at once, want 1 (WithJobs(1))", most)
	}
}

// countingSink counts the results pushed to a remote, by key.
type countingSink struct {
	cache.Sink
	mu     sync.Mutex
	pushed map[cache.ActionKey]int
}

func (s *countingSink) PutResult(ctx context.Context, key cache.ActionKey, r cache.RemoteResult) error {
	s.mu.Lock()
	s.pushed[key]++
	s.mu.Unlock()
	return s.Sink.PutResult(ctx, key, r)
}

// Two builds at once on one Builder reach core-one's actions (a package
// for amd64 only) both; each action is pushed to a --cache-to remote once.
func TestBuildsPushSharedActionsOnce(t *testing.T) {
	sink := &countingSink{Sink: cache.NewDirRemote(t.TempDir()), pushed: map[cache.ActionKey]int{}}
	buildPlatformsAtOnce(t, platformsTree(t), t.TempDir(), func(Event) {}, WithCacheTo(sink, cache.ModeMax))
	// core-one: 2 COPYs; core-mp: 9 COPYs for each platform.
	if len(sink.pushed) != 2+2*9 {
		t.Errorf("%d actions pushed, want %d", len(sink.pushed), 2+2*9)
	}
	for k, n := range sink.pushed {
		if n != 1 {
			t.Errorf("action %s pushed %d times, want once", k, n)
		}
	}
}
