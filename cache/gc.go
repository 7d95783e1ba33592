package cache

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"time"
)

// Maintenance of a local cache: Stats, Collect (gc) and Fsck. Callers hold
// the action cache open, and so its lock: no build of another process
// runs meanwhile.

// Stats summarises a local cache.
type Stats struct {
	Results      int       // action results
	Blobs        int       // blobs in the content store
	BlobBytes    int64     // their size
	Unreferenced int       // blobs no result, imported or published image, build record or kept digest names
	UnrefBytes   int64     // their size
	Snapshots    int       // unpacked snapshots (derived: rebuilt from blobs)
	OldestUse    time.Time // the least recent last use of a result
	NewestUse    time.Time
}

// usage is what a cache holds, and what refers to what.
type usage struct {
	results []resultUse
	blobs   map[Digest]int64     // every blob and its size
	lastUse map[Digest]time.Time // blobs named by results: their latest use
	pinned  map[Digest]bool      // blobs of pinned images (imported, published)
	logs    map[Digest]int       // logs named by build records: how many
	builds  []recordUse          // the build records, oldest first
}

type recordUse struct {
	path string
	r    *BuildRecord
}

type resultUse struct {
	key ActionKey
	r   Result
}

func scan(a *Actions, s *ContentStore, pinned []Digest, lg *Logs) (*usage, error) {
	u := &usage{blobs: map[Digest]int64{}, lastUse: map[Digest]time.Time{}, pinned: map[Digest]bool{}, logs: map[Digest]int{}}
	err := a.Walk(func(k ActionKey, r Result) error {
		u.results = append(u.results, resultUse{k, r})
		for _, d := range []Digest{r.Layer, r.Log} {
			if !d.IsZero() && r.LastUsed.After(u.lastUse[d]) {
				u.lastUse[d] = r.LastUsed
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := s.Walk(func(d Digest, size int64) error { u.blobs[d] = size; return nil }); err != nil {
		return nil, err
	}
	for _, m := range pinned {
		if err := pinImage(s, m, u.pinned); err != nil {
			return nil, err
		}
	}
	if lg != nil {
		if err := u.addBuilds(lg); err != nil {
			return nil, err
		}
	}
	return u, nil
}

// addBuilds adds the build records and the logs they name: what sxmake
// log shows stays as long as the record (the last build of its image)
// does.
func (u *usage) addBuilds(lg *Logs) error {
	err := lg.walkBuilds(func(path string, r *BuildRecord) error {
		if r == nil {
			return nil
		}
		u.builds = append(u.builds, recordUse{path, r})
		for _, d := range r.logs() {
			u.logs[d]++
		}
		return nil
	})
	sort.SliceStable(u.builds, func(i, j int) bool { return u.builds[i].r.Start.Before(u.builds[j].r.Start) })
	return err
}

// pinImage adds the manifest m, and the config and layers it names.
func pinImage(s *ContentStore, m Digest, pinned map[Digest]bool) error {
	pinned[m] = true
	rc, err := s.Open(m)
	if err != nil {
		return nil // an image whose manifest is gone pins nothing
	}
	defer rc.Close()
	var mf struct {
		Config struct{ Digest Digest }   `json:"config"`
		Layers []struct{ Digest Digest } `json:"layers"`
	}
	if err := json.NewDecoder(io.LimitReader(rc, 4<<20)).Decode(&mf); err != nil {
		return fmt.Errorf("pinned image %s: manifest: %w", m, err)
	}
	pinned[mf.Config.Digest] = true
	for _, l := range mf.Layers {
		pinned[l.Digest] = true
	}
	return nil
}

// ComputeStats summarises the cache; pinned are the manifests of images
// kept whole (Cache.Pinned), keep digests held elsewhere (the layers of
// out/), counted as referenced.
func ComputeStats(a *Actions, s *ContentStore, pinned []Digest, lg *Logs, snapDir string, keep map[Digest]bool) (Stats, error) {
	u, err := scan(a, s, pinned, lg)
	if err != nil {
		return Stats{}, err
	}
	var st Stats
	st.Results = len(u.results)
	for _, ru := range u.results {
		if st.OldestUse.IsZero() || ru.r.LastUsed.Before(st.OldestUse) {
			st.OldestUse = ru.r.LastUsed
		}
		if ru.r.LastUsed.After(st.NewestUse) {
			st.NewestUse = ru.r.LastUsed
		}
	}
	for d, size := range u.blobs {
		st.Blobs++
		st.BlobBytes += size
		if _, named := u.lastUse[d]; !named && !u.pinned[d] && u.logs[d] == 0 && !keep[d] {
			st.Unreferenced++
			st.UnrefBytes += size
		}
	}
	st.Snapshots = len(snapshotDirs(snapDir))
	return st, nil
}

// snapshotDirs lists the snapshot directories (not tmp/ and empty/).
func snapshotDirs(dir string) []string {
	ents, _ := os.ReadDir(dir)
	var out []string
	for _, e := range ents {
		if e.IsDir() && len(e.Name()) == 16 {
			out = append(out, filepath.Join(dir, e.Name()))
		}
	}
	return out
}

// GCOptions says what Collect removes.
type GCOptions struct {
	// MaxBytes, if positive, is the size the content store is brought
	// under, removing the least recently used results first.
	MaxBytes int64
	// MaxAge, if positive, removes results not used for longer, and
	// build records (with the logs only they name) of builds that ended
	// longer ago.
	MaxAge time.Duration
	// Keep are digests never removed, nor the results naming them (the
	// layers of out/ unless asked otherwise).
	Keep map[Digest]bool
	// Snapshots removes every snapshot; they are rebuilt from blobs.
	Snapshots bool
	Now       time.Time
}

// GCReport is what Collect removed.
type GCReport struct {
	Results   int
	Builds    int // build records
	Blobs     int
	Bytes     int64
	Snapshots int
}

// Collect removes results, then the blobs no remaining result names. A
// blob no result ever named (nor a pinned image, Cache.Pinned, nor Keep)
// goes too when older than MaxAge or while the store is over MaxBytes,
// oldest first. The logs a build record names stay while the record does:
// a record goes when older than MaxAge, or, oldest first, while the store
// is still over MaxBytes once nothing else is left to remove. Results go
// before their blobs, so a process killed meanwhile leaves at worst blobs
// without results, never the reverse. The hashes of files that are gone
// or changed go too.
func Collect(a *Actions, s *ContentStore, pinned []Digest, lg *Logs, snapDir string, opts GCOptions) (GCReport, error) {
	var rep GCReport
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if err := newFileHashes(a.db).prune(); err != nil {
		return rep, err
	}
	if lg != nil && opts.MaxAge > 0 {
		n, err := lg.removeBuilds(opts.Now.Add(-opts.MaxAge))
		rep.Builds = n
		if err != nil {
			return rep, err
		}
	}
	u, err := scan(a, s, pinned, lg)
	if err != nil {
		return rep, err
	}
	var total int64
	for _, size := range u.blobs {
		total += size
	}
	kept := func(r Result) bool { return opts.Keep[r.Layer] || opts.Keep[r.Log] }
	// Results, least recently used first.
	sort.Slice(u.results, func(i, j int) bool { return u.results[i].r.LastUsed.Before(u.results[j].r.LastUsed) })
	refs := map[Digest]int{}
	for _, ru := range u.results {
		refs[ru.r.Layer]++
		refs[ru.r.Log]++
	}
	removeBlob := func(d Digest) error {
		size, ok := u.blobs[d]
		if !ok || u.pinned[d] || u.logs[d] > 0 || opts.Keep[d] {
			return nil
		}
		if err := s.Delete(d); err != nil {
			return err
		}
		delete(u.blobs, d)
		total -= size
		rep.Blobs++
		rep.Bytes += size
		return nil
	}
	for _, ru := range u.results {
		old := opts.MaxAge > 0 && opts.Now.Sub(ru.r.LastUsed) > opts.MaxAge
		big := opts.MaxBytes > 0 && total > opts.MaxBytes
		if !old && !big {
			continue
		}
		if kept(ru.r) {
			continue
		}
		if err := a.Delete(ru.key); err != nil {
			return rep, err
		}
		rep.Results++
		for _, d := range []Digest{ru.r.Layer, ru.r.Log} {
			if d.IsZero() {
				continue
			}
			if refs[d]--; refs[d] == 0 {
				if err := removeBlob(d); err != nil {
					return rep, err
				}
			}
		}
	}
	// Blobs no result names, oldest file first.
	type orphan struct {
		d   Digest
		mod time.Time
	}
	var orphans []orphan
	for d := range u.blobs {
		if refs[d] > 0 || u.pinned[d] || u.logs[d] > 0 || opts.Keep[d] {
			continue
		}
		fi, err := os.Stat(s.path(d))
		if err != nil {
			continue
		}
		orphans = append(orphans, orphan{d, fi.ModTime()})
	}
	sort.Slice(orphans, func(i, j int) bool { return orphans[i].mod.Before(orphans[j].mod) })
	for _, o := range orphans {
		old := opts.MaxAge > 0 && opts.Now.Sub(o.mod) > opts.MaxAge
		big := opts.MaxBytes > 0 && total > opts.MaxBytes
		if old || big {
			if err := removeBlob(o.d); err != nil {
				return rep, err
			}
		}
	}
	// Still over MaxBytes: the oldest build records go, with the logs
	// nothing else names (sxmake log then has no record of that image).
	for _, bu := range u.builds {
		if opts.MaxBytes <= 0 || total <= opts.MaxBytes {
			break
		}
		if bu.r.Status == StatusRunning {
			continue
		}
		if err := os.Remove(bu.path); err != nil {
			return rep, fmt.Errorf("removing build record: %w", err)
		}
		rep.Builds++
		for _, d := range bu.r.logs() {
			if u.logs[d]--; u.logs[d] == 0 && refs[d] == 0 {
				if err := removeBlob(d); err != nil {
					return rep, err
				}
			}
		}
	}
	if opts.Snapshots {
		for _, dir := range snapshotDirs(snapDir) {
			if err := os.RemoveAll(dir); err != nil {
				return rep, fmt.Errorf("removing snapshot: %w", err)
			}
			rep.Snapshots++
		}
	}
	return rep, nil
}

// FsckReport is what Fsck found.
type FsckReport struct {
	Results  int      // results checked
	Blobs    int      // blobs verified
	Problems []string // one line each; empty for a sound cache
}

// Fsck verifies every blob of the content store against its digest
// (removing the corrupt ones, which are then misses), that every result
// decodes and names blobs that are stored, at the size it says, and that
// every build record (lg, unless nil) decodes and names logs that are
// stored.
func Fsck(a *Actions, s *ContentStore, lg *Logs) (FsckReport, error) {
	var rep FsckReport
	var blobs []Digest
	if err := s.Walk(func(d Digest, _ int64) error { blobs = append(blobs, d); return nil }); err != nil {
		return rep, err
	}
	sort.Slice(blobs, func(i, j int) bool { return string(blobs[i][:]) < string(blobs[j][:]) })
	for _, d := range blobs {
		rep.Blobs++
		if err := s.Verify(d); err != nil && !errors.Is(err, ErrNotFound) {
			rep.Problems = append(rep.Problems, fmt.Sprintf("blob %s: %v (removed)", d, err))
		}
	}
	err := a.Walk(func(k ActionKey, r Result) error {
		rep.Results++
		if r.Layer.IsZero() {
			rep.Problems = append(rep.Problems, fmt.Sprintf("action %s: no layer", k))
			return nil
		}
		if size, err := s.Size(r.Layer); err != nil {
			rep.Problems = append(rep.Problems, fmt.Sprintf("action %s: layer: %v", k, err))
		} else if size != r.LayerSize {
			rep.Problems = append(rep.Problems, fmt.Sprintf("action %s: layer %s is %d bytes, result says %d", k, r.Layer, size, r.LayerSize))
		}
		if !r.Log.IsZero() {
			if _, err := s.Size(r.Log); err != nil {
				rep.Problems = append(rep.Problems, fmt.Sprintf("action %s: log: %v", k, err))
			}
		}
		return nil
	})
	if err != nil {
		// A result that does not decode stops Walk: that is a problem too.
		rep.Problems = append(rep.Problems, err.Error())
	}
	if lg != nil {
		rep.Problems = append(rep.Problems, fsckBuilds(lg, s)...)
	}
	return rep, nil
}

// fsckBuilds checks that build records decode and that the logs they name
// are stored.
func fsckBuilds(lg *Logs, s *ContentStore) []string {
	var problems []string
	err := lg.walkBuilds(func(path string, r *BuildRecord) error {
		if r == nil {
			problems = append(problems, fmt.Sprintf("build record %s: does not decode", filepath.Base(path)))
			return nil
		}
		for i, st := range r.Steps {
			if st.Log.IsZero() {
				continue
			}
			if _, err := s.Size(st.Log); err != nil {
				problems = append(problems, fmt.Sprintf("build record %s: step %d: log: %v", filepath.Base(path), i+1, err))
			}
		}
		return nil
	})
	if err != nil {
		problems = append(problems, err.Error())
	}
	return problems
}
