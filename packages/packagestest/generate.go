// Package packagestest generates synthetic StageX-shaped package trees for
// tests and benchmarks of the packages and engine packages.
package packagestest

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
)

// Generate writes a package tree of n packages under dir/packages, shaped
// like StageX: 4 bootstrap packages in a chain, then about 22% core, 3%
// pallet and the rest user packages. Core packages form layers so that the
// deepest image is about 34 levels deep; every package references on
// average about 4 images, some of them subpackages (one core package in ten
// has two besides its own image, which it lists as a subpackage too, as
// StageX's packages do). Pallets take a core package's version with
// version_from.
// Sources point at example.org and their hashes are not of real files.
// The same n and seed always give the same tree. n must be at least 8.
func Generate(dir string, n int, seed int64) error {
	return generate(dir, n, seed, false)
}

// GenerateBuildable writes the tree Generate writes, but one that sxmake
// can build without sources or a shell: each image is FROM its first
// dependency (or scratch), COPYs in its other dependencies and one
// heredoc file of its own, and declares no sources.
func GenerateBuildable(dir string, n int, seed int64) error {
	return generate(dir, n, seed, true)
}

func generate(dir string, n int, seed int64, buildable bool) error {
	if n < 8 {
		return fmt.Errorf("generate: need at least 8 packages, have %d", n)
	}
	g := &generator{rng: rand.New(rand.NewPCG(uint64(seed), 0x5eed)), buildable: buildable}
	g.plan(n)
	for _, p := range g.pkgs {
		if err := g.write(dir, p); err != nil {
			return fmt.Errorf("generate: %w", err)
		}
	}
	return nil
}

type pkg struct {
	stage, name string
	level       int
	version     string
	versionFrom string
	subs        []string
	deps        []string // image names
}

func (p *pkg) id() string { return p.stage + "-" + p.name }

type generator struct {
	buildable bool
	rng       *rand.Rand
	pkgs      []*pkg
	byLevel   [][]string // image names available at each level
}

const coreLevels = 30

func (g *generator) plan(n int) {
	nCore := n * 22 / 100
	nPallet := max(1, n*3/100)
	nUser := n - 4 - nCore - nPallet
	g.byLevel = make([][]string, 4+coreLevels+1)
	for i := range 4 {
		p := &pkg{stage: "bootstrap", name: fmt.Sprintf("stage%d", i), level: i, version: g.version()}
		if i > 0 {
			p.deps = []string{fmt.Sprintf("bootstrap-stage%d", i-1)}
		}
		g.add(p)
	}
	for i := range nCore {
		level := 4 + i*coreLevels/nCore
		p := &pkg{stage: "core", name: fmt.Sprintf("core%03d", i), level: level, version: g.version()}
		if i%10 == 3 {
			p.subs = []string{p.name + "-libs", p.name + "-dev"}
		}
		p.deps = g.deps(level, 1+g.rng.IntN(8))
		g.add(p)
	}
	var cores []*pkg
	for _, p := range g.pkgs {
		if p.stage == "core" {
			cores = append(cores, p)
		}
	}
	top := len(g.byLevel) - 1
	for i := range nPallet {
		from := cores[g.rng.IntN(len(cores))]
		p := &pkg{stage: "pallet", name: fmt.Sprintf("pallet%02d", i), level: top, versionFrom: from.id()}
		p.deps = append(g.deps(from.level+1, 3), from.id())
		g.addLeaf(p)
	}
	for i := range nUser {
		p := &pkg{stage: "user", name: fmt.Sprintf("user%03d", i), level: top, version: g.version()}
		p.deps = g.deps(top, 1+g.rng.IntN(8))
		g.addLeaf(p)
	}
}

// deps picks k distinct images from levels below level, the first from
// level-1 so that depth grows with the level.
func (g *generator) deps(level, k int) []string {
	seen := map[string]bool{}
	var out []string
	pick := func(l int) {
		names := g.byLevel[l]
		if len(names) == 0 {
			return
		}
		if name := names[g.rng.IntN(len(names))]; !seen[name] {
			seen[name] = true
			out = append(out, name)
		}
	}
	below := level - 1
	for below > 0 && len(g.byLevel[below]) == 0 {
		below--
	}
	pick(below)
	for len(out) < k && below > 0 {
		pick(g.rng.IntN(below + 1))
		if g.rng.IntN(16) == 0 {
			break
		}
	}
	return out
}

func (g *generator) add(p *pkg) {
	g.pkgs = append(g.pkgs, p)
	g.byLevel[p.level] = append(g.byLevel[p.level], p.id())
	for _, s := range p.subs {
		g.byLevel[p.level] = append(g.byLevel[p.level], p.stage+"-"+s)
	}
}

