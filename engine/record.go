package engine

import (
	"time"

	"github.com/stagex/sxmake/cache"
	"github.com/stagex/sxmake/rules"
)

// buildRecord keeps the record of an image's build for sxmake log
// (cache.BuildRecord): its steps with an action, in build order. It is
// written when an action starts or stops running and when the image ends;
// a cached action changes it in memory only, so that a cached build
// writes each record once (on these machines' file systems, a write more
// per image was a visible part of a cached build). Until the first write
// the record of the image's previous build stays. An image's steps run
// one after another, so a buildRecord is used by one goroutine at a
// time. A nil buildRecord (a dry run) records nothing.
type buildRecord struct {
	logs  *cache.Logs
	r     cache.BuildRecord
	index map[string]int // action name -> index in r.Steps
}

// hasAction reports whether step makes a layer, and so is an action.
func hasAction(step *rules.Step) bool { return step.Kind != rules.Config || !step.EmptyLayer }

// newRecord starts the record of ib's image, every step pending.
func (ib *imageBuild) newRecord() *buildRecord {
	if ib.b.dryRun {
		return nil
	}
	br := &buildRecord{logs: ib.b.logs, index: map[string]int{}}
	br.r = cache.BuildRecord{Image: ib.ip.Image.Name, Platform: ib.ip.Platform.String(), Status: cache.StatusRunning, Start: time.Now()}
	for _, st := range ib.ip.Build.Stages {
		for i, step := range st.Steps {
			if !hasAction(step) {
				continue
			}
			name := ib.actionName(st, i)
			br.index[name] = len(br.r.Steps)
			br.r.Steps = append(br.r.Steps, cache.StepRecord{Name: name, Label: describe(st, step), Status: cache.StatusPending})
		}
	}
	return br
}

// number is the step's number in the image's build order, counting from
// 1, as sxmake log numbers steps; 0 in a dry run.
func (br *buildRecord) number(name string) int {
	if br == nil {
		return 0
	}
	return br.at(name) + 1
}

// at is the index of the named action's step.
func (br *buildRecord) at(name string) int {
	i, ok := br.index[name]
	if !ok {
		panic("engine: action " + name + " is not a step of " + br.r.Image)
	}
	return i
}

// started records that the named action runs, printing to the file
// running of the cache's logs, and writes the record.
func (br *buildRecord) started(name, running string, t time.Time) error {
	if br == nil {
		return nil
	}
	s := &br.r.Steps[br.at(name)]
	s.Status, s.Start, s.Running = cache.StatusRunning, t, running
	return br.write()
}

// ended records how the named action ended, without writing.
func (br *buildRecord) ended(name string, status cache.Status, log cache.Digest, start, end time.Time) {
	if br == nil {
		return
	}
	s := &br.r.Steps[br.at(name)]
	s.Status, s.Log, s.Running = status, log, ""
	s.Start, s.Duration = start, end.Sub(start)
}

// finish records how the image's build ended and writes the record.
func (br *buildRecord) finish(status cache.Status) error {
	if br == nil {
		return nil
	}
	br.r.Status, br.r.End = status, time.Now()
	return br.write()
}

func (br *buildRecord) write() error {
	if br == nil {
		return nil
	}
	return br.logs.PutBuild(&br.r)
}
