package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/stagex/sxmake/cmd/internal/oracle"
	"github.com/stagex/sxmake/engine"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/rules"
)

// checkVariant is one setting of the BUILDKIT_DOCKERFILE_CHECK build arg
// to compare under: "tree" keeps the tree's (StageX's), "none" leaves the
// arg out (each file's "# check=" directive applies), anything else is
// the value to use.
type checkVariant string

// overrides are the build arg changes the variant makes, for
// engine.WithBuildArgs, and the matching sxmake check flags.
func (v checkVariant) overrides() (map[string]*string, []string) {
	switch v {
	case "tree":
		return nil, nil
	case "none":
		return map[string]*string{rules.CheckArg: nil}, []string{"--build-arg", rules.CheckArg}
	}
	s := string(v)
	return map[string]*string{rules.CheckArg: &s}, []string{"--build-arg", rules.CheckArg + "=" + s}
}

// runCheck compares sxmake's Dockerfile checks with BuildKit's on the
// images named (default: all) of the tree in dir, under each variant:
//   - `sxmake check --json` against BuildKit's lint request;
//   - the findings of sxmake's build plan (those of the stages the image
//     needs) against BuildKit's lint request given the build's target
//     (which checks what the build checks), when the target has a name;
//   - the failure of sxmake's build under error=true against BuildKit's
//     frontend run as a build (frontend.convertllb): the same rules, or
//     both succeed.
//
// BuildKit reads the images the checked ones are built on from stand-in
// layouts holding only the configs sxmake's plan gives them.
//
// With golden set, BuildKit's findings are also written to that file (see
// goldenLines), which engine's tests compare sxmake with.
func runCheck(dir, sxmake, golden string, variants []checkVariant, jobs int, names []string) error {
	repo, _ := os.Getwd()
	if err := oracle.Setup(repo); err != nil {
		return err
	}
	tree, err := packages.Load(dir)
	if err != nil {
		return err
	}
	targets := tree.Images()
	if len(names) > 0 {
		targets = nil
		for _, n := range names {
			img, err := tree.Resolve(n)
			if err != nil {
				return err
			}
			targets = append(targets, img)
		}
	}
	work, err := os.MkdirTemp("", "sxcompat-check-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	d, err := oracle.Start()
	if err != nil {
		return err
	}
	defer d.Stop()
	var errs []error
	var lines []string
	for _, v := range variants {
		theirs, err := compareChecks(d, tree, dir, sxmake, v, jobs, targets, filepath.Join(work, string(v)))
		if err != nil {
			errs = append(errs, fmt.Errorf("variant %s: %w", v, err))
		}
		for i, img := range targets {
			lines = append(lines, goldenLines(string(v), img.Name, theirs[i])...)
		}
	}
	if golden != "" && len(errs) == 0 {
		sort.Strings(lines)
		head := "# BuildKit v0.26.3's Dockerfile check findings on this tree, per BUILDKIT_DOCKERFILE_CHECK\n" +
			"# variant (tree: StageX's; none: left out) and image. Regenerate (root, runc):\n" +
			"#   go run ./cmd/sxcompat -check -C " + dir + " -variant tree -variant none -golden " + golden + "\n"
		if err := os.WriteFile(golden, []byte(head+strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			return err
		}
	}
	return errors.Join(errs...)
}

// goldenLines renders what one side found for an image under a variant,
// one line per fact: "VARIANT IMAGE lint|build LINE-END Rule: message",
// "VARIANT IMAGE fails Rule, Rule" (the build's check failure) and
// "VARIANT IMAGE error" (the Containerfile does not evaluate).
func goldenLines(variant, image string, c imageChecks) []string {
	pre := variant + " " + image + " "
	var out []string
	for _, l := range c.lint {
		out = append(out, pre+"lint "+l)
	}
	for _, l := range c.build {
		out = append(out, pre+"build "+l)
	}
	if c.buildFailed != nil {
		out = append(out, pre+"fails "+strings.Join(c.buildFailed, ", "))
	}
	if c.err != "" {
		out = append(out, pre+"error")
	}
	return out
}

// imageChecks is what each side found for one image.
type imageChecks struct {
	lint, build []string // sorted findings (build: nil when not compared)
	buildFailed []string // rules of the build's check failure, sorted
	err         string   // why the Containerfile does not evaluate, if it does not
}

// compareChecks compares the checks of targets under v and returns
// BuildKit's.
func compareChecks(d *oracle.Daemon, tree *packages.Tree, dir, sxmake string, v checkVariant, jobs int, targets []*packages.Image, layouts string) ([]imageChecks, error) {
	overrides, flags := v.overrides()
	args := append([]string{"-C", dir, "check", "--json"}, flags...)
	for _, img := range targets {
		args = append(args, img.Name)
	}
	start := time.Now()
	ours, err := sxmakeChecks(sxmake, args)
	if err != nil {
		return nil, err
	}
	sxTime := time.Since(start)
	plans, err := planEach(tree, targets, overrides, layouts, ours)
	if err != nil {
		return nil, err
	}
	start = time.Now()
	theirs := make([]imageChecks, len(targets))
	bkErrs := make([]error, len(targets))
	var wg sync.WaitGroup
	sem := make(chan struct{}, jobs)
	for i, img := range targets {
		wg.Add(1)
		go func() {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			theirs[i], bkErrs[i] = oracleChecks(d, img, plans[img.Name], buildArgs(img.Package, overrides), layouts)
		}()
	}
	wg.Wait()
	bkTime := time.Since(start)
	same, lintFindings, buildFindings, uncompared := 0, 0, 0, 0
	for i, img := range targets {
		o, t := ours[img.Name], theirs[i]
		lintFindings += len(t.lint)
		buildFindings += len(o.build)
		diff, note := diffChecks(o, t)
		if t.build == nil && t.err == "" {
			uncompared++
		}
		if bkErrs[i] != nil {
			diff = append(diff, "BuildKit failed: "+bkErrs[i].Error())
		}
		mark := "same"
		if len(diff) > 0 {
			mark = "DIFFERS"
		} else {
			same++
		}
		fmt.Printf("%-8s %-8s %-28s %d lint findings, %d build findings%s\n", mark, v, img.Name, len(t.lint), len(o.build), note)
		for _, l := range diff {
			fmt.Printf("    %s\n", l)
		}
	}
	fmt.Printf("variant %s: %d of %d images with findings identical to BuildKit's (%d lint findings, %d build findings, %d images' build findings not compared; sxmake check %.2fs for all, BuildKit %.1fs one by one, %d at a time)\n",
		v, same, len(targets), lintFindings, buildFindings, uncompared, sxTime.Seconds(), bkTime.Seconds(), jobs)
	if same != len(targets) {
		return theirs, fmt.Errorf("%d images differ", len(targets)-same)
	}
	return theirs, nil
}

// diffChecks lists how sxmake's checks (o) and BuildKit's (t) of one
// image differ, and notes what was not compared or failed alike.
func diffChecks(o, t imageChecks) (diff []string, note string) {
	diff = listDiff("lint", t.lint, o.lint)
	switch {
	case (o.err == "") != (t.err == ""):
		diff = append(diff, fmt.Sprintf("evaluation error: BuildKit %q, sxmake %q", t.err, o.err))
		return diff, ""
	case t.err != "":
		return diff, " (both fail to evaluate)"
	}
	if t.build == nil {
		note = " (build findings not compared: unnamed last stage)"
	} else {
		diff = append(diff, listDiff("build", t.build, o.build)...)
	}
	diff = append(diff, listDiff("build failure rule", t.buildFailed, o.buildFailed)...)
	if t.buildFailed != nil {
		note += ", build fails"
	}
	return diff, note
}

// planEach plans each target on its own (an image that does not
// evaluate leaves the others planned), records in ours the findings and
// the failure of its build, and writes the stand-in layout of every image
// planned. It returns the targets' plans by name (nil: not planned).
func planEach(tree *packages.Tree, targets []*packages.Image, overrides map[string]*string, layouts string, ours map[string]imageChecks) (map[string]*engine.ImagePlan, error) {
	plans := map[string]*engine.ImagePlan{}
	for _, img := range targets {
		plan, err := engine.NewPlan(tree, []*packages.Image{img}, engine.WithPlatform(rules.Platform{OS: "linux", Arch: "amd64"}), engine.WithBuildArgs(overrides))
		if err != nil {
			plans[img.Name] = nil
			continue
		}
		if err := oracle.StandIns(layouts, plan); err != nil {
			return nil, err
		}
		ip := plan.Images[len(plan.Images)-1]
		plans[img.Name] = ip
		build, failed := []string{}, []string(nil)
		for _, fd := range ip.Findings {
			build = append(build, oracle.Finding{Rule: fd.Check.Name, Message: fd.Message, Line: fd.Pos.Line, EndLine: fd.EndLine}.String())
			if ip.Checks.Error && !slices.Contains(failed, fd.Check.Name) {
				failed = append(failed, fd.Check.Name)
			}
		}
		c := ours[img.Name]
		c.build, c.buildFailed = sorted(build), sorted(failed)
		ours[img.Name] = c
	}
	return plans, nil
}

// buildArgs are the build args of pkg with overrides applied (as
// engine.WithBuildArgs applies them).
func buildArgs(pkg *packages.Package, overrides map[string]*string) map[string]string {
	args := pkg.BuildArgs()
	for k, v := range overrides {
		if v == nil {
			delete(args, k)
		} else {
			args[k] = *v
		}
	}
	return args
}

// sxmakeChecks runs `sxmake check --json` and returns each image's
// findings. Its exit status is not an error: findings that are errors
// make it 1.
func sxmakeChecks(sxmake string, args []string) (map[string]imageChecks, error) {
	cmd := exec.Command(sxmake, args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	var ee *exec.ExitError
	if err != nil && !(errors.As(err, &ee) && ee.ExitCode() == 1) {
		return nil, fmt.Errorf("sxmake %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	found := map[string]imageChecks{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		var j struct {
			Image, Check, Message, Error string
			Line                         int
			EndLine                      int `json:"end_line"`
		}
		if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
			return nil, fmt.Errorf("sxmake check --json: %w: %s", err, sc.Text())
		}
		c := found[j.Image]
		if j.Error != "" {
			c.err = j.Error
		} else {
			c.lint = append(c.lint, oracle.Finding{Rule: j.Check, Message: j.Message, Line: j.Line, EndLine: j.EndLine}.String())
		}
		found[j.Image] = c
	}
	for k, c := range found {
		c.lint = sorted(c.lint)
		found[k] = c
	}
	return found, sc.Err()
}

// oracleChecks is what BuildKit finds for img: its lint request, the
// same given the build's target (ip's, when sxmake planned it), and its
// frontend run as a build.
func oracleChecks(d *oracle.Daemon, img *packages.Image, ip *engine.ImagePlan, args map[string]string, layouts string) (imageChecks, error) {
	var c imageChecks
	ctx := context.Background()
	lint, err := d.Lint(ctx, img, "", args, layouts)
	if err != nil {
		return c, err
	}
	c.lint = findingLines(lint)
	switch {
	case ip == nil:
	case img.Target != "":
		c.build = c.lint // a lint request given a target checks what its build does
	case ip.Build.Target.Name != "":
		build, err := d.Lint(ctx, img, ip.Build.Target.Name, args, layouts)
		if err != nil {
			return c, err
		}
		c.build = findingLines(build)
	}
	if c.buildFailed, err = d.Convert(ctx, img, args, layouts); err != nil {
		c.err = err.Error()
	}
	return c, nil
}

func findingLines(fs []oracle.Finding) []string {
	out := []string{}
	for _, f := range fs {
		out = append(out, f.String())
	}
	return sorted(out)
}

func sorted(s []string) []string {
	sort.Strings(s)
	return s
}

// listDiff describes how two sorted lists differ, "-" for what only
// BuildKit's has and "+" for what only sxmake's has.
func listDiff(what string, theirs, ours []string) []string {
	var out []string
	i, j := 0, 0
	for i < len(theirs) || j < len(ours) {
		switch {
		case j == len(ours) || i < len(theirs) && theirs[i] < ours[j]:
			out = append(out, fmt.Sprintf("- %s (BuildKit only): %s", what, theirs[i]))
			i++
		case i == len(theirs) || ours[j] < theirs[i]:
			out = append(out, fmt.Sprintf("+ %s (sxmake only): %s", what, ours[j]))
			j++
		default:
			i, j = i+1, j+1
		}
	}
	return out
}
