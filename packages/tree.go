package packages

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strings"
	"sync"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"

	"github.com/stagex/sxmake/rules"
)

// Tree is a loaded, validated package tree. It is not modified after Load.
type Tree struct {
	Root     string     // absolute path of the tree (the directory holding packages/)
	Packages []*Package // sorted by ID
	Skipped  []Skip     // directories under packages/<stage>/ that are not packages, sorted

	byID   map[string]*Package
	images []*Image // sorted by Name
	byName map[string]*Image

	external map[string]bool // images referenceable but not built (WithExternalImages)
}

// Package is one packages/<stage>/<name>/ directory.
type Package struct {
	Stage, Name string
	Dir         string // absolute path of the package directory

	// Version is the package's version, version_from followed; "" when
	// it has none (then no VERSION* build args are passed and its images
	// are tagged "latest", see Tag).
	Version     string
	VersionFrom string // the image version_from names, if any; it wins over version, as in StageX

	Description, License, Website string
	Subpackages                   []string
	Platforms                     []rules.Platform // from `platforms`; nil means the default platform
	Sources                       []Source         // sorted by Key

	Containerfile     *rules.File
	TOMLPath          string // absolute path of package.toml
	ContainerfilePath string // absolute path of the Containerfile

	rel        string // "packages/<stage>/<name>", for messages
	ownVersion string // package.version as written: what fetch templates use
	m          *manifest
	src        []byte // the Containerfile text
	buildArgs  map[string]string
}

// Source is one [sources.<key>] table with its templates expanded.
type Source struct {
	Key     string   // as written in package.toml ("M2_Mesoplanet")
	Hash    string   // sha256 of the file, lower-case hex
	File    string   // local file name in the fetch directory
	Format  string   // e.g. "tar.xz"; may be empty
	Version string   // the source's own version; empty when it uses the package's
	GitSHA  string   // may be empty
	Mirrors []string // URLs to try in order
}

// ID returns "<stage>-<name>", the package's name across the tree, which is
// also the name of its own image when it has one (no subpackages, or its
// name among them).
func (p *Package) ID() string { return p.Stage + "-" + p.Name }

// Tag returns the tag and org.opencontainers.image.version annotation
// StageX gives the package's images: its version, or "latest" when it has
// none.
func (p *Package) Tag() string {
	if p.Version == "" {
		return "latest"
	}
	return p.Version
}

// Skip is a directory packages/<stage>/<name> that is not a package: it
// lacks a Containerfile or a package.toml. StageX's generator skips such
// directories silently (packages/user/mesa has only a package.toml~).
type Skip struct {
	Dir    string // "packages/<stage>/<name>"
	Reason string // "no package.toml", ...
}

func (s Skip) String() string { return s.Dir + ": not a package: " + s.Reason }

// FetchDir returns the directory Fetch fills for p and the build reads
// p's sources from: <root>/fetch/<stage>/<name>, resolved as Dir does.
func (t *Tree) FetchDir(p *Package) string {
	return t.Dir("fetch", p.Stage, p.Name)
}

// OutDir returns the default directory of image layouts, <root>/out,
// resolved as Dir does.
func (t *Tree) OutDir() string { return t.Dir("out") }

// Dir returns the path of the tree's directory elem (joined), with the
// symbolic links the tree holds resolved as if the tree root were "/": a
// link committed to the tree (fetch -> /etc, say) never leads sxmake's
// reads and writes outside it.
func (t *Tree) Dir(elem ...string) string {
	p, err := securejoin.SecureJoin(t.Root, filepath.Join(elem...))
	if err != nil {
		// A symlink loop: the plain path fails the same way when used.
		return filepath.Join(append([]string{t.Root}, elem...)...)
	}
	return p
}

// Package returns the package with the given ID, or nil.
func (t *Tree) Package(id string) *Package { return t.byID[id] }

