package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/zeebo/blake3"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/engine/fileop"
	"github.com/stagex/sxmake/rules"
	"github.com/stagex/sxmake/sandbox"
)

// stepInputs starts the inputs of an action with what every step has: the
// instruction and its platform, and the parent file system by content.
func (ib *imageBuild) stepInputs(step *rules.Step, parent *state) *inputs {
	in := newInputs()
	in.add("kind", step.Instruction)
	in.add("platform", step.Platform.String())
	in.add("parent", parent.chain().String())
	return in
}

// run is a RUN step: a process in the sandbox over the parent snapshot.
func (ib *imageBuild) run(ctx context.Context, st *rules.Stage, i int, step *rules.Step, s *state) (*layer, error) {
	if len(step.Files) > 0 {
		return nil, fmt.Errorf("RUN with a #! heredoc script is not supported yet")
	}
	network := sandbox.NetworkNone
	if step.Network != "none" && ib.b.network[ib.ip.Image.Name] {
		network = sandbox.NetworkHost
	}
	in := ib.stepInputs(step, s)
	for _, a := range step.Args {
		in.add("arg", a)
	}
	for _, e := range step.Env {
		in.add("env", e)
	}
	// Proxy variables (from build args) are appended to the environment,
	// as BuildKit does; BuildKit keeps them out of its cache key, but a
	// step can print them, so they are part of ours.
	env := slices.Concat(step.Env, step.ProxyEnv)
	for _, e := range step.ProxyEnv {
		in.add("proxy-env", e)
	}
	in.add("workdir", step.Workdir)
	in.add("user", step.User)
	in.add("network", network.String())
	in.add("rlimits", sandbox.RlimitsKey())
	label := describe(st, step)
	a := &action{name: ib.actionName(st, i), label: label, in: in, parent: s, exported: ib.exports(st)}
	a.apply = func(ctx context.Context, lowers []string, upper, work string, log io.Writer) error {
		res, err := ib.b.runner.Run(ctx, sandbox.Spec{
			Lower: lowers, Upper: upper, Work: work,
			Args: step.Args, Env: env, Cwd: step.Workdir, User: step.User,
			Platform: step.Platform.String(), Network: network,
			Limits: ib.b.limits, Stdout: log, Stderr: log,
			Emulating: func(emulator string) {
				ib.emit(Event{Kind: ActionEmulated, Action: label, Emulator: emulator})
			},
		})
		// The program's own time: the container's start is sxmake's
		// overhead, not the step's work.
		a.process = res.Duration - res.Startup
		a.emulator = res.Emulator
		if errors.Is(err, sandbox.ErrLimit) {
			return fmt.Errorf("RUN exited with status %d: %w", res.ExitCode, err)
		}
		if err != nil {
			return err
		}
		if res.ExitCode != 0 {
			err := fmt.Errorf("RUN exited with status %d", res.ExitCode)
			if step.NetworkByDefault() && network == sandbox.NetworkNone {
				return &OfflineError{Image: ib.ip.Image.Name, Err: err}
			}
			return err
		}
		return nil
	}
	return ib.do(ctx, a)
}

// OfflineError is the failure of a RUN step that StageX's builds give the
// network (it has no --network flag) and that ran offline because its
// image was not allowed the network (WithNetwork): it may have failed for
// want of it.
type OfflineError struct {
	Image string // the image the step builds
	Err   error
}

func (e *OfflineError) Error() string {
	return fmt.Sprintf("%v, offline: StageX's builds give this RUN the network (it has no --network=none); if it downloads, allow %s the network (--allow-network %s)", e.Err, e.Image, e.Image)
}

func (e *OfflineError) Unwrap() error { return e.Err }

