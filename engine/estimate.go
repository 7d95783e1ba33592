package engine

import (
	"sort"
	"sync"
	"time"

	"github.com/stagex/sxmake/cache"
)

// Progress says how far a build is: the Progress of a BuildProgress event.
type Progress struct {
	Done    int           // actions that ended: run, found cached or failed
	Total   int           // actions of the plan
	Running int           // actions running now
	Elapsed time.Duration // since the build started
	// Left is how much longer the build is expected to take: its
	// schedule (images after the images they need, at most -j actions at
	// once) simulated with each action left taking as long as when it
	// last ran (recorded by image and step, so that a --no-cache rebuild
	// is estimated from the build before), and a running one the rest of
	// that. Actions that never ran count for nothing: Unknown says how
	// many are left. An action that will be found cached counts in full
	// until it is.
	Left    time.Duration
	Unknown int
}

// ActionTiming is when one action of a build ran, or was looked up and
// found cached, for --timings.
type ActionTiming struct {
	Image, Platform string
	Name            string       // the action's stable name (ActionName)
	Action          string       // its progress label
	Step            int          // its number in its image's build order
	Status          cache.Status // StatusRan, StatusCached or StatusFailed
	Start, End      time.Time
}

// tracker follows a build through its events: the actions that ended,
// when each ran, and what is left, with the time each is expected to take.
// Safe for concurrent use.
type tracker struct {
	mu      sync.Mutex
	start   time.Time
	jobs    int
	images  []*imageTrack // plan order: dependencies first
	byName  map[string]*imageTrack
	total   int
	done    int
	running int
	timed   []ActionTiming
}

// imageTrack is one image of a tracker: its actions in build order.
type imageTrack struct {
	deps     []int           // indices of the images it needs
	index    map[string]int  // action name -> position
	expected []time.Duration // by position; negative: never ran
	next     int             // actions ended
	since    time.Time       // when its running action started; zero if none
	ended    bool            // the image was written, failed or skipped
}

// newTracker lists the actions of plan with the durations that actions
// records for their last runs. Two images built from one Containerfile
// (a package and its subpackage) share the actions of their common
// stages, which run once: the second image expects them to take no time.
func newTracker(plan *Plan, actions *cache.Actions, jobs int, start time.Time) *tracker {
	t := &tracker{start: start, jobs: max(jobs, 1), byName: map[string]*imageTrack{}}
	var names, ids []string // every action's, in plan order
	pos := map[string]int{}
	for i, ip := range plan.Images {
		pos[ip.Image.Name] = i
		it := &imageTrack{index: map[string]int{}}
		for _, d := range ip.Image.Deps {
			if j, ok := pos[d.Name]; ok {
				it.deps = append(it.deps, j)
			}
		}
		for _, st := range ip.Build.Stages {
			for k, step := range st.Steps {
				if hasAction(step) {
					it.index[ActionName(ip.Image.Name, st, k)] = len(it.index)
					names = append(names, ActionName(ip.Image.Name, st, k))
					ids = append(ids, ip.Image.Package.Dir+"\x00"+ActionName("", st, k))
				}
			}
		}
		t.total += len(it.index)
		t.images = append(t.images, it)
		t.byName[ip.Image.Name] = it
	}
	took := actions.Durations(names)
	seen := map[string]bool{}
	n := 0
	for _, it := range t.images {
		for range it.index {
			d, ok := took[names[n]]
			switch {
			case seen[ids[n]]:
				d = 0
			case !ok:
				d = -1
			}
			seen[ids[n]] = true
			it.expected = append(it.expected, d)
			n++
		}
	}
	return t
}

