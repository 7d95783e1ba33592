package cache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	bolt "go.etcd.io/bbolt"
)

func testKey(i int) ActionKey {
	var k ActionKey
	copy(k[:], fmt.Sprintf("key-%028d", i))
	return k
}

func TestActionsRoundTrip(t *testing.T) {
	a, err := OpenActions(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	a.now = func() time.Time { return created.Add(time.Minute) }
	want := Result{
		Layer:     DigestOf([]byte("layer")),
		DiffID:    DigestOf([]byte("tar")),
		LayerSize: 42,
		Log:       DigestOf([]byte("log")),
		Duration:  3 * time.Second,
		Created:   created,
		LastUsed:  created,
	}
	if err := a.Put(testKey(1), want); err != nil {
		t.Fatal(err)
	}
	got, err := a.Get(testKey(1))
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Get after Put (-want +got):\n%s", diff)
	}
	if _, err := a.Get(testKey(2)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get of a missing key: got %v, want ErrNotFound", err)
	}
}

func TestActionsLastUsedRefreshedHourly(t *testing.T) {
	a, err := OpenActions(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	if err := a.Put(testKey(1), Result{Created: t0}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		now  time.Time
		want time.Time
	}{ // each Get is followed by a flush, as Close does
		{t0.Add(30 * time.Minute), t0},                     // recent use: no write
		{t0.Add(2 * time.Hour), t0.Add(2 * time.Hour)},     // stale: refreshed
		{t0.Add(150 * time.Minute), t0.Add(2 * time.Hour)}, // recent again
	} {
		a.now = func() time.Time { return tc.now }
		if _, err := a.Get(testKey(1)); err != nil {
			t.Fatal(err)
		}
		if err := a.flush(); err != nil {
			t.Fatal(err)
		}
		var stored Result
		a.Walk(func(_ ActionKey, r Result) error { stored = r; return nil })
		if !stored.LastUsed.Equal(tc.want) {
			t.Errorf("at %v: LastUsed = %v, want %v", tc.now, stored.LastUsed, tc.want)
		}
	}
}

func TestActionsRecords(t *testing.T) {
	a, err := OpenActions(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.LastRecord("core-llvm/build/3"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("LastRecord before any run: got %v, want ErrNotFound", err)
	}
	want := Record{Key: testKey(7).String(), Inputs: []string{"kind RUN", "arg /bin/sh -c make"}}
	if err := a.SetRecord("core-llvm/build/3", want); err != nil {
		t.Fatal(err)
	}
	got, err := a.LastRecord("core-llvm/build/3")
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("LastRecord (-want +got):\n%s", diff)
	}
}

// An action database of another schema version is discarded, not misread.
func TestActionsUnknownSchemaStartsOver(t *testing.T) {
	dir := t.TempDir()
	a, err := OpenActions(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Put(testKey(1), Result{}); err != nil {
		t.Fatal(err)
	}
	err = a.db.Update(func(tx *bolt.Tx) error { return tx.Bucket(bucketMeta).Put(keyVersion, []byte("0")) })
	if err != nil {
		t.Fatal(err)
	}
	a.Close()
	if a, err = OpenActions(dir); err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if _, err := a.Get(testKey(1)); !errors.Is(err, ErrNotFound) {
		t.Errorf("Get from a database of schema 0: got %v, want ErrNotFound", err)
	}
	if err := a.Put(testKey(2), Result{}); err != nil {
		t.Fatalf("Put after starting over: %v", err)
	}
}

// Several handles on one directory (as several sxmake processes have),
// each opened in turn while the others wait, lose no entry.
func TestActionsConcurrentWriters(t *testing.T) {
	dir := t.TempDir()
	const writers, each = 4, 25
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for w := 0; w < writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			a, err := OpenActions(dir)
			if err != nil {
				errs <- err
				return
			}
			defer a.Close()
			for i := 0; i < each; i++ {
				if err := a.Put(testKey(w*each+i), Result{ExitCode: w}); err != nil {
					errs <- err
					return
				}
			}
		}(w)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	a, _ := OpenActions(dir)
	defer a.Close()
	n := 0
	a.Walk(func(ActionKey, Result) error { n++; return nil })
	if n != writers*each {
		t.Errorf("found %d results, want %d", n, writers*each)
	}
}

// A database file bbolt cannot read (here: garbage, as a torn write after
// a power failure could leave) is recreated, not an error.
func TestActionsCorruptFileStartsOver(t *testing.T) {
	dir := t.TempDir()
	garbage := make([]byte, 8192)
	for i := range garbage {
		garbage[i] = byte(i * 7)
	}
	if err := os.WriteFile(filepath.Join(dir, "actions.db"), garbage, 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := OpenActions(dir)
	if err != nil {
		t.Fatalf("opening over a corrupt file: %v", err)
	}
	defer a.Close()
	if err := a.Put(testKey(1), Result{}); err != nil {
		t.Fatal(err)
	}
}

// The bucket tree drawn in actions.go names the schema version the code
// writes, not a number of its own that can drift from it.
func TestSchemaDocNamesVersion(t *testing.T) {
	src, err := os.ReadFile("actions.go")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^//\s+version -> (.*)$`).FindSubmatch(src)
	if m == nil {
		t.Fatal("actions.go draws no meta/version key")
	}
	if doc := string(m[1]); !strings.Contains(doc, "schemaVersion") && !strings.Contains(doc, strconv.Quote(schemaVersion)) {
		t.Errorf("actions.go documents version -> %s; the code writes %q", doc, schemaVersion)
	}
}
