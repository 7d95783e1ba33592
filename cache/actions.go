package cache

import (
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// The action database, actions.db, is a bbolt file with this bucket tree:
//
//	meta/
//	  version -> schemaVersion; any other value: start over
//	results/
//	  <ActionKey, 32 bytes> -> Result, binary (see Result.MarshalBinary)
//	explain/
//	  <action name> -> Record as JSON: the key and labelled inputs of the
//	                   last run of that action, for --explain
//	files/
//	  <absolute path> -> a file's identity and SHA-256, binary (FileHashes)
//	durations/
//	  <action name> -> how long the last run of that action took, in
//	                   nanoseconds (a big-endian int64), for estimates
//
// An unknown schema version is not migrated: the file is removed and
// recreated, since every entry can be rebuilt (ninja's build log does the
// same).
const schemaVersion = "2"

var (
	bucketMeta    = []byte("meta")
	bucketResults = []byte("results")
	bucketExplain = []byte("explain")
	bucketTimes   = []byte("durations")
	keyVersion    = []byte("version")
)

// ActionKey identifies an action by the BLAKE3 hash of its labelled inputs.
type ActionKey [32]byte

// String returns the key in hex.
func (k ActionKey) String() string { return hex.EncodeToString(k[:]) }

// Result is what an action produced. Blobs it names live in the content
// store; a Result whose blobs are gone is a miss for the caller.
type Result struct {
	Layer     Digest        `json:"layer"`  // layer blob: gzip, or the tar itself (Layer == DiffID) for an intermediate step's; zero for a step without a layer
	DiffID    Digest        `json:"diffID"` // the uncompressed layer's digest (its diffID)
	LayerSize int64         `json:"layerSize,omitempty"`
	Log       Digest        `json:"log"` // the step's output, a blob
	ExitCode  int           `json:"exitCode"`
	Duration  time.Duration `json:"duration"`
	Created   time.Time     `json:"created"`
	LastUsed  time.Time     `json:"lastUsed"`
}

// resultSize is the length of a Result's binary form.
const resultSize = 3*32 + 5*8

// MarshalBinary encodes r in a fixed layout: Layer, DiffID and Log (32
// bytes each), then LayerSize, ExitCode, Duration and the Created and
// LastUsed times in Unix nanoseconds, each a big-endian int64. Decoding a
// JSON document for each of the thousands of hits of a build was a
// visible part of a fully cached build.
func (r Result) MarshalBinary() ([]byte, error) {
	b := make([]byte, 0, resultSize)
	b = append(b, r.Layer[:]...)
	b = append(b, r.DiffID[:]...)
	b = append(b, r.Log[:]...)
	for _, n := range []int64{r.LayerSize, int64(r.ExitCode), int64(r.Duration), r.Created.UnixNano(), r.LastUsed.UnixNano()} {
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return b, nil
}

// UnmarshalBinary decodes what MarshalBinary encodes.
func (r *Result) UnmarshalBinary(b []byte) error {
	if len(b) != resultSize {
		return fmt.Errorf("action result of %d bytes, want %d", len(b), resultSize)
	}
	copy(r.Layer[:], b[0:32])
	copy(r.DiffID[:], b[32:64])
	copy(r.Log[:], b[64:96])
	n := func(i int) int64 { return int64(binary.BigEndian.Uint64(b[96+8*i:])) }
	r.LayerSize, r.ExitCode, r.Duration = n(0), int(n(1)), time.Duration(n(2))
	r.Created, r.LastUsed = time.Unix(0, n(3)).UTC(), time.Unix(0, n(4)).UTC()
	return nil
}

// Record is the last run of a named action: its key and the labelled input
// lines the key was computed from.
type Record struct {
	Key    string   `json:"key"`
	Inputs []string `json:"inputs"`
}

// Actions is the action cache: results by key, and the last record of each
// named action. It holds the database open (and so bbolt's file lock) from
// OpenActions to Close: another process opening the same cache waits for
// it. Methods are safe for concurrent use. bbolt's copy-on-write pages keep
// the file consistent if the process dies mid-write.
type Actions struct {
	path string
	db   *bolt.DB
	now  func() time.Time

	mu      sync.Mutex
	touched map[ActionKey]Result // hits whose last-use time is to be written

	wait     bool // WithWait: until waitDone closes (nil: never)
	waitDone <-chan struct{}
	notice   func()
}

// OpenOption configures OpenActions and Open.
type OpenOption func(*Actions)

// WithWait makes OpenActions wait for another process holding the cache
// until done is closed (by default it waits up to two minutes), calling
// notice once if it has to wait.
func WithWait(done <-chan struct{}, notice func()) OpenOption {
	return func(a *Actions) { a.wait, a.waitDone, a.notice = true, done, notice }
}

// OpenActions opens the action cache in dir, creating it if needed. It
// waits up to two minutes for another process holding it, or as WithWait
// says.
func OpenActions(dir string, opts ...OpenOption) (*Actions, error) {
	if err := MkdirPrivate(dir); err != nil {
		return nil, fmt.Errorf("creating cache dir: %w", err)
	}
	a := &Actions{path: filepath.Join(dir, "actions.db"), now: time.Now, touched: map[ActionKey]Result{}}
	for _, o := range opts {
		o(a)
	}
	db, err := a.open()
	if err != nil {
		return nil, err
	}
	a.db = db
	return a, nil
}

// Close writes the pending last-use times, syncs and closes the database.
func (a *Actions) Close() error {
	err := a.flush()
	if serr := a.db.Sync(); err == nil {
		err = serr
	}
	if cerr := a.db.Close(); err == nil {
		err = cerr
	}
	return err
}

// Get returns the result stored under key, or an error wrapping
// ErrNotFound. A hit's last-use time is refreshed, at most hourly, when
// the cache is closed.
func (a *Actions) Get(key ActionKey) (Result, error) {
	var r Result
	err := a.db.View(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketResults).Get(key[:])
		if v == nil {
			return fmt.Errorf("action %s: %w", key, ErrNotFound)
		}
		return r.UnmarshalBinary(v)
	})
	if err != nil {
		return Result{}, err
	}
	if now := a.now(); now.Sub(r.LastUsed) > time.Hour {
		r.LastUsed = now
		a.mu.Lock()
		a.touched[key] = r
		a.mu.Unlock()
	}
	return r, nil
}