// Load reads every package under root/packages/<stage>/<name>/, validates
// package.toml, resolves versions, expands source templates, parses each
// Containerfile and links images to the images they reference. Every
// problem found in a phase is reported, joined, in a stable order.
func Load(root string, opts ...LoadOption) (*Tree, error) {
	abs, err := filepath.Abs(root)
	if err != nil {
		return nil, fmt.Errorf("loading package tree: %w", err)
	}
	dirs, skipped, err := discover(abs)
	if err != nil {
		return nil, err
	}
	t := &Tree{Root: abs, Packages: make([]*Package, len(dirs)), Skipped: skipped, byID: make(map[string]*Package)}
	for _, o := range opts {
		o(t)
	}
	treeRoot, err := os.OpenRoot(abs)
	if err != nil {
		return nil, fmt.Errorf("loading package tree: %w", err)
	}
	defer treeRoot.Close()
	errs := make([]error, len(dirs))
	parallel(len(dirs), func(i int) {
		t.Packages[i], errs[i] = readPackage(treeRoot, dirs[i][0], dirs[i][1])
	})
	if err := joinSorted(errs); err != nil {
		return nil, err
	}
	for _, p := range t.Packages {
		t.byID[p.ID()] = p
	}
	for _, phase := range []func() error{t.makeImages, t.resolveVersions, t.expandSources, t.linkImages} {
		if err := phase(); err != nil {
			return nil, err
		}
	}
	return t, nil
}

// discover lists the [stage, name] pairs of the packages under
// root/packages, sorted by ID, and the directories skipped because they
// are not packages. A package is a directory holding both a Containerfile
// and a package.toml; StageX's generator ignores any other.
func discover(root string) ([][2]string, []Skip, error) {
	pkgRoot := filepath.Join(root, "packages")
	stages, err := os.ReadDir(pkgRoot)
	if err != nil {
		return nil, nil, fmt.Errorf("loading package tree: %w", err)
	}
	var dirs [][2]string
	var skipped []Skip
	for _, s := range stages {
		if !s.IsDir() || strings.HasPrefix(s.Name(), ".") {
			continue
		}
		names, err := os.ReadDir(filepath.Join(pkgRoot, s.Name()))
		if err != nil {
			return nil, nil, fmt.Errorf("loading package tree: %w", err)
		}
		for _, n := range names {
			if !n.IsDir() || strings.HasPrefix(n.Name(), ".") {
				continue
			}
			if reason := notPackage(filepath.Join(pkgRoot, s.Name(), n.Name())); reason != "" {
				skipped = append(skipped, Skip{Dir: path.Join("packages", s.Name(), n.Name()), Reason: reason})
				continue
			}
			dirs = append(dirs, [2]string{s.Name(), n.Name()})
		}
	}
	sort.Slice(dirs, func(i, j int) bool {
		return dirs[i][0]+"-"+dirs[i][1] < dirs[j][0]+"-"+dirs[j][1]
	})
	sort.Slice(skipped, func(i, j int) bool { return skipped[i].Dir < skipped[j].Dir })
	return dirs, skipped, nil
}

// notPackage says which of the files every package has dir lacks, or ""
// when it has both.
func notPackage(dir string) string {
	var missing []string
	for _, f := range []string{"Containerfile", "package.toml"} {
		if _, err := os.Lstat(filepath.Join(dir, f)); errors.Is(err, os.ErrNotExist) {
			missing = append(missing, f)
		}
	}
	if len(missing) == 0 {
		return ""
	}
	return "no " + strings.Join(missing, " and no ")
}

// readPackage reads and checks one package's package.toml and
// Containerfile, from the tree root.
func readPackage(root *os.Root, stage, name string) (*Package, error) {
	rel := path.Join("packages", stage, name)
	dir := filepath.Join(root.Name(), "packages", stage, name)
	p := &Package{
		Stage:             stage,
		Name:              name,
		Dir:               dir,
		rel:               rel,
		TOMLPath:          filepath.Join(dir, "package.toml"),
		ContainerfilePath: filepath.Join(dir, "Containerfile"),
	}
	data, err := readTreeFile(root, rel+"/package.toml")
	if err != nil {
		return nil, &Error{Pos: rules.Pos{File: rel + "/package.toml"}, Msg: readError(err)}
	}
	if err := p.decode(rel+"/package.toml", data); err != nil {
		return nil, err
	}
	p.src, err = readTreeFile(root, rel+"/Containerfile")
	if err != nil {
		return nil, &Error{Pos: rules.Pos{File: rel + "/Containerfile"}, Msg: readError(err)}
	}
	p.Containerfile, err = rules.Parse(rel+"/Containerfile", p.src)
	if err != nil {
		return nil, err
	}
	return p, nil
}

