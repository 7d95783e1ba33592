package packages

import (
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"github.com/stagex/sxmake/rules"
)

// Image is one image a package builds: its main image or a subpackage.
type Image struct {
	Name    string   // "<stage>-<name>", e.g. "core-clang"
	Package *Package // the package whose Containerfile builds it
	Target  string   // Containerfile stage: "package-<x>" for subpackage x, "" for the last stage
	Deps    []*Image // images it references, sorted by Name

	// External lists the external images (see WithExternalImages) it
	// references, sorted; they are not dependencies.
	External []string

	refs map[*Image]rules.Pos // where each dependency is first referenced
}

// Images returns every image of the tree, subpackages included, sorted by
// Name. The slice is the caller's; the images are shared.
func (t *Tree) Images() []*Image { return append([]*Image(nil), t.images...) }

// Image returns the image with the exact name ("core-llvm"), or nil.
func (t *Tree) Image(name string) *Image { return t.byName[name] }

// RefPos returns where the Containerfile of img first references dep, and
// false if img does not depend on dep.
func (img *Image) RefPos(dep *Image) (rules.Pos, bool) {
	p, ok := img.refs[dep]
	return p, ok
}

// makeImages creates the images of every package, as StageX's generator
// does: a package without subpackages is one image, named like the
// package and built from the last Containerfile stage; a package with
// subpackages is exactly the images it lists, subpackage x being "<stage>-x"
// built from the stage "package-x" (the list may name the package itself).
// Each subpackage must have its stage, and no two images may share a name.
func (t *Tree) makeImages() error {
	t.byName = make(map[string]*Image)
	var errs []error
	add := func(img *Image) {
		if prev := t.byName[img.Name]; prev != nil {
			if prev.Package != img.Package {
				errs = append(errs, img.Package.m.errorf("package.subpackages", "image %s is also built by %s", img.Name, prev.Package.m.file))
			}
			return
		}
		t.byName[img.Name] = img
		t.images = append(t.images, img)
	}
	for _, p := range t.Packages {
		if len(p.Subpackages) == 0 {
			add(&Image{Name: p.ID(), Package: p})
		}
	}
	for _, p := range t.Packages {
		stages := stageNames(p.src)
		for _, sub := range p.Subpackages {
			target := "package-" + sub
			if !stages[target] {
				errs = append(errs, p.m.errorf("package.subpackages", "package.subpackages: %s has no stage %q for subpackage %q", p.rel+"/Containerfile", target, sub))
				continue
			}
			add(&Image{Name: p.Stage + "-" + sub, Package: p, Target: target})
		}
	}
	sort.Slice(t.images, func(i, j int) bool { return t.images[i].Name < t.images[j].Name })
	return joinSorted(errs)
}

var fromAs = regexp.MustCompile(`(?im)^[ \t]*FROM[ \t].*[ \t]AS[ \t]+([^ \t\r\n]+)[ \t]*\r?$`)

// stageNames returns the lower-cased names of a Containerfile's stages.
func stageNames(src []byte) map[string]bool {
	names := make(map[string]bool)
	for _, m := range fromAs.FindAllSubmatch(src, -1) {
		names[strings.ToLower(string(m[1]))] = true
	}
	return names
}

// linkImages finds the dependencies of every image.
func (t *Tree) linkImages() error {
	errs := make([]error, len(t.images))
	parallel(len(t.images), func(i int) {
		errs[i] = t.link(t.images[i])
	})
	return joinSorted(errs)
}

const (
	imagePrefix  = "stagex/" // image references with this prefix are dependencies
	fetchContext = "fetch"   // the named build context holding a package's sources
)