// flush writes the last-use times of hits in one transaction.
func (a *Actions) flush() error {
	a.mu.Lock()
	touched := a.touched
	a.touched = map[ActionKey]Result{}
	a.mu.Unlock()
	if len(touched) == 0 {
		return nil
	}
	return a.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketResults)
		for k, r := range touched {
			data, _ := r.MarshalBinary()
			if err := b.Put(k[:], data); err != nil {
				return err
			}
		}
		return nil
	})
}

// Put stores r under key.
func (a *Actions) Put(key ActionKey, r Result) error {
	if r.Created.IsZero() {
		r.Created = a.now()
	}
	if r.LastUsed.IsZero() {
		r.LastUsed = r.Created
	}
	data, _ := r.MarshalBinary()
	return a.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketResults).Put(key[:], data) })
}

// PutRun stores the result of an action that ran under key, and rec and
// r.Duration as the last run of the named action, in one transaction.
func (a *Actions) PutRun(key ActionKey, r Result, name string, rec Record) error {
	if r.Created.IsZero() {
		r.Created = a.now()
	}
	if r.LastUsed.IsZero() {
		r.LastUsed = r.Created
	}
	res, _ := r.MarshalBinary()
	rc, err := json.Marshal(rec)
	if err != nil {
		return err
	}
	return a.db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketResults).Put(key[:], res); err != nil {
			return err
		}
		if err := tx.Bucket(bucketTimes).Put([]byte(name), binary.BigEndian.AppendUint64(nil, uint64(r.Duration))); err != nil {
			return err
		}
		return tx.Bucket(bucketExplain).Put([]byte(name), rc)
	})
}

// Durations returns how long the last run of each named action took, for
// those that ran (with this schema).
func (a *Actions) Durations(names []string) map[string]time.Duration {
	out := make(map[string]time.Duration, len(names))
	_ = a.view(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketTimes)
		for _, n := range names {
			if v := b.Get([]byte(n)); len(v) == 8 {
				out[n] = time.Duration(binary.BigEndian.Uint64(v))
			}
		}
		return nil
	})
	return out
}

