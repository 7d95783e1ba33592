package cache

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// Cache is a cache directory opened whole: its action cache, content
// store, snapshots, imported and published images, the hashes of files
// it read and the logs of builds. It holds the directory's lock (the
// action cache's) from Open to Close, so that no two processes build on,
// or collect, one cache at once.
type Cache struct {
	Dir       string
	Actions   *Actions
	Store     *ContentStore
	Snapshots *Snapshots
	Images    *Images
	Files     *FileHashes
	Logs      *Logs
	Published *Published
}

// Open opens the cache in dir (Dir is its absolute path), creating what
// is missing. It takes the lock
// first (waiting for another process as OpenActions says, or as WithWait
// says), then cleans what a killed process left among the snapshots and
// stores the logs of the steps it was running.
func Open(dir string, opts ...OpenOption) (*Cache, error) {
	// Paths under the cache reach the sandbox, which wants them absolute.
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, fmt.Errorf("opening cache: %w", err)
	}
	a, err := OpenActions(dir, opts...)
	if err != nil {
		return nil, err
	}
	c := &Cache{Dir: dir, Actions: a, Images: OpenImages(dir), Files: newFileHashes(a.db), Published: OpenPublished(dir)}
	if c.Store, err = OpenContentStore(filepath.Join(dir, "content")); err == nil {
		c.Snapshots, err = OpenSnapshots(c.SnapshotDir())
	}
	if err == nil {
		c.Logs, err = OpenLogs(dir, c.Store)
	}
	if err == nil {
		err = c.Logs.recover()
	}
	if err != nil {
		return nil, errors.Join(err, a.Close())
	}
	return c, nil
}

// SnapshotDir is the directory of the snapshot store.
func (c *Cache) SnapshotDir() string { return filepath.Join(c.Dir, "snapshots") }

// Close writes what the action cache and the file hashes have pending and
// releases the lock.
func (c *Cache) Close() error {
	if err := errors.Join(c.Files.flush(), c.Actions.Close()); err != nil {
		return fmt.Errorf("closing cache %s: %w", c.Dir, err)
	}
	return nil
}

// Busy reports whether a process holds the cache in dir (a build, or a
// cache command), without waiting for it. It takes the lock for an
// instant when it is free.
func Busy(dir string) bool {
	f, err := os.Open(filepath.Join(dir, "actions.db"))
	if err != nil {
		return false
	}
	defer f.Close()
	// bbolt holds an exclusive flock on the file while it is open.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_SH|unix.LOCK_NB); err != nil {
		return errors.Is(err, unix.EWOULDBLOCK)
	}
	unix.Flock(int(f.Fd()), unix.LOCK_UN)
	return false
}

// Pinned returns the manifests of the images the cache keeps whole
// whatever gc is asked: the imported and the published ones.
func (c *Cache) Pinned() ([]Digest, error) {
	imported, err := c.Images.Manifests()
	if err != nil {
		return nil, err
	}
	published, err := c.Published.Manifests()
	if err != nil {
		return nil, err
	}
	return append(imported, published...), nil
}
