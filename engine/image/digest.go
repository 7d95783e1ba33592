package image

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"

	"github.com/stagex/sxmake/cache"
)

// Digest is a blob's content address: the SHA-256 of its bytes, as used by
// the content store.
type Digest = cache.Digest

// DiffID is the SHA-256 of a layer's uncompressed tar stream, as listed in
// an image config's rootfs.diff_ids. It is never a blob's address.
type DiffID [sha256.Size]byte

// ParseDiffID parses "sha256:<hex>".
func ParseDiffID(s string) (DiffID, error) {
	d, err := cache.ParseDigest(s)
	if err != nil {
		return DiffID{}, fmt.Errorf("diffID: %w", err)
	}
	return DiffID(d), nil
}

// String returns "sha256:<hex>".
func (d DiffID) String() string { return "sha256:" + hex.EncodeToString(d[:]) }

// IsZero reports whether d is unset.
func (d DiffID) IsZero() bool { return d == DiffID{} }

// MarshalText implements encoding.TextMarshaler.
func (d DiffID) MarshalText() ([]byte, error) { return []byte(d.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (d *DiffID) UnmarshalText(b []byte) error {
	p, err := ParseDiffID(string(b))
	if err != nil {
		return err
	}
	*d = p
	return nil
}
