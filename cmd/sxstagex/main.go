// Command sxstagex checks that sxmake reads a StageX tree the way StageX's
// own generator (src/targets.py) does, against the Make rules it wrote.
//
// Usage:
//
//	sxstagex -C TREE -targets TARGETS.mk[.gz] [-sxmake BIN]
//	sxstagex -dump TARGETS.mk[.gz]
//
// It checks that `sxmake ls` lists exactly the images targets.mk has rules
// for; that each image's direct dependencies, --target, --platform (StageX's
// default linux/amd64), build args, build contexts, tag, output
// annotations and --ulimit equal its rule; and that `sxmake -n` plans them
// all. It reports the build args of the rules sxmake does not apply yet,
// and the images with RUN steps that StageX's builds give the network.
// Exit status 1 when anything differs.
//
// -dump prints the rules of a targets.mk as JSON (the golden files of this
// command's tests).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"sort"
	"strings"

	"github.com/stagex/sxmake/engine"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/packages/packagestest"
)

func main() {
	dir := flag.String("C", ".", "the package tree")
	targets := flag.String("targets", "", "the targets.mk StageX's generator wrote for the tree (gzipped when it ends in .gz)")
	sxmake := flag.String("sxmake", "bin/sxmake", "the sxmake binary")
	dump := flag.String("dump", "", "print the rules of this targets.mk as JSON and exit")
	flag.Parse()
	var err error
	switch {
	case *dump != "":
		err = dumpRules(os.Stdout, *dump)
	case *targets == "":
		err = errors.New("-targets is required")
	default:
		err = check(os.Stdout, *dir, *targets, *sxmake)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "sxstagex:", err)
		os.Exit(1)
	}
}

func dumpRules(w io.Writer, path string) error {
	rules, err := packagestest.ReadTargets(path)
	if err != nil {
		return err
	}
	b, err := json.MarshalIndent(rules, "", "  ")
	if err != nil {
		return err
	}
	_, err = fmt.Fprintf(w, "%s\n", b)
	return err
}

// check runs every check on the tree dir against the rules of targets,
// printing a line per check.
func check(w io.Writer, dir, targets, sxmake string) error {
	rules, err := packagestest.ReadTargets(targets)
	if err != nil {
		return err
	}
	tree, err := packages.Load(dir)
	if err != nil {
		return err
	}
	var failed []string
	names := ruleImages(rules)
	listed, err := sxmakeLs(sxmake, dir)
	if err != nil {
		return err
	}
	if d := listDiff(names, listed); d != "" {
		failed = append(failed, "sxmake ls")
		fmt.Fprint(w, d)
	}
	fmt.Fprintf(w, "images listed by sxmake ls: %d, targets.mk has %d rules\n", len(listed), len(rules))

	res, err := compareTree(tree, rules)
	if err != nil {
		return err
	}
	for _, d := range res.diffs {
		fmt.Fprintln(w, d)
	}
	fmt.Fprintf(w, "rules equal to targets.mk: %d/%d (direct dependencies, --target, --platform, build args, build contexts, tag, annotations, --ulimit)\n", res.equal, len(rules))
	if res.equal != len(rules) {
		failed = append(failed, "rules")
	}
	fmt.Fprintf(w, "network: %d images (%d RUN steps) have RUN steps without --network=none, which StageX's builds give the network; sxmake runs them offline unless allowed\n", len(res.network), res.networkSteps)

	planned, err := sxmakePlan(sxmake, dir, names)
	if err != nil {
		failed = append(failed, "sxmake -n")
		fmt.Fprintln(w, err)
	}
	fmt.Fprintf(w, "planned by sxmake -n: %d/%d\n", planned, len(names))
	if len(failed) > 0 {
		return fmt.Errorf("differs from StageX: %s", strings.Join(failed, ", "))
	}
	return nil
}

