package main

import (
	"fmt"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/stagex/sxmake/engine"
	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/packages/packagestest"
	"github.com/stagex/sxmake/rules"
	"github.com/stagex/sxmake/sandbox"
)

// stagexPlatform is the platform StageX's Makefile builds for unless told
// otherwise (PLATFORM := linux/amd64): the platform rules are compared on.
var stagexPlatform = rules.Platform{OS: "linux", Arch: "amd64"}

// impliedBuildArgs are build args of every rule that sxmake does not take
// as build args but always honours: BUILDKIT_MULTI_PLATFORM=1 is the only
// output form engine/image writes (the nested index).
var impliedBuildArgs = map[string]string{"BUILDKIT_MULTI_PLATFORM": "1"}

// plans plans every image of tree for StageX's default platform.
func plans(tree *packages.Tree) (map[string]*engine.ImagePlan, error) {
	plan, err := engine.NewPlan(tree, tree.Images(), engine.WithPlatform(stagexPlatform))
	if err != nil {
		return nil, err
	}
	m := make(map[string]*engine.ImagePlan, len(plan.Images))
	for _, ip := range plan.Images {
		m[ip.Image.Name] = ip
	}
	return m, nil
}

// compareRule lists how the image plan ip differs from StageX's rule r:
// its dependencies, files and every flag of the build command. Each line
// starts with the image name.
func compareRule(tree *packages.Tree, ip *engine.ImagePlan, r *packagestest.Rule) []string {
	var diffs []string
	differ := func(what string, want, have any) {
		if d := cmp.Diff(want, have); d != "" {
			diffs = append(diffs, fmt.Sprintf("%s: %s (-targets.mk +sxmake):\n%s", r.Image, what, d))
		}
	}
	img := ip.Image
	pkg := img.Package
	dir := relPath(tree, pkg.Dir)
	var deps []string
	for _, d := range img.Deps {
		deps = append(deps, d.Name)
	}
	differ("direct dependencies", r.UniqueDeps(), deps)
	differ("context", []string{dir}, r.Args)
	buildArgs := map[string]string{}
	for k, v := range ip.BuildArgs {
		buildArgs[k] = v
	}
	for k, v := range impliedBuildArgs {
		buildArgs[k] = v
	}
	differ("build args", r.KeyValues("--build-arg"), buildArgs)
	contexts := map[string]string{"fetch": relPath(tree, tree.FetchDir(pkg))}
	for _, d := range deps {
		contexts["stagex/"+d] = "oci-layout://./out/" + d
	}
	differ("build contexts", r.KeyValues("--build-context"), contexts)
	for _, f := range r.Flags {
		if want, have, ok := flagValue(ip, f, dir); !ok {
			diffs = append(diffs, fmt.Sprintf("%s: flag %s=%s is not known to this check", r.Image, f.Name, f.Value))
		} else if want != have {
			differ("flag "+f.Name, want, have)
		}
	}
	if ip.Image.Target != "" && len(r.Values("--target")) == 0 {
		diffs = append(diffs, fmt.Sprintf("%s: no --target, sxmake builds stage %s", r.Image, ip.Image.Target))
	}
	for _, name := range []string{"--target", "--platform", "--tag", "--output", "--ulimit", "-f"} {
		if n := len(r.Values(name)); n > 1 || n == 0 && name != "--target" {
			diffs = append(diffs, fmt.Sprintf("%s: %s given %d times, want once", r.Image, name, n))
		}
	}
	return diffs
}

// flagValue returns, for one flag of a rule, the value the rule has
// (normalised) and what sxmake does for ip, and false for a flag this
// check does not know. Flags compared as a whole elsewhere (build args,
// build contexts) and display flags give equal values.
func flagValue(ip *engine.ImagePlan, f packagestest.Flag, dir string) (want, have string, ok bool) {
	pkg := ip.Image.Package
	switch f.Name {
	case "--build-arg", "--build-context", "--progress":
		return "", "", true
	case "--target":
		return f.Value, ip.Image.Target, true
	case "--platform":
		return f.Value, ip.Platform.String(), true
	case "-f":
		return f.Value, dir + "/Containerfile", true
	case "--tag":
		return f.Value, "stagex/" + ip.Image.Name + ":" + pkg.Tag(), true
	case "--provenance":
		return f.Value, "false", true // sxmake writes no attestations
	case "--ulimit":
		return f.Value, ulimit(f.Value), true
	case "--output":
		return normaliseCSV(f.Value), outputOption(ip), true
	}
	return "", "", false
}

// ulimit returns, for a --ulimit value "name=soft:hard", the same limit as
// the sandbox gives every step.
func ulimit(v string) string {
	name, _, _ := strings.Cut(v, "=")
	for _, r := range sandbox.Rlimits {
		if r.Type == "RLIMIT_"+strings.ToUpper(name) {
			return fmt.Sprintf("%s=%d:%d", name, r.Soft, r.Hard)
		}
	}
	return "(not set by sxmake)"
}

// outputOption is the --output value that describes what sxmake writes
// for ip, its keys sorted: an OCI image named like the image, timestamps
// rewritten, layers recompressed, StageX's annotations; tar=true,dest=-
// is how StageX's recipe moves the layout into out/, where sxmake writes
// it directly.
func outputOption(ip *engine.ImagePlan) string {
	kv := []string{
		"name=" + ip.Image.Name, "type=oci", "rewrite-timestamp=true", "force-compression=true",
		"tar=true", "dest=-",
	}
	for k, v := range image.StageXAnnotations(ip.Image.Name, ip.Image.Package.Tag(), time.Unix(packages.SourceDateEpoch, 0)) {
		kv = append(kv, "annotation."+k+"="+v)
	}
	sort.Strings(kv)
	return strings.Join(kv, ",")
}

// normaliseCSV sorts the comma-separated items of v.
func normaliseCSV(v string) string {
	items := strings.Split(v, ",")
	slices.Sort(items)
	return strings.Join(items, ",")
}

func relPath(tree *packages.Tree, p string) string {
	rel, err := filepath.Rel(tree.Root, p)
	if err != nil {
		return p
	}
	return filepath.ToSlash(rel)
}
