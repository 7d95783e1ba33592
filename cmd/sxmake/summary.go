package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"time"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/engine"
)

// printTimes prints, after a build that ran actions, its slowest steps and
// its critical path: the chain of images, each waiting for the one before,
// that the build's wall time was spent on. Names and steps' text are made
// safe for a terminal (terminal.go).
func printTimes(w io.Writer, label string, pb *platformBuild) {
	slow := slowest(pb.report.Actions, 5)
	if len(slow) == 0 {
		return
	}
	fmt.Fprintf(w, "sxmake: %sslowest steps:\n", label)
	for _, a := range slow {
		fmt.Fprintf(w, "  %8s  [%s] %s\n", shortDuration(a.End.Sub(a.Start)), safeLine(a.Image), safeLine(a.Action))
	}
	path := criticalPath(pb.plan, pb.report)
	var total time.Duration
	line := ""
	for i, ir := range path {
		total += ir.End.Sub(ir.Start)
		if i > 0 {
			line += " > "
		}
		line += fmt.Sprintf("%s %s", safeLine(ir.Name), shortDuration(ir.End.Sub(ir.Start)))
	}
	fmt.Fprintf(w, "sxmake: %scritical path %s: %s\n", label, shortDuration(total), line)
}

// slowest returns the n actions that ran longest, longest first.
func slowest(actions []engine.ActionTiming, n int) []engine.ActionTiming {
	var ran []engine.ActionTiming
	for _, a := range actions {
		if a.Status != cache.StatusCached {
			ran = append(ran, a)
		}
	}
	sort.SliceStable(ran, func(i, j int) bool { return ran[i].End.Sub(ran[i].Start) > ran[j].End.Sub(ran[j].Start) })
	return ran[:min(n, len(ran))]
}

// criticalPath returns the images of the chain that ended the build, first
// built first: the image that ended last, the image it needed that ended
// last (which its build waited for), and so on.
func criticalPath(plan *engine.Plan, r *engine.Report) []engine.ImageReport {
	byName := map[string]engine.ImageReport{}
	var last *engine.ImageReport
	for i, ir := range r.Images {
		if ir.End.IsZero() {
			continue
		}
		byName[ir.Name] = ir
		if last == nil || ir.End.After(last.End) {
			last = &r.Images[i]
		}
	}
	deps := map[string][]string{}
	for _, ip := range plan.Images {
		for _, d := range ip.Image.Deps {
			deps[ip.Image.Name] = append(deps[ip.Image.Name], d.Name)
		}
	}
	var path []engine.ImageReport
	for cur, ok := last, last != nil; ok; {
		path = append(path, *cur)
		var next engine.ImageReport
		ok = false
		for _, d := range deps[cur.Name] {
			if ir, built := byName[d]; built && (!ok || ir.End.After(next.End)) {
				next, ok = ir, true
			}
		}
		cur = &next
	}
	for i, j := 0, len(path)-1; i < j; i, j = i+1, j-1 {
		path[i], path[j] = path[j], path[i]
	}
	return path
}

// timingsFile is the --timings document: when each action of the build
// ran, for CI dashboards.
type timingsFile struct {
	Start   time.Time       `json:"start"`
	End     time.Time       `json:"end"`
	Seconds float64         `json:"seconds"`
	Actions []actionTimings `json:"actions"`
}

type actionTimings struct {
	Image    string    `json:"image"`
	Platform string    `json:"platform"`
	Step     int       `json:"step"` // as sxmake log numbers it
	Name     string    `json:"name"` // image/stage/index, stable across builds
	Action   string    `json:"action"`
	Status   string    `json:"status"` // ran, cached or failed
	Start    time.Time `json:"start"`
	End      time.Time `json:"end"`
	Seconds  float64   `json:"seconds"`
}

// writeTimings writes the --timings file of builds (one per platform).
func writeTimings(path string, builds []*platformBuild) error {
	tf := timingsFile{Actions: []actionTimings{}}
	for _, pb := range builds {
		r := pb.report
		if r == nil {
			continue
		}
		if tf.Start.IsZero() || r.Start.Before(tf.Start) {
			tf.Start = r.Start
		}
		if r.End.After(tf.End) {
			tf.End = r.End
		}
		for _, a := range r.Actions {
			tf.Actions = append(tf.Actions, actionTimings{
				Image: a.Image, Platform: a.Platform, Step: a.Step, Name: a.Name, Action: a.Action,
				Status: string(a.Status), Start: a.Start.UTC(), End: a.End.UTC(), Seconds: a.End.Sub(a.Start).Seconds(),
			})
		}
	}
	tf.Start, tf.End = tf.Start.UTC(), tf.End.UTC()
	tf.Seconds = tf.End.Sub(tf.Start).Seconds()
	sort.SliceStable(tf.Actions, func(i, j int) bool { return tf.Actions[i].Start.Before(tf.Actions[j].Start) })
	data, err := json.MarshalIndent(tf, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("--timings: %w", err)
	}
	return nil
}