func (g *generator) addLeaf(p *pkg) { g.pkgs = append(g.pkgs, p) }

func (g *generator) version() string {
	return fmt.Sprintf("%d.%d.%d", 1+g.rng.IntN(20), g.rng.IntN(30), g.rng.IntN(10))
}

func (g *generator) write(dir string, p *pkg) error {
	pdir := filepath.Join(dir, "packages", p.stage, p.name)
	if err := os.MkdirAll(pdir, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(pdir, "package.toml"), []byte(p.toml(g.buildable)), 0o644); err != nil {
		return err
	}
	return os.WriteFile(filepath.Join(pdir, "Containerfile"), []byte(p.containerfile(g.buildable)), 0o644)
}

func (p *pkg) toml(buildable bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "[package]\nname = %q\n", p.name)
	if p.versionFrom != "" {
		fmt.Fprintf(&b, "version_from = %q\n", p.versionFrom)
	} else {
		fmt.Fprintf(&b, "version = %q\n", p.version)
	}
	fmt.Fprintf(&b, "description = \"Synthetic package %s\"\nlicense = \"MIT\"\n", p.id())
	if len(p.subs) > 0 {
		fmt.Fprintf(&b, "subpackages = [%q, %q, %q]\n", p.name, p.subs[0], p.subs[1])
	}
	if p.stage == "bootstrap" && p.name != "stage3" {
		b.WriteString("platforms = [\"linux/386\"]\n")
	}
	if p.versionFrom == "" && !buildable {
		sum := sha256.Sum256([]byte(p.id()))
		fmt.Fprintf(&b, "\n[sources.%s]\nhash = %q\nformat = \"tar.xz\"\nfile = \"%s-{version}.{format}\"\n", p.name, hex.EncodeToString(sum[:]), p.name)
		fmt.Fprintf(&b, "mirrors = [\n  \"https://example.org/%s/{version_major_minor}/{file}\",\n  \"https://mirror.example.org/%s/{file}\",\n]\n", p.name, p.name)
	}
	return b.String()
}

func (p *pkg) containerfile(buildable bool) string {
	if buildable {
		return p.buildableContainerfile()
	}
	var b strings.Builder
	if len(p.deps) == 0 {
		b.WriteString("FROM scratch AS build\n")
	} else {
		fmt.Fprintf(&b, "FROM stagex/%s AS build\n", p.deps[0])
		for _, d := range p.deps[1:] {
			fmt.Fprintf(&b, "COPY --from=stagex/%s . /\n", d)
		}
	}
	if p.versionFrom == "" {
		fmt.Fprintf(&b, "ADD fetch/%s-${VERSION}.tar.xz .\n", p.name)
	}
	b.WriteString("RUN --network=none <<-EOF\n\tset -eu\n\tmake -j1 DESTDIR=/rootfs install\nEOF\n")
	for _, s := range p.subs {
		fmt.Fprintf(&b, "FROM scratch AS package-%s\nCOPY --from=build /rootfs/%s /\n", s, s)
	}
	fmt.Fprintf(&b, "FROM scratch AS %s\nCOPY --from=build /rootfs/ /\n", p.mainStage())
	return b.String()
}

// buildableContainerfile builds p from its dependencies and a heredoc file.
func (p *pkg) buildableContainerfile() string {
	var b strings.Builder
	if len(p.deps) == 0 {
		b.WriteString("FROM scratch AS build\n")
	} else {
		fmt.Fprintf(&b, "FROM stagex/%s AS build\n", p.deps[0])
		for _, d := range p.deps[1:] {
			fmt.Fprintf(&b, "COPY --from=stagex/%s . /\n", d)
		}
	}
	fmt.Fprintf(&b, "ARG VERSION\nCOPY <<EOF /share/%s.txt\n%s ${VERSION}\nEOF\n", p.id(), p.id())
	for _, s := range p.subs {
		fmt.Fprintf(&b, "FROM scratch AS package-%s\nCOPY --from=build /share/%s.txt /share/%s.txt\n", s, p.id(), s)
	}
	fmt.Fprintf(&b, "FROM scratch AS %s\nCOPY --from=build / /\n", p.mainStage())
	return b.String()
}

// mainStage is the Containerfile stage of the package's own image:
// "package", or "package-<name>" when it has subpackages (then it lists
// itself among them).
func (p *pkg) mainStage() string {
	if len(p.subs) > 0 {
		return "package-" + p.name
	}
	return "package"
}
