package oracle

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/stagex/sxmake/engine"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/rules"
)

// Finding is one Dockerfile check finding as BuildKit prints it: the
// rule, the message, and the lines it marks.
type Finding struct {
	Rule    string
	Message string
	Line    int
	EndLine int
}

func (f Finding) String() string {
	return fmt.Sprintf("%d-%d %s: %s", f.Line, f.EndLine, f.Rule, f.Message)
}

// Lint runs BuildKit's lint request (frontend.lint, what StageX's `make
// check`, docker build --check, asks for) on img's Containerfile with
// buildArgs, the images it is built on given as oci-layout contexts from
// layouts/<image>, and returns the findings BuildKit prints. target
// overrides img's build target when not empty: a lint request given a
// target checks what a build of it checks, without one every stage. A
// lint request that meets an error still prints the findings before it,
// and not the error.
func (d *Daemon) Lint(ctx context.Context, img *packages.Image, target string, buildArgs map[string]string, layouts string) ([]Finding, error) {
	out, err := d.frontend(ctx, img, target, buildArgs, layouts, "frontend.lint")
	if err != nil {
		return nil, fmt.Errorf("%w\n%s", err, tail(string(out), 20))
	}
	return parseLint(out)
}

// Convert runs the frontend as a build does, without solving anything
// (frontend.convertllb), and returns the rules of its "lint violation
// found for rules: ..." failure, sorted, when the check config makes
// findings errors (nil when it succeeds). Any other failure is an error.
// (The build's warnings are not returned: buildctl prints them in its
// progress output, which loses those found after the base images load.)
func (d *Daemon) Convert(ctx context.Context, img *packages.Image, buildArgs map[string]string, layouts string) ([]string, error) {
	out, err := d.frontend(ctx, img, "", buildArgs, layouts, "frontend.convertllb")
	if err == nil {
		return nil, nil
	}
	if m := violationRE.FindSubmatch(out); m != nil {
		failed := strings.Split(string(m[1]), ", ")
		sort.Strings(failed)
		return failed, nil
	}
	return nil, fmt.Errorf("%w\n%s", err, tail(string(out), 20))
}

// frontend runs a frontend request on img and returns what buildctl
// prints (stdout, then stderr); the error says buildctl failed.
func (d *Daemon) frontend(ctx context.Context, img *packages.Image, target string, buildArgs map[string]string, layouts, request string) ([]byte, error) {
	empty, err := os.MkdirTemp("", "sxmake-oracle-fetch-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(empty)
	args, err := d.frontendArgs(img, img.Package.Dir, empty, layouts, buildArgs, lintDeps(img, buildArgs))
	if err != nil {
		return nil, err
	}
	if target != "" {
		args = append(args, "--opt", "target="+target)
	}
	args = append(args, "--opt", "requestid="+request)
	cmd := exec.CommandContext(ctx, filepath.Join(d.bin, "buildctl"), args...)
	cmd.Env = append(os.Environ(), "SOURCE_DATE_EPOCH=1", "TZ=UTC", "LANG=C.UTF-8", "LC_ALL=C")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("buildctl %s %s: %w", request, img.Name, err)
	}
	return append(stdout.Bytes(), stderr.Bytes()...), err
}

// lintDeps are the images a lint request of img reads: the images of
// every stage (as StageX, which offers every stagex/ image a Containerfile
// names, lets it) besides the build's.
func lintDeps(img *packages.Image, buildArgs map[string]string) []string {
	deps := buildDeps(img)
	refs, err := img.Package.Containerfile.ImageRefs(img.Target, buildArgs, rules.WithNamedContexts("fetch"), rules.WithAllStages())
	if err != nil {
		return deps
	}
	for _, r := range refs {
		if name, ok := strings.CutPrefix(r.Name, "stagex/"); ok && !slices.Contains(deps, name) {
			deps = append(deps, name)
		}
	}
	return deps
}

