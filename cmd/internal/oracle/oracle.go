// Package oracle drives BuildKit v0.26.3, the reference sxmake's output is
// compared with and its speed measured against. BuildKit is never imported:
// its buildkitd and buildctl binaries are built by
// testdata/oracle/run-oracle.sh into a cache directory outside the
// repository and run as separate processes.
package oracle

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"

	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/sandbox"
)

// AllowSeeds lets the sxmake processes started from now on read the
// file:// mirrors of the repository's test trees, Debian's static
// busybox in /bin and the arm64 one .ci/install-deps extracts, unless
// SXMAKE_FILE_MIRRORS already names directories.
func AllowSeeds() {
	if _, ok := os.LookupEnv("SXMAKE_FILE_MIRRORS"); !ok {
		os.Setenv("SXMAKE_FILE_MIRRORS", "/bin:/usr/local/share/sxmake")
	}
}

// Dir is where the oracle's binaries and daemon state live.
func Dir() string {
	if d := os.Getenv("SXMAKE_ORACLE_DIR"); d != "" {
		return d
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "sxmake-oracle")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, ".cache", "sxmake-oracle")
}

// Setup builds the oracle's binaries unless they exist, with the script
// in repo (the repository root).
func Setup(repo string) error {
	cmd := exec.Command("sh", filepath.Join(repo, "testdata", "oracle", "run-oracle.sh"), "setup")
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("setting up the BuildKit oracle: %w", err)
	}
	return nil
}

// Daemon is a running buildkitd with a state of its own.
type Daemon struct {
	bin  string
	sock string
	cmd  *exec.Cmd

	// Platforms is the --platform list (comma-separated) for packages
	// whose package.toml names none; "" means linux/amd64.
	Platforms string
}

// Start starts buildkitd with an empty state directory (it needs root and
// runc on PATH).
func Start() (*Daemon, error) { return StartIn(Dir()) }

// StartIn is Start with the daemon's state, socket and log in dir, so that
// daemons started by concurrent tests and benchmarks do not share (and
// wipe) one state directory.
func StartIn(dir string) (*Daemon, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	d := &Daemon{bin: filepath.Join(Dir(), "bin"), sock: filepath.Join(dir, "bench.sock")}
	root := filepath.Join(dir, "bench-root")
	os.RemoveAll(root)
	os.Remove(d.sock)
	d.cmd = exec.Command(filepath.Join(d.bin, "buildkitd"), "--root", root,
		"--addr", "unix://"+d.sock, "--oci-worker-snapshotter", "overlayfs")
	logf, err := os.Create(filepath.Join(dir, "bench-buildkitd.log"))
	if err != nil {
		return nil, err
	}
	d.cmd.Stdout, d.cmd.Stderr = logf, logf
	if err := d.cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting buildkitd: %w", err)
	}
	if err := pinRlimits(d.cmd.Process.Pid); err != nil {
		d.Stop()
		return nil, err
	}
	for i := 0; ; i++ {
		if exec.Command(filepath.Join(d.bin, "buildctl"), "--addr", "unix://"+d.sock, "debug", "workers").Run() == nil {
			return d, nil
		}
		if i == 100 {
			d.Stop()
			return nil, errors.New("buildkitd did not start; see " + logf.Name())
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// pinRlimits gives buildkitd pid the resource limits sxmake gives every
// step (but nofile, which StageX sets with --ulimit): BuildKit's steps
// inherit the daemon's limits, which would otherwise be the limits of
// whatever started this process.
func pinRlimits(pid int) error {
	for _, r := range sandbox.Rlimits {
		if r.Resource == unix.RLIMIT_NOFILE {
			continue
		}
		if err := unix.Prlimit(pid, r.Resource, &unix.Rlimit{Cur: r.Soft, Max: r.Hard}, nil); err != nil {
			return fmt.Errorf("setting buildkitd's %s: %w", r.Type, err)
		}
	}
	return nil
}

// stagexUlimit is StageX's --ulimit nofile=2048:16384, which buildx passes
// to BuildKit as the dockerfile frontend's ulimit option.
const stagexUlimit = "nofile=2048:16384"

// Command returns a buildctl command line talking to d, with StageX's
// environment (its SOURCE_DATE_EPOCH).
func (d *Daemon) Command(ctx context.Context, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "buildctl"), append([]string{"--addr", "unix://" + d.sock}, args...)...)
	cmd.Env = stagexEnv()
	return cmd
}

// stagexEnv is the environment StageX runs buildctl in.
func stagexEnv() []string {
	return append(os.Environ(), "SOURCE_DATE_EPOCH="+strconv.Itoa(packages.SourceDateEpoch), "TZ=UTC", "LANG=C.UTF-8", "LC_ALL=C")
}

// Output is StageX's --output of buildctl for the image name of version
// written as an OCI tarball to dest.
func Output(name, version, dest string) string {
	created := time.Unix(packages.SourceDateEpoch, 0).UTC().Format(time.RFC3339)
	return "type=oci,name=" + name + ",rewrite-timestamp=true,force-compression=true," +
		"annotation.org.opencontainers.image.version=" + version + "," +
		"annotation.org.opencontainers.image.created=" + created + "," +
		"annotation.containerd.io/distribution.source.docker.io=stagex/" + name + ",tar=true,dest=" + dest
}

