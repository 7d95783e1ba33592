package cache

import (
	"bytes"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func readLog(t *testing.T, rc io.ReadCloser, err error) string {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A running log is readable while it grows, from its file under
// logs/running; committed, it is a blob of its content's digest and the
// file is gone. An empty log leaves nothing.
func TestLogLifecycle(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	g, err := c.Logs.Create()
	if err != nil {
		t.Fatal(err)
	}
	defer g.Close()
	g.Write([]byte("one\n"))
	step := StepRecord{Name: "img/build/0", Status: StatusRunning, Running: g.Name()}
	rc, err := c.Logs.Open(step)
	if got := readLog(t, rc, err); got != "one\n" {
		t.Errorf("running log reads %q", got)
	}
	g.Write([]byte("two\n"))
	if got := string(g.Tail(5)); got != "\ntwo\n" {
		t.Errorf("tail %q", got)
	}
	d, err := g.Commit()
	if err != nil {
		t.Fatal(err)
	}
	if d != DigestOf([]byte("one\ntwo\n")) {
		t.Errorf("log blob %s", d)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "logs", "running")); len(left) != 0 {
		t.Errorf("committed log left %v in logs/running", left)
	}
	step.Log, step.Running = d, ""
	rc, err = c.Logs.Open(step)
	if got := readLog(t, rc, err); got != "one\ntwo\n" {
		t.Errorf("committed log reads %q", got)
	}

	empty, err := c.Logs.Create()
	if err != nil {
		t.Fatal(err)
	}
	if d, err := empty.Commit(); err != nil || !d.IsZero() {
		t.Errorf("empty log: %s, %v", d, err)
	}
}

// Build records round-trip, one per image and platform, latest first; an
// image named with path characters stays one file of logs/builds.
func TestBuildRecords(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenLogs(dir, mustStore(t, dir))
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(100, 0).UTC()
	amd := &BuildRecord{Image: "core-x", Platform: "linux/amd64", Status: StatusDone, Start: t0, End: t0.Add(time.Second),
		Steps: []StepRecord{{Name: "core-x/build/1", Label: "build 2:1 RUN make", Status: StatusRan, Start: t0, Duration: time.Second, Log: DigestOf([]byte("x"))}}}
	arm := &BuildRecord{Image: "core-x", Platform: "linux/arm64", Status: StatusRunning, Start: t0.Add(time.Minute)}
	odd := &BuildRecord{Image: "../x*", Platform: "linux/amd64", Status: StatusDone, Start: t0}
	for _, r := range []*BuildRecord{amd, arm, odd} {
		if err := l.PutBuild(r); err != nil {
			t.Fatal(err)
		}
	}
	got, err := l.Builds("core-x")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]*BuildRecord{arm, amd}, got); diff != "" {
		t.Errorf("records (-want +got):\n%s", diff)
	}
	if got, err := l.Builds("../x*"); err != nil || len(got) != 1 {
		t.Errorf("odd name: %v, %v", got, err)
	}
	files, _ := os.ReadDir(filepath.Join(dir, "logs", "builds"))
	if len(files) != 3 {
		t.Errorf("logs/builds holds %d files, want 3", len(files))
	}
	if _, err := l.Builds("core-y"); err == nil {
		t.Error("an image never built has a record")
	}
}

