package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Logs holds what actions print and the record of the last build of each
// image, for sxmake log. It lives outside the action database, whose lock
// a build holds, so that another process can read it during a build:
//
//	logs/running/<name>   the output of an action running now, growing
//	                      as it prints (a killed build leaves it behind)
//	logs/builds/<image>@<platform>.json
//	                      the last build of the image on the platform
//	                      (BuildRecord), rewritten whole as it goes
//
// A finished action's log is a blob of the content store, which both its
// action result and the build record name. Readers need no lock: every
// file is written under a temporary name and renamed, and a running log
// is only ever appended to.
type Logs struct {
	dir   string
	store *ContentStore
}

// OpenLogs returns the logs of the cache directory dir, whose content
// store is store, creating their directories.
func OpenLogs(dir string, store *ContentStore) (*Logs, error) {
	l := &Logs{dir: filepath.Join(dir, "logs"), store: store}
	for _, d := range []string{l.runningDir(), l.buildsDir()} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, fmt.Errorf("opening logs: %w", err)
		}
	}
	return l, nil
}

func (l *Logs) runningDir() string { return filepath.Join(l.dir, "running") }
func (l *Logs) buildsDir() string  { return filepath.Join(l.dir, "builds") }

// Log is the output of one running action: a file under logs/running that
// grows as the action prints, hashed as it is written. Commit makes it a
// blob. Write is not safe for concurrent use.
type Log struct {
	w *ContentWriter
}

// Create starts the log of an action about to run.
func (l *Logs) Create() (*Log, error) {
	w, err := l.store.writerIn(l.runningDir(), "log-*")
	if err != nil {
		return nil, err
	}
	return &Log{w: w}, nil
}

// Name is the file's name under logs/running, for the build record.
func (g *Log) Name() string { return filepath.Base(g.w.f.Name()) }

// Write appends p to the log.
func (g *Log) Write(p []byte) (int, error) { return g.w.Write(p) }

// Size is the number of bytes written so far.
func (g *Log) Size() int64 { return g.w.n }

// Tail returns the last n bytes written, or fewer if fewer were.
func (g *Log) Tail(n int64) []byte {
	off := max(g.w.n-n, 0)
	b := make([]byte, g.w.n-off)
	k, _ := g.w.f.ReadAt(b, off)
	return b[:k]
}

// Commit stores the log as a blob and returns its digest, or the zero
// digest for an empty log, which is discarded.
func (g *Log) Commit() (Digest, error) {
	if g.w.n == 0 {
		return Digest{}, g.w.Close()
	}
	d, _, err := g.w.Commit(Digest{}, -1)
	return d, err
}

// Close discards the log unless it was committed.
func (g *Log) Close() error { return g.w.Close() }

// Status is where a build or one of its steps stands.
type Status string

const (
	StatusPending     Status = "pending"     // a step not reached yet
	StatusRunning     Status = "running"     // running now, or cut short by a killed build
	StatusRan         Status = "ran"         // a step that ran and succeeded
	StatusCached      Status = "cached"      // a step whose result came from a cache
	StatusFailed      Status = "failed"      // a step or build that failed
	StatusInterrupted Status = "interrupted" // a step or build stopped before it ended
	StatusDone        Status = "done"        // a build that succeeded
)

// BuildRecord is the last build of one image on one platform: its steps
// with an action, in build order.
type BuildRecord struct {
	Image    string       `json:"image"`
	Platform string       `json:"platform"`
	Status   Status       `json:"status"`
	Start    time.Time    `json:"start"`
	End      time.Time    `json:"end,omitzero"`
	Steps    []StepRecord `json:"steps"`
}

// StepRecord is one step of a BuildRecord.
type StepRecord struct {
	Name     string        `json:"name"`  // the action's name ("core-llvm/build/3")
	Label    string        `json:"label"` // the step's progress label: stage, position and instruction
	Status   Status        `json:"status"`
	Start    time.Time     `json:"start,omitzero"`
	Duration time.Duration `json:"duration,omitempty"`
	// Log is the blob of the step's output: of this build's run, or of
	// the run that made a cached result. Zero: no output, or not yet.
	Log Digest `json:"log,omitzero"`
	// Running is the file under logs/running holding the output of a
	// running step (or of one cut short by a killed build).
	Running string `json:"running,omitempty"`
}

// logs returns the distinct log blobs r names.
func (r *BuildRecord) logs() []Digest {
	seen := map[Digest]bool{}
	var out []Digest
	for _, st := range r.Steps {
		if !st.Log.IsZero() && !seen[st.Log] {
			seen[st.Log] = true
			out = append(out, st.Log)
		}
	}
	return out
}

// recordFile names the record of image on platform: both are escaped
// into one path element.
func (l *Logs) recordFile(image, platform string) string {
	return filepath.Join(l.buildsDir(), url.PathEscape(image)+"@"+url.PathEscape(platform)+".json")
}