func (t *Tree) link(img *Image) error {
	p := img.Package
	// StageX's generator makes every image of a Containerfile depend on
	// every stagex/ image the file names, whatever stages its target
	// needs: Make builds them all first, and so does sxmake.
	opts := []rules.RefOption{rules.WithNamedContexts(fetchContext), rules.WithAllStages()}
	if len(p.Platforms) > 0 {
		opts = append(opts, rules.WithRefPlatform(p.Platforms[0]))
	}
	refs, err := p.Containerfile.ImageRefs(img.Target, p.buildArgs, opts...)
	if err != nil {
		var re *rules.Error
		if errors.As(err, &re) {
			return err
		}
		return fmt.Errorf("%s: image %s: %w", p.rel+"/Containerfile", img.Name, err)
	}
	img.refs = make(map[*Image]rules.Pos)
	var errs []error
	for _, ref := range refs {
		name, ok := strings.CutPrefix(ref.Name, imagePrefix)
		if !ok {
			// sxmake builds offline from the tree: an image that is neither
			// a stage of the file nor a stagex/ image cannot be had, and is
			// most often a misspelt stage name.
			errs = append(errs, &Error{Pos: ref.Pos, Msg: fmt.Sprintf(
				"%q is neither a stage of this Containerfile nor a stagex/ image%s",
				ref.Name, suggest(ref.Name, sortedKeys(stageNames(p.src))))})
			continue
		}
		name = stripTagDigest(name)
		dep := t.byName[name]
		if dep == nil && t.external[name] {
			img.addExternal(name) // imported, not built: not a dependency
			continue
		}
		if dep == nil {
			errs = append(errs, newError(ref.Pos, p.src, fmt.Sprintf("unknown image %s%s", ref.Name, suggest(name, t.imageNames()))))
			continue
		}
		if _, seen := img.refs[dep]; !seen {
			img.refs[dep] = ref.Pos
			img.Deps = append(img.Deps, dep)
		}
	}
	sort.Slice(img.Deps, func(i, j int) bool { return img.Deps[i].Name < img.Deps[j].Name })
	return joinSorted(errs)
}

// stripTagDigest removes ":tag" and "@digest" from an image name.
func stripTagDigest(name string) string {
	if i := strings.IndexByte(name, '@'); i >= 0 {
		name = name[:i]
	}
	if i := strings.LastIndexByte(name, ':'); i >= 0 && !strings.Contains(name[i:], "/") {
		name = name[:i]
	}
	return name
}

func (t *Tree) imageNames() []string {
	names := make([]string, len(t.images))
	for i, img := range t.images {
		names[i] = img.Name
	}
	return names
}

// Resolve finds the image a user means by name: "core-llvm",
// "stagex/core-llvm", or a bare "llvm" that only one stage has. An
// ambiguous bare name is an error listing the candidates; an unknown name is
// an error suggesting the closest names.
func (t *Tree) Resolve(name string) (*Image, error) {
	n := strings.TrimPrefix(name, imagePrefix)
	if img := t.byName[n]; img != nil {
		return img, nil
	}
	var matches []string
	for _, img := range t.images {
		if img.Name[len(img.Package.Stage)+1:] == n {
			matches = append(matches, img.Name)
		}
	}
	switch len(matches) {
	case 1:
		return t.byName[matches[0]], nil
	case 0:
		return nil, fmt.Errorf("unknown image %q%s", name, suggest(n, t.imageNames()))
	}
	return nil, fmt.Errorf("image name %q is ambiguous: %s", name, strings.Join(matches, ", "))
}

// suggest returns "; did you mean X?" (or "X or Y") naming the candidates
// closest to name by edit distance, comparing bare names too, or "" when
// nothing is close.
func suggest(name string, candidates []string) string {
	best := max(2, len(name)/3) // the farthest a suggestion may be
	var picks []string
	for _, c := range candidates {
		d := levenshtein(name, c)
		if _, bare, ok := strings.Cut(c, "-"); ok {
			d = min(d, levenshtein(name, bare))
		}
		switch {
		case d > best:
		case len(picks) == 0 || d < best:
			best, picks = d, []string{c}
		default:
			picks = append(picks, c)
		}
	}
	if len(picks) == 0 {
		return ""
	}
	if len(picks) > 3 {
		picks = picks[:3]
	}
	return "; did you mean " + strings.Join(picks, " or ") + "?"
}

// levenshtein returns the edit distance between a and b.
func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
