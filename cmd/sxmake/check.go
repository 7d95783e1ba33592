package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spf13/cobra"

	"github.com/stagex/sxmake/engine"
	"github.com/stagex/sxmake/packages"
	"github.com/stagex/sxmake/rules"
)

func newCheckCmd(g *globalFlags, bf *buildFlags) *cobra.Command {
	return &cobra.Command{
		Use:   "check [TARGET...]",
		Short: "Run BuildKit's Dockerfile checks without building",
		Long: `Check runs BuildKit v0.26.3's Dockerfile checks (its lint rules) on the
named images, or on every image of the tree, as StageX's 'make check' does:
each image with its build args, BUILDKIT_DOCKERFILE_CHECK included (StageX
passes skip=FromPlatformFlagConstDisallowed;error=true), over all stages of
a package's main image and over the stages a subpackage needs. Nothing is
built or fetched.

Findings print like BuildKit's lint output: the check, its documentation,
the message and the lines concerned. The exit status is 1 when a finding
is an error under the image's settings (error=true) or a Containerfile
does not evaluate. With --json each finding is one JSON object per line.

--build-arg BUILDKIT_DOCKERFILE_CHECK=VALUE checks with another setting
(experimental=all runs the experimental checks too); --build-arg
BUILDKIT_DOCKERFILE_CHECK alone applies each Containerfile's own
"# check=" directive instead. Builds take the same flag.`,
		RunE: func(cmd *cobra.Command, names []string) error {
			return check(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), g, bf.json, names)
		},
	}
}

// finding is one finding of a check run, with the images it was found
// in: the images of one package share their Containerfile's findings.
type finding struct {
	rules.Finding
	err    bool // an error under the images' check config
	images []string
}

func check(ctx context.Context, stdout, stderr io.Writer, g *globalFlags, jsonOut bool, names []string) error {
	opts, err := g.planOptions(nil)
	if err != nil {
		return err
	}
	ps, err := parsePlatforms(g.platform)
	if err != nil {
		return err
	}
	if len(ps) > 1 {
		return usagef("--platform %s: this command takes one platform", g.platform)
	} else if len(ps) == 1 {
		opts = append(opts, engine.WithPlatform(ps[0]))
	}
	tree, err := g.load()
	if err != nil {
		return err
	}
	targets := tree.Images()
	if len(names) > 0 {
		if targets, err = resolve(tree, names); err != nil {
			return err
		}
	}
	if usesImports(tree) {
		// The configs of imported images are in the cache, which a build
		// may hold; trees that import nothing check without waiting.
		c, err := openCache(ctx, stderr, g.cacheDir())
		if err != nil {
			return err
		}
		defer c.Close()
		opts = append(opts, engine.WithImports(engine.NewImports(c)))
	}
	results, err := engine.Check(tree, targets, opts...)
	if err != nil {
		return err
	}
	findings, failed := collectFindings(results)
	errs := 0
	for _, fd := range findings {
		if fd.err {
			errs++
		}
	}
	if jsonOut {
		writeFindingsJSON(stdout, results)
	} else {
		files := map[string]*rules.File{}
		for _, r := range results {
			files[r.Image.Package.Containerfile.Name] = r.Image.Package.Containerfile
		}
		for _, fd := range findings {
			writeFinding(stdout, fd, files[fd.Pos.File])
		}
		for _, r := range failed {
			fmt.Fprintf(stderr, "sxmake: %s: %s\n", safeLine(r.Image.Name), safe(describe(r.Err)))
		}
	}
	summary := fmt.Sprintf("%d findings (%d errors) in %d images", len(findings), errs, len(results))
	if len(failed) > 0 {
		summary += fmt.Sprintf(", %d images do not evaluate", len(failed))
	}
	if errs > 0 || len(failed) > 0 {
		return fmt.Errorf("check: %s", summary)
	}
	if !jsonOut {
		fmt.Fprintf(stderr, "sxmake: check: %s\n", summary)
	}
	return nil
}

// usesImports reports whether an image of tree is built on an image
// imported into the cache (sxmake import).
func usesImports(tree *packages.Tree) bool {
	for _, img := range tree.Images() {
		if len(img.External) > 0 {
			return true
		}
	}
	return false
}