// PutBuild writes r as the last build of its image on its platform.
func (l *Logs) PutBuild(r *BuildRecord) error {
	data, err := json.Marshal(r)
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(l.buildsDir(), ".tmp-*")
	if err != nil {
		return fmt.Errorf("writing build record: %w", err)
	}
	_, err = tmp.Write(data)
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), l.recordFile(r.Image, r.Platform))
	}
	if err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("writing build record of %s: %w", r.Image, err)
	}
	return nil
}

// Builds returns the records of image's last builds, one per platform,
// the latest first; an image never built gives an error wrapping
// ErrNotFound.
func (l *Logs) Builds(image string) ([]*BuildRecord, error) {
	files, err := filepath.Glob(filepath.Join(l.buildsDir(), globEscape(url.PathEscape(image))+"@*.json"))
	if err != nil {
		return nil, err
	}
	var out []*BuildRecord
	for _, f := range files {
		r, err := readBuildRecord(f)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("no build of %s recorded: %w", image, ErrNotFound)
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].Start.After(out[j].Start) })
	return out, nil
}

func globEscape(s string) string {
	return strings.NewReplacer(`*`, `\*`, `?`, `\?`, `[`, `\[`, `\`, `\\`).Replace(s)
}

func readBuildRecord(path string) (*BuildRecord, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading build record: %w", err)
	}
	var r BuildRecord
	if err := json.Unmarshal(data, &r); err != nil {
		return nil, fmt.Errorf("build record %s: %w", filepath.Base(path), err)
	}
	return &r, nil
}

// walkBuilds calls fn with each build record and its file.
func (l *Logs) walkBuilds(fn func(path string, r *BuildRecord) error) error {
	files, err := filepath.Glob(filepath.Join(l.buildsDir(), "*.json"))
	if err != nil {
		return err
	}
	for _, f := range files {
		r, err := readBuildRecord(f)
		if err != nil {
			if err := fn(f, nil); err != nil {
				return err
			}
			continue
		}
		if err := fn(f, r); err != nil {
			return err
		}
	}
	return nil
}

// Open returns a reader of the output of step s as it is now: the blob
// once the step ended, the growing file while it runs (reading it at its
// end gives io.EOF; more may come). A step without output reads empty.
func (l *Logs) Open(s StepRecord) (io.ReadCloser, error) {
	if !s.Log.IsZero() {
		return l.store.Open(s.Log)
	}
	if s.Running != "" && s.Running == filepath.Base(s.Running) {
		f, err := os.Open(filepath.Join(l.runningDir(), s.Running))
		if err == nil || !errors.Is(err, fs.ErrNotExist) {
			return f, err
		}
		// Committed meanwhile: the caller reads the record again.
		return nil, fmt.Errorf("log of %s: %w", s.Name, ErrNotFound)
	}
	return io.NopCloser(strings.NewReader("")), nil
}

// recover stores the logs of the steps a killed build left running as
// blobs and marks those steps and builds interrupted, then empties
// logs/running. The caller holds the cache, so no build is running.
// Nothing is read unless logs/running holds a file.
func (l *Logs) recover() error {
	left, err := os.ReadDir(l.runningDir())
	if err != nil || len(left) == 0 {
		return err
	}
	err = l.walkBuilds(func(path string, r *BuildRecord) error {
		if r == nil || r.Status != StatusRunning {
			return nil
		}
		r.Status = StatusInterrupted
		for i := range r.Steps {
			s := &r.Steps[i]
			if s.Status != StatusRunning {
				continue
			}
			s.Status = StatusInterrupted
			if s.Running != "" && s.Running == filepath.Base(s.Running) {
				d, err := l.ingestFile(filepath.Join(l.runningDir(), s.Running))
				if err != nil {
					return err
				}
				s.Log, s.Running = d, ""
			}
		}
		return l.PutBuild(r)
	})
	if err != nil {
		return fmt.Errorf("recovering the logs of a killed build: %w", err)
	}
	for _, e := range left {
		os.Remove(filepath.Join(l.runningDir(), e.Name()))
	}
	return nil
}

// ingestFile stores the file at path as a blob; a missing or empty file
// gives the zero digest.
func (l *Logs) ingestFile(path string) (Digest, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Digest{}, nil
	}
	if err != nil {
		return Digest{}, err
	}
	defer f.Close()
	d, n, err := l.store.Ingest(f, Digest{})
	if err != nil || n > 0 {
		return d, err
	}
	return Digest{}, nil
}

// removeBuilds removes the records of builds that ended before t and
// returns how many.
func (l *Logs) removeBuilds(t time.Time) (int, error) {
	n := 0
	err := l.walkBuilds(func(path string, r *BuildRecord) error {
		if r == nil || r.Status == StatusRunning || r.End.IsZero() || !r.End.Before(t) {
			return nil
		}
		if err := os.Remove(path); err != nil {
			return fmt.Errorf("removing build record: %w", err)
		}
		n++
		return nil
	})
	return n, err
}