// readTreeFile reads the regular file rel of the tree. Package
// definitions are hostile: a symbolic link committed as a Containerfile
// must not make sxmake read (and print in a parse error) a file outside
// the tree, nor a device or FIFO (/dev/zero, a pipe no one writes) that
// never ends.
func readTreeFile(root *os.Root, rel string) ([]byte, error) {
	// O_NONBLOCK: opening a FIFO returns at once; it is then refused.
	f, err := root.OpenFile(rel, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("not a regular file (%s)", fi.Mode().Type())
	}
	return io.ReadAll(f)
}

func readError(err error) string {
	if errors.Is(err, os.ErrNotExist) {
		return "file is missing"
	}
	return err.Error()
}

// decode decodes and checks package.toml (named file in messages) into p.
func (p *Package) decode(file string, data []byte) error {
	m, err := decodeManifest(file, data)
	if err != nil {
		return err
	}
	p.m = m
	return p.applyManifest()
}

var hexHash = regexp.MustCompile(`^[0-9a-fA-F]{64}$`)

// applyManifest copies the fields of p.m into p and checks what can be
// checked without looking at other packages.
func (p *Package) applyManifest() error {
	m := p.m
	mp := &m.Package
	var errs []error
	switch {
	case mp.Name == "":
		errs = append(errs, m.errorf("package", "package.name is missing (want %q)", p.Name))
	case mp.Name != p.Name:
		errs = append(errs, m.errorf("package.name", "package.name %q does not match the directory name %q", mp.Name, p.Name))
	}
	if mp.VersionFrom != "" && strings.Count(mp.VersionFrom, "-") != 1 {
		// StageX's generator splits it into stage and name at "-" and
		// fails unless there are exactly two parts.
		errs = append(errs, m.errorf("package.version_from", "package.version_from %q is not <stage>-<name> with one '-' (StageX's generator splits it at '-')", mp.VersionFrom))
	}
	p.Version, p.VersionFrom, p.ownVersion = mp.Version, mp.VersionFrom, mp.Version
	p.Description, p.License, p.Website = mp.Description, mp.License, mp.Website
	p.Subpackages = mp.Subpackages
	for _, s := range mp.Platforms {
		pl, err := rules.ParsePlatform(s)
		if err != nil {
			errs = append(errs, m.errorf("package.platforms", "package.platforms: %v", err))
			continue
		}
		p.Platforms = append(p.Platforms, pl)
	}
	for _, key := range sortedKeys(m.Sources) {
		s := m.Sources[key]
		k := "sources." + key
		if s.Hash == "" {
			errs = append(errs, m.errorf(k, "%s: missing hash", k))
		} else if !hexHash.MatchString(s.Hash) {
			errs = append(errs, m.errorf(k+".hash", "%s.hash: want 64 hex digits of sha256, have %q", k, s.Hash))
		}
		if len(s.Mirrors) == 0 {
			errs = append(errs, m.errorf(k, "%s: missing mirrors", k))
		}
	}
	return errors.Join(errs...)
}

// resolveVersions follows version_from, which names an image (a
// subpackage too): the package takes the version of the package building
// that image, following chains. As in StageX's generator, version_from
// wins over version, and a package ends up without a version when the
// chain ends at one without.
func (t *Tree) resolveVersions() error {
	var errs []error
	for _, p := range t.Packages {
		if err := t.resolveVersion(p); err != nil {
			errs = append(errs, err)
		}
	}
	return joinSorted(errs)
}

func (t *Tree) resolveVersion(p *Package) error {
	chain := []string{p.ID()}
	seen := map[*Package]bool{}
	q := p
	for q.VersionFrom != "" {
		seen[q] = true
		img := t.byName[q.VersionFrom]
		if img == nil {
			if q != p {
				return nil // q reports it
			}
			return p.m.errorf("package.version_from", "package.version_from: unknown image %q%s", p.VersionFrom, suggest(p.VersionFrom, t.imageNames()))
		}
		chain = append(chain, img.Name)
		if seen[img.Package] {
			return p.m.errorf("package.version_from", "package.version_from: cycle %s", strings.Join(chain, " -> "))
		}
		q = img.Package
	}
	p.Version = q.ownVersion
	return nil
}