// copy is a COPY or ADD step, done with fileop on an overlay of the parent
// or, with --link, into nothing: BuildKit then copies onto scratch and
// merges the result over the parent, so the layer holds what was copied
// (and the directories made for it) whatever the parent has, and the
// step's key leaves the parent out. --link with --chmod is an ordinary
// copy, as in BuildKit.
func (ib *imageBuild) copy(ctx context.Context, st *rules.Stage, i int, step *rules.Step, s *state) (*layer, error) {
	link := step.Link && step.Chmod == ""
	keyed := s
	if link {
		keyed = &state{} // its result does not depend on the parent
	}
	in := ib.stepInputs(step, keyed)
	if link {
		in.add("link", "true")
	}
	op := fileop.Copy{
		Dest: step.Dest, DestIsDir: step.DestIsDir,
		Chmod: step.Chmod, Chown: step.Chown,
		Add:      step.Kind == rules.Add && step.Unpack,
		Excludes: step.Excludes,
	}
	for _, e := range op.Excludes {
		in.add("exclude", e)
	}
	src, err := ib.copySource(step, op.Excludes, in)
	if err != nil {
		return nil, err
	}
	for _, cs := range step.Sources {
		if cs.Heredoc {
			op.Heredocs = append(op.Heredocs, fileop.Heredoc{Name: cs.Name, Data: []byte(cs.Data)})
			in.addf("heredoc", "%s %s", cs.Name, contentHash([]byte(cs.Data)))
			continue
		}
		op.Sources = append(op.Sources, src.source(cs))
	}
	in.add("dest", step.Dest)
	in.addf("dest-is-dir", "%v", step.DestIsDir)
	in.add("chmod", step.Chmod)
	in.add("chown", step.Chown)
	in.addf("unpack", "%v", op.Add)
	return ib.do(ctx, &action{
		name: ib.actionName(st, i), label: describe(st, step), in: in, parent: s, exported: ib.exports(st), link: link,
		apply: func(ctx context.Context, lowers []string, upper, work string, _ io.Writer) error {
			root, release, err := src.open()
			if err != nil {
				return err
			}
			defer release()
			op.SrcRoot, op.Local = root, src.local
			return ib.b.withMount(lowers, upper, work, func(dest string) error {
				return fileop.Apply(ctx, dest, op)
			})
		},
	})
}

// copySource is where a COPY or ADD reads: a directory on the host (the
// package dir, its fetched sources) or the file system of a stage or image.
type copySource struct {
	root   string // a host directory; "" for a state
	prefix string // stripped from source paths (fetch/ of the package context)
	local  bool   // a local context: owners count as 0:0
	state  []layer
	b      *Builder
}

func (c *copySource) rel(p string) string {
	p = strings.TrimPrefix(p, "/")
	return strings.TrimPrefix(p, c.prefix)
}

// source is the fileop source of cs, its paths relative to the root.
func (c *copySource) source(cs rules.CopySource) fileop.Source {
	s := fileop.Source{Path: c.rel(cs.Path), Include: cs.Include}
	for _, r := range cs.Required {
		s.Required = append(s.Required, "/"+c.rel(r))
	}
	return s
}

// open returns the source root directory and a function releasing it.
func (c *copySource) open() (string, func(), error) {
	if c.root != "" {
		return c.root, func() {}, nil
	}
	return c.b.view(c.state)
}

// copySource resolves a step's --from and adds its content, what the copy
// reads of it with the --exclude patterns excludes, to in.
func (ib *imageBuild) copySource(step *rules.Step, excludes []string, in *inputs) (*copySource, error) {
	pkg := ib.ip.Image.Package
	fetch := ib.b.tree.FetchDir(pkg)
	src := &copySource{b: ib.b.Builder}
	switch step.From.Kind {
	case rules.Context:
		src.root, src.local = pkg.Dir, true
		if underFetch(step.Sources) {
			// The package context holds its fetched sources as fetch/.
			src.root, src.prefix = fetch, "fetch/"
		}
	case rules.NamedContext:
		if step.From.Ref != "fetch" {
			return nil, fmt.Errorf("unknown build context %q", step.From.Ref)
		}
		src.root, src.local = fetch, true
	case rules.StageSource:
		src.state = ib.states[step.From.Stage].layers
		in.add("from", chainOf(src.state).String())
	case rules.ImageSource:
		dep, err := ib.dependency(step.From.Ref)
		if err != nil {
			return nil, err
		}
		src.state = dep.exportedLayers()
		in.add("from", chainOf(src.state).String())
	case rules.ScratchSource:
		src.root = ib.b.snaps.Empty()
	}
	for _, cs := range step.Sources {
		if cs.Heredoc {
			continue
		}
		in.add("source", cs.Path)
		for _, p := range cs.Include {
			in.add("include", p)
		}
		for _, p := range cs.Required {
			in.add("required", p)
		}
		if src.root != "" {
			files, err := sourceFiles(src.root, src.source(cs), excludes, ib.b.hashes)
			if err != nil {
				return nil, err
			}
			for _, f := range files {
				in.add("file", f)
			}
		}
	}
	return src, nil
}

// underFetch reports whether the step's sources are the package's fetched
// files (fetch/...). Mixing them with other context files is not supported.
func underFetch(sources []rules.CopySource) bool {
	for _, s := range sources {
		if !s.Heredoc && strings.HasPrefix(s.Path, "/fetch/") {
			return true
		}
	}
	return false
}

