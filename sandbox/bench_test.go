package sandbox_test

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/stagex/sxmake/sandbox"
	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// BenchmarkRunTrue measures the per-step overhead: `true` in a busybox
// rootfs through sandbox.Run, and through `runc run` (Debian's runc, the
// peer) of the same rootfs. cmd/sandbox-bench prints the medians and ratio.
func BenchmarkRunTrue(b *testing.B) {
	sandboxtest.RequiresRoot(b)
	root := sandboxtest.BusyboxRootfs(b)
	b.Run("sandbox", func(b *testing.B) {
		s, err := sandbox.New(filepath.Join(b.TempDir(), "state"))
		if err != nil {
			b.Fatal(err)
		}
		tmp := b.TempDir()
		for i := 0; b.Loop(); i++ {
			upper := filepath.Join(tmp, fmt.Sprint(i))
			if err := os.Mkdir(upper, 0o755); err != nil {
				b.Fatal(err)
			}
			res, err := s.Run(context.Background(), sandbox.Spec{Lower: []string{root}, Upper: upper, Args: []string{"/bin/true"}})
			if err != nil || res.ExitCode != 0 {
				b.Fatalf("exit %d, error %v", res.ExitCode, err)
			}
		}
	})
	b.Run("runc", func(b *testing.B) {
		if _, err := exec.LookPath("runc"); err != nil {
			b.Fatalf("runc, the peer, is missing: install Debian's runc package: %v", err)
		}
		bundle := runcBundle(b, root)
		state := b.TempDir()
		for i := 0; b.Loop(); i++ {
			cmd := exec.Command("runc", "--root", state, "run", "--bundle", bundle, fmt.Sprint("b", i))
			if out, err := cmd.CombinedOutput(); err != nil {
				b.Fatalf("runc run: %v\n%s", err, out)
			}
		}
	})
}

// runcBundle writes a bundle of runc's default spec running /bin/true in
// root, read-only.
func runcBundle(b *testing.B, root string) string {
	bundle := b.TempDir()
	if out, err := exec.Command("runc", "spec", "--bundle", bundle).CombinedOutput(); err != nil {
		b.Fatalf("runc spec: %v\n%s", err, out)
	}
	p := filepath.Join(bundle, "config.json")
	data, err := os.ReadFile(p)
	if err != nil {
		b.Fatal(err)
	}
	var spec map[string]any
	if err := json.Unmarshal(data, &spec); err != nil {
		b.Fatal(err)
	}
	spec["root"] = map[string]any{"path": root, "readonly": true}
	proc := spec["process"].(map[string]any)
	proc["terminal"] = false
	proc["args"] = []string{"/bin/true"}
	if data, err = json.Marshal(spec); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		b.Fatal(err)
	}
	return bundle
}