// LastRecord returns the record of the last run of the named action, or an
// error wrapping ErrNotFound.
func (a *Actions) LastRecord(name string) (Record, error) {
	var rec Record
	err := a.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketExplain).Get([]byte(name))
		if v == nil {
			return fmt.Errorf("action %q: no earlier run: %w", name, ErrNotFound)
		}
		return json.Unmarshal(v, &rec)
	})
	return rec, err
}

// SetRecord stores rec as the last run of the named action.
func (a *Actions) SetRecord(name string, rec Record) error {
	return a.put(bucketExplain, []byte(name), rec)
}

// Walk calls fn for every result, in key order.
func (a *Actions) Walk(fn func(ActionKey, Result) error) error {
	return a.view(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketResults).ForEach(func(k, v []byte) error {
			var key ActionKey
			var r Result
			if len(k) != len(key) {
				return fmt.Errorf("action cache: bad key length %d", len(k))
			}
			copy(key[:], k)
			if err := r.UnmarshalBinary(v); err != nil {
				return fmt.Errorf("action %s: %w", key, err)
			}
			return fn(key, r)
		})
	})
}

// Delete removes the result stored under key; a missing key is no error.
func (a *Actions) Delete(key ActionKey) error {
	return a.update(func(tx *bolt.Tx) error { return tx.Bucket(bucketResults).Delete(key[:]) })
}

func (a *Actions) put(bucket, key []byte, v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return a.update(func(tx *bolt.Tx) error { return tx.Bucket(bucket).Put(key, data) })
}

func (a *Actions) view(fn func(*bolt.Tx) error) error { return a.db.View(fn) }

func (a *Actions) update(fn func(*bolt.Tx) error) error { return a.db.Update(fn) }

// open opens the database, creating its buckets on first use and starting
// over on an unknown schema version or a file bbolt finds corrupt. The
// common case costs no write.
//
// Transactions are not synced one by one (Close syncs): a killed process
// loses nothing, since the kernel keeps its writes, and a power failure
// can at worst lose recent results or leave a file that is recreated.
func (a *Actions) open() (*bolt.DB, error) {
	db, err := a.boltOpen()
	if errors.Is(err, berrors.ErrInvalid) || errors.Is(err, berrors.ErrChecksum) || errors.Is(err, berrors.ErrVersionMismatch) {
		if rerr := os.Remove(a.path); rerr != nil {
			return nil, fmt.Errorf("removing corrupt action cache: %w", rerr)
		}
		db, err = a.boltOpen()
	}
	if err != nil {
		return nil, fmt.Errorf("opening action cache %s: %w", a.path, err)
	}
	var version []byte
	ready := true
	_ = db.View(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bucketMeta); m != nil {
			version = append(version, m.Get(keyVersion)...)
		}
		for _, b := range [][]byte{bucketMeta, bucketResults, bucketExplain, bucketFiles, bucketTimes} {
			ready = ready && tx.Bucket(b) != nil
		}
		return nil
	})
	switch {
	case version != nil && string(version) != schemaVersion:
		db.Close()
		if err := os.Remove(a.path); err != nil {
			return nil, fmt.Errorf("removing action cache of another schema: %w", err)
		}
		return a.open()
	case ready:
		return db, nil
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, b := range [][]byte{bucketMeta, bucketResults, bucketExplain, bucketFiles, bucketTimes} {
			if _, err := tx.CreateBucketIfNotExists(b); err != nil {
				return err
			}
		}
		return tx.Bucket(bucketMeta).Put(keyVersion, []byte(schemaVersion))
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("action cache %s: %w", a.path, err)
	}
	return db, nil
}

// boltOpen opens the file, waiting for another process holding its lock
// as OpenActions says.
func (a *Actions) boltOpen() (*bolt.DB, error) {
	if !a.wait {
		return bolt.Open(a.path, 0o644, &bolt.Options{Timeout: 2 * time.Minute, NoSync: true})
	}
	noticed := false
	for {
		db, err := bolt.Open(a.path, 0o644, &bolt.Options{Timeout: time.Second, NoSync: true})
		if !errors.Is(err, berrors.ErrTimeout) {
			return db, err
		}
		if !noticed && a.notice != nil {
			a.notice()
			noticed = true
		}
		select {
		case <-a.waitDone:
			return nil, fmt.Errorf("waiting for another process using the cache: %w", err)
		default:
		}
	}
}