// expandSources fills in each package's Sources and build args.
func (t *Tree) expandSources() error {
	var errs []error
	for _, p := range t.Packages {
		if err := p.expandSources(); err != nil {
			errs = append(errs, err)
		}
		args, err := p.computeBuildArgs()
		if err != nil {
			errs = append(errs, err)
		}
		p.buildArgs = args
	}
	return joinSorted(errs)
}

func (p *Package) expandSources() error {
	var errs []error
	for _, key := range sortedKeys(p.m.Sources) {
		s, err := p.expandSource(key, p.m.Sources[key])
		if err != nil {
			errs = append(errs, err)
			continue
		}
		p.Sources = append(p.Sources, s)
	}
	return errors.Join(errs...)
}

// expandSource expands a source's templates as StageX's fetch.py does:
// with the source's version, else the version package.toml sets (never
// version_from's).
func (p *Package) expandSource(key string, sm sourceManifest) (Source, error) {
	k := "sources." + key
	version := p.ownVersion
	if sm.Version != "" {
		version = sm.Version
	}
	vars := map[string]string{"format": sm.Format}
	if version != "" {
		maps.Copy(vars, versionVars(version))
	}
	explain := func(err error) error {
		var ut *unknownTemplate
		if version == "" && errors.As(err, &ut) && versionVars("1")[ut.name] != "" {
			return fmt.Errorf("{%s} has no value: neither package.version nor %s.version is set (StageX's fetch does not follow version_from)", ut.name, k)
		}
		return err
	}
	s := Source{Key: key, Hash: strings.ToLower(sm.Hash), Format: sm.Format, Version: sm.Version, GitSHA: sm.GitSHA}
	if sm.File != "" {
		f, err := expand(sm.File, vars)
		if err != nil {
			return s, p.m.errorf(k+".file", "%s.file: %v", k, explain(err))
		}
		s.File = f
		vars["file"] = f
	}
	for i, mirror := range sm.Mirrors {
		u, err := expand(mirror, vars)
		if err != nil {
			if sm.File == "" && strings.Contains(mirror, "{file}") {
				err = fmt.Errorf("{file} used but %s.file is not set", k)
			}
			return s, p.m.errorf(k+".mirrors", "%s.mirrors[%d]: %v", k, i, explain(err))
		}
		s.Mirrors = append(s.Mirrors, u)
	}
	if s.File == "" {
		f, err := fileFromURL(s.Mirrors[0])
		if err != nil {
			return s, p.m.errorf(k+".mirrors", "%s.mirrors[0]: %v", k, err)
		}
		s.File = f
	}
	return s, p.checkSourceFile(key, sm, s)
}

// fileFromURL returns the last path segment of a URL.
func fileFromURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", err
	}
	f := path.Base(u.Path)
	if strings.HasSuffix(u.Path, "/") || f == "/" || f == "." || f == ".." {
		return "", fmt.Errorf("%q does not end in a file name: set file", raw)
	}
	return f, nil
}

// parallel calls f(0), ..., f(n-1) on up to GOMAXPROCS goroutines.
func parallel(n int, f func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), n)
	var next sync.Mutex
	i := 0
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for {
				next.Lock()
				j := i
				i++
				next.Unlock()
				if j >= n {
					return
				}
				f(j)
			}
		})
	}
	wg.Wait()
}

// joinSorted joins the non-nil errors (and the errors they join) sorted by
// file, line and column, then message, so that parallel work reports in a
// stable order.
func joinSorted(errs []error) error {
	var flat []error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			flat = append(flat, j.Unwrap()...)
		} else {
			flat = append(flat, err)
		}
	}
	sort.SliceStable(flat, func(i, j int) bool {
		pi, pj := errPos(flat[i]), errPos(flat[j])
		if pi != pj {
			return pi.File < pj.File || pi.File == pj.File && (pi.Line < pj.Line || pi.Line == pj.Line && pi.Col < pj.Col)
		}
		return flat[i].Error() < flat[j].Error()
	})
	return errors.Join(flat...)
}

// errPos returns the position an error reports, or the zero Pos.
func errPos(err error) rules.Pos {
	var e *Error
	if errors.As(err, &e) {
		return e.Pos
	}
	var re *rules.Error
	if errors.As(err, &re) {
		return re.Pos
	}
	return rules.Pos{}
}