// collectFindings merges the findings of every image, each once, sorted
// by file and line as BuildKit prints them, and lists the images that did
// not evaluate.
func collectFindings(results []engine.ImageCheck) ([]*finding, []engine.ImageCheck) {
	var out []*finding
	var failed []engine.ImageCheck
	byKey := map[string]*finding{}
	for _, r := range results {
		if r.Err != nil {
			failed = append(failed, r)
		}
		for _, fd := range r.Findings {
			key := fmt.Sprintf("%s\x00%d\x00%d\x00%s\x00%s", fd.Pos.File, fd.Pos.Line, fd.EndLine, fd.Check.Name, fd.Message)
			f := byKey[key]
			if f == nil {
				f = &finding{Finding: fd}
				byKey[key] = f
				out = append(out, f)
			}
			f.err = f.err || r.Checks.Error
			f.images = append(f.images, r.Image.Name)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Pos.File != out[j].Pos.File {
			return out[i].Pos.File < out[j].Pos.File
		}
		return out[i].Pos.Line < out[j].Pos.Line
	})
	return out, failed
}

// writeFinding prints fd as BuildKit prints a lint warning: the check and
// its documentation, the message, then the lines around the finding with
// the finding's own marked ">>>". The message and the lines quote the
// Containerfile, hostile input: they are made safe for a terminal.
func writeFinding(w io.Writer, fd *finding, f *rules.File) {
	level := "WARNING"
	if fd.err {
		level = "ERROR"
	}
	fmt.Fprintf(w, "\n%s: %s", level, fd.Check.Name)
	if fd.Check.URL != "" {
		fmt.Fprintf(w, " - %s", fd.Check.URL)
	}
	fmt.Fprintf(w, "\n%s\n", safe(fd.Message))
	if f != nil {
		writeSource(w, fd.Pos.File, f.Source(), fd.Pos.Line, fd.EndLine)
	}
}

// writeSource prints lines first to last of src with context, exactly as
// BuildKit's errdefs.Source.Print does (its padding included).
func writeSource(w io.Writer, name string, src []byte, first, last int) {
	lines := strings.Split(string(src), "\n")
	start, end := first, max(first, last)
	if start > len(lines) || start < 1 {
		return
	}
	end = min(end, len(lines))
	pad := 2
	if end == start {
		pad = 4
	}
	for p := 0; p < pad; p++ {
		if start > 1 {
			start--
			p++
		}
		if end != len(lines) {
			end++
			p++
		}
	}
	fmt.Fprintf(w, "%s:%d\n--------------------\n", safeLine(name), first)
	for i := start; i <= end; i++ {
		mark := "   "
		if i >= first && i <= last {
			mark = ">>>"
		}
		fmt.Fprintf(w, " %3d | %s %s\n", i, mark, safeLine(lines[i-1]))
	}
	fmt.Fprintf(w, "--------------------\n")
}

// findingJSON is the wire form of a finding, in check's output and in
// check-warning events.
type findingJSON struct {
	Check       string `json:"check"`
	URL         string `json:"url,omitempty"`
	Description string `json:"description"`
	Message     string `json:"message"`
	File        string `json:"file"`
	Line        int    `json:"line"`
	Column      int    `json:"column"`
	EndLine     int    `json:"end_line"`
}

func newFindingJSON(fd rules.Finding) *findingJSON {
	return &findingJSON{
		Check: fd.Check.Name, URL: fd.Check.URL, Description: fd.Check.Description, Message: fd.Message,
		File: fd.Pos.File, Line: fd.Pos.Line, Column: fd.Pos.Col, EndLine: fd.EndLine,
	}
}

// jsonFinding is a line of check's JSON output: a finding in one image,
// or an image that does not evaluate (Error set).
type jsonFinding struct {
	Image string `json:"image"`
	Level string `json:"level"` // "warning" or "error"
	*findingJSON
	Error string `json:"error,omitempty"`
}

// writeFindingsJSON writes one line per finding of each image, as found
// (findings the images of a package share are repeated), then one per
// image that does not evaluate.
func writeFindingsJSON(w io.Writer, results []engine.ImageCheck) {
	enc := json.NewEncoder(w)
	for _, r := range results {
		level := "warning"
		if r.Checks.Error {
			level = "error"
		}
		for _, fd := range r.Findings {
			enc.Encode(jsonFinding{Image: r.Image.Name, Level: level, findingJSON: newFindingJSON(fd)})
		}
	}
	for _, r := range results {
		if r.Err != nil {
			enc.Encode(jsonFinding{Image: r.Image.Name, Level: "error", Error: r.Err.Error()})
		}
	}
}
