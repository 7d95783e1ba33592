package packages

import "sort"

// LoadOption configures Load.
type LoadOption func(*Tree)

// WithExternalImages names images that are not built by the tree but can
// be had by name (the images `sxmake import` put in the cache): a
// Containerfile may reference them as stagex/<name>. Such a reference is
// neither an error nor a dependency; it is listed in the image's External.
// An image of the tree with the same name wins.
func WithExternalImages(names ...string) LoadOption {
	return func(t *Tree) {
		if t.external == nil {
			t.external = map[string]bool{}
		}
		for _, n := range names {
			t.external[n] = true
		}
	}
}

// IsExternal reports whether name ("core-busybox", with or without the
// stagex/ prefix, tag or digest) is an external image of the tree (see
// WithExternalImages) and not one the tree builds.
func (t *Tree) IsExternal(name string) bool {
	n := stripTagDigest(trimImagePrefix(name))
	return t.external[n] && t.byName[n] == nil
}

// ImageName returns the image name a reference names: "core-busybox" for
// "stagex/core-busybox:latest" or "stagex/core-busybox@sha256:...".
func ImageName(ref string) string { return stripTagDigest(trimImagePrefix(ref)) }

func trimImagePrefix(name string) string {
	if len(name) > len(imagePrefix) && name[:len(imagePrefix)] == imagePrefix {
		return name[len(imagePrefix):]
	}
	return name
}

// addExternal records that img references the external image name.
func (img *Image) addExternal(name string) {
	i := sort.SearchStrings(img.External, name)
	if i < len(img.External) && img.External[i] == name {
		return
	}
	img.External = append(img.External, "")
	copy(img.External[i+1:], img.External[i:])
	img.External[i] = name
}
