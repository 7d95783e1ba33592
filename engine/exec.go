package engine

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/rules"
)

// layer is one layer of a file system state: the blob, its diffID and the
// chain ID of the stack it tops.
type layer struct {
	image.Layer
	chain cache.ChainID
	key   cache.ActionKey // the action that made it; zero for a base image's
}

// state is a stage's file system and image config at some step.
type state struct {
	layers []layer       // bottom first
	config image.Config  // including history
	base   *image.Config // the config of the image the stage was built FROM, if any
}

func (s *state) chain() cache.ChainID {
	if len(s.layers) == 0 {
		return cache.ChainID{}
	}
	return s.layers[len(s.layers)-1].chain
}

func (s *state) clone() *state {
	c := *s
	c.layers = append([]layer(nil), s.layers...)
	c.config.History = append([]image.History(nil), s.config.History...)
	return &c
}

// exported returns layers as an image that uses them sees them: unpacked
// from their blobs, whose timestamps rewrite-timestamp clamped, rather than
// as the snapshots their build left. Their chain IDs are derived with a
// mark so that the two kinds of snapshot never share a directory, and the
// difference reaches action keys (a COPY over clamped files diffs
// differently). BuildKit's rewrite-timestamp leaves a base image's layers
// alone, so they lose its annotation.
func exported(layers []layer) []layer {
	out := make([]layer, len(layers))
	var chain cache.ChainID
	for i, l := range layers {
		l.Annotations = nil
		chain = cache.Chain(cache.ChainID(cache.DigestOf([]byte("exported "+chain.String()))), cache.Digest(l.DiffID))
		l.chain = chain
		out[i] = l
	}
	return out
}

// imageResult is a built image, as its dependents see it.
type imageResult struct {
	layers []layer
	config image.Config // what a stage FROM the image starts with (image.BaseConfig of the written blob)
	digest image.Digest // the manifest digest
	layout string
	ran    int
	cached int
	// emulated are the emulators RUN steps ran through (sorted).
	emulated []string
	// published says the image is a published one, taken instead of
	// built (published.go).
	published bool

	exportOnce sync.Once
	export     []layer // exported(layers), computed once for all dependents
}

// exportedLayers returns exported(r.layers), computed on first use.
func (r *imageResult) exportedLayers() []layer {
	r.exportOnce.Do(func() { r.export = exported(r.layers) })
	return r.export
}

// imageBuild is the work on one image.
type imageBuild struct {
	b      *planBuild
	ip     *ImagePlan
	states map[*rules.Stage]*state
	rec    *buildRecord // for sxmake log (record.go)
	ran    int
	cached int
	// emulated are the binfmt_misc entries its RUN steps ran through.
	emulated map[string]bool
}

// buildImage builds the stages ip's image needs, then writes the image.
func (b *planBuild) buildImage(ctx context.Context, ip *ImagePlan) (*imageResult, error) {
	ib := &imageBuild{b: b, ip: ip, states: map[*rules.Stage]*state{}, emulated: map[string]bool{}}
	ib.rec = ib.newRecord()
	res, err := ib.build(ctx)
	status := cache.StatusDone
	switch {
	case ctx.Err() != nil:
		status = cache.StatusInterrupted
	case err != nil:
		status = cache.StatusFailed
	}
	if rerr := ib.rec.finish(status); err == nil && rerr != nil {
		return nil, rerr
	}
	return res, err
}

func (ib *imageBuild) build(ctx context.Context) (*imageResult, error) {
	for _, st := range ib.ip.Build.Stages {
		s, err := ib.stage(ctx, st)
		if err != nil {
			return nil, err
		}
		ib.states[st] = s
	}
	res, err := ib.write(ib.states[ib.ip.Build.Target])
	if err != nil {
		return nil, err
	}
	res.ran, res.cached = ib.ran, ib.cached
	res.emulated = slices.Sorted(maps.Keys(ib.emulated))
	return res, nil
}

// stage builds one Containerfile stage from its base, step by step.
func (ib *imageBuild) stage(ctx context.Context, st *rules.Stage) (*state, error) {
	s, err := ib.baseState(st)
	if err != nil {
		return nil, err
	}
	for i, step := range st.Steps {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if err := ib.step(ctx, st, i, step, s); err != nil {
			return nil, fmt.Errorf("%s: %w", step.Pos, err)
		}
	}
	s.config.Config = containerConfig(st.Config, s.config.Config)
	return s, nil
}

// baseState is the state a stage starts FROM.
func (ib *imageBuild) baseState(st *rules.Stage) (*state, error) {
	switch st.Base.Kind {
	case rules.StageBase:
		return ib.states[st.Base.Stage].clone(), nil
	case rules.ImageBase:
		dep, err := ib.dependency(st.Base.Ref)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", st.Pos, err)
		}
		s := &state{layers: append([]layer(nil), dep.exportedLayers()...), config: dep.config}
		s.config.History = append([]image.History(nil), dep.config.History...)
		base := dep.config
		s.base = &base
		return s, nil
	}
	return &state{config: image.NewConfig(imagePlatform(st.Platform))}, nil
}

