package engine

import (
	"testing"
	"time"
)

// The estimate of the time left plays the schedule: images after those
// they need, at most jobs actions at once, each taking its recorded time,
// a running one what is left of it.
func TestEstimate(t *testing.T) {
	now := time.Unix(1000, 0)
	sec := func(n float64) time.Duration { return time.Duration(n * float64(time.Second)) }
	img := func(deps []int, expected ...float64) *imageTrack {
		it := &imageTrack{deps: deps}
		for _, e := range expected {
			it.expected = append(it.expected, sec(e))
		}
		return it
	}
	running := func(it *imageTrack, next int, since float64) *imageTrack {
		it.next, it.since = next, now.Add(-sec(since))
		return it
	}
	ended := func(it *imageTrack) *imageTrack { it.ended = true; return it }
	tests := []struct {
		name    string
		jobs    int
		images  []*imageTrack
		want    time.Duration
		unknown int
	}{
		{"a chain", 2, []*imageTrack{img(nil, 1, 2), img([]int{0}, 3)}, sec(6), 0},
		{"two images, two jobs", 2, []*imageTrack{img(nil, 2, 2), img(nil, 3)}, sec(4), 0},
		{"two images, one job", 1, []*imageTrack{img(nil, 2, 2), img(nil, 3)}, sec(7), 0},
		{"a dependent waits", 2, []*imageTrack{img(nil, 1), img([]int{0}, 2), img(nil, 4)}, sec(4), 0},
		{"running for 3s of 4s", 1, []*imageTrack{running(img(nil, 4, 1), 0, 3)}, sec(2), 0},
		{"running longer than last time", 1, []*imageTrack{running(img(nil, 4, 1), 0, 9)}, sec(1), 0},
		{"half done", 1, []*imageTrack{running(img(nil, 5, 4, 1), 1, 1)}, sec(4), 0},
		{"never ran counts nothing", 1, []*imageTrack{img(nil, -1, 2, -1)}, sec(2), 2},
		{"ended images", 1, []*imageTrack{ended(img(nil, 5)), img([]int{0}, 1)}, sec(1), 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := &tracker{start: now, jobs: tc.jobs, images: tc.images}
			for _, it := range tc.images {
				if !it.since.IsZero() {
					tr.running++
				}
			}
			p := tr.progress(now)
			if p.Left != tc.want || p.Unknown != tc.unknown {
				t.Errorf("left %v (%d unknown), want %v (%d unknown)", p.Left, p.Unknown, tc.want, tc.unknown)
			}
		})
	}
}

// An image taken as published runs none of its actions: they leave the
// total, and nothing is expected of them.
func TestTrackerPublished(t *testing.T) {
	now := time.Unix(1000, 0)
	pub := &imageTrack{index: map[string]int{"a": 0, "b": 1}, expected: []time.Duration{time.Second, time.Second}}
	top := &imageTrack{deps: []int{0}, index: map[string]int{"c": 0}, expected: []time.Duration{2 * time.Second}}
	tr := &tracker{start: now, jobs: 1, images: []*imageTrack{pub, top}, byName: map[string]*imageTrack{"pub": pub, "top": top}, total: 3}
	tr.observe(Event{Kind: ImagePublished, Image: "pub"})
	if p := tr.progress(now); p.Total != 1 || p.Done != 0 || p.Left != 2*time.Second {
		t.Errorf("after a published image: %d of %d done, %v left; want 0 of 1, 2s", p.Done, p.Total, p.Left)
	}
}
