package cache

import (
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/sys/unix"
)

// ChainID names a stack of layers by content: the chain ID of the OCI
// image spec, sha256(parent chain ID + " " + diffID), the diffID itself for
// the bottom layer.
type ChainID Digest

// Chain returns the chain ID of the layer diffID on top of parent; a zero
// parent means diffID is the bottom layer.
func Chain(parent ChainID, diffID Digest) ChainID {
	if Digest(parent).IsZero() {
		return ChainID(diffID)
	}
	return ChainID(sha256.Sum256([]byte(Digest(parent).String() + " " + diffID.String())))
}

// String returns "sha256:<hex>".
func (c ChainID) String() string { return Digest(c).String() }

// Snapshots holds unpacked layers, one directory per chain ID, each in
// overlayfs upper-dir form (deletions are whiteouts: 0/0 character devices)
// so that a stack of them mounts as overlay lower dirs. A snapshot dir is
// complete once it has its final name: it is built under tmp/ and renamed.
type Snapshots struct {
	dir string
}

// OpenSnapshots returns the snapshot store in dir, creating it if needed.
// What a killed process left in its tmp/ (mounts, half-made snapshots) is
// unmounted and removed: the caller must hold the cache, so that no other
// process is using tmp/ (sxmake holds the action cache's lock).
func OpenSnapshots(dir string) (*Snapshots, error) {
	s := &Snapshots{dir: dir}
	// The snapshots are file systems made by steps: setuid files among
	// them must be out of other users' reach. empty is the root directory
	// of scratch (its mode is content), reached only through dir.
	for _, d := range []string{dir, s.tmpDir()} {
		if err := MkdirPrivate(d); err != nil {
			return nil, fmt.Errorf("creating snapshot store: %w", err)
		}
	}
	if err := os.MkdirAll(s.emptyDir(), 0o755); err != nil {
		return nil, fmt.Errorf("creating snapshot store: %w", err)
	}
	if err := s.cleanTmp(); err != nil {
		return nil, fmt.Errorf("cleaning snapshot store: %w", err)
	}
	return s, nil
}

// cleanTmp unmounts what is mounted under tmp/ and empties it.
func (s *Snapshots) cleanTmp() error {
	tmp, err := filepath.Abs(s.tmpDir())
	if err != nil {
		return err
	}
	mounts, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return err
	}
	for _, line := range strings.Split(string(mounts), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && strings.HasPrefix(f[4], tmp+"/") {
			if err := unix.Unmount(f[4], unix.MNT_DETACH); err != nil {
				return fmt.Errorf("unmounting %s: %w", f[4], err)
			}
		}
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		return err
	}
	for _, e := range entries {
		if err := os.RemoveAll(filepath.Join(tmp, e.Name())); err != nil {
			return err
		}
	}
	return nil
}

func (s *Snapshots) tmpDir() string   { return filepath.Join(s.dir, "tmp") }
func (s *Snapshots) emptyDir() string { return filepath.Join(s.dir, "empty") }

// Path returns the directory of chain c. Names are the first 16 hex digits
// of the chain ID, short because overlayfs takes every lower dir in one
// page of mount options (a stack too deep for that is mounted by
// descriptor: see sandbox.MountOverlay).
func (s *Snapshots) Path(c ChainID) string {
	return filepath.Join(s.dir, Digest(c).Hex()[:16])
}

// Has reports whether the snapshot of c is complete.
func (s *Snapshots) Has(c ChainID) bool {
	_, err := os.Lstat(s.Path(c))
	return err == nil
}

// Empty returns an empty directory, the file system of scratch.
func (s *Snapshots) Empty() string { return s.emptyDir() }

// Prepare returns a fresh empty upper dir and its overlay work dir (same
// file system, as overlayfs requires), to be passed to Commit or Discard.
func (s *Snapshots) Prepare() (upper, work string, err error) {
	d, err := os.MkdirTemp(s.tmpDir(), "s")
	if err != nil {
		return "", "", fmt.Errorf("preparing snapshot: %w", err)
	}
	upper, work = filepath.Join(d, "u"), filepath.Join(d, "w")
	for _, p := range []string{upper, work} {
		if err := os.Mkdir(p, 0o755); err != nil {
			return "", "", fmt.Errorf("preparing snapshot: %w", err)
		}
	}
	return upper, work, nil
}

// Commit makes the prepared upper dir the snapshot of c. If another build
// committed c meanwhile, the prepared one is discarded.
func (s *Snapshots) Commit(upper string, c ChainID) error {
	defer s.Discard(upper)
	if err := os.Rename(upper, s.Path(c)); err != nil && !s.Has(c) {
		return fmt.Errorf("committing snapshot %s: %w", c, err)
	}
	return nil
}

// Discard removes a prepared upper dir and its work dir.
func (s *Snapshots) Discard(upper string) {
	os.RemoveAll(filepath.Dir(upper))
}

// MkdirTemp makes a scratch directory (a mount point, say) on the snapshot
// store's file system; the caller removes it.
func (s *Snapshots) MkdirTemp() (string, error) {
	d, err := os.MkdirTemp(s.tmpDir(), "m")
	if err != nil {
		return "", fmt.Errorf("snapshot store: %w", err)
	}
	return d, nil
}
