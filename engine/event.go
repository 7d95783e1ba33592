package engine

import (
	"time"

	"github.com/stagex/sxmake/engine/image"
	"github.com/stagex/sxmake/rules"
)

// EventKind says what happened.
type EventKind int

const (
	ActionStarted   EventKind = iota // an action began to run
	ActionLog                        // an action printed Log
	ActionCached                     // an action's result came from the cache
	ActionDone                       // an action ran and succeeded
	ActionFailed                     // an action ran and failed (Err)
	ImageDone                        // an image was written (Digest)
	ImageFailed                      // an image failed (Err)
	ImageSkipped                     // an image was not built: a dependency failed
	ActionWouldRun                   // dry run: the action has no cached result (Explain says why)
	CacheWarning                     // a remote cache entry was rejected or a remote failed (Err): a miss
	ActionEmulated                   // a RUN's programs are about to run through an emulator (Emulator)
	CheckWarning                     // a Dockerfile check found something (Finding), which does not fail the build
	BuildProgress                    // how far the build is (Progress): at its start, then periodically
	ImagePublished                   // the image is taken as published (Digest), its layout written: nothing runs for it, no ImageDone follows
	ImageFromSource                  // the image is built, not taken published: Explain says why, first in short, then each changed input; empty when it is not published
)

var eventNames = [...]string{"start", "log", "cached", "done", "failed", "image", "image-failed", "image-skipped", "would-run", "cache-warning", "emulated", "check-warning", "progress", "published", "from-source"}

func (k EventKind) String() string { return eventNames[k] }

// Event is one thing that happened during a build, for progress output.
type Event struct {
	Kind     EventKind
	Time     time.Time      // when it happened
	Image    string         // image name; empty for BuildProgress
	Platform string         // the image's platform ("linux/arm64")
	Action   string         // the action's description ("build 12:1 RUN make"); empty for image events
	Name     string         // the action's stable name (see ActionName)
	Step     int            // the action's number in its image's build order, from 1, as sxmake log numbers steps (0 in a dry run)
	Explain  []string       // ActionWouldRun: one line per input changed since the action last ran
	Log      []byte         // ActionLog: output bytes; ActionFailed: the end of the action's log
	Duration time.Duration  // ActionDone, ActionFailed: from ActionStarted to Time; ActionCached: the lookup
	Process  time.Duration  // ActionDone of a RUN: the time its program ran, from its exec in the started container to its exit
	Emulator string         // ActionEmulated, and ActionDone and ActionFailed of a RUN that ran emulated: the binfmt_misc entry its programs run through ("qemu-i386")
	Digest   image.Digest   // ImageDone
	Finding  *rules.Finding // CheckWarning
	Progress Progress       // BuildProgress
	Err      error
}

// emit reports ev as an event of the image ip.
func (b *planBuild) emit(ip *ImagePlan, ev Event) {
	ev.Image, ev.Platform = ip.Image.Name, ip.Platform.String()
	b.emitBuild(ev)
}

// emitBuild reports ev, stamped with the time unless it has one, to the
// build's tracker and its listener.
func (b *planBuild) emitBuild(ev Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	b.track.observe(ev)
	b.events(ev)
}

// emit reports ev as an event of the image being built.
func (ib *imageBuild) emit(ev Event) { ib.b.emit(ib.ip, ev) }
