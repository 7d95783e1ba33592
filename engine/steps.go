package engine

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path"
	"path/filepath"
	"strings"
	"syscall"

	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/zeebo/blake3"

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
	in.add("workdir", step.Workdir)
	in.add("user", step.User)
	in.add("network", network.String())
	label := describe(st, step)
	a := &action{name: ib.actionName(st, i), label: label, in: in, parent: s, exported: ib.exports(st)}
	a.apply = func(ctx context.Context, lowers []string, upper, work string, log io.Writer) error {
		res, err := ib.b.runner.Run(ctx, sandbox.Spec{
			Lower: lowers, Upper: upper, Work: work,
			Args: step.Args, Env: step.Env, Cwd: step.Workdir, User: step.User,
			Platform: step.Platform.String(), Network: network,
			Stdout: log, Stderr: log,
			Emulating: func(emulator string) {
				ib.emit(Event{Kind: ActionEmulated, Action: label, Emulator: emulator})
			},
		})
		// The program's own time: the container's start is sxmake's
		// overhead, not the step's work.
		a.process = res.Duration - res.Startup
		a.emulator = res.Emulator
		if err != nil {
			return err
		}
		if res.ExitCode != 0 {
			return fmt.Errorf("RUN exited with status %d", res.ExitCode)
		}
		return nil
	}
	return ib.do(ctx, a)
}

// copy is a COPY or ADD step, done with fileop on an overlay of the parent.
func (ib *imageBuild) copy(ctx context.Context, st *rules.Stage, i int, step *rules.Step, s *state) (*layer, error) {
	in := ib.stepInputs(step, s)
	src, err := ib.copySource(step, in)
	if err != nil {
		return nil, err
	}
	op := fileop.Copy{
		Dest: step.Dest, DestIsDir: step.DestIsDir,
		Chmod: step.Chmod, Chown: step.Chown,
		Add: step.Kind == rules.Add && step.Unpack,
	}
	for _, cs := range step.Sources {
		if cs.Heredoc {
			op.Heredocs = append(op.Heredocs, fileop.Heredoc{Name: cs.Name, Data: []byte(cs.Data)})
			in.addf("heredoc", "%s %s", cs.Name, contentHash([]byte(cs.Data)))
			continue
		}
		op.Sources = append(op.Sources, src.rel(cs.Path))
	}
	in.add("dest", step.Dest)
	in.addf("dest-is-dir", "%v", step.DestIsDir)
	in.add("chmod", step.Chmod)
	in.add("chown", step.Chown)
	in.addf("unpack", "%v", op.Add)
	return ib.do(ctx, &action{
		name: ib.actionName(st, i), label: describe(st, step), in: in, parent: s, exported: ib.exports(st),
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

// open returns the source root directory and a function releasing it.
func (c *copySource) open() (string, func(), error) {
	if c.root != "" {
		return c.root, func() {}, nil
	}
	return c.b.view(c.state)
}

// copySource resolves a step's --from and adds its content to in.
func (ib *imageBuild) copySource(step *rules.Step, in *inputs) (*copySource, error) {
	pkg := ib.ip.Image.Package
	fetch := filepath.Join(ib.b.fetchDir, pkg.Stage, pkg.Name)
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
		if src.root != "" {
			files, err := sourceFiles(src.root, src.rel(cs.Path))
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

// sourceFiles describes what a source pattern names under root, as the
// copy resolves it (fileop.ResolveSource), one line per file: path as the
// copy names it, type and permission bits, size, and the hash of the
// content or link target; never the mtime or owner. A source that is a
// symlink is described by what it points to, which is what is copied.
// A missing source gives no line (the copy itself reports it when that is
// an error).
func sourceFiles(root, pattern string) ([]string, error) {
	matches, err := fileop.ResolveSource(root, pattern)
	if err != nil {
		// The copy resolves the pattern the same way and fails with this
		// error; no result is cached under the key.
		return nil, nil
	}
	var lines []string
	for _, m := range matches {
		if _, err := os.Lstat(m.Path); errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			continue
		}
		err := filepath.WalkDir(m.Path, func(p string, d os.DirEntry, err error) error {
			if err != nil {
				return err
			}
			fi, err := d.Info()
			if err != nil {
				return err
			}
			inside, _ := filepath.Rel(m.Path, p)
			name := strings.TrimPrefix(path.Join(m.Name, filepath.ToSlash(inside)), "/")
			if name == "" {
				name = "." // the source root itself
			}
			var sum string
			switch {
			case fi.Mode()&os.ModeSymlink != 0:
				target, err := os.Readlink(p)
				if err != nil {
					return err
				}
				sum = contentHash([]byte(target))
			case fi.Mode().IsRegular():
				if sum, err = fileHash(p); err != nil {
					return err
				}
			}
			lines = append(lines, fmt.Sprintf("%q %v %d %s", name, fi.Mode(), fi.Size(), sum))
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("hashing source %s: %w", pattern, err)
		}
	}
	return lines, nil
}

// fileHash is the BLAKE3 hash of a file's content in hex.
func fileHash(p string) (string, error) {
	f, err := os.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := blake3.New()
	if _, err := io.Copy(h, f); err != nil {
		return "", err
	}
	return fmt.Sprintf("%x", h.Sum(nil)), nil
}

// contentHash is the BLAKE3 hash of data in hex.
func contentHash(data []byte) string {
	sum := blake3.Sum256(data)
	return fmt.Sprintf("%x", sum[:])
}
