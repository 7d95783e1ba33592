package cache

import (
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/opencontainers/go-digest"
	bolt "go.etcd.io/bbolt"
)

// The action database, actions.db, is a bbolt file with this bucket tree:
//
//	meta/
//	  version -> "1"          schema version; any other value: start over
//	results/
//	  <ActionKey, 32 bytes> -> Result as JSON
//	explain/
//	  <action name> -> Record as JSON: the key and labelled inputs of the
//	                   last run of that action, for --explain
//
// An unknown schema version is not migrated: the file is removed and
// recreated, since every entry can be rebuilt (ninja's build log does the
// same).
const schemaVersion = "1"

var (
	bucketMeta    = []byte("meta")
	bucketResults = []byte("results")
	bucketExplain = []byte("explain")
	keyVersion    = []byte("version")
)

// ActionKey identifies an action by the BLAKE3 hash of its labelled inputs.
type ActionKey [32]byte

// String returns the key in hex.
func (k ActionKey) String() string { return hex.EncodeToString(k[:]) }

// Result is what an action produced. Blobs it names live in the content
// store; a Result whose blobs are gone is a miss for the caller.
type Result struct {
	Layer     digest.Digest `json:"layer,omitempty"`  // compressed layer blob; empty for a step without a layer
	DiffID    digest.Digest `json:"diffID,omitempty"` // digest of the uncompressed layer
	LayerSize int64         `json:"layerSize,omitempty"`
	Log       digest.Digest `json:"log,omitempty"` // the step's output, a blob
	ExitCode  int           `json:"exitCode"`
	Duration  time.Duration `json:"duration"`
	Created   time.Time     `json:"created"`
	LastUsed  time.Time     `json:"lastUsed"`
}

// Record is the last run of a named action: its key and the labelled input
// lines the key was computed from.
type Record struct {
	Key    string   `json:"key"`
	Inputs []string `json:"inputs"`
}

// Actions is the action cache: results by key, and the last record of each
// named action. Each method opens the database only for its transaction,
// so several processes can share one cache directory; bbolt's file lock
// serialises them and its copy-on-write pages keep the file consistent if a
// process dies mid-write.
type Actions struct {
	path string
	now  func() time.Time
}

// OpenActions returns the action cache in dir, creating it if needed.
func OpenActions(dir string) (*Actions, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating cache dir: %w", err)
	}
	a := &Actions{path: filepath.Join(dir, "actions.db"), now: time.Now}
	if err := a.update(func(*bolt.Tx) error { return nil }); err != nil {
		return nil, err
	}
	return a, nil
}

// Get returns the result stored under key, or an error wrapping
// ErrNotFound. A hit refreshes the entry's last-use time at most hourly.
func (a *Actions) Get(key ActionKey) (Result, error) {
	var r Result
	err := a.view(func(tx *bolt.Tx) error {
		v := tx.Bucket(bucketResults).Get(key[:])
		if v == nil {
			return fmt.Errorf("action %s: %w", key, ErrNotFound)
		}
		return json.Unmarshal(v, &r)
	})
	if err != nil {
		return Result{}, err
	}
	if now := a.now(); now.Sub(r.LastUsed) > time.Hour {
		r.LastUsed = now
		if err := a.put(bucketResults, key[:], r); err != nil {
			return Result{}, err
		}
	}
	return r, nil
}

// Put stores r under key.
func (a *Actions) Put(key ActionKey, r Result) error {
	if r.Created.IsZero() {
		r.Created = a.now()
	}
	if r.LastUsed.IsZero() {
		r.LastUsed = r.Created
	}
	return a.put(bucketResults, key[:], r)
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
			if err := json.Unmarshal(v, &r); err != nil {
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

func (a *Actions) view(fn func(*bolt.Tx) error) error {
	db, err := a.open()
	if err != nil {
		return err
	}
	defer db.Close()
	return db.View(fn)
}

func (a *Actions) update(fn func(*bolt.Tx) error) error {
	db, err := a.open()
	if err != nil {
		return err
	}
	defer db.Close()
	return db.Update(fn)
}

// open opens the database, creating its buckets on first use and starting
// over on an unknown schema version. The common case costs no write.
func (a *Actions) open() (*bolt.DB, error) {
	db, err := bolt.Open(a.path, 0o644, &bolt.Options{Timeout: 2 * time.Minute})
	if err != nil {
		return nil, fmt.Errorf("opening action cache %s: %w", a.path, err)
	}
	var version []byte
	ready := true
	_ = db.View(func(tx *bolt.Tx) error {
		if m := tx.Bucket(bucketMeta); m != nil {
			version = append(version, m.Get(keyVersion)...)
		}
		for _, b := range [][]byte{bucketMeta, bucketResults, bucketExplain} {
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
		for _, b := range [][]byte{bucketMeta, bucketResults, bucketExplain} {
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