var (
	violationRE = regexp.MustCompile(`lint violation found for rules: ([^\n]*)`)
	// sourceRE is a line of a printed source excerpt; ">>>" marks the
	// finding's lines.
	sourceRE = regexp.MustCompile(`^ +(\d+) \| (>>>|   ) `)
)

// parseLint reads the findings of a lint request's result.txt: each is
// "WARNING: Rule - URL", the message, then the source excerpt.
func parseLint(out []byte) ([]Finding, error) {
	var fs []Finding
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	var cur *Finding
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "WARNING: "):
			rule, _, _ := strings.Cut(strings.TrimPrefix(line, "WARNING: "), " - ")
			if !sc.Scan() {
				return nil, fmt.Errorf("lint output ends after %q", line)
			}
			fs = append(fs, Finding{Rule: rule, Message: sc.Text()})
			cur = &fs[len(fs)-1]
		case cur != nil:
			m := sourceRE.FindStringSubmatch(line)
			if m == nil || m[2] != ">>>" {
				continue
			}
			n, _ := strconv.Atoi(m[1])
			if cur.Line == 0 {
				cur.Line = n
			}
			cur.EndLine = n
		}
	}
	return fs, sc.Err()
}

// StandIns writes under dir/<image> the stand-in layout (ConfigLayout) of
// every image of plan that has none yet: the configs BuildKit reads from
// the images a lint request's image is built on.
func StandIns(dir string, plan *engine.Plan) error {
	for _, ip := range plan.Images {
		d := filepath.Join(dir, ip.Image.Name)
		if _, err := os.Stat(d); err == nil {
			continue
		}
		if err := ConfigLayout(d, ip.Build.Target.Config, ip.Platform); err != nil {
			return err
		}
	}
	return nil
}

// ConfigLayout writes at dir an OCI layout of an image with no layers and
// the configuration cfg for platform p: a stand-in base image for
// frontend requests that only read base images' configs (lint, convert),
// for images not built.
func ConfigLayout(dir string, cfg rules.ImageConfig, p rules.Platform) error {
	type config struct {
		Env        []string `json:"Env,omitempty"`
		WorkingDir string   `json:"WorkingDir,omitempty"`
		User       string   `json:"User,omitempty"`
		Shell      []string `json:"Shell,omitempty"`
		Entrypoint []string `json:"Entrypoint,omitempty"`
		Cmd        []string `json:"Cmd,omitempty"`
		OnBuild    []string `json:"OnBuild,omitempty"`
	}
	img := map[string]any{
		"architecture": p.Arch, "os": p.OS,
		"config": config{cfg.Env, cfg.WorkingDir, cfg.User, cfg.Shell, cfg.Entrypoint, cfg.Cmd, cfg.OnBuild},
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{}},
	}
	if p.Variant != "" {
		img["variant"] = p.Variant
	}
	if err := os.MkdirAll(filepath.Join(dir, "blobs", "sha256"), 0o755); err != nil {
		return err
	}
	blob := func(v any) (map[string]any, error) {
		data, err := json.Marshal(v)
		if err != nil {
			return nil, err
		}
		sum := sha256.Sum256(data)
		h := hex.EncodeToString(sum[:])
		return map[string]any{"digest": "sha256:" + h, "size": len(data)},
			os.WriteFile(filepath.Join(dir, "blobs", "sha256", h), data, 0o644)
	}
	cd, err := blob(img)
	if err != nil {
		return err
	}
	cd["mediaType"] = "application/vnd.oci.image.config.v1+json"
	md, err := blob(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
		"config": cd, "layers": []any{}})
	if err != nil {
		return err
	}
	md["mediaType"] = "application/vnd.oci.image.manifest.v1+json"
	index, err := json.Marshal(map[string]any{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
		"manifests": []any{md}})
	if err != nil {
		return err
	}
	return errors.Join(
		os.WriteFile(filepath.Join(dir, "oci-layout"), []byte(`{"imageLayoutVersion":"1.0.0"}`), 0o644),
		os.WriteFile(filepath.Join(dir, "index.json"), index, 0o644))
}