func mustStore(t *testing.T, dir string) *ContentStore {
	t.Helper()
	s, err := OpenContentStore(filepath.Join(dir, "content"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Opening the cache after a killed build stores what its running steps
// printed as blobs, marks them and their builds interrupted, and empties
// logs/running.
func TestRecoverKilledBuild(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.Logs.Create()
	if err != nil {
		t.Fatal(err)
	}
	g.Write([]byte("half a log"))
	rec := &BuildRecord{Image: "core-x", Platform: "linux/amd64", Status: StatusRunning, Start: time.Now(), Steps: []StepRecord{
		{Name: "core-x/build/0", Status: StatusCached},
		{Name: "core-x/build/1", Status: StatusRunning, Running: g.Name()},
		{Name: "core-x/build/2", Status: StatusPending},
	}}
	if err := c.Logs.PutBuild(rec); err != nil {
		t.Fatal(err)
	}
	c.Close() // as a killed process would: g is neither committed nor closed

	c, err = Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	recs, err := c.Logs.Builds("core-x")
	if err != nil {
		t.Fatal(err)
	}
	r := recs[0]
	var status []Status
	for _, s := range r.Steps {
		status = append(status, s.Status)
	}
	if diff := cmp.Diff([]Status{StatusCached, StatusInterrupted, StatusPending}, status); diff != "" || r.Status != StatusInterrupted {
		t.Errorf("build %s, steps (-want +got):\n%s", r.Status, diff)
	}
	rc, err := c.Logs.Open(r.Steps[1])
	if got := readLog(t, rc, err); got != "half a log" || r.Steps[1].Log.IsZero() {
		t.Errorf("interrupted step's log: %q (blob %s)", got, r.Steps[1].Log)
	}
	if left, _ := os.ReadDir(filepath.Join(dir, "logs", "running")); len(left) != 0 {
		t.Errorf("logs/running still holds %v", left)
	}
	if rep, _ := Fsck(c.Actions, c.Store, c.Logs); len(rep.Problems) != 0 {
		t.Errorf("fsck after recovery: %q", rep.Problems)
	}
}

// gc keeps the logs build records name when it removes the results that
// named them too, until --max-age removes the records (and then the logs,
// as any blob nothing names), or --max-size cannot be met otherwise;
// fsck reports a record whose log is gone.
func TestCollectKeepsRecordedLogs(t *testing.T) {
	dir := t.TempDir()
	c, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	now := time.Now()
	layer, n, _ := c.Store.Ingest(bytes.NewReader(blobBytes(1)), Digest{})
	log, _, _ := c.Store.Ingest(bytes.NewReader([]byte("the log")), Digest{})
	old := now.Add(-48 * time.Hour)
	c.Actions.Put(ActionKey{1}, Result{Layer: layer, LayerSize: n, Log: log, Created: old, LastUsed: old})
	rec := &BuildRecord{Image: "core-x", Platform: "linux/amd64", Status: StatusDone, Start: old, End: old,
		Steps: []StepRecord{{Name: "core-x/build/0", Status: StatusRan, Log: log}}}
	c.Logs.PutBuild(rec)

	rep, err := Collect(c.Actions, c.Store, nil, c.Logs, c.SnapshotDir(), GCOptions{MaxBytes: 10, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Results != 1 || rep.Builds != 0 {
		t.Errorf("gc --max-size: %+v", rep)
	}
	if _, err := c.Store.Size(log); err != nil {
		t.Errorf("the recorded log was removed: %v", err)
	}
	if _, err := c.Store.Size(layer); err == nil {
		t.Errorf("the layer of the removed result is left")
	}

	rep, err = Collect(c.Actions, c.Store, nil, c.Logs, c.SnapshotDir(), GCOptions{MaxAge: 24 * time.Hour, MaxBytes: 1, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Builds != 1 || rep.Blobs != 1 {
		t.Errorf("gc --max-age: %+v", rep)
	}
	if _, err := c.Logs.Builds("core-x"); err == nil {
		t.Error("the old build record is left")
	}

	c.Logs.PutBuild(rec) // names a log no longer stored
	if rep, _ := Fsck(c.Actions, c.Store, c.Logs); len(rep.Problems) != 1 {
		t.Errorf("fsck of a record whose log is gone: %q", rep.Problems)
	}

	// Under a size only removing the record meets, the record goes.
	c.Store.Ingest(bytes.NewReader([]byte("the log")), Digest{})
	if rep, err := Collect(c.Actions, c.Store, nil, c.Logs, c.SnapshotDir(), GCOptions{MaxBytes: 1, Now: now}); err != nil || rep.Builds != 1 || rep.Blobs != 1 {
		t.Errorf("gc --max-size under the recorded logs: %+v, %v", rep, err)
	}
	if rep, _ := Fsck(c.Actions, c.Store, c.Logs); len(rep.Problems) != 0 {
		t.Errorf("fsck after gc removed a record: %q", rep.Problems)
	}
}