// result is what compareTree found.
type result struct {
	equal        int      // rules equal to sxmake's plan
	diffs        []string // how the others differ
	network      []string // images with RUN steps StageX gives the network
	networkSteps int
}

// compareTree compares every rule with sxmake's plan of its image.
func compareTree(tree *packages.Tree, rules []packagestest.Rule) (*result, error) {
	ips, err := plans(tree)
	if err != nil {
		return nil, err
	}
	res := &result{}
	for i := range rules {
		r := &rules[i]
		ip := ips[r.Image]
		if ip == nil {
			res.diffs = append(res.diffs, r.Image+": not an image of sxmake's tree")
			continue
		}
		d := compareRule(tree, ip, r)
		if len(d) == 0 {
			res.equal++
		}
		res.diffs = append(res.diffs, d...)
		if n := networkSteps(ip); n > 0 {
			res.network = append(res.network, r.Image)
			res.networkSteps += n
		}
	}
	return res, nil
}

// networkSteps counts the RUN steps of ip that StageX gives the network.
func networkSteps(ip *engine.ImagePlan) int {
	n := 0
	for _, st := range ip.Build.Stages {
		for _, step := range st.Steps {
			if step.NetworkByDefault() {
				n++
			}
		}
	}
	return n
}

func ruleImages(rules []packagestest.Rule) []string {
	names := make([]string, len(rules))
	for i, r := range rules {
		names[i] = r.Image
	}
	sort.Strings(names)
	return names
}

// sxmakeLs returns the image names `sxmake ls` prints, sorted.
func sxmakeLs(sxmake, dir string) ([]string, error) {
	out, err := exec.Command(sxmake, "-C", dir, "ls").Output()
	if err != nil {
		return nil, fmt.Errorf("sxmake ls: %w", exitError(err))
	}
	var names []string
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		if name, _, _ := strings.Cut(line, "\t"); name != "" {
			names = append(names, name)
		}
	}
	sort.Strings(names)
	return names, nil
}

// sxmakePlan runs `sxmake -n` on every image (with a cache of its own) and
// returns how many images its plan has.
func sxmakePlan(sxmake, dir string, names []string) (int, error) {
	cache, err := os.MkdirTemp("", "sxstagex-")
	if err != nil {
		return 0, err
	}
	defer os.RemoveAll(cache)
	args := append([]string{"-C", dir, "--cache-dir", cache, "--platform", stagexPlatform.String(), "-n"}, names...)
	out, err := exec.Command(sxmake, args...).Output()
	if err != nil {
		return 0, fmt.Errorf("sxmake -n: %w", exitError(err))
	}
	n := 0
	for _, line := range bytes.Split(out, []byte("\n")) {
		if bytes.HasPrefix(line, []byte("# ")) {
			n++
		}
	}
	return n, nil
}

// listDiff describes how two sorted name lists differ, or returns "".
func listDiff(want, have []string) string {
	in := func(list []string) map[string]bool {
		m := map[string]bool{}
		for _, n := range list {
			m[n] = true
		}
		return m
	}
	w, h := in(want), in(have)
	var b strings.Builder
	for _, n := range want {
		if !h[n] {
			fmt.Fprintf(&b, "%s: in targets.mk, not listed by sxmake ls\n", n)
		}
	}
	for _, n := range have {
		if !w[n] {
			fmt.Fprintf(&b, "%s: listed by sxmake ls, not in targets.mk\n", n)
		}
	}
	if b.Len() == 0 && len(want) != len(have) {
		fmt.Fprintf(&b, "sxmake ls lists %d names, targets.mk has %d rules\n", len(have), len(want))
	}
	return b.String()
}

// exitError adds a command's stderr to its error.
func exitError(err error) error {
	var ee *exec.ExitError
	if errors.As(err, &ee) && len(ee.Stderr) > 0 {
		return fmt.Errorf("%w: %s", err, strings.TrimSpace(string(ee.Stderr)))
	}
	return err
}