// Stop stops the daemon.
func (d *Daemon) Stop() {
	d.cmd.Process.Kill()
	d.cmd.Wait()
}

var manifestRE = regexp.MustCompile(`exporting manifest sha256:([0-9a-f]{64})`)

// Build builds img of tree as StageX's Makefile does with docker buildx:
// the package directory (with its fetched sources as fetch/) as context,
// the named context fetch, each dependency as an oci-layout context from
// outRoot, and StageX's output options. The layout goes to
// outRoot/<image>; the result is the per-platform manifest digest.
func (d *Daemon) Build(ctx context.Context, tree *packages.Tree, img *packages.Image, outRoot string, noCache bool) (string, error) {
	pkg := img.Package
	work, err := os.MkdirTemp("", "sxmake-oracle-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(work)
	contextDir := filepath.Join(work, "context")
	if err := exec.Command("cp", "-a", pkg.Dir, contextDir).Run(); err != nil {
		return "", fmt.Errorf("copying %s: %w", pkg.Dir, err)
	}
	fetch := tree.FetchDir(pkg)
	os.MkdirAll(fetch, 0o755)
	if err := exec.Command("cp", "-a", fetch, filepath.Join(contextDir, "fetch")).Run(); err != nil {
		return "", fmt.Errorf("copying %s: %w", fetch, err)
	}
	args, err := d.frontendArgs(img, contextDir, fetch, outRoot, pkg.BuildArgs(), buildDeps(img))
	if err != nil {
		return "", err
	}
	if noCache {
		args = append(args, "--no-cache")
	}
	tarball := filepath.Join(work, "out.tar")
	args = append(args, "--output", Output(img.Name, pkg.Tag(), tarball))
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "buildctl"), args...)
	cmd.Env = stagexEnv()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("buildctl %s: %w\n%s", img.Name, err, tail(out.String(), 30))
	}
	m := manifestRE.FindStringSubmatch(out.String())
	if m == nil {
		return "", fmt.Errorf("buildctl %s: no manifest digest in its output", img.Name)
	}
	dest := filepath.Join(outRoot, img.Name)
	os.RemoveAll(dest)
	os.MkdirAll(dest, 0o755)
	if err := exec.Command("tar", "-C", dest, "-xf", tarball).Run(); err != nil {
		return "", fmt.Errorf("extracting %s: %w", tarball, err)
	}
	return m[1], nil
}

// buildDeps are the images a build of img reads: its dependencies, then
// the external images (imported into sxmake's cache).
func buildDeps(img *packages.Image) []string {
	var deps []string
	for _, dep := range img.Deps {
		deps = append(deps, dep.Name)
	}
	return append(deps, img.External...)
}

// frontendArgs are the buildctl arguments that run the Dockerfile frontend
// on img as StageX's Makefile does with docker buildx: contextDir as the
// context (holding the Containerfile), fetchDir as the named context
// fetch, buildArgs, the platform and target, and each image of deps as an
// oci-layout context from outRoot/<image>.
func (d *Daemon) frontendArgs(img *packages.Image, contextDir, fetchDir, outRoot string, buildArgs map[string]string, deps []string) ([]string, error) {
	args := []string{"--addr", "unix://" + d.sock, "build", "--progress=plain",
		"--frontend", "dockerfile.v0",
		"--local", "context=" + contextDir, "--local", "dockerfile=" + contextDir,
		"--opt", "filename=Containerfile", "--opt", "platform=" + d.platform(img.Package),
		"--local", "fetch=" + fetchDir, "--opt", "context:fetch=local:fetch",
		"--opt", "build-arg:BUILDKIT_MULTI_PLATFORM=1",
		"--opt", "ulimit=" + stagexUlimit,
	}
	if img.Target != "" {
		args = append(args, "--opt", "target="+img.Target)
	}
	keys := make([]string, 0, len(buildArgs))
	for k := range buildArgs {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		args = append(args, "--opt", "build-arg:"+k+"="+buildArgs[k])
	}
	for i, dep := range deps {
		idx, err := topManifest(filepath.Join(outRoot, dep))
		if err != nil {
			return nil, err
		}
		name := fmt.Sprintf("dep%d", i)
		args = append(args, "--oci-layout", name+"="+filepath.Join(outRoot, dep),
			"--opt", "context:stagex/"+dep+"="+"oci-layout://"+name+"@"+idx)
	}
	return args, nil
}

// platform is the platform list pkg is built for.
func (d *Daemon) platform(pkg *packages.Package) string {
	switch {
	case len(pkg.Platforms) > 0:
		return pkg.Platforms[0].String()
	case d.Platforms != "":
		return d.Platforms
	}
	return "linux/amd64"
}

// IndexDigest is the digest of the nested index of the layout dir (the
// "manifest list" of a multi-platform build).
func IndexDigest(dir string) (string, error) { return topManifest(dir) }

var digestRE = regexp.MustCompile(`"digest":"(sha256:[0-9a-f]{64})"`)

// topManifest is the digest of the first manifest index.json points at.
func topManifest(layout string) (string, error) {
	data, err := os.ReadFile(filepath.Join(layout, "index.json"))
	if err != nil {
		return "", err
	}
	m := digestRE.FindSubmatch(data)
	if m == nil {
		return "", fmt.Errorf("%s/index.json: no manifest", layout)
	}
	return string(m[1]), nil
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
