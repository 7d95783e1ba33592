// Command oracle prints what BuildKit v0.26.3's Dockerfile frontend makes
// of each case under cases/: the target image's history and config and
// every RUN's argv and environment, or the error. rules' TestOracle
// renders its own result in the same form and compares it with the
// *.want files this command writes. See README.md.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/moby/buildkit/client/llb"
	"github.com/moby/buildkit/client/llb/sourceresolver"
	"github.com/moby/buildkit/frontend/dockerfile/dockerfile2llb"
	"github.com/moby/buildkit/frontend/dockerui"
	"github.com/moby/buildkit/solver/pb"
	digest "github.com/opencontainers/go-digest"
	ocispecs "github.com/opencontainers/image-spec/specs-go/v1"
)

// BuildArgs and Platform are fixed for every case; TestOracle uses the same.
var buildArgs = map[string]string{"VERSION": "1.36.1", "NOTGIVEN": "n", "SOURCE_DATE_EPOCH": "1"}

// resolver answers every image with a one-layer image; images whose name
// contains "pallet" have a config like a StageX pallet.
type resolver struct{}

func (resolver) ResolveImageConfig(ctx context.Context, ref string, opt sourceresolver.Opt) (string, digest.Digest, []byte, error) {
	cfg := map[string]any{
		"architecture": "amd64", "os": "linux",
		"rootfs": map[string]any{"type": "layers", "diff_ids": []string{"sha256:" + strings.Repeat("0", 64)}},
		"config": map[string]any{},
	}
	if strings.Contains(ref, "pallet") {
		cfg["config"] = map[string]any{"Env": []string{"PATH=/usr/bin:/bin"}, "Shell": []string{"/bin/sh", "-l", "-c"}, "WorkingDir": "/"}
	}
	dt, err := json.Marshal(cfg)
	return ref, "", dt, err
}

var parseErrPrefix = regexp.MustCompile(`^dockerfile parse error on line \d+: `)

func render(src []byte) string {
	var w strings.Builder
	p := ocispecs.Platform{OS: "linux", Architecture: "amd64"}
	st, img, _, _, err := dockerfile2llb.Dockerfile2LLB(context.TODO(), src, dockerfile2llb.ConvertOpt{
		Config:         dockerui.Config{BuildArgs: buildArgs},
		TargetPlatform: &p,
		MetaResolver:   resolver{},
	})
	if err == nil {
		var def *llb.Definition
		if def, err = st.Marshal(context.TODO(), llb.LinuxAmd64); err == nil {
			for _, h := range img.History {
				fmt.Fprintf(&w, "history %q empty_layer=%v\n", h.CreatedBy, h.EmptyLayer)
			}
			c := img.Config
			fmt.Fprintf(&w, "config env=%q workdir=%q shell=%q user=%q entrypoint=%q cmd=%q\n", c.Env, c.WorkingDir, c.Shell, c.User, c.Entrypoint, c.Cmd)
			fmt.Fprintf(&w, "config labels=%q ports=%q volumes=%q stopsignal=%q argsescaped=%v author=%q onbuild=%q\n",
				sortedKV(c.Labels), sortedKeys(c.ExposedPorts), sortedKeys(c.Volumes), c.StopSignal, c.ArgsEscaped, img.Author, c.OnBuild)
			var runs []string
			for _, dt := range def.Def {
				var op pb.Op
				if op.UnmarshalVT(dt) != nil {
					continue
				}
				if e := op.GetExec(); e != nil {
					runs = append(runs, fmt.Sprintf("run argv=%q env=%q cwd=%q user=%q\n", e.Meta.Args, e.Meta.Env, e.Meta.Cwd, e.Meta.User))
				}
				if f := op.GetFile(); f != nil {
					for _, a := range f.Actions {
						switch {
						case a.GetMkfile() != nil:
							m := a.GetMkfile()
							runs = append(runs, fmt.Sprintf("mkfile %q %o %q\n", m.Path, m.Mode, m.Data))
						case a.GetMkdir() != nil:
							m := a.GetMkdir()
							runs = append(runs, fmt.Sprintf("mkdir %q %o\n", m.Path, m.Mode))
						case a.GetCopy() != nil:
							c := a.GetCopy()
							runs = append(runs, fmt.Sprintf("copy %q -> %q mode=%o modestr=%q unpack=%v exclude=%q include=%q\n", c.Src, c.Dest, c.Mode, c.ModeStr, c.AttemptUnpackDockerCompatibility, c.ExcludePatterns, c.IncludePatterns))
						}
					}
				}
			}
			sort.Strings(runs)
			w.WriteString(strings.Join(runs, ""))
			return w.String()
		}
	}
	return "error " + parseErrPrefix.ReplaceAllString(err.Error(), "") + "\n"
}

func main() {
	paths, err := filepath.Glob("cases/*")
	if err != nil {
		panic(err)
	}
	for _, p := range paths {
		if strings.HasSuffix(p, ".want") {
			continue
		}
		src, err := os.ReadFile(p)
		if err != nil {
			panic(err)
		}
		out := render(bytes.Clone(src))
		if err := os.WriteFile(p+".want", []byte(out), 0o644); err != nil {
			panic(err)
		}
	}
}

func sortedKV(m map[string]string) []string {
	out := []string{}
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	sort.Strings(out)
	return out
}

func sortedKeys(m map[string]struct{}) []string {
	out := []string{}
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