// dependency returns the built image a stagex/ reference names.
func (ib *imageBuild) dependency(ref string) (*imageResult, error) {
	if ib.b.tree.IsExternal(ref) {
		// Not built by the tree but imported into the cache (external.go):
		// its layers are used as a built dependency's exported layers.
		return ib.b.imports.result(ref)
	}
	img, err := ib.b.tree.Resolve(ref)
	if err != nil {
		return nil, err
	}
	res := ib.b.result(img.Name)
	if res == nil {
		return nil, fmt.Errorf("image %s is not built", img.Name)
	}
	return res, nil
}

// step applies one step to s.
func (ib *imageBuild) step(ctx context.Context, st *rules.Stage, i int, step *rules.Step, s *state) error {
	var l *layer
	var err error
	switch {
	case step.Kind == rules.Run:
		l, err = ib.run(ctx, st, i, step, s)
	case step.Kind == rules.Copy || step.Kind == rules.Add:
		l, err = ib.copy(ctx, st, i, step, s)
	case !step.EmptyLayer:
		l, err = ib.mkdir(ctx, st, i, step, s)
	}
	if err != nil {
		return err
	}
	if l != nil {
		s.layers = append(s.layers, *l)
	}
	if !step.NoHistory {
		s.config.History = append(s.config.History, image.History{
			CreatedBy:  step.CreatedBy,
			Comment:    image.HistoryComment,
			EmptyLayer: step.EmptyLayer,
		})
	}
	return nil
}

// exports reports whether ib's image is made of stage st, and so exports
// the layers of its steps.
func (ib *imageBuild) exports(st *rules.Stage) bool { return st == ib.ip.Build.Target }

// actionName names the action of step i of stage st in this image.
func (ib *imageBuild) actionName(st *rules.Stage, i int) string {
	return ActionName(ib.ip.Image.Name, st, i)
}

// ActionName names the action of step i of stage st of image across runs,
// for --explain: "core-llvm/build/3". Steps without an action have none.
func ActionName(image string, st *rules.Stage, i int) string {
	return fmt.Sprintf("%s/%s/%d", image, st.Label(), i)
}

// describe is a step's one-line label in progress output.
func describe(st *rules.Stage, step *rules.Step) string {
	text := step.String()
	if i := strings.IndexByte(text, '\n'); i >= 0 {
		text = text[:i] + " ..."
	}
	return fmt.Sprintf("%s %d:%d %s", st.Label(), step.Pos.Line, step.Pos.Col, text)
}

// write assembles the image of the target stage's state and writes its
// layout to the output directory.
func (ib *imageBuild) write(s *state) (*imageResult, error) {
	name := ib.ip.Image.Name
	exported := make([]layer, len(s.layers))
	layers := make([]image.Layer, len(s.layers))
	for i, l := range s.layers {
		if !ib.b.dryRun {
			var err error
			if l, err = ib.b.compressed(l); err != nil {
				return nil, fmt.Errorf("compressing layer %s: %w", l.DiffID, err)
			}
		}
		exported[i], layers[i] = l, l.Layer
	}
	opts := []image.Option{
		image.WithEpoch(epoch),
		image.WithPlatform(imagePlatform(ib.ip.Platform)),
		image.WithStageXAnnotations(name, ib.ip.Image.Package.Tag(), epoch),
	}
	if s.base != nil {
		opts = append(opts, image.WithBase(s.base))
	}
	img, err := image.New(name, s.config, layers, opts...)
	if err != nil {
		return nil, fmt.Errorf("assembling image: %w", err)
	}
	layout := filepath.Join(ib.b.outDir, name)
	if !ib.b.dryRun {
		if err := image.WriteLayout(layout, img, ib.b.store); err != nil {
			return nil, fmt.Errorf("writing %s: %w", layout, err)
		}
	}
	cfg, err := image.BaseConfig(img.Config.Bytes)
	if err != nil {
		return nil, fmt.Errorf("reading back the config of %s: %w", name, err)
	}
	return &imageResult{layers: exported, config: cfg, digest: img.Manifest.Digest, layout: layout}, nil
}

// imagePlatform converts a rules platform to the image config's form.
func imagePlatform(p rules.Platform) image.Platform {
	return image.Platform{OS: p.OS, Architecture: p.Arch, Variant: p.Variant}
}

// containerConfig sets the fields a Containerfile controls from c over
// base, keeping what else the base image had.
func containerConfig(c rules.ImageConfig, base image.ContainerConfig) image.ContainerConfig {
	out := base
	out.Env = c.Env
	out.WorkingDir = c.WorkingDir
	out.Shell = c.Shell
	out.User = c.User
	out.Entrypoint = c.Entrypoint
	out.Cmd = c.Cmd
	out.ArgsEscaped = c.ArgsEscaped
	out.Labels = c.Labels
	out.StopSignal = c.StopSignal
	out.OnBuild = c.OnBuild
	out.ExposedPorts = set(c.ExposedPorts)
	out.Volumes = set(c.Volumes)
	if c.Healthcheck != nil {
		h := image.Healthcheck{
			Test:          c.Healthcheck.Test,
			Interval:      c.Healthcheck.Interval,
			Timeout:       c.Healthcheck.Timeout,
			StartPeriod:   c.Healthcheck.StartPeriod,
			StartInterval: c.Healthcheck.StartInterval,
			Retries:       c.Healthcheck.Retries,
		}
		out.Healthcheck = &h
	}
	return out
}

func set(list []string) map[string]struct{} {
	if len(list) == 0 {
		return nil
	}
	m := make(map[string]struct{}, len(list))
	for _, s := range list {
		m[s] = struct{}{}
	}
	return m
}