func chainOf(layers []layer) fmt.Stringer {
	return (&state{layers: layers}).chain()
}

// mkdir is a WORKDIR that creates its directory, as BuildKit's mkdir -p
// file operation does, owned by the stage's user.
func (ib *imageBuild) mkdir(ctx context.Context, st *rules.Stage, i int, step *rules.Step, s *state) (*layer, error) {
	if step.Instruction != "WORKDIR" {
		return nil, fmt.Errorf("%s with a layer is not supported", step.Instruction)
	}
	dir := step.Config.WorkingDir
	in := ib.stepInputs(step, s)
	in.add("mkdir", dir)
	in.add("user", step.User)
	return ib.do(ctx, &action{
		name: ib.actionName(st, i), label: describe(st, step), in: in, parent: s, exported: ib.exports(st),
		apply: func(ctx context.Context, lowers []string, upper, work string, _ io.Writer) error {
			return ib.b.withMount(lowers, upper, work, func(root string) error {
				p, err := securejoin.SecureJoin(root, dir)
				if err != nil {
					return err
				}
				var owner *fileop.Owner
				if step.User != "" {
					o, err := fileop.ResolveChown(root, step.User)
					if err != nil {
						return err
					}
					owner = &o
				}
				return mkdirAll(p, owner)
			})
		},
	})
}

// mkdirAll creates p and its missing parents with mode 0755 as BuildKit's
// mkdir -p file operation (fsutil's copy.MkdirAll) does: each directory it
// creates, and only those, is owned by owner (when not nil, the stage's
// USER resolved as for --chown) and gets the epoch as its times; existing
// directories are left alone.
func mkdirAll(p string, owner *fileop.Owner) error {
	fi, err := os.Stat(p)
	if err == nil {
		if fi.IsDir() {
			return nil
		}
		return &os.PathError{Op: "mkdir", Path: p, Err: syscall.ENOTDIR}
	}
	if parent := filepath.Dir(p); parent != p {
		if err := mkdirAll(parent, owner); err != nil {
			return err
		}
	}
	if err := os.Mkdir(p, 0o755); err != nil {
		if fi, err1 := os.Lstat(p); err1 == nil && fi.IsDir() {
			return nil
		}
		return err
	}
	if owner != nil {
		if err := os.Lchown(p, owner.UID, owner.GID); err != nil {
			return err
		}
	}
	return os.Chtimes(p, epoch, epoch)
}

// sourceFiles describes what the copy of src under root with the
// --exclude patterns excludes reads (fileop.Walk), one line per entry:
// path as the copy names it, type and permission bits, size, and the hash
// of the content (SHA-256, from hashes: a file unchanged since it was last
// hashed is not read) or of the link target; never the mtime or owner. A
// source that is a symlink is described by what it points to, which is
// what is copied. A missing source gives no line (the copy itself reports
// it when that is an error). A fetched source is described by the sha256
// package.toml pins, as the fetch verified it.
func sourceFiles(root string, src fileop.Source, excludes []string, hashes *cache.FileHashes) ([]string, error) {
	var lines []string
	err := fileop.Walk(root, src, excludes, func(e fileop.Entry) error {
		name := strings.TrimPrefix(e.Name, "/")
		if name == "" {
			name = "." // the source root itself
		}
		line, err := describeFile(name, e.Path, e.Info, hashes)
		lines = append(lines, line)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("hashing source %s: %w", src.Path, err)
	}
	return lines, nil
}

// describeFile is the line of the file at p, named name, in a key: its
// name, type and permission bits, size, and the hash of its content
// (SHA-256, from hashes) or of its link target; never its mtime or owner.
func describeFile(name, p string, fi fs.FileInfo, hashes *cache.FileHashes) (string, error) {
	var sum string
	switch {
	case fi.Mode()&os.ModeSymlink != 0:
		target, err := os.Readlink(p)
		if err != nil {
			return "", err
		}
		sum = contentHash([]byte(target))
	case fi.Mode().IsRegular():
		var err error
		if sum, err = hashes.SHA256(p); err != nil {
			return "", err
		}
	}
	return fmt.Sprintf("%q %v %d %s", name, fi.Mode(), fi.Size(), sum), nil
}

// contentHash is the BLAKE3 hash of data in hex.
func contentHash(data []byte) string {
	sum := blake3.Sum256(data)
	return fmt.Sprintf("%x", sum[:])
}