// observe updates t with ev.
func (t *tracker) observe(ev Event) {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	it := t.byName[ev.Image]
	if it == nil {
		return
	}
	switch ev.Kind {
	case ActionStarted:
		it.since = ev.Time
		t.running++
	case ActionCached, ActionDone, ActionFailed:
		status := cache.StatusCached
		if ev.Kind != ActionCached {
			status = cache.StatusRan
			if ev.Kind == ActionFailed {
				status = cache.StatusFailed
			}
			t.running--
		}
		it.since = time.Time{}
		if i, ok := it.index[ev.Name]; ok && i >= it.next {
			it.next = i + 1
		}
		t.done++
		t.timed = append(t.timed, ActionTiming{
			Image: ev.Image, Platform: ev.Platform, Name: ev.Name, Action: ev.Action, Step: ev.Step,
			Status: status, Start: ev.Time.Add(-ev.Duration), End: ev.Time,
		})
	case ImageDone, ImageFailed, ImageSkipped:
		it.ended = true
	case ImagePublished: // taken as published: its actions will not run
		t.total -= len(it.index) - it.next
		it.next = len(it.index)
		it.ended = true
	}
}

// timings returns the actions that ended, by start time.
func (t *tracker) timings() []ActionTiming {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	out := append([]ActionTiming(nil), t.timed...)
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.Before(out[j].Start) })
	return out
}

// progress returns how far the build is at now.
func (t *tracker) progress(now time.Time) Progress {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := Progress{Done: t.done, Total: t.total, Running: t.running, Elapsed: now.Sub(t.start)}
	p.Left, p.Unknown = t.simulate(now)
	return p
}

// simulate plays the rest of the build as the executor would run it,
// actions taking their expected time, and returns when it would end and
// how many actions left have no expected time. t.mu is held.
func (t *tracker) simulate(now time.Time) (time.Duration, int) {
	type sim struct {
		left     []time.Duration // actions left, the running one first
		busy     bool            // running left[0] until until
		until    time.Duration
		finished bool
	}
	s := make([]sim, len(t.images))
	unknown := 0
	free := t.jobs
	for i, it := range t.images {
		if it.ended {
			s[i].finished = true
			continue
		}
		for _, d := range it.expected[it.next:] {
			if d < 0 {
				unknown++
				d = 0
			}
			s[i].left = append(s[i].left, d)
		}
		if !it.since.IsZero() && len(s[i].left) > 0 {
			s[i].busy, s[i].until = true, max(s[i].left[0]-now.Sub(it.since), 0)
			free--
		}
	}
	ready := func(i int) bool {
		for _, d := range t.images[i].deps {
			if !s[d].finished {
				return false
			}
		}
		return true
	}
	var clock time.Duration
	for {
		// Dependencies come first in plan order: one pass finishes the
		// images with nothing left, then starts what may start.
		for i := range s {
			if !s[i].finished && !s[i].busy && len(s[i].left) == 0 && ready(i) {
				s[i].finished = true
			}
		}
		for i := range s {
			if free > 0 && !s[i].finished && !s[i].busy && len(s[i].left) > 0 && ready(i) {
				s[i].busy, s[i].until = true, clock+s[i].left[0]
				free--
			}
		}
		next := -1
		for i := range s {
			if s[i].busy && (next < 0 || s[i].until < s[next].until) {
				next = i
			}
		}
		if next < 0 {
			return clock, unknown
		}
		clock = s[next].until
		for i := range s {
			if s[i].busy && s[i].until <= clock {
				s[i].busy, s[i].left = false, s[i].left[1:]
				free++
			}
		}
	}
}

// reportProgress emits a BuildProgress event now and then every b.every
// (if set) until the function it returns is called.
func (b *planBuild) reportProgress() (stop func()) {
	emit := func() {
		now := time.Now()
		b.events(Event{Kind: BuildProgress, Time: now, Progress: b.track.progress(now)})
	}
	emit()
	if b.every <= 0 {
		return func() {}
	}
	done := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tick := time.NewTicker(b.every)
		defer tick.Stop()
		for {
			select {
			case <-tick.C:
				emit()
			case <-done:
				return
			}
		}
	})
	return func() { close(done); wg.Wait() }
}
