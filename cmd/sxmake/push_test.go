package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/engine/registry"
	"github.com/stagex/sxmake/sandbox/sandboxtest"
)

// startRegistry runs Debian's docker-registry on a free 127.0.0.1 port
// until the test ends and returns its host:port.
func startRegistry(t *testing.T) string {
	t.Helper()
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		t.Fatalf("docker-registry is not installed (apt-get install docker-registry): %v", err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	dir := t.TempDir()
	cfg := fmt.Sprintf("version: 0.1\nlog:\n  level: error\nstorage:\n  filesystem:\n    rootdirectory: %s\nhttp:\n  addr: %s\n", filepath.Join(dir, "data"), addr)
	cfgPath := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "serve", cfgPath)
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	for i := 0; ; i++ {
		resp, err := http.Get("http://" + addr + "/v2/")
		if err == nil {
			resp.Body.Close()
			return addr
		}
		if i == 100 {
			t.Fatalf("docker-registry did not start: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// A multi-platform image pushed to a registry resolves there to the digest
// of its layout's index, and skopeo reads it back.
func TestPushRoundTrip(t *testing.T) {
	sandboxtest.RequiresRoot(t)
	addr := startRegistry(t)
	tree := writeFiles(t, map[string]string{
		"packages/core/mp/package.toml":  "[package]\nname = \"mp\"\nversion = \"1\"\n",
		"packages/core/mp/Containerfile": "FROM scratch AS package\nARG TARGETARCH\nCOPY <<EOF /arch\n${TARGETARCH}\nEOF\n",
	})
	cache := filepath.Join(t.TempDir(), "cache")
	if code, _, stderr := sxmake(t, "-C", tree, "--cache-dir", cache, "--progress", "plain", "--platform", "linux/amd64,linux/arm64", "core-mp"); code != 0 {
		t.Fatalf("build: exit %d\n%s", code, stderr)
	}
	ref := addr + "/stagex/core-mp:1"
	code, stdout, stderr := sxmake(t, "-C", tree, "push", "core-mp", ref)
	if code != 0 {
		t.Fatalf("push: exit %d\n%s", code, stderr)
	}
	layout := filepath.Join(tree, "out", "core-mp")
	var top image.Index
	data, _ := os.ReadFile(filepath.Join(layout, "index.json"))
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	want := top.Manifests[0].Digest.String()
	if !strings.HasPrefix(stdout, want+" ") {
		t.Errorf("push printed %q, want the index digest %s first", stdout, want)
	}
	desc, err := registry.Resolve(context.Background(), ref)
	if err != nil {
		t.Fatal(err)
	}
	if desc.Digest.String() != want {
		t.Errorf("the registry has %s under %s, want %s", desc.Digest, ref, want)
	}
	// import pulls a pinned digest back, the platform asked for.
	cache2 := filepath.Join(t.TempDir(), "cache")
	code, stdout, stderr = sxmake(t, "--cache-dir", cache2, "--platform", "linux/arm64", "import", "pulled-mp", "docker://"+ref+"@"+want)
	if code != 0 {
		t.Fatalf("import from the registry: exit %d\n%s", code, stderr)
	}
	if want := "57b4adefc3e7bf959cac64a9a06b2b8e0fd5779a8939310bad092d7f5685615c pulled-mp\n"; !strings.HasSuffix(stdout, want) {
		t.Errorf("import printed %q, want the arm64 manifest %q", stdout, want)
	}
	if code, _, stderr := sxmake(t, "--cache-dir", cache2, "import", "unpinned", "docker://"+ref); code == 0 {
		t.Errorf("import of an unpinned reference succeeded")
	} else if !strings.Contains(stderr, "pin a digest") {
		t.Errorf("import of an unpinned reference: %s", stderr)
	}
	if skopeo, err := exec.LookPath("skopeo"); err == nil {
		out, err := exec.Command(skopeo, "inspect", "--raw", "--tls-verify=false", "docker://"+ref).Output()
		if err != nil {
			t.Fatalf("skopeo inspect: %v", err)
		}
		if got := image.DigestOf(out).String(); got != want {
			t.Errorf("skopeo read an index of digest %s, want %s", got, want)
		}
	}
}
